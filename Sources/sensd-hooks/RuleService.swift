import Logging
import SENSClient
import SENSHooks
import ServiceLifecycle
import Synchronization
import Systemd

/// The runner's messages. `SensdHooks` bootstraps sensd's own handlers (SensdLogging) before the first one:
/// under systemd, journal entries whose metadata are fields (`hook` is `SENSD_HOOK`, `seq` is `SENSD_SEQ`).
let log = Logger(label: "sensd-hooks")

/// The runner's stop, shared by every rule: once it has begun, no rule starts a new run. The service group
/// tells its services one after another, waiting for each to end; without this, a rule told late would go on
/// starting commands while an earlier one finishes its own.
final class Shutdown: Sendable {
    private let begun = Mutex(false)

    /// Begins the stop; the first call says so to systemd and the journal.
    func begin() {
        guard begun.withLock({ b in defer { b = true }; return !b }) else { return }
        ServiceManager.notify("STOPPING=1")
        log.notice("stopping: letting running commands finish")
    }

    var hasBegun: Bool { begun.withLock { $0 } }
}

/// One rule, a service of the runner's group, following sensd's stream on a connection of its own from its
/// own position: rules never hold each other up, and a slow rule falls behind alone (sensd cuts it off, it
/// resumes from its cursor).
///
/// Its position, the seq of the last event it finished (run, or skipped as not matching), is in
/// `STATE/NAME.seq`, saved after each run: after a crash, a stop or a reboot it goes on from there, so a run
/// repeats only if the runner died while it was going on.
///
/// It ends when it is told to stop: by the group's graceful shutdown (SIGTERM, SIGINT) or by a reload that
/// dropped or changed the rule. A run going on is let finish (bounded by the rule's `TimeoutSec=`); its
/// position is saved; then the service returns.
final class RuleService: Service, CustomStringConvertible {
    let rule: HookRule
    /// Who its commands run as; nil: the session's user (`User=%u`), looked up for each event.
    let account: Account?
    private let client: SensdClient
    private let cursor: SENSCursor
    private let executor: Executor
    private let shutdown: Shutdown
    /// Whether a run is going on, and whether the service should stop after it.
    private let state = Mutex<(running: Bool, stopping: Bool)>((false, false))
    private let stopRequests: AsyncStream<Void>
    private let stopRequest: AsyncStream<Void>.Continuation
    private let ends: AsyncStream<Void>
    private let end: AsyncStream<Void>.Continuation

    init(rule: HookRule, account: Account?, client: SensdClient, stateDirectory: String, executor: Executor, shutdown: Shutdown) {
        self.rule = rule
        self.account = account
        self.client = client
        self.cursor = SENSCursor(path: "\(stateDirectory)/\(rule.name).seq")
        self.executor = executor
        self.shutdown = shutdown
        (stopRequests, stopRequest) = AsyncStream.makeStream(of: Void.self)
        (ends, end) = AsyncStream.makeStream(of: Void.self)
    }

    var description: String { "rule \(rule.name)" }

    func run() async {
        defer { end.finish() }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.follow() }
                // Until told to stop (or cancelled). Following may end before, when the runner's stop began.
                for await _ in stopRequests { break }
                // Waiting for events: stop at once. Running: the run ends, saves its position and sees `stopping`.
                if state.withLock({ !$0.running }) { group.cancelAll() }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.shutdown.begin()
            self.requestStop()
        }
    }

    private func requestStop() {
        state.withLock { $0.stopping = true }
        stopRequest.finish()
    }

    /// Stops the rule (a reload dropped or changed it) and returns once it has ended.
    func retire() async {
        requestStop()
        for await _ in ends {}
    }

    private func beginRun() -> Bool {
        state.withLock { s in
            guard !s.stopping, !shutdown.hasBegun else { return false }
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
        let metadata: Logger.Metadata = ["hook": "\(rule.name)"]
        while !Task.isCancelled && !stopping {
            do {
                var after = try cursor.load()
                if let after { log.info("rule \(rule.name): following events after seq \(after)", metadata: metadata) }
                for try await message in client.messages(rule.match.filter, after: after, reconnect: .standard) {
                    switch message.kind {
                    case .hello(let hello) where after == nil:
                        // A new rule: events from now on. Saved at once, so that nothing after this is missed
                        // even if the runner stops before the first one.
                        try cursor.save(hello.lastSeq)
                        after = hello.lastSeq
                        log.info("rule \(rule.name): new; following events after seq \(hello.lastSeq)", metadata: metadata)
                    case .event(let event):
                        // sensd filtered on events, users, uids and classes; Service= and Remote= are checked here.
                        guard rule.match.matches(event) else { continue }
                        // Stopping: the event stays after the saved position, and runs at the next start.
                        guard beginRun() else {
                            log.notice("rule \(rule.name): seq \(event.seq) \(event.event.rawValue) is left for the next start: stopping",
                                       metadata: metadata)
                            return
                        }
                        _ = await executor.run(rule, event, line: message.line ?? "", account: account)
                        try cursor.save(event.seq)
                        guard endRun() else { return }
                    case .gap(let gap):
                        log.warning("rule \(rule.name): events \(gap.firstMissing) to \(gap.lastMissing) will not be run: \(gap.message)",
                                    metadata: metadata)
                        try cursor.save(gap.lastMissing)
                    case .disconnected(let reason):
                        log.notice("rule \(rule.name): \(reason); waiting for sensd", metadata: metadata)
                    default:
                        break
                    }
                }
                return
            } catch is CancellationError {
                return
            } catch {
                _ = endRun()
                log.error("rule \(rule.name): \(error); trying again in 10 s", metadata: metadata)
                try? await Task.sleep(for: .seconds(10))
            }
        }
    }
}
