import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// sensd-hooks, the real program, against sensd and the logind stand-in: which events run, what a command
/// gets, catching up after SIGKILL, time-outs, and the --check and --dry-run answers.
@Suite("sensd-hooks against sensd", .serialized)
struct HookRunnerTests {
    final class Runner {
        let rig: Rig
        let rules: String
        let state: String
        let out: String
        var child: Child?

        init(_ rig: Rig) throws {
            self.rig = rig
            rules = rig.dir.path + "/hooks.d"
            state = rig.dir.path + "/hooks-state"
            out = rig.dir.path + "/out"
            mkdir(rules, 0o755)
            mkdir(out, 0o777)
        }

        func rule(_ name: String, _ text: String) throws {
            try text.write(toFile: "\(rules)/\(name).hook", atomically: true, encoding: .utf8)
        }

        /// Starts the runner and waits until each rule has its position (it saves sensd's lastSeq first).
        func start(_ names: [String]) throws {
            child = try Child(productsDirectory + "/sensd-hooks",
                              ["--socket", rig.sensd.socketPath, "--rules-directory", rules, "--state-directory", state],
                              stderrPath: rig.dir.path + "/hooks.log")
            for name in names { try waitFor("the position of rule \(name)") { access("\(state)/\(name).seq", F_OK) == 0 } }
        }

        var log: String { (try? String(contentsOfFile: rig.dir.path + "/hooks.log", encoding: .utf8)) ?? "" }

        func file(_ name: String) -> String? { try? String(contentsOfFile: "\(out)/\(name)", encoding: .utf8) }

        func waitFor(_ what: String, _ condition: () -> Bool) throws {
            let deadline = Date().addingTimeInterval(patience)
            while !condition() {
                guard Date() < deadline else { throw HarnessError("timed out waiting for \(what); sensd-hooks said:\n\(log)") }
                if let child, !child.isRunning { throw HarnessError("sensd-hooks exited while waiting for \(what):\n\(log)") }
                usleep(20_000)  // polling a file the runner writes: the condition, not the clock, ends the wait
            }
        }

        deinit {
            child?.signal(SIGTERM)
            _ = try? child?.waitForExit()
        }
    }

    /// A session with a known user: opened, its details read by sensd, then closed.
    func session(_ rig: Rig, _ id: String, _ uid: Int, _ user: String) throws {
        try rig.logind.run("open \(id) \(uid) \(user)")
        try rig.logind.run("wait-asked \(id)")
        try rig.logind.run("close \(id)")
    }

    @Test func aRuleRunsForTheEventsItMatchesWithTheEventInItsEnvironmentAndOnItsInput() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try runner.rule("alice", """
            [Match]
            Event=Logoff
            UID=1000
            [Run]
            Exec=/bin/sh -c 'env | grep ^SENS | sort > \(runner.out)/env-$SENS_SEQ; cat > \(runner.out)/stdin-$SENS_SEQ; echo "%u %s %e" > \(runner.out)/args-$SENS_SEQ'
            """)
        try runner.start(["alice"])
        try session(rig, "a1", 1000, "alice")
        try session(rig, "b1", 1001, "bob")
        try session(rig, "a2", 1000, "alice")
        // Seqs: a1 3 events (1-3), b1 (4-6), a2 (7-9): Logoffs at 3, 6, 9. Runs are in seq order, so once 9's is
        // done, 6's would have been too.
        // The run is over when the runner says so: a file the command is still writing may exist, empty.
        try runner.waitFor("a2's run") { runner.log.contains("rule alice: seq 9 Logoff alice session a2: exited") }
        #expect(runner.file("args-3") == "alice a1 Logoff\n" && runner.file("args-9") == "alice a2 Logoff\n")
        #expect(runner.file("args-6") == nil, "bob's Logoff does not match UID=1000")
        let env = try #require(runner.file("env-3"))
        #expect(env.contains("SENS_EVENT=Logoff\n") && env.contains("SENS_SEQ=3\n") && env.contains("SENS_USER_NAME=alice\n")
                && env.contains("SENS_UID=1000\n") && env.contains("SENS_SESSION_ID=a1\n") && env.contains("SENSD_HOOK=alice\n"), "\(env)")
        let stdin = try #require(runner.file("stdin-3"))
        #expect(stdin.hasPrefix(#"{"event":"Logoff","seq":3,"#) && stdin.hasSuffix("}\n"), "the event's line as sensd sent it")
        #expect(runner.log.contains("rule alice: seq 3 Logoff alice session a1: exited with status 0"), "\(runner.log)")
    }

    /// InputFormat=: the event on standard input in a SIEM's shape, the same projection as sensctl's.
    @Test func aRuleCanTakeTheEventAsOCSFOrECSOnItsInput() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try runner.rule("ocsf", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'cat > \(runner.out)/ocsf'\nInputFormat=ocsf\n")
        try runner.rule("ecs", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'cat > \(runner.out)/ecs'\nInputFormat=ecs\n")
        try runner.start(["ocsf", "ecs"])
        try session(rig, "o1", 1000, "alice")
        try runner.waitFor("both runs") { runner.log.contains("rule ocsf: seq 3") && runner.log.contains("rule ecs: seq 3") }
        let ocsf = try object(runner.file("ocsf"))
        #expect(ocsf["class_uid"] as? Int == 3002 && ocsf["activity_id"] as? Int == 2)
        #expect((ocsf["user"] as? [String: Any])?["name"] as? String == "alice")
        #expect((ocsf["metadata"] as? [String: Any])?["sequence"] as? Int == 3)
        let ecs = try object(runner.file("ecs"))
        #expect((ecs["event"] as? [String: Any])?["action"] as? String == "logged-out")
        #expect((ecs["sensd"] as? [String: Any])?["sessionId"] as? String == "o1", "sensd's own event under sensd")
    }

    @Test func afterSigkillTheRunnerRunsEveryMissedEventOnce() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try runner.rule("ledger", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ $SENS_SESSION_ID >> \(runner.out)/ledger'\n")
        try runner.start(["ledger"])
        try session(rig, "s1", 1000, "alice")
        try runner.waitFor("s1's run") { runner.file("ledger") == "3 s1\n" }
        // Killed once the run is finished *and* its position saved: then nothing may run twice. (Killed in
        // between, the run would be repeated, which is the documented at-least-once.)
        try runner.waitFor("s1's position") { (try? String(contentsOfFile: "\(runner.state)/ledger.seq", encoding: .utf8)) == "3\n" }
        runner.child?.signal(SIGKILL)
        _ = try runner.child?.waitForExit()
        for i in 2...4 { try session(rig, "s\(i)", 1000, "alice") }
        try runner.start(["ledger"])
        try runner.waitFor("the missed runs") { runner.file("ledger")?.split(separator: "\n").count == 4 }
        #expect(runner.file("ledger") == "3 s1\n6 s2\n9 s3\n12 s4\n", "each once, in seq order")
    }

    /// SIGTERM is swift-service-lifecycle's graceful shutdown: a running command is let finish and its
    /// position saved, no rule starts another run once the stop has begun (the group tells its services one
    /// after another), and what was left runs at the next start.
    @Test func aStopLetsTheRunningCommandFinishAndStartsNoOther() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        let out = runner.out
        // slow waits for a file the test makes, so that the stop comes while it runs (a minute at most: a
        // failed test leaves nothing behind for long).
        try runner.rule("slow", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'touch \(out)/started-$SENS_SEQ; for i in $(seq 3000); do [ -e \(out)/go ] && break; sleep 0.02; done; echo $SENS_SEQ >> \(out)/slow'\n")
        try runner.rule("other", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ >> \(out)/other'\n")
        try runner.start(["slow", "other"])
        try session(rig, "g1", 1000, "alice")
        try runner.waitFor("slow's start and other's run") { access("\(out)/started-3", F_OK) == 0 && runner.file("other") == "3\n" }
        runner.child?.signal(SIGTERM)
        try runner.waitFor("the stop") { runner.log.contains("stopping: letting running commands finish") }
        try session(rig, "g2", 1000, "alice")
        try runner.waitFor("other's refusal") { runner.log.contains("rule other: seq 6 Logoff is left for the next start: stopping") }
        #expect(runner.child?.isRunning == true, "slow's command still runs, so the runner waits")
        close(creat("\(out)/go", 0o644))
        #expect(try runner.child?.waitForExit() == 0)
        runner.child = nil
        #expect(runner.file("slow") == "3\n" && runner.file("other") == "3\n", "slow finished its run; other ran nothing more")
        let position = { (name: String) in try? String(contentsOfFile: "\(runner.state)/\(name).seq", encoding: .utf8) }
        #expect(position("slow") == "3\n" && position("other") == "3\n")
        try runner.start(["slow", "other"])
        try runner.waitFor("the runs left over") { runner.file("slow") == "3\n6\n" && runner.file("other") == "3\n6\n" }
    }

    @Test func aHangingCommandIsStoppedAtItsTimeoutAndOtherRulesDoNotWait() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try runner.rule("hang", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sleep 1234.5\nTimeoutSec=1\n")
        try runner.rule("quick", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ >> \(runner.out)/quick'\n")
        try runner.start(["hang", "quick"])
        try session(rig, "t1", 1000, "alice")
        try session(rig, "t2", 1000, "alice")
        // quick ran for both while hang was still on its first.
        try runner.waitFor("quick's runs") { runner.file("quick") == "3\n6\n" }
        #expect(!runner.log.contains("rule hang: seq 6"))
        try runner.waitFor("hang's time-outs") { runner.log.contains("rule hang: seq 6 Logoff alice session t2: was stopped after TimeoutSec=1s") }
        #expect(runner.log.contains("rule hang: seq 3 Logoff alice session t1: was stopped after TimeoutSec=1s"), "\(runner.log)")
        let left = try Child("/usr/bin/pgrep", ["-f", "sleep 1234.5"])
        #expect(try left.waitForExit() == 1, "no command left running")
    }

    /// What a command starts with, read from /proc by the command itself: the rule's user and that user's
    /// groups, a session of its own, only standard input, output and error open, no signal ignored or blocked
    /// (the runner's own dispositions stay behind), / as its directory. And a command that cannot start is
    /// reported with the step that failed.
    @Test func aCommandStartsCleanAsItsUserInItsOwnSession() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        // nobody must reach the script and write its report: the rig's directory is private (mkdtemp).
        chmod(rig.dir.path, 0o711)
        chmod(runner.out, 0o1777)
        let script = runner.out + "/probe.sh"
        try """
            o=\(runner.out)/probe
            { id -u; id -g; ls /proc/self/fd | sort -n | tr "\\n" " "; echo
              grep -E "^(SigIgn|SigBlk)" /proc/self/status; ps -o sid= -o pid= -p $$; pwd; } > $o.tmp
            mv $o.tmp $o
            """.write(toFile: script, atomically: true, encoding: .utf8)
        try runner.rule("probe", "[Match]\nEvent=Logoff\n[Run]\nUser=nobody\nExec=/bin/sh \(script)\n")
        try runner.rule("missing", "[Match]\nEvent=Logoff\n[Run]\nExec=/no/such/program\n")
        try runner.start(["probe", "missing"])
        try session(rig, "p1", 1000, "alice")
        try runner.waitFor("the probe's report") { runner.file("probe") != nil }
        let report = try #require(runner.file("probe")).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let nobody = try #require(getpwnam("nobody")).pointee
        #expect(report[0] == String(nobody.pw_uid) && report[1] == String(nobody.pw_gid), "\(report)")
        // ls itself has its directory open as 3 while it lists: nothing else beyond 0, 1 and 2.
        #expect(report[2] == "0 1 2 3 ", "only the standard descriptors reach the command: \(report[2])")
        var masks: [String: UInt64] = [:]
        for line in report[3...4] {
            masks[String(line.prefix { $0 != ":" })] = UInt64(line.split(separator: "\t").last ?? "", radix: 16)
        }
        #expect(masks["SigBlk"] == 0, "no signal blocked: \(report)")
        // Signals 32 and 33 are glibc's own (thread cancellation, setxid), which no program may set.
        #expect(masks["SigIgn"].map { $0 & ~0x1_8000_0000 } == 0, "no signal ignored: \(report)")
        let ids = report[5].split(separator: " ")
        #expect(ids.count == 2 && ids[0] == ids[1], "the shell leads a session of its own: \(report[5])")
        #expect(report[6] == "/")
        try runner.waitFor("the missing program's failure") { runner.log.contains("rule missing: seq 3") }
        #expect(runner.log.contains("rule missing: seq 3 Logoff alice session p1: could not be started: execve: No such file or directory"), "\(runner.log)")
    }

    @Test func checkPointsToEachMistakeAndTheServiceRunsTheGoodRulesOnly() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try runner.rule("good", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ >> \(runner.out)/good'\n")
        try runner.rule("broken", "[Match]\nEvent=Logoff\nUserName=alice\n[Run]\nExec=cleanup %u\nTimeoutSec=later\n")
        try runner.rule("nobody", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\nUser=no-such-user-here\n")
        let check = try Child(productsDirectory + "/sensd-hooks", ["--check", "--rules-directory", runner.rules])
        var lines: [String] = []
        while let line = try check.output.next() { lines.append(line) }
        #expect(try check.waitForExit() == 1)
        #expect(lines.contains("\(runner.rules)/broken.hook:5: Exec= must start with the program's absolute path (no shell, no PATH search), got 'cleanup'"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("\(runner.rules)/broken.hook:6: TimeoutSec= takes a time span") }, "\(lines)")
        #expect(lines.contains("\(runner.rules)/nobody.hook: User=no-such-user-here: no such user"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("\(runner.rules)/good.hook: ok: on Logoff, run /bin/sh") }, "\(lines)")
        #expect(lines.last == "1 rule ok, 3 mistakes")

        try runner.start(["good"])
        try session(rig, "g1", 1000, "alice")
        try runner.waitFor("the good rule's run") { runner.file("good") == "3\n" }
        #expect(runner.log.contains("broken.hook:5: Exec= must start"), "\(runner.log)")
        #expect(runner.log.contains("rules loaded: 1 rule, 3 mistakes in rule files (good)"), "\(runner.log)")
    }

    @Test func aReloadStartsNewRulesAndKeepsThePositionOfUnchangedOnes() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try runner.rule("first", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ >> \(runner.out)/first'\n")
        try runner.start(["first"])
        try session(rig, "r1", 1000, "alice")
        try runner.waitFor("first's run") { runner.file("first") == "3\n" }
        try runner.rule("second", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ >> \(runner.out)/second'\n")
        runner.child?.signal(SIGHUP)
        try runner.waitFor("second's position") { access("\(runner.state)/second.seq", F_OK) == 0 }
        try session(rig, "r2", 1000, "alice")
        try runner.waitFor("both rules' runs") { runner.file("first") == "3\n6\n" && runner.file("second") == "6\n" }
    }

    @Test func dryRunPrintsWhatWouldRunForTheLoggedEventsAndRunsNothing() throws {
        let rig = try Rig()
        let runner = try Runner(rig)
        try session(rig, "d1", 1000, "alice")
        try session(rig, "d2", 1001, "bob")
        try runner.rule("bob", "[Match]\nEvent=Logoff\nUserName=bob\n[Run]\nExec=/bin/touch \(runner.out)/ran-%u\n")
        try runner.rule("unit", "[Match]\nEvent=Logon\n[Run]\nUnit=welcome@%u.service\n")
        let watcher = try rig.sensd.subscribe()
        _ = try rig.barrier(watcher)
        let dry = try Child(productsDirectory + "/sensd-hooks", ["--dry-run", "--since", "0", "--socket", rig.sensd.socketPath, "--rules-directory", runner.rules])
        var lines: [String] = []
        while let line = try dry.output.next() { lines.append(line) }
        #expect(try dry.waitForExit() == 0)
        #expect(lines.contains("seq 6 Logoff session d2 bob: rule bob would run: /bin/touch \(runner.out)/ran-bob"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("seq 1 Logon session d1 alice: rule unit would run: ") && $0.hasSuffix("start -- welcome@alice.service") }, "\(lines)")
        #expect(lines.filter { $0.contains("would run") }.count == 4, "\(lines)")
        #expect(runner.file("ran-bob") == nil)
    }
}
