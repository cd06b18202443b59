import Foundation
import SENSCore
import SystemCalls
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Journal files with the fields journald gives a record, trusted ones (`_TRANSPORT=audit`) included, as
/// systemd-journal-remote writes them from its export format: what sensd follows instead of the system
/// journal (kernel audit reaches no test machine).
final class JournalFiles {
    let directory: ScratchDirectory
    /// Entries' times are this plus their number, µs.
    private var now = UInt64(Date().timeIntervalSince1970 * 1_000_000)

    init() throws {
        directory = try ScratchDirectory()
    }

    /// Entries from here on are later than anything written before.
    func restartClock() {
        now = UInt64(Date().timeIntervalSince1970 * 1_000_000)
    }

    /// Entry `i` in the export format, with `fields`.
    func entry(_ i: UInt64, _ fields: [String: String]) -> String {
        (["__CURSOR=s=0;i=\(i)", "__REALTIME_TIMESTAMP=\(now + i)", "__MONOTONIC_TIMESTAMP=\(now + i)", "_BOOT_ID=0123456789abcdef0123456789abcdef"]
            + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: "\n") + "\n\n"
    }

    /// The journal file `name` in the directory, holding `export`'s entries.
    func write(_ name: String, _ export: String) throws {
        try export.write(toFile: directory.path + "/\(name).export", atomically: true, encoding: .utf8)
        let writer = try Child("/bin/sh", ["-c", "exec /lib/systemd/systemd-journal-remote -o \(directory.path)/\(name).journal - < \(directory.path)/\(name).export"])
        #expect(try writer.waitForExit() == 0)
    }
}

/// The PAM hook's program, sensd-pam-report, run as pam_exec runs it (PAM's items in its environment),
/// against sensd: what reaches an administrator's subscription, what is refused, and a flood.
@Suite("failed logons from the PAM hook", .serialized)
struct FailedLogonScenarioTests {
    func report(_ rig: Rig, type: String = "auth", user: String, rhost: String? = nil, tty: String? = nil, service: String) throws {
        var environment = ["PAM_TYPE": type, "PAM_USER": user, "PAM_SERVICE": service]
        if let rhost { environment["PAM_RHOST"] = rhost }
        if let tty { environment["PAM_TTY"] = tty }
        let child = try Child(productsDirectory + "/sensd-pam-report", ["--socket", rig.dir.path + "/failures.sock"], environment: environment)
        #expect(try child.waitForExit() == 0, "the hook always exits 0")
    }

    @Test func eachFailureReachesAnAdministratorOnceWithWhatPAMKnew() throws {
        let rig = try Rig()
        var st = stat()
        #expect(stat(rig.dir.path + "/failures.sock", &st) == 0 && st.st_mode & 0o777 == 0o600, "only root may report")
        let root = try rig.sensd.subscribe(#"{"events":["LogonFailed","Logoff"]}"#)
        try report(rig, user: "no-such-user-\(getpid())", rhost: "192.0.2.9", tty: "ssh", service: "sshd")
        try report(rig, user: "root", tty: "/dev/pts/4", service: "su")
        // Not an authentication failure: pam_exec in another stack.
        try report(rig, type: "account", user: "root", service: "su")
        let events = try rig.barrier(root)
        #expect(events.count == 2, "\(events)")
        let unknown = try #require(events.first)
        #expect(unknown.event == .logonFailed && unknown.sessionId == "" && unknown.userName == "no-such-user-\(getpid())" && unknown.uid == nil)
        #expect(unknown.targetExists == false && unknown.failureReason == "unknown-user" && unknown.source == "pam" && unknown.count == 1)
        #expect(unknown.service == "sshd" && unknown.remoteHost == "192.0.2.9" && unknown.tty == "ssh" && unknown.logonType == .remoteInteractive)
        let local = try #require(events.last)
        #expect(local.userName == "root" && local.uid == 0 && local.targetExists == true && local.failureReason == "bad-password")
        #expect(local.service == "su" && local.tty == "pts/4" && local.remoteHost == nil && local.logonType == .interactive, "\(local)")
    }

    @Test func aDatagramThatIsNotAReportIsIgnoredAndSaidOnce() throws {
        let rig = try Rig()
        let root = try rig.sensd.subscribe(#"{"events":["LogonFailed","Logoff"]}"#)
        for garbage in ["not json", #"{"rhost":"x"}"#, String(repeating: "x", count: 8000)] {
            #expect(Syscall.sendDatagram(Array(garbage.utf8), to: rig.dir.path + "/failures.sock"))
        }
        try report(rig, user: "root", service: "login")
        let events = try rig.barrier(root)
        #expect(events.map(\.userName) == ["root"], "\(events)")
        #expect(rig.sensdLog.components(separatedBy: "a failed-logon report that is not what sensd-pam-report sends").count == 2, "\(rig.sensdLog)")
    }

    /// 10,000 failures from one address: in each window five events, then one summary when it ends, every
    /// failure counted once; and a Logoff in the middle of it all goes through.
    @Test func aFloodIsFiveEventsAndOneSummaryAndALogoffGoesThrough() throws {
        let rig = try Rig(sensdArguments: ["--failed-logon-window", "1"])
        let root = try rig.sensd.subscribe(#"{"events":["LogonFailed","Logoff"]}"#)
        let path = rig.dir.path + "/failures.sock"
        let sent = 10_000
        var refused = 0
        for i in 0..<sent {
            let items = FailureReport.PAMItems(user: "guess\(i % 100)", rhost: "198.51.100.4", tty: "ssh", service: "sshd")
            // A full queue refuses at once (the hook never waits, and that failure would go unreported);
            // this flood backs off and sends again, so that every one of its 10,000 reaches sensd.
            while !Syscall.sendDatagram(items.datagram, to: path) {
                refused += 1
                usleep(1000)
            }
            if i == 5_000 {
                try rig.logind.run("open f1 1000 alice")
                try rig.logind.run("wait-asked f1")
                try rig.logind.run("close f1")
            }
        }
        var failed: [SENSEvent] = []
        var logoff: SENSEvent?
        var counted = 0
        while counted < sent || logoff == nil {
            let e = try root.nextEvent()
            if e.event == .logoff { logoff = e; continue }
            failed.append(e)
            counted += e.count ?? 0
        }
        #expect(logoff?.sessionId == "f1")
        // Window by window: five one by one, then one summary of the rest (how many windows the flood
        // spans depends on the machine's speed; the shape of each does not).
        var i = 0
        var windows = 0
        while i < failed.count {
            let ones = failed[i...].prefix { $0.count == 1 }.count
            #expect(ones == 5, "five one by one in window \(windows): \(failed.map { $0.count ?? 0 })")
            i += ones
            if i < failed.count { #expect(failed[i].count ?? 0 > 1); i += 1 }
            windows += 1
        }
        #expect(failed.count <= 6 * windows)
        #expect(counted == sent, "every failure is counted once (\(refused) sends refused for a full queue and made again)")
    }

    /// Audit's records and sshd's messages, through the journal: journal files written by
    /// systemd-journal-remote (which keeps trusted fields such as `_TRANSPORT=audit`), followed by sensd as
    /// it follows the system journal. The PAM hook's report and audit's record of the same failure are one
    /// event; a "Connection closed by authenticating user" with nothing before it is one.
    @Test func auditRecordsAndSshdMessagesFromTheJournalJoinThePAMReportsWithoutDuplicates() throws {
        let journal = try JournalFiles()
        // What the journal held before sensd started, a failure among it: not news.
        try journal.write("before", journal.entry(1, ["_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "Failed password for root from 192.0.2.1 port 1 ssh2"]))
        let rig = try Rig(sensdArguments: ["--failed-logon-sources", "pam,audit,sshd-message", "--failed-logon-journal", journal.directory.path])
        let root = try rig.sensd.subscribe(#"{"events":["LogonFailed","Logoff"]}"#)
        try report(rig, user: "root", tty: "/dev/pts/1", service: "su")
        #expect(try root.nextEvent().source == "pam")
        journal.restartClock()
        let export = journal.entry(1, ["_TRANSPORT": "audit", "_AUDIT_TYPE_NAME": "USER_AUTH", "AUDIT_FIELD_ACCT": "\"root\"", "AUDIT_FIELD_EXE": "\"/usr/bin/su\"",
                               "AUDIT_FIELD_TERMINAL": "/dev/pts/1", "AUDIT_FIELD_RES": "failed", "MESSAGE": "op=PAM:authentication res=failed"])
            + journal.entry(2, ["_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "sshd-session", "MESSAGE": "Connection closed by authenticating user bob 192.0.2.8 port 4444 [preauth]"])
            + journal.entry(3, ["_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "sshd-session", "MESSAGE": "Accepted publickey for root from 192.0.2.8 port 4445 ssh2"])
            + journal.entry(4, ["_TRANSPORT": "audit", "_AUDIT_TYPE_NAME": "USER_LOGIN", "AUDIT_FIELD_ACCT": "\"nobody-here\"", "AUDIT_FIELD_EXE": "\"/usr/sbin/sshd\"",
                        "AUDIT_FIELD_ADDR": "192.0.2.9", "AUDIT_FIELD_TERMINAL": "ssh", "AUDIT_FIELD_RES": "failed", "MESSAGE": "op=login res=failed"])
        try journal.write("remote", export)
        let bob = try root.nextEvent()
        #expect(bob.userName == "bob" && bob.source == "sshd-message" && bob.failureReason == "other" && bob.remoteHost == "192.0.2.8" && bob.remotePort == 4444, "\(bob)")
        let audit = try root.nextEvent()
        #expect(audit.userName == "nobody-here" && audit.source == "audit" && audit.targetExists == false && audit.failureReason == "unknown-user")
        #expect(audit.service == "sshd" && audit.remoteHost == "192.0.2.9" && audit.observedAt != nil, "its time is the record's")
        #expect(try rig.barrier(root).isEmpty, "root's su failure once, from PAM; nothing for the accepted key")
    }

    /// More journal records at once than one wake-up reads (64): the rest are read without waiting for the
    /// journal to be written again, and none is lost when the journal held none sensd looks for before.
    @Test func aBatchOfRecordsLargerThanOneWakeUpIsReadWhole() throws {
        let journal = try JournalFiles()
        // The journal holds no record sensd looks for yet (no audit record ever, say): the first batch must
        // still be read from its first entry (following from the journal's tail lost all but its last).
        try journal.write("before", journal.entry(1, ["_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "cron", "MESSAGE": "nothing to see"]))
        let rig = try Rig(sensdArguments: ["--failed-logon-sources", "audit", "--failed-logon-journal", journal.directory.path])
        let root = try rig.sensd.subscribe(#"{"events":["LogonFailed","Logoff"]}"#)
        journal.restartClock()
        let export = (1...100).map { i in
            journal.entry(UInt64(i), ["_TRANSPORT": "audit", "_AUDIT_TYPE_NAME": "USER_AUTH", "AUDIT_FIELD_ACCT": "\"guess\(i)\"", "AUDIT_FIELD_EXE": "\"/usr/sbin/sshd\"",
                              "AUDIT_FIELD_ADDR": "198.51.100.\(i)", "AUDIT_FIELD_TERMINAL": "ssh", "AUDIT_FIELD_RES": "failed"])
        }.joined()
        try journal.write("batch", export)
        var events: [SENSEvent] = []
        do {
            while events.count < 100 { events.append(try root.nextEvent()) }
        } catch {
            Issue.record("\(events.count) of 100 read: \(events.map { $0.userName ?? "?" })")
            throw error
        }
        #expect(events.map(\.userName) == (1...100).map { "guess\($0)" })
        #expect(try rig.barrier(root).isEmpty)
    }
}
