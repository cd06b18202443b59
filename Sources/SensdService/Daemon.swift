import Logging
import SENSCore
import Systemd
import UnixSocket

#if canImport(Glibc)
import Glibc
#endif

/// The daemon: one event loop driving the bus, the subscriber socket and the signals, and the wiring of its
/// parts. logind's changes come from ``LogindSource`` as drafts; ``EventPipeline`` stamps them and takes them
/// to the log (``Durability``), the journal and the subscribers (``SubscriberServer``), in that order. The
/// server asks the daemon, its ``SubscriberFeed``, for what is pending when it writes.
public final class Daemon: SubscriberFeed {
    public static let version = Release.version
    /// How long sensd waits, stopping while the machine goes down, for the sessions still tracked to end.
    static let finalWaitMicroseconds: UInt64 = 3_000_000

    /// Where the daemon is in its life.
    private enum Phase {
        /// Learning the sessions that exist: events wait, nothing is announced as ready.
        case startingUp
        case running
        /// SIGTERM came while the system goes down with sessions still tracked: sensd stops when the last of
        /// them ends or when the timer fires.
        case waitingForLastSessions(EventSource)
    }

    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let loop: EventLoop
    private let bus: Bus
    private let logind: LogindSource
    private let durability: Durability?
    private let pipeline: EventPipeline
    private var server: SubscriberServer!
    private var phase = Phase.startingUp
    private var signalSources: [EventSource] = []
    private var statusTimer: EventSource?
    /// Whether sensd made the socket file (and so removes it when it stops).
    private var createdSocketFile = false
    /// Whether sd-login and the journal describe the logind sensd follows (this machine's own).
    private let local: Bool
    /// The sessions whose events went out during start-up: not news to the journal search.
    private var reportedAtStart: [KnownSession] = []
    /// The journal search for sessions missed while sensd was down, while it goes on after readiness.
    private var downtimeSearch: (finder: DowntimeFinder, source: EventSource)?
    /// How long the search may hold back readiness, and how long each later step may take.
    static let downtimeSearchBudget: UInt64 = 500_000, downtimeStepBudget: UInt64 = 20_000
    /// When this run of sensd started, for `stats`.
    private let startedAt: EventTime

    public init(configuration: DaemonConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        loop = try EventLoop()
        startedAt = EventTime(microsecondsSinceEpoch: Int64(loop.now))
        bus = try Bus.system(description: "sensd-logind")
        try bus.attach(to: loop)
        try bus.exitLoopOnDisconnect()

        if let directory = configuration.stateDirectory, Durability.usable(directory, logger: logger) {
            durability = try Durability(
                directory: directory, retention: configuration.retention,
                syncIntervalMicroseconds: configuration.syncIntervalMicroseconds, loop: loop, logger: logger)
        } else {
            durability = nil
        }
        // sd-login and the journal describe the logind sensd follows only if it is this machine's.
        local = configuration.watchSessionFiles ?? DaemonConfiguration.busIsThisMachines()
        logind = LogindSource(bus: bus, loop: loop, logger: logger, watchSessionFiles: local, remembered: durability?.takeRecoveredSessions() ?? [])
        pipeline = EventPipeline(
            lastSeq: durability?.recoveredLastSeq ?? 0, durability: durability, sessions: logind,
            journalEvents: configuration.journalEvents ?? StderrLogHandler.stderrIsJournal(),
            host: Syscall.hostName(), localLogind: local, logger: logger)
    }

    /// Runs until SIGTERM or SIGINT (exit code 0) or until the bus connection is lost (non-zero).
    public func run() throws -> Int32 {
        for signal in [SIGTERM, SIGINT] {
            signalSources.append(try loop.addSignal(signal) { [unowned self] in self.stop(on: signal) })
        }
        _ = try? loop.enableWatchdog()

        try durability?.start(sessions: logind)
        server = try SubscriberServer(
            loop: loop, listener: try ListeningSocket.open(configuration, logger: logger, created: &createdSocketFile),
            limits: configuration.limits, logger: logger,
            daemonVersion: Self.version, feed: self, log: durability?.log)
        logind.publish = { [unowned self] drafts in self.publish(drafts) }
        try logind.start { [unowned self] in
            self.logger.info("ready", metadata: ["sessions": "\(self.logind.sessionCount)", "socket": "\(self.configuration.socketPath)", "journalEvents": "\(self.pipeline.journalEvents)"])
            self.phase = .running
            self.searchDowntime()
            // What start-up found is logged and handed out before anyone is told sensd is ready.
            self.server.flush()
            // The listing and its replies are freed: give the memory back (glibc keeps it otherwise).
            Syscall.trimHeap()
            ServiceManager.notify("READY=1\nSTATUS=\(self.status)")
        }

        let code = try loop.run { [unowned self] in self.server.afterIteration() }
        pipeline.flush(to: server)
        server.stop()
        pipeline.stopCleanly()
        if createdSocketFile { try? Syscall.unlinkIfPresent(configuration.socketPath) }
        if code != 0 {
            logger.error("lost the system bus; exiting so that the service manager restarts sensd")
        }
        return code
    }

    /// Finds the sessions that began and ended while sensd was down, in the journal from the moment until
    /// which the previous run had reported every session: up to half a second before readiness, the rest in
    /// short steps when the loop has nothing else to do.
    private func searchDowntime() {
        guard let durability else { return }
        guard local, let watermark = durability.watermark,
              let finder = DowntimeFinder(from: watermark, until: loop.now, logger: logger) else {
            durability.downtimeCovered()
            return
        }
        if finder.step(budget: Self.downtimeSearchBudget) {
            return finishDowntimeSearch(finder)
        }
        logger.notice("the journal since sensd last watched is long; searching the rest of it for missed sessions while serving")
        guard let source = try? loop.addDefer(handler: { [unowned self] in
            guard let search = self.downtimeSearch, search.finder.step(budget: Self.downtimeStepBudget) else { return }
            search.source.setEnabled(false)
            self.downtimeSearch = nil
            self.finishDowntimeSearch(search.finder)
        }) else { return finishDowntimeSearch(finder) }
        source.setPriority(100)  // SD_EVENT_PRIORITY_IDLE: live events first
        source.setEnabled(true)
        downtimeSearch = (finder, source)
    }

    private func finishDowntimeSearch(_ finder: DowntimeFinder) {
        guard let durability else { return }
        // Listed sessions still tracked get their events from logind (their Logoff when it removes them). One
        // that was listed but found dead without a word ("closing" with its processes gone) is not known: it
        // began and ended unseen, and the journal is where it is found.
        let listed = logind.listedAtStart
        let known = durability.knownSessions + reportedAtStart + listed.ids.filter(logind.isTracked).map { KnownSession(id: $0, at: listed.at) }
        publish(finder.drafts(known: known))
        reportedAtStart = []
        durability.downtimeCovered()
    }

    private func publish(_ drafts: [EventDraft]) {
        guard !drafts.isEmpty else { return }
        let startingUp = if case .startingUp = phase { true } else { false }
        if startingUp {
            reportedAtStart += drafts.map { KnownSession(id: $0.session.id, at: $0.session.startedAt ?? loop.now) }
        }
        pipeline.publish(drafts, at: EventTime(microsecondsSinceEpoch: Int64(loop.now)), startingUp: startingUp)
        server.requestFlush()
        statusChanged()
        if case .waitingForLastSessions = phase, logind.sessionCount == 0 {
            logger.info("every session has ended; stopping")
            loop.exit(code: 0)
        }
    }

    private func stop(on signal: Int32) {
        logger.info("stopping on signal \(signal)")
        ServiceManager.notify("STOPPING=1")
        if case .waitingForLastSessions = phase {
            return loop.exit(code: 0)
        }
        if let reason = logind.shutdownReason, logind.sessionCount > 0 {
            // The machine is going down and sensd is ordered to stop after the sessions' scopes: their
            // removals may still be on their way from logind. Wait for them, a bounded while.
            logger.info("the system is going down (\(reason)); waiting up to \(Self.finalWaitMicroseconds / 1000) ms for the \(logind.sessionCount) sessions still tracked to end")
            if let timer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + Self.finalWaitMicroseconds, handler: { [unowned self] in
                self.logger.info("stopping with sessions still tracked", metadata: ["sessions": "\(self.logind.sessionCount)"])
                self.loop.exit(code: 0)
            }) {
                phase = .waitingForLastSessions(timer)
                return
            }
        }
        loop.exit(code: 0)
    }

    /// What `systemctl status` shows.
    private var status: String {
        var parts = [
            "\(logind.sessionCount) session\(logind.sessionCount == 1 ? "" : "s") tracked",
            "\(server.subscriberCount) subscriber\(server.subscriberCount == 1 ? "" : "s")",
            "\(pipeline.eventsSinceStart) event\(pipeline.eventsSinceStart == 1 ? "" : "s") since start",
            "last seq \(pipeline.lastSeq)",
        ]
        if server.overflowed > 0 { parts.append("\(server.overflowed) cut off for falling behind") }
        if server.refused > 0 { parts.append("\(server.refused) connections refused at a limit") }
        if logind.ignoredSignals > 0 { parts.append("\(logind.ignoredSignals) forged signals ignored") }
        if let damaged = durability?.setAside.count, damaged > 0 {
            parts.append("STATE DAMAGED AT START: \(damaged) problem\(damaged == 1 ? "" : "s") set aside, see sensd --check-state")
        }
        if durability?.logHealth == .failing { parts.append("EVENT LOG NOT WRITTEN (disk full or failing): live only") }
        else if configuration.stateDirectory != nil && durability?.log == nil { parts.append("NO EVENT LOG: live only") }
        return parts.joined(separator: ", ")
    }

    var emittedSeq: UInt64 { pipeline.emittedSeq }

    func flushPending() {
        pipeline.flush(to: server)
    }

    func openSessions() -> (seq: UInt64, sessions: [OpenSession]) {
        // Every stamped event is reflected in the tracker: the snapshot is the state at the last seq given out.
        let host = pipeline.host
        return (pipeline.lastSeq, logind.remembered.map { OpenSession($0.session, logoffInitiated: $0.logoffInitiated, host: host) })
    }

    func subscribersChanged() {
        statusChanged()
    }

    /// What `systemctl status` shows, as numbers: the answer to a `{"stats": true}` request.
    func stats() -> DaemonStats {
        let logState: DaemonStats.LogState = durability?.log == nil ? .none : durability?.logHealth == .failing ? .failing : .written
        return DaemonStats(
            version: Self.version, startedAt: startedAt, sessions: logind.sessionCount, subscribers: server.subscriberCount,
            eventsSinceStart: UInt64(pipeline.eventsSinceStart), lastSeq: pipeline.emittedSeq, oldestSeq: durability?.log?.oldestSeq,
            overflowed: server.overflowed, refused: server.refused, forgedSignals: logind.ignoredSignals, log: logState,
            stateDamaged: durability?.setAside.count ?? 0)
    }

    /// Sends STATUS= at most once a second, and only after a change: no wakeups while idle.
    private func statusChanged() {
        guard statusTimer == nil else { return }
        if case .startingUp = phase { return }
        statusTimer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + 1_000_000) { [unowned self] in
            self.statusTimer = nil
            ServiceManager.notify("STATUS=\(self.status)")
        }
    }
}
