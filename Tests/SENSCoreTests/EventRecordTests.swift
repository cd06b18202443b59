import Foundation
import Testing
@testable import SENSCore

@Suite("Event records: reading back the lines sensd wrote")
struct EventRecordTests {
    func event(_ kind: EventKind, seq: UInt64, id: String = "c1", user: String? = "alice") -> SENSEvent {
        var session = LogindSession(id: id, uid: 1000, userName: user, leader: 4242, startedAt: 1_790_000_000_123_456, sessionClass: "user", type: "tty", service: "su-l", tty: "pts/1", remote: false, audit: 7)
        session.remoteHost = "host\"with\\quotes\nand\u{1}control"
        return SENSEvent(EventDraft(event: kind, session: session), seq: seq, time: EventTime(microsecondsSinceEpoch: 1_790_000_100_000_000), host: "box")
    }

    @Test(arguments: [UInt64(0), 1, 41, 1 << 53, UInt64.max])
    func seqIsReadWithoutDecoding(_ seq: UInt64) {
        let line = WireFormat.encode(event(.logoff, seq: seq))
        #expect(EventRecord.seq(of: Array(line.dropLast())) == seq)
    }

    @Test(arguments: [
        "", "{}", #"{"event":"Logoff"}"#, #"{"event":"Logoff","seq":,"x":1}"#, #"{"event":"Logoff","seq":12"#,
        #"{"event":"Logoff","seq":1x,"a":1}"#, #"{"hello":"sensd","seq":1,"a":1}"#, #"{"event":"Logoff","seq":99999999999999999999999,"a":1}"#,
        #"{"event":"Logoff","seq":12,"time":"2026"#,
    ])
    func malformedLinesHaveNoSeq(_ text: String) {
        #expect(EventRecord.seq(of: Array(text.utf8)) == nil)
    }

    @Test func storedRecordsCarryAChecksumThatCatchesDamage() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        let wire = WireFormat.encode(event(.logon, seq: 12))
        let stored = EventRecord.stored(wire)
        #expect(stored.last == 0x0A && stored[stored.count - 10] == 0x09)
        let json = stored.dropLast().withUnsafeBytes { EventRecord.verified($0).map(Array.init) }
        #expect(json == Array(wire.dropLast()))
        for i in stride(from: 0, to: stored.count - 1, by: 5) {
            var damaged = Array(stored.dropLast())
            damaged[i] ^= 0x20
            #expect(damaged.withUnsafeBytes { EventRecord.verified($0) } == nil, "byte \(i)")
        }
    }

    @Test func factsMatchTheEvent() {
        for kind in EventKind.allCases {
            let e = event(kind, seq: 9, user: "bøb \"q\"")
            let facts = WireFormat.encode(e).withUnsafeBytes { EventRecord.facts(of: $0) }
            #expect(facts?.event == kind)
            #expect(facts?.userName == "bøb \"q\"")
            #expect(facts?.uid == 1000)
            #expect(facts?.sessionClass == "user")
        }
        var unresolved = event(.logoff, seq: 3, user: nil)
        unresolved.uid = nil
        let facts = WireFormat.encode(unresolved).withUnsafeBytes { EventRecord.facts(of: $0) }
        #expect(facts?.userName == nil && facts?.uid == nil && facts?.event == .logoff)
    }

    @Test func truncatedLineHasNoFacts() {
        let line = WireFormat.encode(event(.logon, seq: 5))
        for cut in stride(from: 1, to: line.count - 2, by: 7) {
            #expect(Array(line.prefix(cut)).withUnsafeBytes { EventRecord.facts(of: $0) } == nil, "cut at \(cut)")
        }
    }

    @Test func sessionsAreRebuiltFromTheirEvents() throws {
        var sessions = RememberedSessions([SessionTracker.Remembered(session: LogindSession(id: "c0", uid: 0, userName: "root"), logoffInitiated: false)])
        let decoder = JSONDecoder()
        func apply(_ e: SENSEvent) throws { sessions.apply(try decoder.decode(SENSEvent.self, from: Data(WireFormat.encode(e)))) }
        try apply(event(.logon, seq: 1, id: "c1"))
        try apply(event(.logon, seq: 2, id: "c2", user: "bob"))
        try apply(event(.displayLock, seq: 3, id: "c1"))
        try apply(event(.logoffInitiated, seq: 4, id: "c2", user: "bob"))
        try apply(event(.logoffInitiated, seq: 5, id: "c0", user: "root"))
        try apply(event(.logoff, seq: 6, id: "c0", user: "root"))
        #expect(sessions.all.map(\.session.id) == ["c1", "c2"])
        let c1 = try #require(sessions.byID["c1"])
        #expect(c1.session.userName == "alice" && c1.session.uid == 1000 && c1.session.leader == 4242)
        #expect(c1.session.startedAt == 1_790_000_000_123_456 && c1.session.audit == 7 && c1.session.service == "su-l")
        #expect(c1.session.locked == true && c1.logoffInitiated == false)
        #expect(sessions.byID["c2"]?.logoffInitiated == true)
        // The rebuilt session is the same session to the tracker: a re-listing ends nothing.
        var tracker = SessionTracker()
        tracker.remember(sessions.all)
        let drafts = tracker.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice", leader: 4242), LogindSession(id: "c2", uid: 1000, userName: "bob")])
        #expect(drafts.isEmpty)
        #expect(tracker.detailsArrived(LogindSession(id: "c1", uid: 1000, userName: "alice", leader: 4242, startedAt: 1_790_000_000_123_456, active: true, locked: true)).isEmpty)
    }

    @Test func sinceIsParsedAndEchoed() throws {
        let r = try SubscriptionRequest.parse(ArraySlice(#"{"since":41,"users":["alice"]}"#.utf8))
        #expect(r.since == 41 && r.users == ["alice"] && !r.isEverything)
        #expect(String(decoding: r.json, as: UTF8.self) == #"{"users":["alice"],"since":41}"#)
        let plain = try SubscriptionRequest.parse(ArraySlice(#"{"since":0}"#.utf8))
        #expect(plain.since == 0 && plain.isEverything)
    }

    @Test func gapLineNamesTheMissingRangeAndTheOldestRetained() throws {
        let line = WireFormat.gap(firstMissing: 101, lastMissing: 4999, oldestSeq: 5000)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["gap"] as? String == "not-retained")
        #expect(object["firstMissing"] as? Int == 101 && object["lastMissing"] as? Int == 4999 && object["oldestSeq"] as? Int == 5000)
        #expect((object["message"] as? String)?.contains("events 101 to 4999") == true)
        #expect((object["message"] as? String)?.contains("oldest retained event is 5000") == true)
    }
}
