import Testing

@testable import SENSClient

@Suite("lines as the client reads them")
struct DecodingTests {
    func kind(_ line: String) -> Message.Kind { LineDecoder().decode(Array(line.utf8)[...]) }

    @Test func theFirstKeyTellsTheKindAndLinesNobodyHereNeedsAreNotDecoded() {
        #expect(LineDecoder.firstKey(Array(#"{"event":"Logoff","seq":1}"#.utf8)[...]) == "event")
        #expect(LineDecoder.firstKey(Array(#"{ "gap" : 1}"#.utf8)[...]) == "gap")
        #expect(LineDecoder.firstKey(Array(#"["event"]"#.utf8)[...]) == nil)
        #expect(LineDecoder.firstKey(Array(#"{"ev\"ent":1}"#.utf8)[...]) == nil)
        // Snapshot and stats lines go on undecoded (the caller that asked decodes them, once); so does a
        // kind a newer sensd adds, and an event line whose event this version does not know.
        for line in [#"{"snapshot":"begin","seq":3,"sessions":0}"#, #"{"stats":"sensd","sessions":2}"#, #"{"later":"kind"}"#,
                     #"{"event":"SessionTeleported","seq":9,"time":"2026-11-20T10:00:00.123456Z","sessionId":"2"}"#] {
            guard case .other = kind(line) else { Issue.record("not other: \(line)"); continue }
        }
    }

    @Test func eachKindOfLineIsToldApartByItsKey() throws {
        guard case .hello(let hello) = kind(#"{"hello":"sensd","protocol":1,"version":"0.2.0","lastSeq":40,"oldestSeq":1}"#) else { Issue.record("hello"); return }
        #expect(hello == Hello(version: "0.2.0", protocolVersion: 1, lastSeq: 40, oldestSeq: 1))
        guard case .hello(let empty) = kind(#"{"hello":"sensd","protocol":1,"version":"0.2.0","lastSeq":0}"#) else { Issue.record("hello"); return }
        #expect(empty.oldestSeq == nil)
        guard case .accepted(fromSeq: 41) = kind(#"{"accepted":{"events":["Logoff"]},"fromSeq":41}"#) else { Issue.record("accepted"); return }
        guard case .event(let e) = kind(#"{"event":"Logoff","seq":42,"time":"2026-11-20T10:00:00.123456Z","sessionId":"27","userName":"alice","uid":1000,"class":"user","logonType":"Interactive","logonTypeCode":2}"#) else { Issue.record("event"); return }
        #expect(e.event == .logoff && e.seq == 42 && e.userName == "alice" && e.uid == 1000 && e.sessionClass == "user" && e.logonType == .interactive)
        #expect(e.time.rfc3339 == "2026-11-20T10:00:00.123456Z")
        guard case .gap(let gap) = kind(#"{"gap":"not-retained","message":"gone","firstMissing":6,"lastMissing":4999,"oldestSeq":5000}"#) else { Issue.record("gap"); return }
        #expect(gap == Gap(reason: "not-retained", message: "gone", firstMissing: 6, lastMissing: 4999, oldestSeq: 5000))
        guard case .serverError(let overflow) = kind(#"{"error":"overflow","message":"fell behind","limit":4096,"lastSeq":77}"#) else { Issue.record("error"); return }
        #expect(overflow == ServerError(code: .overflow, message: "fell behind", limit: 4096, lastSeq: 77) && overflow.isTransient)
        guard case .serverError(let bad) = kind(#"{"error":"bad-request","message":"unknown key"}"#) else { Issue.record("error"); return }
        #expect(!bad.isTransient && bad.description == "unknown key [bad-request]")
        guard case .end(lastSeq: 5120) = kind(#"{"end":"caught-up","lastSeq":5120}"#) else { Issue.record("end"); return }
    }

    @Test(arguments: [
        #"{"event":"SomethingNew","seq":43,"time":"2026-11-20T10:00:00.000000Z","sessionId":"27"}"#,
        #"{"notice":"a kind of line from a newer sensd"}"#,
        #"{"snapshot":"begin","seq":5,"sessions":0}"#,
        #"not json"#,
        #"[1,2]"#,
    ])
    func linesOfKindsThisVersionDoesNotKnowAreOtherNeverAnError(line: String) {
        guard case .other = kind(line) else { Issue.record("\(kind(line))"); return }
    }

    @Test func unknownKeysInAKnownLineAreIgnored() {
        guard case .event(let e) = kind(#"{"event":"Logon","seq":1,"time":"2026-11-20T10:00:00.000000Z","sessionId":"1","userName":null,"uid":null,"unresolved":"gone","futureField":{"a":[1]}}"#) else { Issue.record("event"); return }
        #expect(e.userName == nil && e.unresolved == "gone")
    }

    @Test func aFilterBecomesTheRequestLineWithTheResumePoint() {
        let filter = Filter(events: [.logoff, .logon], users: ["bob", "alice"], uids: [7], classes: [Filter.everyClass])
        #expect(String(decoding: filter.request(since: 41).json, as: UTF8.self)
                == #"{"events":["Logoff","Logon"],"users":["alice","bob"],"uids":[7],"classes":["*"],"since":41}"#)
        #expect(String(decoding: Filter.everything.request(since: nil).json, as: UTF8.self) == "{}")
        #expect(String(decoding: Filter.everything.request(since: 0, live: false).json, as: UTF8.self) == #"{"since":0,"live":false}"#)
    }

    @Test func theStandardBackoffStartsShortAndIsCapped() {
        #expect(ReconnectPolicy.standard.isEnabled && ReconnectPolicy.standard.initialDelay == .milliseconds(100) && ReconnectPolicy.standard.maximumDelay == .seconds(5))
        #expect(!ReconnectPolicy.never.isEnabled)
        #expect(ReconnectPolicy.backoff(initial: .seconds(2), maximum: .seconds(1)).maximumDelay == .seconds(2))
    }
}

import Foundation
import SENSCore

/// A snapshot's session lines are read by the field table that writes them: every field sensd writes comes
/// back, the session's state too, with no list of keys in the client.
@Suite("snapshot sessions, read by the field table")
struct SnapshotSessionTests {
    @Test func everyFieldWrittenIsReadBack() throws {
        var session = LogindSession(id: "c7")
        session.userName = "alice"
        session.uid = 1000
        session.sessionClass = "user"
        session.type = "tty"
        session.service = "sshd"
        session.tty = "pts/3"
        session.remote = true
        session.remoteHost = "192.0.2.7"
        session.remoteUser = "al"
        session.leader = 4242
        session.audit = 17
        session.startedAt = 1_764_000_000_123_456
        session.state = "active"
        session.active = true
        session.locked = false
        session.idle = true
        let open = OpenSession(session, logoffInitiated: true, host: "vm1")
        let lines = WireFormat.snapshot([open], seq: 9).split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == 3)
        let read = try JSONDecoder().decode(Snapshot.Session.self, from: Data(lines[1]))
        #expect(read.fields == open.fields, "the event fields, every one")
        #expect(read.sessionId == "c7" && read.userName == "alice" && read.uid == 1000 && read.host == "vm1")
        #expect(read.remoteHost == "192.0.2.7" && read.leader == 4242 && read.audit == 17 && read.logonType == .remoteInteractive)
        #expect(read.sessionStart == EventTime(microsecondsSinceEpoch: 1_764_000_000_123_456))
        #expect(read.state == "active" && read.active == true && read.locked == false && read.idle == true, "the state now")
        #expect(read.logoffInitiated)
    }

    @Test func aSessionLineWithOnlyItsIdIsReadAndABadTimeIsAnError() throws {
        let bare = try JSONDecoder().decode(Snapshot.Session.self, from: Data(#"{"snapshot":"session","sessionId":"4"}"#.utf8))
        #expect(bare.sessionId == "4" && bare.userName == nil && bare.state == nil && !bare.logoffInitiated)
        // A logon type a newer sensd adds is unknown, not an error.
        let newer = try JSONDecoder().decode(Snapshot.Session.self, from: Data(#"{"sessionId":"5","logonType":"Teleport"}"#.utf8))
        #expect(newer.logonType == nil)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Snapshot.Session.self, from: Data(#"{"sessionId":"6","sessionStart":"yesterday"}"#.utf8))
        }
    }
}
