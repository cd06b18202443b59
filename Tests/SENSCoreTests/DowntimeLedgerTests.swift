import SENSCore
import Testing

/// Records as systemd 252 (Debian 12) and 257 (Debian 13) write them, copied from `journalctl -o json` in the
/// test containers; the times are those records' own.
enum Recorded {
    static func scopeStarted(_ id: String, _ user: String, at t: UInt64, invocation: String, v252: Bool = false) -> JournalRecord {
        JournalRecord(realtime: t, fields: [
            "MESSAGE_ID": DowntimeLedger.unitStarted, "UNIT": "session-\(id).scope", "INVOCATION_ID": invocation,
            "MESSAGE": v252 ? "Started Session \(id) of User \(user)." : "Started session-\(id).scope - Session \(id) of User \(user).",
        ])
    }

    static func scopeEnded(_ id: String, at t: UInt64, invocation: String, failed: Bool = false) -> JournalRecord {
        JournalRecord(realtime: t, fields: [
            "MESSAGE_ID": failed ? DowntimeLedger.unitFailed : DowntimeLedger.unitDeactivated, "UNIT": "session-\(id).scope", "INVOCATION_ID": invocation,
            "MESSAGE": failed ? "session-\(id).scope: Failed with result 'timeout'." : "session-\(id).scope: Deactivated successfully.",
        ])
    }

    static func logind(_ started: Bool, _ id: String, _ user: String, at t: UInt64, leader: Int = 143) -> JournalRecord {
        JournalRecord(realtime: t, fields: [
            "MESSAGE_ID": started ? DowntimeLedger.sessionStarted : DowntimeLedger.sessionStopped, "SESSION_ID": id, "USER_ID": user,
            "LEADER": "\(leader)", "MESSAGE": started ? "New session \(id) of user \(user)." : "Removed session \(id).",
        ])
    }
}

@Suite("Sessions missed while sensd was down, from the journal's records")
struct DowntimeLedgerTests {
    let t0: UInt64 = 1_796_422_944_604_192

    @Test func anSuSessionHasOnlyItsScopeAndIsReportedWithItsUserAndTimes() {
        var ledger = DowntimeLedger()
        ledger.add(Recorded.scopeStarted("c1", "alice", at: t0, invocation: "678573c6"))
        ledger.add(Recorded.scopeEnded("c1", at: t0 + 9179, invocation: "678573c6"))
        let missed = ledger.missed(from: t0 - 1, known: [])
        #expect(missed == [MissedSession(id: "c1", userName: "alice", startedAt: t0, endedAt: t0 + 9179, sources: [.scope])])
        let drafts = missed[0].drafts(uid: 1000)
        #expect(drafts.map(\.event) == [.logon, .logoffInitiated, .logoff])
        #expect(drafts.allSatisfy { $0.observedLate && $0.session.userName == "alice" && $0.session.uid == 1000 && $0.unresolved == nil })
        #expect(drafts.map(\.time) == [EventTime(microsecondsSinceEpoch: Int64(t0)), EventTime(microsecondsSinceEpoch: Int64(t0 + 9179)), EventTime(microsecondsSinceEpoch: Int64(t0 + 9179))])
        #expect(drafts.map(\.reason) == [nil, "sensd-down", "sensd-down"])
    }

    @Test func systemd252sScopeMessageNamesTheUserToo() {
        #expect(DowntimeLedger.userName(inScopeMessage: "Started Session c7 of User bob.", id: "c7") == "bob")
        #expect(DowntimeLedger.userName(inScopeMessage: "Started session-c7.scope - Session c7 of User bob.", id: "c7") == "bob")
        // Another session's message, or none at all, names nobody.
        #expect(DowntimeLedger.userName(inScopeMessage: "Started session-c7.scope - Session c70 of User bob.", id: "c7") == nil)
        #expect(DowntimeLedger.userName(inScopeMessage: "Started session-c7.scope.", id: "c7") == nil)
        #expect(DowntimeLedger.sessionID(ofScope: "session-42.scope") == "42")
        #expect(DowntimeLedger.sessionID(ofScope: "user@1000.service") == nil)
    }

    @Test func anSshSessionsScopeAndLogindsRecordsAreOneSessionEndingWhenLogindRemovedIt() {
        var ledger = DowntimeLedger()
        ledger.add(Recorded.logind(true, "c2", "carol", at: t0))
        ledger.add(Recorded.scopeStarted("c2", "carol", at: t0 + 3_000, invocation: "aa"))
        ledger.add(Recorded.scopeEnded("c2", at: t0 + 5_000_000, invocation: "aa"))
        ledger.add(Recorded.logind(false, "c2", "carol", at: t0 + 5_004_000))
        let missed = ledger.missed(from: t0, known: [])
        #expect(missed.count == 1)
        #expect(missed.first.map { ($0.startedAt, $0.endedAt, $0.sources, $0.leader) } ?? (0, 0, [], nil) == (t0, t0 + 5_004_000, [.scope, .logind], 143))
    }

    @Test func aManagerSessionOfSystemd256AndLaterHasOnlyLogindsRecords() {
        var ledger = DowntimeLedger()
        ledger.add(Recorded.logind(true, "c2", "alice", at: t0))
        ledger.add(Recorded.logind(false, "c2", "alice", at: t0 + 10_000_000))
        #expect(ledger.missed(from: t0, known: []).map(\.sources) == [[.logind]])
    }

    @Test func sessionsSensdReportedAreLeftOutEvenWhenTheirIdComesBackLater() {
        var ledger = DowntimeLedger()
        // c1 twice in one boot (logind restarted and counted again from 1): sensd reported the first.
        ledger.add(Recorded.scopeStarted("c1", "alice", at: t0, invocation: "one"))
        ledger.add(Recorded.scopeEnded("c1", at: t0 + 1_000, invocation: "one"))
        ledger.add(Recorded.scopeStarted("c1", "bob", at: t0 + 600_000_000, invocation: "two"))
        ledger.add(Recorded.scopeEnded("c1", at: t0 + 600_001_000, invocation: "two"))
        let missed = ledger.missed(from: t0, known: [KnownSession(id: "c1", at: t0 - 2_000)])
        #expect(missed.map(\.userName) == ["bob"])
        #expect(ledger.missed(from: t0, known: [KnownSession(id: "c1", at: t0 + 600_000_500)]).map(\.userName) == ["alice"])
    }

    @Test func aSessionStillRunningOrBegunBeforeTheWindowIsNotReported() {
        var ledger = DowntimeLedger()
        ledger.add(Recorded.scopeStarted("c3", "alice", at: t0, invocation: "running"))
        ledger.add(Recorded.scopeStarted("c4", "bob", at: t0 - 5_000_000, invocation: "before"))
        ledger.add(Recorded.scopeEnded("c4", at: t0 + 1, invocation: "before"))
        // An end with no start read (it began before the window) is nobody's.
        ledger.add(Recorded.scopeEnded("c5", at: t0 + 2, invocation: "unseen"))
        #expect(ledger.missed(from: t0, known: []).isEmpty)
    }

    @Test func aScopeThatFailedStillEndsItsSession() {
        var ledger = DowntimeLedger()
        ledger.add(Recorded.scopeStarted("c9", "dave", at: t0, invocation: "f"))
        ledger.add(Recorded.scopeEnded("c9", at: t0 + 90_000_000, invocation: "f", failed: true))
        #expect(ledger.missed(from: t0, known: []).map(\.endedAt) == [t0 + 90_000_000])
    }

    @Test func otherUnitsAndOtherMessagesAreIgnored() {
        var ledger = DowntimeLedger()
        ledger.add(JournalRecord(realtime: t0, fields: ["MESSAGE_ID": DowntimeLedger.unitStarted, "UNIT": "user@1000.service", "INVOCATION_ID": "u", "MESSAGE": "Started user@1000.service - User Manager for UID 1000."]))
        ledger.add(JournalRecord(realtime: t0 + 1, fields: ["MESSAGE_ID": DowntimeLedger.unitDeactivated, "UNIT": "user@1000.service", "INVOCATION_ID": "u"]))
        ledger.add(JournalRecord(realtime: t0 + 2, fields: ["MESSAGE_ID": "fcbefc5da23d428093f97c82a9290f7b", "MESSAGE": "New seat seat0."]))
        #expect(ledger.missed(from: 0, known: []).isEmpty)
        #expect(ledger.records == 3)
    }
}
