import Foundation
import SENSCore
import SystemCalls
import Testing

#if canImport(Glibc)
import Glibc
#endif

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
}
