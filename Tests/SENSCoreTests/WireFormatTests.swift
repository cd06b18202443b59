import FoundationEssentials
import Testing
@testable import SENSCore

@Suite("Wire format: one JSON object per line, readable by any JSON parser")
struct WireFormatTests {
    let event = SENSEvent(
        event: .logoff, seq: 41, time: EventTime(rfc3339: "2026-11-20T10:00:00.123456Z")!,
        sessionId: "c12", userName: "alice", uid: 1000)

    @Test func logoffLineMatchesTheDocumentedExample() {
        let line = String(decoding: WireFormat.encode(event), as: UTF8.self)
        #expect(line == #"{"event":"Logoff","seq":41,"time":"2026-11-20T10:00:00.123456Z","sessionId":"c12","userName":"alice","uid":1000}"# + "\n")
    }

    @Test func encodedEventDecodesToTheSameValueWithFoundation() throws {
        let bytes = WireFormat.encode(event)
        #expect(bytes.last == 0x0A)
        #expect(!bytes.dropLast().contains(0x0A))
        let decoded = try JSONDecoder().decode(SENSEvent.self, from: Data(bytes))
        #expect(decoded == event)
    }

    @Test(arguments: ["quote\"backslash\\", "new\nline\ttab\r", "\u{01}\u{1f}\u{7f}", "ünïcødé ☃ 👩‍💻", "", "</script>"])
    func awkwardStringsSurviveTheRoundTrip(_ name: String) throws {
        var e = event
        e.userName = name
        e.sessionId = name
        let bytes = WireFormat.encode(e)
        #expect(bytes.filter { $0 == 0x0A }.count == 1, "a string must never break the line")
        #expect(try JSONDecoder().decode(SENSEvent.self, from: Data(bytes)) == e)
    }

    @Test func everyFieldIsWrittenInOrderAndAbsentOnesAreOmitted() throws {
        let session = LogindSession(
            id: "7", uid: 1000, userName: "alice", leader: 812, startedAt: 1_795_168_700_000_000, sessionClass: "user",
            type: "tty", service: "sshd", tty: "", seat: nil, display: nil, remote: true, remoteHost: "192.0.2.7",
            remoteUser: nil, audit: 7)
        let e = SENSEvent(EventDraft(event: .logon, session: session), seq: 3, time: EventTime(microsecondsSinceEpoch: 1_795_168_800_123_456), host: "vm")
        let line = String(decoding: WireFormat.encode(e), as: UTF8.self)
        #expect(line == #"{"event":"Logon","seq":3,"time":"2026-11-20T10:00:00.123456Z","sessionId":"7","userName":"alice","uid":1000,"host":"vm","class":"user","type":"tty","service":"sshd","remote":true,"remoteHost":"192.0.2.7","leader":812,"audit":7,"sessionStart":"2026-11-20T09:58:20.000000Z","logonType":"RemoteInteractive","logonTypeCode":10}"# + "\n")
        #expect(!line.contains(#""""#), "no empty strings")
        var decoded = try JSONDecoder().decode(SENSEvent.self, from: Data(line.utf8))
        #expect(decoded.tty == nil && decoded.remoteHost == "192.0.2.7" && decoded.logonTypeCode == 10)
        decoded.tty = ""
        #expect(decoded == e)
    }

    @Test func acceptedLineEchoesTheRequestAndTheFirstSeqItAppliesTo() throws {
        let line = String(decoding: WireFormat.accepted(SubscriptionRequest(users: ["alice"]), fromSeq: 8), as: UTF8.self)
        #expect(line == #"{"accepted":{"users":["alice"]},"fromSeq":8}"# + "\n")
    }

    @Test func unknownUserIsAnExplicitNullWithAReasonNotAnEmptyName() throws {
        var e = event
        e.userName = nil
        e.uid = nil
        e.unresolved = SessionTracker.unresolvedReason
        let text = String(decoding: WireFormat.encode(e), as: UTF8.self)
        #expect(text.contains(#""userName":null,"uid":null,"unresolved":"#))
        #expect(try JSONDecoder().decode(SENSEvent.self, from: Data(text.utf8)) == e)
    }

    @Test func helloLineNamesProtocolAndVersion() throws {
        struct Hello: Decodable { var hello: String; var `protocol`: Int; var version: String; var lastSeq: UInt64 }
        let h = try JSONDecoder().decode(Hello.self, from: Data(WireFormat.hello(daemonVersion: "0.1.0", lastSeq: 7)))
        #expect(h.hello == "sensd" && h.protocol == WireFormat.protocolVersion && h.version == "0.1.0" && h.lastSeq == 7)
    }

    @Test func errorLineNamesTheLimit() throws {
        struct ErrorLine: Decodable { var error: String; var message: String; var limit: Int }
        let line = WireFormat.error(.requestTooLong, "request line exceeds 4096 bytes", extra: [("limit", 4096)])
        let e = try JSONDecoder().decode(ErrorLine.self, from: Data(line))
        #expect(e.error == "request-too-long" && e.limit == 4096 && e.message.contains("4096"))
    }
}

@Suite("Event time: RFC 3339, UTC, microseconds")
struct EventTimeTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000000Z"),
        (Int64(1), "1970-01-01T00:00:00.000001Z"),
        (Int64(1_709_164_800_000_000), "2024-02-29T00:00:00.000000Z"),
        (Int64(1_795_168_800_123_456), "2026-11-20T10:00:00.123456Z"),
        (Int64(253_402_300_799_999_999), "9999-12-31T23:59:59.999999Z"),
        (Int64(-1), "1969-12-31T23:59:59.999999Z"),
    ])
    func formatsKnownInstants(_ usec: Int64, _ text: String) {
        #expect(EventTime(microsecondsSinceEpoch: usec).rfc3339 == text)
        #expect(EventTime(rfc3339: text)?.microsecondsSinceEpoch == usec)
    }

    @Test func agreesWithFoundationOnEveryDayOfFourYears() {
        // Foundation's ISO 8601 formatting as the independent reference.
        var style = Date.ISO8601FormatStyle(includingFractionalSeconds: false)
        style.timeZone = .gmt
        for day in stride(from: Int64(19_000), to: Int64(20_461), by: 1) {
            let usec = day * 86_400_000_000 + 45_296_000_000  // 12:34:56
            let ours = EventTime(microsecondsSinceEpoch: usec).rfc3339
            let theirs = Date(timeIntervalSince1970: Double(usec / 1_000_000)).formatted(style)
            #expect(ours == String(theirs.dropLast()) + ".000000Z", "day \(day)")
        }
    }

    @Test(arguments: ["2026-11-20T10:00:00+01:00", "2026-11-20 10:00:00Z", "2026-13-01T00:00:00Z", "garbage", "2026-11-20T10:00:00.1234567Z"])
    func rejectsWhatItDoesNotWrite(_ text: String) {
        #expect(EventTime(rfc3339: text) == nil)
    }

    @Test func acceptsFewerFractionalDigits() {
        #expect(EventTime(rfc3339: "1970-01-01T00:00:01.5Z")?.microsecondsSinceEpoch == 1_500_000)
        #expect(EventTime(rfc3339: "1970-01-01T00:00:01Z")?.microsecondsSinceEpoch == 1_000_000)
    }
}

@Suite("Journal entries: one per event, with a stable MESSAGE_ID")
struct JournalEntryTests {
    @Test func everyEventTypeHasItsOwnWellFormedMessageID() {
        let ids = EventKind.allCases.map(JournalEntry.messageID)
        #expect(Set(ids).count == EventKind.allCases.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) && $0 == $0.lowercased() })
    }

    @Test func aLogoffCarriesTheDocumentedFields() {
        var e = SENSEvent(event: .logoff, seq: 41, time: EventTime(rfc3339: "2026-11-20T10:00:00.123456Z")!, sessionId: "c12", userName: "alice", uid: 1000)
        e.sessionClass = "user"
        e.remote = true
        e.remoteHost = "192.0.2.7"
        e.logonType = .remoteInteractive
        e.logonTypeCode = 10
        e.observedLate = true
        let f = Dictionary(JournalEntry.fields(e), uniquingKeysWith: { a, _ in a })
        #expect(f["MESSAGE_ID"] == JournalEntry.messageID(.logoff))
        #expect(f["MESSAGE"] == "alice (uid 1000) logged off, session c12 (observed late)")
        #expect(f["SENS_EVENT"] == "Logoff" && f["SENS_USER_NAME"] == "alice" && f["SENS_SESSION_ID"] == "c12")
        #expect(f["SENS_UID"] == "1000" && f["SENS_SEQ"] == "41" && f["SENS_TIME"] == "2026-11-20T10:00:00.123456Z")
        #expect(f["SENS_REMOTE"] == "true" && f["SENS_REMOTE_HOST"] == "192.0.2.7" && f["SENS_LOGON_TYPE_CODE"] == "10")
        #expect(f["SENS_OBSERVED_LATE"] == "true" && f["PRIORITY"] == "5")
        #expect(f["SENS_TTY"] == nil, "absent values are left out")
        #expect(JournalEntry.fields(e).allSatisfy { name, _ in name.allSatisfy { $0.isUppercase || $0 == "_" } })
    }
}
