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

/// Journal records of failed logons: audit's fields (as journald stores an audit record of pam_unix's
/// failure, `op=PAM:authentication ... acct="alice" exe="/usr/bin/su" ... res=failed`) and sshd's messages.
@Suite("failed logons in journal records")
struct FailureRecordTests {
    let t = EventTime(microsecondsSinceEpoch: 1_765_000_000_000_000)

    @Test func anAuditRecordOfAFailedAuthenticationIsReadByItsFields() {
        let su: [String: String] = [
            "_TRANSPORT": "audit", "_AUDIT_TYPE_NAME": "USER_AUTH", "AUDIT_FIELD_OP": "PAM:authentication",
            "AUDIT_FIELD_ACCT": "\"alice\"", "AUDIT_FIELD_EXE": "\"/usr/bin/su\"", "AUDIT_FIELD_HOSTNAME": "?",
            "AUDIT_FIELD_ADDR": "?", "AUDIT_FIELD_TERMINAL": "/dev/pts/1", "AUDIT_FIELD_RES": "failed",
        ]
        let report = FailureRecords.audit(su, time: t)
        #expect(report == FailureReport(userName: "alice", service: "su", tty: "/dev/pts/1", reason: .badPassword, source: "audit", time: t))
        var sshd = su
        sshd["_AUDIT_TYPE_NAME"] = "USER_LOGIN"
        sshd["AUDIT_FIELD_EXE"] = "\"/usr/lib/openssh/sshd-session\""
        sshd["AUDIT_FIELD_ADDR"] = "192.0.2.7"
        sshd["AUDIT_FIELD_TERMINAL"] = "ssh"
        #expect(FailureRecords.audit(sshd, time: t)?.service == "sshd" && FailureRecords.audit(sshd, time: t)?.remoteHost == "192.0.2.7")
        // A success, another record type, another transport, no account: nothing.
        for (key, value) in [("AUDIT_FIELD_RES", "success"), ("_AUDIT_TYPE_NAME", "USER_ACCT"), ("_TRANSPORT", "syslog"), ("AUDIT_FIELD_ACCT", "?")] {
            var other = su
            other[key] = value
            #expect(FailureRecords.audit(other, time: t) == nil, "\(key)=\(value)")
        }
    }

    @Test func sshdsMessagesOfFailuresAreReadAcrossItsIdentifiers() throws {
        let password = try #require(FailureRecords.sshd(identifier: "sshd", message: "Failed password for alice from 192.0.2.7 port 50022 ssh2", time: t))
        #expect(password.report == FailureReport(userName: "alice", service: "sshd", remoteHost: "192.0.2.7", remotePort: 50022, reason: .badPassword, source: "sshd-message", time: t))
        #expect(!password.closing)
        let invalid = try #require(FailureRecords.sshd(identifier: "sshd-session", message: "Failed password for invalid user admin from 2001:db8::5 port 4242 ssh2", time: t))
        #expect(invalid.report.userName == "admin" && invalid.report.targetExists == false && invalid.report.reason == .unknownUser && invalid.report.remoteHost == "2001:db8::5")
        let key = try #require(FailureRecords.sshd(identifier: "sshd-session", message: "Failed publickey for alice from 192.0.2.7 port 1 ssh2: ED25519 SHA256:abc", time: t))
        #expect(key.report.reason == .other)
        let closed = try #require(FailureRecords.sshd(identifier: "sshd-auth", message: "Connection closed by authenticating user alice 192.0.2.7 port 50022 [preauth]", time: t))
        #expect(closed.closing && closed.report.userName == "alice" && closed.report.remotePort == 50022 && closed.report.reason == .other)
        #expect(FailureRecords.sshd(identifier: "sshd", message: "Disconnected from invalid user bob 192.0.2.9 port 7 [preauth]", time: t)?.report.reason == .unknownUser)
        for message in ["Accepted publickey for alice from 192.0.2.7 port 5 ssh2: ED25519", "Connection closed by 192.0.2.7 port 5 [preauth]",
                        "Invalid user bob from 192.0.2.9 port 7", "Received disconnect from 192.0.2.7 port 5:11: bye"] {
            #expect(FailureRecords.sshd(identifier: "sshd", message: message, time: t) == nil, "\(message)")
        }
        #expect(FailureRecords.sshd(identifier: "cron", message: "Failed password for alice from 192.0.2.7 port 1 ssh2", time: t) == nil)
    }

    @Test func aClosingMessageCountsOnlyWhenNothingElseReportedTheFailure() {
        var gate = FailureGate()
        let pam = FailureReport(userName: "alice", service: "sshd", tty: "ssh", remoteHost: "192.0.2.7", reason: .badPassword, source: "pam")
        let closed = FailureReport(userName: "alice", service: "sshd", remoteHost: "192.0.2.7", reason: .other, source: "sshd-message")
        #expect(gate.admit(pam, now: 0).count == 1)
        #expect(gate.admit(closed, now: 3_000_000, closing: true).isEmpty, "the wrong password's connection closing")
        #expect(gate.admit(closed, now: 30_000_000, closing: true).count == 1, "a key refused, nothing else said")
        #expect(gate.admit(closed, now: 31_000_000, closing: true).isEmpty, "the same connection's second closing message")
    }
}
