import SENSClient
import SENSHooks
import Synchronization

/// One rule following sensd's stream on a connection of its own, from its own position: rules never hold
/// each other up, and a slow rule falls behind alone (sensd cuts it off, it resumes from its cursor).
///
/// Its position, the seq of the last event it finished (run, or skipped as not matching), is in
/// `STATE/NAME.seq`, saved after each run: after a crash, a stop or a reboot it goes on from there, so a run
/// repeats only if the runner died while it was going on.
final class RuleWorker: Sendable {
    let rule: HookRule
    /// Who its commands run as; nil: the session's user (`User=%u`), looked up for each event.
    let account: Account?
    private let client: SensdClient
    private let cursor: SENSCursor
    private let executor: Executor
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// Whether a run is going on, and whether the worker should stop after it.
    private let state = Mutex<(running: Bool, stopping: Bool)>((false, false))

    init(rule: HookRule, account: Account?, client: SensdClient, stateDirectory: String, executor: Executor) {
        self.rule = rule
        self.account = account
        self.client = client
        self.cursor = SENSCursor(path: "\(stateDirectory)/\(rule.name).seq")
        self.executor = executor
    }

    func start() {
        task.withLock { $0 = Task { await self.follow() } }
    }

    /// Stops following: at once when waiting for events, after the run when one is going on.
    func stop() async {
        let cancelNow = state.withLock { s -> Bool in
            s.stopping = true
            return !s.running
        }
        let running = task.withLock { $0 }
        if cancelNow { running?.cancel() }
        await running?.value
    }

    private func beginRun() -> Bool {
        state.withLock { s in
            guard !s.stopping else { return false }
            s.running = true
            return true
        }
    }

    private func endRun() -> Bool {
        state.withLock { s in
            s.running = false
            return !s.stopping
        }
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func follow() async {
        while !Task.isCancelled && !stopping {
            do {
                var after = try cursor.load()
                if let after { Log.info("rule \(rule.name): following events after seq \(after)", [("SENSD_HOOK", rule.name)]) }
                for try await message in client.messages(rule.match.filter, after: after, reconnect: .standard) {
                    switch message.kind {
                    case .hello(let hello) where after == nil:
                        // A new rule: events from now on. Saved at once, so that nothing after this is missed
                        // even if the runner stops before the first one.
                        try cursor.save(hello.lastSeq)
                        after = hello.lastSeq
                        Log.info("rule \(rule.name): new; following events after seq \(hello.lastSeq)", [("SENSD_HOOK", rule.name)])
                    case .event(let event):
                        // sensd filtered on events, users, uids and classes; Service= and Remote= are checked here.
                        guard rule.match.matches(event) else { continue }
                        guard beginRun() else { return }
                        _ = await executor.run(rule, event, line: message.line ?? "", account: account)
                        try cursor.save(event.seq)
                        guard endRun() else { return }
                    case .gap(let gap):
                        Log.warning("rule \(rule.name): events \(gap.firstMissing) to \(gap.lastMissing) will not be run: \(gap.message)",
                                    [("SENSD_HOOK", rule.name)])
                        try cursor.save(gap.lastMissing)
                    case .disconnected(let reason):
                        Log.notice("rule \(rule.name): \(reason); waiting for sensd", [("SENSD_HOOK", rule.name)])
                    default:
                        break
                    }
                }
                return
            } catch is CancellationError {
                return
            } catch {
                _ = endRun()
                Log.error("rule \(rule.name): \(error); trying again in 10 s", [("SENSD_HOOK", rule.name)])
                try? await Task.sleep(for: .seconds(10))
            }
        }
    }
}
