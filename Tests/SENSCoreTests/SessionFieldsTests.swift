import FoundationEssentials
import Testing
@testable import SENSCore

/// The one field table (SessionFields) is what encoding, decoding, journal entries and the logind mapping
/// walk: these tests fail when a property is added to SENSEvent or LogindSession without a row, or when a
/// row is left out of one of them.
@Suite("Field table: one row per field drives the wire, the journal and the logind mapping")
struct SessionFieldsTests {
    /// A line with every key an event can carry, in the documented order.
    static let everyKey = #"{"event":"Logoff","seq":7,"time":"2026-11-20T10:00:00.000001Z","sessionId":"c1","userName":"alice","uid":1000,"unresolved":"why","observedLate":true,"observedAt":"2026-11-20T10:00:01.000000Z","reason":"reboot","host":"h","class":"user","type":"tty","service":"sshd","tty":"pts/1","seat":"seat0","display":":0","remote":true,"remoteHost":"10.0.0.1","remoteUser":"bob","invokedBy":"carol","invokedByUid":1002,"elevated":true,"leader":42,"audit":3,"sessionStart":"2026-11-20T09:00:00.000000Z","logonType":"RemoteInteractive","logonTypeCode":10,"targetExists":true,"remotePort":22,"failureReason":"bad-password","source":"pam","count":3}"#

    @Test func everyPropertyOfAnEventHasARowAndTheLineComesBackByteForByte() throws {
        let event = try JSONDecoder().decode(SENSEvent.self, from: Data(Self.everyKey.utf8))
        // Every optional property was filled from some row: one without a row would be nil here.
        for child in Mirror(reflecting: event).children {
            if let optional = child.value as? any OptionalProtocol { #expect(!optional.isNone, "no row of SessionFields fills SENSEvent.\(child.label ?? "?")") }
        }
        #expect(String(decoding: WireFormat.encode(event), as: UTF8.self) == Self.everyKey + "\n")
        let reencoded = try JSONDecoder().decode(SENSEvent.self, from: JSONEncoder().encode(event))
        #expect(reencoded == event)
    }

    @Test func everyPropertyOfASessionComesFromLogindAndMerges() {
        let properties: [String: TestValue] = [
            "Id": .text("c9"), "Name": .text("alice"), "User": .fields([.number(1000), .text("/org/freedesktop/login1/user/_1000")]),
            "Leader": .number(42), "Timestamp": .number64(1_763_632_800_000_000), "Class": .text("user"), "Type": .text("wayland"),
            "Service": .text("gdm-password"), "TTY": .text("tty2"), "Seat": .fields([.text("seat0"), .text("/org/freedesktop/login1/seat/seat0")]),
            "Display": .text(":1"), "Remote": .flag(false), "RemoteHost": .text("h"), "RemoteUser": .text("u"), "Audit": .number(5),
            "Active": .flag(true), "IdleHint": .flag(false), "LockedHint": .flag(true), "State": .text("active"),
        ]
        let session = LogindSession(id: "ignored", properties: properties)
        #expect(session.id == "c9")
        // Who ran run0 comes from systemd (the session's service unit), not from logind's properties.
        let fromSystemd: Set<String> = ["invokedBy", "invokedByUid", "elevated"]
        for child in Mirror(reflecting: session).children where !fromSystemd.contains(child.label ?? "") {
            if let optional = child.value as? any OptionalProtocol { #expect(!optional.isNone, "no row of SessionFields reads LogindSession.\(child.label ?? "?") from logind") }
        }
        #expect(Set(LogindSession.logindProperties) == Set(properties.keys))
        // Merging: what the newer record knows wins, what it does not say stays.
        let newer = LogindSession(id: "c9", properties: ["LockedHint": TestValue.flag(false), "State": .text("closing")])
        let merged = session.updated(with: newer)
        #expect(merged.locked == false && merged.state == "closing" && merged.userName == "alice" && merged.startedAt == 1_763_632_800_000_000)
    }

    @Test func logindsNoValueMarkersAreUnknownNotValues() {
        let session = LogindSession(id: "c1", properties: [
            "Leader": TestValue.number(0), "Timestamp": .number64(0), "Audit": .number(UInt32.max), "TTY": .text(""), "Seat": .fields([.text(""), .text("/")]),
        ])
        #expect(session.leader == nil && session.startedAt == nil && session.audit == nil && session.tty == nil && session.seat == nil)
    }

    @Test func aLogonDescribesItsSessionAndTheSessionItsEvents() throws {
        let event = try JSONDecoder().decode(SENSEvent.self, from: Data(Self.everyKey.utf8))
        let session = LogindSession(event: event)
        let again = SENSEvent(EventDraft(event: .logoff, session: session), seq: 7, time: event.time, host: "h")
        // What a session holds survives the round trip; what only the event has (why, when noticed) does not.
        for key in ["userName", "uid", "class", "type", "service", "tty", "seat", "display", "remote", "remoteHost", "remoteUser", "leader", "audit", "sessionStart", "logonType", "logonTypeCode"] {
            #expect(value(of: key, in: again) == value(of: key, in: event), "\(key)")
        }
    }

    @Test func theJournalEntryHasEveryJournalKeyOfTheTableInItsOrder() throws {
        let event = try JSONDecoder().decode(SENSEvent.self, from: Data(Self.everyKey.utf8))
        let names = JournalEntry.fields(event).map(\.0).filter { $0.hasPrefix("SENS_") }
        #expect(names == ["SENS_EVENT", "SENS_SEQ", "SENS_TIME", "SENS_SESSION_ID"] + SessionFields.all.compactMap(\.journalKey))
        #expect(JournalEntry.fields(event).first { $0.0 == "SENS_REMOTE" }?.1 == "true")
    }

    @Test func blankValuesAreLeftOutWhereTheTableSaysSo() {
        var event = SENSEvent(event: .logon, seq: 1, time: EventTime(microsecondsSinceEpoch: 0), sessionId: "c1", userName: nil, uid: nil)
        event.tty = ""
        event.leader = 0
        event.observedLate = false
        event.remote = false
        let line = String(decoding: WireFormat.encode(event), as: UTF8.self)
        #expect(line == #"{"event":"Logon","seq":1,"time":"1970-01-01T00:00:00.000000Z","sessionId":"c1","userName":null,"uid":null,"remote":false}"# + "\n")
    }

    private func value(of key: String, in event: SENSEvent) -> String? {
        let line = String(decoding: WireFormat.encode(event), as: UTF8.self)
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(line.utf8)) else { return nil }
        return object[key].map { "\($0)" }
    }
}

protocol OptionalProtocol { var isNone: Bool { get } }
extension Optional: OptionalProtocol { var isNone: Bool { self == nil } }

enum TestValue: LogindPropertyValue {
    case text(String), flag(Bool), number(UInt32), number64(UInt64), fields([TestValue])
    var stringValue: String? { if case .text(let v) = self { v } else { nil } }
    var boolValue: Bool? { if case .flag(let v) = self { v } else { nil } }
    var uint32Value: UInt32? { if case .number(let v) = self { v } else { nil } }
    var uint64Value: UInt64? { if case .number64(let v) = self { v } else { nil } }
    var firstField: (any LogindPropertyValue)? { if case .fields(let v) = self { v.first } else { nil } }
}
