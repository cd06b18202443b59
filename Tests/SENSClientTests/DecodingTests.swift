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
