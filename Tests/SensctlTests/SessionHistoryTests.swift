import Foundation
import SENSClient
import Testing
@testable import sensctl

/// `sensctl last` pairs each session's Logon with its Logoff from the log, in log order. Ids recur (a
/// logind restart counts from c1 again), a log may no longer reach a Logon, and a name can hold anything.
@Suite("sensctl last: sessions paired from the log")
struct SessionHistoryTests {
    /// An event as the wire carries it.
    func event(_ kind: String, seq: Int, id: String, user: String? = "alice", at seconds: Int, start: Int? = nil) throws -> SENSEvent {
        var o: [String: Any] = ["event": kind, "seq": seq, "sessionId": id, "time": stamp(seconds)]
        if let user { o["userName"] = user; o["uid"] = 1000 } else { o["unresolved"] = "the session ended before sensd learned whose it was" }
        if let start { o["sessionStart"] = stamp(start) }
        return try JSONDecoder().decode(SENSEvent.self, from: JSONSerialization.data(withJSONObject: o))
    }

    func stamp(_ seconds: Int) -> String {
        EventTime(microsecondsSinceEpoch: Int64(1_780_000_000 + seconds) * 1_000_000).rfc3339
    }

    func json(_ entry: SessionHistory.Entry) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(entry.json)) as? [String: Any])
    }

    @Test func aLogonAndItsLogoffAreOneEntryWithItsDurationAndOtherEventsChangeNothing() throws {
        var history = SessionHistory()
        history.take(try event("Logon", seq: 1, id: "3", at: 0, start: 0))
        history.take(try event("DisplayLock", seq: 2, id: "3", at: 10, start: 0))
        history.take(try event("LogoffInitiated", seq: 3, id: "3", at: 3600, start: 0))
        history.take(try event("Logoff", seq: 4, id: "3", at: 3605, start: 0))
        #expect(history.sessions.count == 1)
        let o = try json(history.sessions[0])
        #expect(o["logonSeq"] as? Int == 1 && o["logoffSeq"] as? Int == 4 && o["stillLoggedIn"] as? Bool == false)
        #expect(o["durationSeconds"] as? Double == 3605 && o["logonFromLog"] as? Bool == true)
        #expect(history.sessions[0].row.last == "01:00:05")
    }

    @Test func aLogoffWhoseLogonTheLogNoLongerHoldsTakesItsStartFromTheEvent() throws {
        var history = SessionHistory()
        history.take(try event("Logoff", seq: 900, id: "7", at: 100, start: 40))
        let o = try json(history.sessions[0])
        #expect(o["logonFromLog"] as? Bool == false && o["logonTime"] as? String == stamp(40) && o["durationSeconds"] as? Double == 60)
        #expect(history.sessions[0].row[3].hasSuffix("*"), "marked as not from the log")
    }

    @Test func aRecurringIdPairsEachLogoffWithItsOwnLogonBySessionStart() throws {
        var history = SessionHistory()
        history.take(try event("Logon", seq: 1, id: "c1", user: "alice", at: 0, start: 0))
        // logind restarted: c1 again, for bob, while alice's c1 is still open in the log's view.
        history.take(try event("Logon", seq: 2, id: "c1", user: "bob", at: 50, start: 50))
        history.take(try event("Logoff", seq: 3, id: "c1", user: "alice", at: 60, start: 0))
        #expect(history.sessions.map { $0.session.userName } == ["alice", "bob"])
        #expect(history.sessions[0].logoffSeq == 3 && history.sessions[1].logoffSeq == nil)
        #expect(try json(history.sessions[1])["stillLoggedIn"] as? Bool == true)
        #expect(try json(history.sessions[1])["logoffTime"] is NSNull)
    }

    @Test func aLogonWithoutAUserTakesTheUserItsLogoffNames() throws {
        var history = SessionHistory()
        history.take(try event("Logon", seq: 1, id: "9", user: nil, at: 0, start: 0))
        history.take(try event("Logoff", seq: 2, id: "9", user: "carol", at: 5, start: 0))
        #expect(history.sessions[0].session.userName == "carol" && history.sessions[0].session.uid == 1000)
    }

    @Test(arguments: ["a\"b", "back\\slash", "new\nline", "bell\u{07}", "tab\t", "ünï"])
    func anyNameIsValidJSONAndReadsBackTheSame(name: String) throws {
        var history = SessionHistory()
        history.take(try event("Logon", seq: 1, id: "1", user: name, at: 0, start: 0))
        #expect(try json(history.sessions[0])["userName"] as? String == name)
    }
}
