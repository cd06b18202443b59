import Testing
import SystemCalls
@testable import SENSCore

@Suite("Requests: one optional JSON line, refused clearly when wrong")
struct SubscriptionRequestTests {
    func parse(_ s: String) throws(ProtocolError) -> SubscriptionRequest {
        try SubscriptionRequest.parse(Array(s.utf8)[...])
    }

    @Test(arguments: ["{}", " { } ", "{}\r"])
    func emptyObjectIsAccepted(_ s: String) throws {
        _ = try parse(s)
    }

    @Test func filtersAreParsedAndValuesNormalised() throws {
        let r = try parse(#"{"events":["Logoff","LogoffInitiated","Logoff"],"users":["alice"],"uids":[1000,0],"classes":["user"]}"#)
        #expect(r == SubscriptionRequest(events: [.logoff, .logoffInitiated], users: ["alice"], uids: [0, 1000], classes: ["user"]))
        #expect(String(decoding: r.json, as: UTF8.self) == #"{"events":["Logoff","LogoffInitiated"],"users":["alice"],"uids":[0,1000],"classes":["user"]}"#)
    }

    @Test(arguments: [
        (#"{"bogus":1}"#, #"unknown request key "bogus""#),
        (#"{"since":-1}"#, #""since" must be a seq"#),
        (#"{"since":"5"}"#, #""since" must be a seq"#),
        (#"{"since":1.5}"#, #""since" must be a seq"#),
        (#"{"since":18014398509481984}"#, #""since" must be a seq"#),
        (#"{"events":["Logof"]}"#, #"unknown event "Logof""#),
        (#"{"events":"Logoff"}"#, #""events" must be a list"#),
        (#"{"events":[]}"#, #""events" is empty"#),
        (#"{"users":[1000]}"#, #""users" must hold non-empty strings"#),
        (#"{"users":[""]}"#, #""users" must hold non-empty strings"#),
        (#"{"uids":["1000"]}"#, #""uids" must hold whole numbers"#),
        (#"{"uids":[-1]}"#, #""uids" must hold whole numbers"#),
        (#"{"uids":[1.5]}"#, #""uids" must hold whole numbers"#),
        (#"{"uids":[4294967296]}"#, #""uids" must hold whole numbers"#),
    ])
    func invalidRequestIsRefusedNamingTheProblem(_ s: String, _ phrase: String) {
        do {
            _ = try parse(s)
            Issue.record("accepted \(s)")
        } catch {
            #expect(error.code == .badRequest)
            #expect(error.message.contains(phrase), "\(error.message)")
        }
    }

    @Test(arguments: ["hello", "[]", "{", "{}}", #"{"a":}"#, "\"{}\"", "{} {}", String(repeating: "[", count: 40) + String(repeating: "]", count: 40)])
    func malformedRequestIsABadRequest(_ s: String) {
        do {
            _ = try parse(s)
            Issue.record("accepted \(s)")
        } catch {
            #expect(error.code == .badRequest)
            #expect(error.message.hasPrefix("request is not valid JSON") || error.message.hasPrefix("request must be a JSON object"), "\(error.message)")
        }
    }

    @Test func filtersMatchEventsByEveryKeyAndAcrossKeys() {
        func facts(_ kind: EventKind, _ user: String?, _ uid: UInt32?, _ c: String?) -> EventFacts {
            var e = SENSEvent(event: kind, seq: 1, time: EventTime(microsecondsSinceEpoch: 0), sessionId: "c1", userName: user, uid: uid)
            e.sessionClass = c
            return EventFacts(e)
        }
        let r = SubscriptionRequest(events: [.logoff], users: ["alice", "bob"], classes: ["user"])
        #expect(r.matches(facts(.logoff, "alice", 1000, "user")))
        #expect(r.matches(facts(.logoff, "bob", 1001, "user")))
        #expect(!r.matches(facts(.logon, "alice", 1000, "user")))
        #expect(!r.matches(facts(.logoff, "carol", 1002, "user")))
        #expect(!r.matches(facts(.logoff, "alice", 1000, "background")))
        #expect(!r.matches(facts(.logoff, nil, nil, nil)), "an unresolved user matches no user filter")
        #expect(SubscriptionRequest(uids: [0]).matches(facts(.displayLock, "root", 0, nil)))
        #expect(SubscriptionRequest().matches(facts(.logoff, nil, nil, nil)))
    }

    @Test func anEventsFilterMatchesExactlyItsKindsAndFollowsChanges() {
        // Matched as one bit per kind: every kind must have its own, and a changed filter its new bits.
        for kind in EventKind.allCases {
            let only = SubscriptionRequest(events: [kind])
            #expect(EventKind.allCases.filter { only.matches(EventFacts(event: $0, userName: "alice")) } == [kind])
        }
        var r = SubscriptionRequest(events: [.logon, .logoff])
        #expect(r.matches(EventFacts(event: .logon)) && !r.matches(EventFacts(event: .displayLock)))
        r.events = [.displayLock]
        #expect(!r.matches(EventFacts(event: .logon)) && r.matches(EventFacts(event: .displayLock)))
        r.events = nil
        #expect(EventKind.allCases.allSatisfy { r.matches(EventFacts(event: $0)) })
    }

    @Test func deeplyNestedValueIsRefusedNotOverflowingTheStack() {
        let s = #"{"a":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        #expect(throws: ProtocolError.self) { try parse(s) }
    }
}

@Suite("Subscriber queue: bounded, shared lines, partial writes")
struct SubscriberQueueTests {
    func line(_ seq: UInt64) -> OutgoingLine {
        OutgoingLine(bytes: Array("{\"seq\":\(seq)}\n".utf8), seq: seq)
    }

    @Test func refusesLinesPastItsLimit() {
        var q = SubscriberQueue(limit: 3)
        let accepted = (1...4).map { q.enqueue(line(UInt64($0))) }
        #expect(accepted == [true, true, true, false])
        #expect(q.count == 3)
    }

    @Test func partialWritesResumeMidLineAndReportTheLastCompleteSeq() {
        var q = SubscriberQueue(limit: 10)
        _ = q.enqueue(line(1))
        _ = q.enqueue(line(2))
        var written: [UInt8] = []
        // Write 5 bytes at a time, as a congested socket would take them.
        while !q.isEmpty {
            _ = q.write(maxChunks: 8) { chunks in
                let all = chunks.flatMap { Array($0) }
                let n = min(5, all.count)
                written += all[0..<n]
                return n
            }
        }
        #expect(String(decoding: written, as: UTF8.self) == "{\"seq\":1}\n{\"seq\":2}\n")
        #expect(q.lastSeqWritten == 2)
    }

    @Test func droppingUnstartedLinesKeepsTheRestOfAPartialLine() {
        var q = SubscriberQueue(limit: 10)
        for s in 1...4 { _ = q.enqueue(line(UInt64(s))) }
        _ = q.write(maxChunks: 1) { _ in 3 }
        #expect(q.isMidLine)
        q.dropUnstarted()
        q.enqueueFinal(OutgoingLine(bytes: Array("{\"error\":\"x\"}\n".utf8), seq: nil))
        var rest: [UInt8] = []
        _ = q.write(maxChunks: 8) { chunks in
            rest = chunks.flatMap { Array($0) }
            return rest.count
        }
        #expect(String(decoding: rest, as: UTF8.self) == "eq\":1}\n{\"error\":\"x\"}\n")
        #expect(q.lastSeqWritten == 1)
    }

    @Test func aLongRunThroughTheQueueKeepsOrderAndCompacts() {
        var q = SubscriberQueue(limit: 100)
        var next: UInt64 = 1
        var out: [UInt8] = []
        for round in 0..<2000 {
            for _ in 0..<(round % 7) {
                if q.enqueue(line(next)) { next += 1 }
            }
            _ = q.write(maxChunks: 3) { chunks in
                let n = chunks.reduce(0) { $0 + $1.count } / 2
                let all = chunks.flatMap { Array($0) }
                out += all[0..<n]
                return n
            }
        }
        while !q.isEmpty { _ = q.write(maxChunks: 64) { c in out += c.flatMap { Array($0) }; return c.reduce(0) { $0 + $1.count } } }
        let expected = (1..<next).map { "{\"seq\":\($0)}\n" }.joined()
        #expect(String(decoding: out, as: UTF8.self) == expected)
    }
}

@Suite("Line reader: splits requests, refuses long lines")
struct LineReaderTests {
    func feed(_ r: inout LineReader, _ s: String) -> [LineReader.Outcome] {
        Array(s.utf8).withUnsafeBytes { r.feed($0) }
    }

    @Test func splitsAcrossReads() {
        var r = LineReader(limit: 16)
        #expect(feed(&r, "ab").isEmpty)
        #expect(feed(&r, "c\nde\n") == [.line(Array("abc".utf8)[...]), .line(Array("de".utf8)[...])])
        #expect(Array(r.partial).isEmpty)
    }

    @Test func refusesALineLongerThanTheLimitEvenWithoutNewline() {
        var r = LineReader(limit: 4)
        #expect(feed(&r, "abcde") == [.tooLong])
        var r2 = LineReader(limit: 4)
        #expect(feed(&r2, "abcd\n") == [.line(Array("abcd".utf8)[...])])
    }
}
