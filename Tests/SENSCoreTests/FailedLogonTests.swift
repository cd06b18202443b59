import Testing

@testable import SENSCore

@Suite("failed logons: the PAM hook's datagram, duplicates, floods")
struct FailedLogonTests {
    func report(user: String = "alice", host: String? = "192.0.2.7", tty: String? = "ssh", source: String = "pam", service: String = "sshd") -> FailureReport {
        FailureReport(userName: user, uid: 1000, targetExists: true, service: service, tty: tty, remoteHost: host, reason: .badPassword, source: source)
    }

    @Test func theHooksDatagramIsReadBackAndAnythingElseIsRefused() {
        let items = FailureReport.PAMItems(user: "alice", rhost: "192.0.2.7", tty: "ssh", service: "sshd")
        #expect(FailureReport.fromPAM(items.datagram) == items)
        #expect(FailureReport.PAMItems(user: "bob", rhost: nil, tty: "", service: "su").datagram == Array(#"{"user":"bob","service":"su"}"#.utf8))
        for bad in ["", "not json", #"{"rhost":"x"}"#, #"{"user":""}"#, #"{"user":7}"#, #"["user"]"#] {
            #expect(FailureReport.fromPAM(Array(bad.utf8)) == nil, "\(bad)")
        }
        #expect(FailureReport.fromPAM(Array((#"{"user":""# + String(repeating: "a", count: 5000) + #""}"#).utf8)) == nil, "over 4096 bytes")
    }

    @Test func aFailureBecomesALogonFailedWithNoSession() {
        var seq = EventSequencer()
        let e = seq.stamp(report().draft(), at: EventTime(microsecondsSinceEpoch: 1_000_000), host: "vm")
        #expect(e.event == .logonFailed && e.sessionId == "" && e.userName == "alice" && e.uid == 1000)
        #expect(e.targetExists == true && e.failureReason == "bad-password" && e.source == "pam" && e.count == 1)
        #expect(e.service == "sshd" && e.remoteHost == "192.0.2.7" && e.remote == true && e.tty == "ssh")
        #expect(e.logonType == .remoteInteractive && e.logonTypeCode == 10)
        let local = seq.stamp(report(host: nil, tty: "/dev/pts/3", service: "su").draft(), at: EventTime(microsecondsSinceEpoch: 1), host: nil)
        #expect(local.logonType == .interactive && local.remote == false && local.remoteHost == nil)
        // On the wire with its fields, and read back whole.
        let line = String(decoding: WireFormat.encode(e), as: UTF8.self)
        #expect(line.hasPrefix(#"{"event":"LogonFailed","seq":1,"time":"1970-01-01T00:00:01.000000Z","sessionId":"","userName":"alice","uid":1000,"#), "\(line)")
        #expect(line.contains(#""targetExists":true,"failureReason":"bad-password","source":"pam","count":1"#), "\(line)")
        #expect(JournalEntry.fields(e).contains { $0 == ("MESSAGE", "failed logon as 'alice': bad-password via sshd from 192.0.2.7") })
    }

    @Test func theSameFailureFromAnotherSourceIsDroppedButARepeatIsNot() {
        var gate = FailureGate()
        #expect(gate.admit(report(source: "pam"), now: 0).count == 1)
        #expect(gate.admit(report(source: "audit"), now: 2_000_000).isEmpty, "PAM's own audit record of it")
        #expect(gate.admit(report(source: "pam"), now: 3_000_000).count == 1, "a second wrong password is a second failure")
        #expect(gate.admit(report(source: "audit"), now: 15_000_000).count == 1, "later than the duplicate window")
        #expect(gate.admit(report(user: "bob", source: "audit"), now: 15_100_000).count == 1, "another user")
    }

    @Test func aFloodFromOneOriginIsFiveEventsThenOneSummaryPerWindow() {
        var gate = FailureGate(window: 60_000_000)
        var published = 0
        for i in 0..<10_000 {
            published += gate.admit(report(user: "user\(i % 50)"), now: Int64(i) * 5_000).count
        }
        #expect(published == 5)
        #expect(gate.originCount == 1)
        #expect(gate.expire(now: 59_000_000).isEmpty, "the window is still open")
        let summary = gate.expire(now: 60_000_000)
        #expect(summary.count == 1 && summary[0].failure?.count == 9_995 && summary[0].session.userName == "user49")
        #expect(gate.originCount == 0 && gate.nextDeadline == nil)
    }

    @Test func aWindowThatEndedBeforeItsTimerIsSummarisedByTheNextReport() {
        var gate = FailureGate(window: 1_000_000)
        for i in 0..<8 { _ = gate.admit(report(user: "u\(i)"), now: Int64(i)) }
        // The loop was busy: the next report comes after the window, before expire(now:).
        let next = gate.admit(report(user: "late"), now: 1_500_000)
        #expect(next.map { $0.failure?.count } == [3, 1] && next.map { $0.session.userName } == ["u7", "late"])
    }

    @Test func manyOriginsAreBoundedAndCountedTogetherBeyondTheLimit() {
        var gate = FailureGate()
        var published = 0
        for i in 0..<5_000 {
            published += gate.admit(report(host: "10.0.\(i / 250).\(i % 250)"), now: Int64(i)).count
        }
        #expect(published == FailureGate.individuallyPerWindow, "one by one up to the cap across all origins")
        #expect(gate.originCount == FailureGate.maximumOrigins + 1, "the origins tracked, and the overflow")
        #expect(gate.recentCount <= FailureGate.maximumRecent)
        let summaries = gate.expire(now: 61_000_000)
        let counted = summaries.compactMap(\.failure?.count).reduce(0, +)
        #expect(published + counted == 5_000, "every failure is in an event or a summary's count")
    }
}
