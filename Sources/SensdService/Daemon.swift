import Logging
import SENSCore
import SensdLogging
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// The daemon: one event loop driving the bus, the subscriber socket and the signals, and the wiring of its
/// parts, each call going one way:
/// - ``LogindSource`` hands drafts to the daemon (its ``LogindObserver``), which has ``EventPipeline`` stamp
///   them and asks ``SubscriberServer`` for a flush;
/// - at its flush the server asks its ``SubscriberFeed`` (``DaemonState``) for what is pending: the pipeline
///   takes it to the log (``Durability``), the journal and then the server's broadcast, in that order.
public final class Daemon: LogindObserver, FailedLogonObserver {
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
    private let state: DaemonState
    private let server: SubscriberServer
    /// The PAM hook's reports of failed logons; nil without its socket.
    private let failedLogons: FailedLogonSource?
    private var phase = Phase.startingUp
    private var signalSources: [EventSource] = []
    /// The socket files sensd made (and so removes when it stops).
    private let createdSocketFiles: [String]
    /// Whether sd-login and the journal describe the logind sensd follows (this machine's own).
    private let local: Bool
    /// The sessions whose events went out during start-up: not news to the journal search.
    private var reportedAtStart: [KnownSession] = []
    /// The journal search for sessions missed while sensd was down, while it goes on after readiness.
    private var downtimeSearch: (finder: DowntimeFinder, source: EventSource)?
    /// How long the search may hold back readiness, and how long each later step may take.
    static let downtimeSearchBudget: UInt64 = 500_000, downtimeStepBudget: UInt64 = 20_000

    /// Makes every part, each given what it calls: nothing is wired after the fact. The listening socket
    /// is opened last, so that a start that fails earlier leaves no socket file behind.
    public init(configuration: DaemonConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        loop = try EventLoop()
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
        let counts = SubscriberCounts()
        let failedLogonCounts = FailedLogonCounts()
        state = DaemonState(loop: loop, pipeline: pipeline, sessions: logind, durability: durability, subscribers: counts,
                            failedLogons: failedLogonCounts, stateDirectory: configuration.stateDirectory)
        var created: [String] = []
        do {
            var made = false
            let listener = try ListeningSocket.open(configuration, logger: logger, created: &made)
            if made { created.append(configuration.socketPath) }
            made = false
            let varlink = try ListeningSocket.openVarlink(configuration, logger: logger, created: &made)
            if made, let path = configuration.varlinkSocketPath { created.append(path) }
            server = try SubscriberServer(
                loop: loop, listener: listener, varlinkListener: varlink, limits: configuration.limits, logger: logger,
                daemonVersion: Self.version, feed: state, counts: counts, log: durability?.log)
            var socket: Descriptor?
            if let path = configuration.failedLogonSocketPath, configuration.failedLogonSources.contains(.pam) {
                made = false
                socket = try FailedLogonSource.openSocket(at: path, created: &made)
                if made { created.append(path) }
            }
            let journal = FailedLogonSource.openJournal(for: configuration.failedLogonSources, directory: configuration.failedLogonJournalDirectory, logger: logger)
            if socket != nil || journal != nil {
                failedLogons = FailedLogonSource(socket: socket, journal: journal, sources: configuration.failedLogonSources,
                                                 window: configuration.failedLogonWindowMicroseconds, counts: failedLogonCounts, loop: loop, logger: logger)
            } else {
                failedLogons = nil
            }
        } catch {
            for path in created { try? Syscall.unlinkIfPresent(path) }
            throw error
        }
        createdSocketFiles = created
    }

    /// Runs until SIGTERM or SIGINT (exit code 0) or until the bus connection is lost (non-zero).
    public func run() throws -> Int32 {
        for signal in [SIGTERM, SIGINT] {
            signalSources.append(try loop.addSignal(signal) { [unowned self] in self.stop(on: signal) })
        }
        _ = try? loop.enableWatchdog()

        defer { for path in createdSocketFiles { try? Syscall.unlinkIfPresent(path) } }
        try durability?.start(sessions: logind)
        try logind.start(reportingTo: self)
        try failedLogons?.start(reportingTo: self)

        let code = try loop.run { [unowned self] in self.server.afterIteration() }
        pipeline.flush(to: server)
        server.stop()
        pipeline.stopCleanly()
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

    /// Every session logind listed at start-up is known: sensd is ready.
    func enumerated() {
        logger.info("ready", metadata: ["sessions": "\(logind.sessionCount)", "socket": "\(configuration.socketPath)", "journalEvents": "\(pipeline.journalEvents)"])
        phase = .running
        state.becameReady()
        searchDowntime()
        // What start-up found is logged and handed out before anyone is told sensd is ready.
        server.flush()
        // The listing and its replies are freed: give the memory back (glibc keeps it otherwise).
        Syscall.trimHeap()
        ServiceManager.notify("READY=1\nSTATUS=\(state.status)")
    }

    func publish(_ drafts: [EventDraft]) {
        guard !drafts.isEmpty else { return }
        let startingUp = if case .startingUp = phase { true } else { false }
        if startingUp {
            reportedAtStart += drafts.filter { $0.event != .logonFailed }.map { KnownSession(id: $0.session.id, at: $0.session.startedAt ?? loop.now) }
        }
        pipeline.publish(drafts, at: EventTime(microsecondsSinceEpoch: Int64(loop.now)), startingUp: startingUp)
        server.requestFlush()
        state.changed()
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
}
