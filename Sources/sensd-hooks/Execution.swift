import SENSClient
import SENSHooks
import Dispatch
import Logging
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// Bounds how many commands run at once across every rule.
actor Limiter {
    let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    func acquire() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// How one run ended.
enum RunOutcome: Equatable {
    case exited(Int32)
    case signaled(Int32)
    case timedOut(Duration)
    case couldNotStart(String)

    var succeeded: Bool { self == .exited(0) }

    var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "was killed by signal \(signal) (\(String(cString: strsignal(signal))))"
        case .timedOut(let limit): return "was stopped after TimeoutSec=\(limit.seconds)"
        case .couldNotStart(let why): return "could not be started: \(why)"
        }
    }

    /// For the journal's SENSD_STATUS field.
    var field: String {
        switch self {
        case .exited(let code): return "exited:\(code)"
        case .signaled(let signal): return "signal:\(signal)"
        case .timedOut: return "timeout"
        case .couldNotStart: return "not-started"
        }
    }
}

extension Duration {
    var seconds: String {
        let (s, attoseconds) = components
        let ms = attoseconds / 1_000_000_000_000_000
        return ms == 0 ? "\(s)s" : "\(s).\(String(ms + 1000).dropFirst())s"
    }
}

/// Runs what a rule says for one event.
struct Executor: Sendable {
    let limiter: Limiter
    /// Where systemctl is (Unit= rules).
    static let systemctl: String = {
        let candidates: [String] = ["/usr/bin/systemctl", "/bin/systemctl"]
        return candidates.first { path in access(path, X_OK) == 0 } ?? "/usr/bin/systemctl"
    }()

    /// The command line a rule runs for `event`: for Exec=, its words with specifiers expanded; for Unit=,
    /// systemctl starting the unit, the specifiers' values escaped as a unit name needs.
    static func commandLine(_ rule: HookRule, _ event: SENSEvent) -> [String] {
        switch rule.action {
        case .exec(let words):
            return words.map { Specifiers.expand($0, event) }
        case .unit(let template):
            return [systemctl, "start", "--", Specifiers.expand(template, event, escape: Specifiers.unitEscape)]
        }
    }

    /// Runs the rule for `event` (its line as sensd sent it), retrying a failed run as the rule says; logs
    /// each run with the rule, the seq, how it ended and how long it took.
    func run(_ rule: HookRule, _ event: SENSEvent, line: String, account: Account?) async -> RunOutcome {
        var outcome = RunOutcome.couldNotStart("not run")
        let account = account ?? event.userName.flatMap(Account.lookUp)
        for attempt in 0...rule.retries {
            if attempt > 0 {
                do { try await Task.sleep(for: rule.retryDelay) } catch { return outcome }
            }
            let started = ContinuousClock.now
            if let account {
                await limiter.acquire()
                outcome = await runOnce(rule, event, line: line, account: account)
                await limiter.release()
            } else {
                outcome = .couldNotStart("User=%u, and the session's user \(event.userName.map { "\($0) is not in the user database" } ?? "is not known")")
            }
            let took = ContinuousClock.now - started
            let who = event.userName.map { "\($0) " } ?? ""
            let what = "rule \(rule.name): seq \(event.seq) \(event.event.rawValue) \(who)session \(event.sessionId): "
            let retry = !outcome.succeeded && attempt < rule.retries ? "; retrying in \(rule.retryDelay.seconds) (\(attempt + 1) of \(rule.retries))" : ""
            // Journal fields SENSD_HOOK, SENSD_SEQ, SENSD_EVENT, SENSD_STATUS, SENSD_DURATION_USEC.
            let fields: Logger.Metadata = [
                "hook": "\(rule.name)", "seq": "\(event.seq)", "event": "\(event.event.rawValue)", "status": "\(outcome.field)",
                "duration_usec": "\(took.components.seconds * 1_000_000 + took.components.attoseconds / 1_000_000_000_000)",
            ]
            if outcome.succeeded {
                log.info("\(what)\(outcome.description) in \(took.seconds)", metadata: fields)
                return outcome
            }
            log.warning("\(what)\(outcome.description) after \(took.seconds)\(retry)", metadata: fields)
        }
        return outcome
    }

    /// The read end of a pipe that holds `bytes` and whose write end is closed; nil if pipe(2) failed.
    static func pipe(holding bytes: [UInt8]) -> Descriptor? {
        // Close-on-exec from the start: rules run commands from several tasks at once, and a write end leaked
        // into another rule's command would keep this one's standard input from ever ending.
        guard let pipe = try? Syscall.pipe() else { return nil }
        // Non-blocking: a line longer than the pipe's buffer (none is, from sensd) is cut there rather than
        // waited on (writeAll stops at EAGAIN).
        _ = fcntl(pipe.write.rawValue, F_SETFL, O_NONBLOCK)
        try? Syscall.writeAll(pipe.write.rawValue, bytes)
        try? pipe.write.close()
        return Descriptor(taking: pipe.read.release())
    }

    /// How long a command stopped for its time-out (or for the runner's own stop) has between SIGTERM and
    /// SIGKILL to its whole session.
    static let stopGrace: Duration = .seconds(5)

    private func runOnce(_ rule: HookRule, _ event: SENSEvent, line: String, account: Account) async -> RunOutcome {
        let argv = Self.commandLine(rule, event)
        var environment: [String: String] = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": account.home, "USER": account.name, "LOGNAME": account.name, "SHELL": account.shell,
            "LANG": "C.UTF-8", "SENSD_HOOK": rule.name,
        ]
        for (name, value) in HookEnvironment.variables(forLine: line) { environment[name] = value }
        let identity = account.uid != 0 || account.gid != 0
            ? ChildProcess.Identity(uid: account.uid, gid: account.gid, groups: account.groups) : nil

        // Its output goes to the journal as the rule's (identifier sensd-hook/NAME); outside journald, to ours.
        // Held (and closed) here for the whole run: the command gets its own copies when it starts.
        let stream = JournalWriter.streamDescriptor(identifier: "sensd-hook/\(rule.name)")
        defer { if let stream { close(stream) } }
        let output = stream ?? 2
        // Standard input: the line in a pipe, written in full and closed before the command starts (a line is
        // far smaller than a pipe's buffer), so that nothing waits on the command reading it.
        // In the rule's InputFormat= (sensd's own line unless it says ecs or ocsf).
        let input = rule.inputFormat == .sensd ? line : event.formatted(rule.inputFormat, line: line)
        guard let input = Self.pipe(holding: Array((input + "\n").utf8)) else {
            return .couldNotStart("pipe: \(String(cString: strerror(errno)))")
        }
        let child: ChildProcess
        do {
            // Its own session and process group, so that a time-out stops everything it started.
            child = try ChildProcess.spawn(argv, environment: environment, input: input.rawValue, output: output, error: output,
                                           identity: identity, newSession: true)
        } catch {
            try? input.close()
            return .couldNotStart("\(error)")
        }
        try? input.close()
        return await Self.wait(for: child, timeout: rule.timeout)
    }

    /// Waits for `child`, stopping its session at `timeout` (SIGTERM, then SIGKILL after ``stopGrace``), or
    /// when the waiting task is cancelled (the runner stopping).
    static func wait(for child: ChildProcess, timeout: Duration?) async -> RunOutcome {
        enum Step: Sendable { case ended(ChildProcess.Termination), timedOut, graceOver }
        let stop = { @Sendable in
            child.signalGroup(SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Int(Self.stopGrace.components.seconds))) {
                child.signalGroup(SIGKILL)
            }
        }
        return await withTaskCancellationHandler {
            await withTaskGroup(of: Step.self) { group in
                group.addTask { .ended(await child.exit()) }
                if let timeout {
                    group.addTask {
                        // Cancelled once the child has ended: then the time-out never fires.
                        do { try await Task.sleep(for: timeout) } catch { return .graceOver }
                        return .timedOut
                    }
                }
                var outcome: RunOutcome?
                while let step = await group.next() {
                    switch step {
                    case .ended(let termination):
                        group.cancelAll()
                        if outcome == nil {
                            switch termination {
                            case .exited(let code): outcome = .exited(code)
                            case .signaled(let signal): outcome = .signaled(signal)
                            }
                        }
                    case .timedOut:
                        outcome = .timedOut(timeout ?? .zero)
                        stop()
                    case .graceOver:
                        break
                    }
                }
                return outcome ?? .couldNotStart("not run")
            }
        } onCancel: {
            stop()
        }
    }
}
