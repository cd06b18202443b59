import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// systemd-logind as seen over the bus and through sd-login, fed to a ``SessionTracker``.
///
/// Only signals whose sender is the current owner of `org.freedesktop.login1` count; anyone on the system bus
/// can emit a look-alike. The owner is learned at start and followed through `NameOwnerChanged`, and every
/// time logind comes back the session list is read again, because a restarted logind never announces the
/// removal of sessions that were closing when it went away.
public final class LogindSource {
    static let service = "org.freedesktop.login1"
    static let managerPath = "/org/freedesktop/login1"
    static let managerInterface = "org.freedesktop.login1.Manager"
    static let sessionInterface = "org.freedesktop.login1.Session"
    static let sessionPathPrefix = "/org/freedesktop/login1/session"

    /// A session's object path, as logind makes it: the id escaped under the prefix.
    static func objectPath(of id: String) -> String {
        Bus.objectPath(prefix: sessionPathPrefix, id: id) ?? sessionPathPrefix + "/" + id
    }

    private let bus: Bus
    private let loop: EventLoop
    private let logger: Logger
    private var tracker = SessionTracker()
    private var slots: [BusSlot] = []
    /// Watches logind's session files for sessions entering "closing", which v252 does not put on the bus.
    private let watchSessionFiles: Bool
    private var sessionFiles: SessionFileWatcher?
    /// The unique name that owns `org.freedesktop.login1` now, or nil while logind is away.
    private(set) var owner: String?
    /// Signals held until the owners are known, and readiness.
    private var gate = StartupGate<(BusMessage, (BusMessage) -> Void)>()
    /// Whether, and how, the machine is going down.
    private var shutdown = ShutdownWatcher()
    /// systemd (PID 1) and the session scopes it removes.
    private let scopes: ScopeWatcher
    /// Asks logind for each session's details, a bounded number at a time.
    private let details: DetailFetcher

    /// Receives the events each change produces, in order; given at ``start(reportingTo:)``. Weak: the
    /// daemon owns this source.
    private weak var observer: (any LogindObserver)?

    private func publish(_ drafts: [EventDraft]) {
        observer?.publish(drafts)
    }

    /// Why sessions are ending now, while the machine is going down: `reboot` or `shutdown` (from logind's
    /// PrepareForShutdown and the metadata v257 adds, refined by the target systemd queues); nil otherwise.
    public var shutdownReason: String? { shutdown.reason }

    /// Hands drafts on, with `reason` on the ending ones: the one given, else the shutdown's if one is under way.
    private func emit(_ drafts: [EventDraft], reason: String? = nil) {
        for draft in drafts where draft.event == .logoff { scopes.unwatch(draft.session.id) }
        guard let why = reason ?? shutdownReason else { return publish(drafts) }
        publish(drafts.map { d in
            var d = d
            if d.isEnding && d.reason == nil { d.reason = why }
            return d
        })
    }

    /// The sessions logind listed at start-up, and when (CLOCK_REALTIME microseconds).
    public private(set) var listedAtStart: (ids: [String], at: UInt64) = ([], 0)

    /// Signals dropped because their sender was not logind.
    public private(set) var ignoredSignals = 0

    public var sessionCount: Int { tracker.count }

    /// Whether the session `id` is being followed (its end will be reported when logind says so).
    public func isTracked(_ id: String) -> Bool { tracker.session(id) != nil }

    /// The sessions to keep across a restart of sensd.
    package var remembered: [SessionTracker.Remembered] { tracker.remembered }

    package init(bus: Bus, loop: EventLoop, logger: Logger, watchSessionFiles: Bool, remembered: [SessionTracker.Remembered]) {
        self.bus = bus
        self.loop = loop
        self.logger = logger
        self.watchSessionFiles = watchSessionFiles
        scopes = ScopeWatcher(bus: bus, loop: loop, logger: logger)
        details = DetailFetcher(bus: bus, logger: logger, service: Self.service, interface: Self.sessionInterface, objectPath: Self.objectPath(of:))
        tracker.remember(remembered)
    }

    /// Subscribes, then learns who logind and systemd are and which sessions exist, reporting to `observer`
    /// from then on; its ``LogindObserver/enumerated()`` is called once every enumerated session's details
    /// are in. Subscribing comes first so that nothing happening during the
    /// listing is missed.
    ///
    /// The matches are added with calls that wait for the bus daemon's answer, so that a refused one stops
    /// sensd from starting instead of leaving it deaf; nothing is owed to sensd yet, and a signal arriving
    /// meanwhile is queued by sd-bus and handled in order after. The calls that matter do not wait: a
    /// blocking call holds back every signal that arrives meanwhile and hands them over after its reply, so a
    /// `SessionRemoved` that logind sent before its `ListSessions` reply was handled after the listing
    /// (issue 19: a second, user-less Logoff). Instead, matched signals wait in the ``StartupGate`` until
    /// the owners are known (the senders of the `Subscribe` and `ListSessions` replies) and are handled
    /// before the listing is: in the order logind and systemd sent them.
    func start(reportingTo observer: any LogindObserver) throws(SystemdError) {
        self.observer = observer
        slots.append(try bus.addMatch(Self.managerRule(member: "SessionNew")) { [unowned self] in self.deliver($0, self.sessionNew) })
        slots.append(try bus.addMatch(Self.managerRule(member: "SessionRemoved")) { [unowned self] in self.deliver($0, self.sessionRemoved) })
        slots.append(try bus.addMatch(
            "type='signal',sender='\(Self.service)',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='\(Self.sessionPathPrefix)',arg0='\(Self.sessionInterface)'"
        ) { [unowned self] in self.deliver($0, self.propertiesChanged) })
        for name in [Self.service, ScopeWatcher.service] {
            slots.append(try bus.addMatch(
                "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(name)'"
            ) { [unowned self] in self.deliver($0, self.nameOwnerChanged) })
        }
        for member in ["PrepareForShutdown", "PrepareForShutdownWithMetadata"] {
            slots.append(try bus.addMatch(Self.managerRule(member: member)) { [unowned self] in self.deliver($0, self.prepareForShutdown) })
        }
        // Only the jobs of the shutdown targets (JobNew's third argument is the unit): every other job, one
        // or two per session (its scope's start and stop), would wake sensd for nothing. The bus daemon
        // filters on the argument; sd-bus cannot (it stops at JobNew's first, a number), so a filter
        // receives what the daemon sends. With an unfiltered match instead, every job reached sensd.
        slots.append(try bus.addSignalFilter(interface: ScopeWatcher.manager, member: "JobNew") { [unowned self] in self.deliver($0, self.jobNew) })
        for target in ShutdownWatcher.targets.keys.sorted() {
            try bus.addDaemonMatch(ScopeWatcher.rule(member: "JobNew") + ",arg2='\(target)'")
        }
        startWatchingSessionFiles()
        // systemd first: closing sessions in the listing are checked against their scopes.
        scopes.subscribe { [unowned self] in self.listAtStart() }
    }

    private func listAtStart() {
        do {
            try bus.callAsync(try listSessionsCall()) { [unowned self] result in
                switch result {
                case .success(let reply):
                    self.owner = reply.sender
                    self.logger.info("following systemd-logind", metadata: ["owner": "\(self.owner ?? "?")"])
                    self.releaseHeld()
                    do {
                        let listed = try Self.parseSessionList(reply.readValue())
                        self.listedAtStart = (listed.map(\.id), self.loop.now)
                        self.enumerate(listed, counting: true)
                    } catch {
                        self.logger.error("could not read logind's session list: \(error)")
                    }
                case .failure(let error):
                    self.logger.warning("systemd-logind is not on the bus; waiting for it to appear", metadata: ["error": "\(error)"])
                    self.releaseHeld()
                }
                self.gate.listingDone()
                self.finishEnumerationIfDone()
            }
        } catch {
            logger.error("could not ask logind for its sessions: \(error)")
            releaseHeld()
            gate.listingDone()
            finishEnumerationIfDone()
        }
    }

    private func deliver(_ m: BusMessage, _ handler: @escaping (BusMessage) -> Void) {
        guard !gate.hold((m, handler)) else { return }
        handler(m)
    }

    private func releaseHeld() {
        for (m, handler) in gate.open() { handler(m) }
    }

    private static func managerRule(member: String) -> String {
        "type='signal',sender='\(service)',path='\(managerPath)',interface='\(managerInterface)',member='\(member)'"
    }

    private func listSessionsCall() throws(SystemdError) -> BusMessage {
        try bus.methodCall(destination: Self.service, path: Self.managerPath, interface: Self.managerInterface, member: "ListSessions")
    }

    /// `ListSessions() -> a(susso)`: id, uid, user name, seat, object path; `reply` is the reply's one
    /// value. An entry of another shape is passed over; a reply that is not an array is an error.
    static func parseSessionList(_ reply: BusValue?) throws(SystemdError) -> [LogindSession] {
        guard let entries = reply?.arrayElements else {
            throw SystemdError(operation: "ListSessions reply", errno: EBADMSG)
        }
        return entries.compactMap { entry in
            // The object path (f[4]) is not kept: it is the id's, escaped (objectPath(of:)).
            guard let f = entry.structFields, f.count == 5, let id = f[0].stringValue else { return nil }
            return LogindSession(id: id, uid: f[1].uint32Value, userName: f[2].stringValue)
        }
    }

    // MARK: Signals

    private func isFromLogind(_ m: BusMessage) -> Bool {
        if let owner, m.sender == owner { return true }
        ignore(m, notSentBy: "systemd-logind")
        return false
    }

    /// Anyone on the bus can send look-alike signals, as fast as they like: the warning is said at most once
    /// per interval. Said for each, they would reach journald's rate limit for sensd, which would then drop
    /// sensd's own entries, its events' among them.
    private var forgedWarning = RateLimitedWarning()

    private func ignore(_ m: BusMessage, notSentBy whom: String) {
        ignoredSignals += 1
        logger.warning(&forgedWarning, "ignored a \(m.member ?? "?") signal not sent by \(whom) (sender \(m.sender ?? "?"))", now: loop.monotonicNow)
    }

    private func sessionNew(_ m: BusMessage) {
        guard isFromLogind(m) else { return }
        guard let args = try? m.readAll(), args.count == 2, let id = args[0].stringValue, args[1].stringValue != nil else {
            logger.error("malformed SessionNew signal from systemd-logind, ignoring")
            return
        }
        tracker.announced(id: id)
        details.request(id, backlog: false, announced: true, for: self)
    }

    private func sessionRemoved(_ m: BusMessage) {
        guard isFromLogind(m) else { return }
        guard let args = try? m.readAll(), args.count == 2, let id = args[0].stringValue else {
            logger.error("malformed SessionRemoved signal from systemd-logind, ignoring")
            return
        }
        emit(tracker.removed(id: id))
    }

    private func propertiesChanged(_ m: BusMessage) {
        guard isFromLogind(m), let path = m.path else { return }
        guard let args = try? m.readAll(), args.count >= 2, let changed = args[1].propertyDictionary else {
            logger.error("malformed PropertiesChanged signal from systemd-logind, ignoring")
            return
        }
        guard let id = Bus.id(ofObjectPath: path, prefix: Self.sessionPathPrefix) else { return }
        emit(tracker.propertiesChanged(changes: LogindSession(id: id, properties: changed)))
    }

    /// logind says the machine is about to go down (true) or that it no longer is (false). v257 sends
    /// PrepareForShutdownWithMetadata too, whose "type" says which.
    private func prepareForShutdown(_ m: BusMessage) {
        guard isFromLogind(m), let args = try? m.readAll(), let going = args.first?.boolValue else { return }
        let type = args.count > 1 ? args[1].propertyDictionary?["type"]?.stringValue : nil
        if shutdown.prepareForShutdown(going: going, type: type), let reason = shutdown.reason {
            logger.notice("the system is going down; sessions that end now are reported with reason \(reason)")
        }
    }

    /// systemd queued a job: a reboot or power-off target says which kind of going down this is.
    private func jobNew(_ m: BusMessage) {
        guard scopes.owner != nil, m.sender == scopes.owner, m.path == ScopeWatcher.path else {
            ignore(m, notSentBy: "systemd")
            return
        }
        guard let args = try? m.readAll(), args.count == 3, let unit = args[2].stringValue else { return }
        shutdown.jobQueued(unit: unit)
    }

    private func nameOwnerChanged(_ m: BusMessage) {
        // Only the bus daemon itself may say who owns a name.
        guard m.sender == "org.freedesktop.DBus" else {
            ignoredSignals += 1
            return
        }
        guard let args = try? m.readAll(), args.count == 3, let name = args[0].stringValue else { return }
        let newOwner = args[2].stringValue.flatMap { $0.isEmpty ? nil : $0 }
        if name == ScopeWatcher.service {
            scopes.ownerChanged(to: newOwner)
            return
        }
        guard name == Self.service else { return }
        guard let newOwner else {
            logger.warning("systemd-logind left the bus; sessions are kept until it returns", metadata: ["tracked": "\(tracker.count)"])
            owner = nil
            return
        }
        logger.notice("systemd-logind is on the bus; resynchronising", metadata: ["owner": "\(newOwner)"])
        owner = newOwner
        startWatchingSessionFiles()
        resynchronise()
    }

    // MARK: Enumeration and details

    /// Reads the session list again and settles the difference with what is tracked.
    private func resynchronise() {
        do {
            try bus.callAsync(try listSessionsCall()) { [weak self] result in
                guard let self else { return }
                switch result {
                case .success(let reply):
                    do {
                        self.enumerate(try Self.parseSessionList(reply.readValue()), counting: false)
                    } catch {
                        self.logger.error("could not read logind's session list: \(error)")
                    }
                case .failure(let error):
                    self.logger.error("could not list logind's sessions: \(error)")
                }
            }
        } catch {
            logger.error("could not ask logind for its sessions: \(error)")
        }
    }

    private func enumerate(_ listed: [LogindSession], counting: Bool) {
        let drafts = tracker.resynchronised(live: listed)
        if !drafts.isEmpty {
            logger.notice("sessions ended while nobody said so (sensd or logind was not running)", metadata: ["events": "\(drafts.count)"])
            // At start-up they ended while sensd was not running; later, while logind was away.
            emit(drafts, reason: counting ? "sensd-down" : "logind-restart")
        }
        for session in listed {
            fetchDetails(id: session.id, counting: counting)
        }
    }

    private func fetchDetails(id: String, counting: Bool) {
        if counting { gate.detailsRequested() }
        details.request(id, backlog: counting, for: self)
    }

    private func sessionKnown(_ request: DetailFetcher.Request, _ details: LogindSession, _ done: @escaping () -> Void) {
        if details.state == "closing", scopes.owner != nil {
            // Closing, perhaps for ever: make sure its processes are still there. At start-up the scope may
            // have gone while sensd was down: then the end is late. A removal while systemd answers has the
            // user from these details.
            tracker.detailsPending(details)
            return checkScope(of: details, late: request.backlog, announced: request.announced, done: done)
        }
        emit(tracker.detailsArrived(details))
        done()
    }

    private func finishEnumerationIfDone() {
        guard gate.readyNow() else { return }
        observer?.enumerated()
    }

    // MARK: Closing sessions

    /// logind rewrites a session's file (by rename) when the session starts closing; the file name is the
    /// session id, and the state is read through sd-login.
    private func startWatchingSessionFiles() {
        guard watchSessionFiles, sessionFiles == nil else { return }
        do {
            sessionFiles = try SessionFileWatcher(loop: loop, directory: Login.sessionDirectory) { [unowned self] names in
                self.sessionFilesChanged(names)
            }
            logger.info("watching for sessions that start closing", metadata: ["directory": "\(Login.sessionDirectory)"])
        } catch {
            logger.warning("cannot watch logind's session files (\(error)); LogoffInitiated will come right before Logoff")
        }
    }

    private func sessionFilesChanged(_ names: [String]) {
        // Usually one name; several saves of a file read at once need reading it once.
        for name in names.count < 2 ? names : Array(Set(names)) {
            guard tracker.session(name) != nil, let state = Login.sessionState(name) else { continue }
            if state == "closing" {
                emit(tracker.closing(id: name))
            } else {
                tracker.stateRead(id: name, state: state)
            }
        }
    }

    // MARK: Sessions logind loses track of

    /// systemd removes a session's scope unit once every process of the session has exited; logind then
    /// removes the session. A logind that restarted while a session was closing lists it as closing for
    /// ever and never removes it (seen with v252), so sensd follows the scopes itself.
    func unitRemoved(_ m: BusMessage) {
        deliver(m, handleUnitRemoved)
    }

    private func handleUnitRemoved(_ m: BusMessage) {
        switch scopes.removal(m) {
        case .notFromSystemd:
            ignore(m, notSentBy: "systemd")
        case .sessionScope(let id):
            endAfterGrace(id)
        case .other:
            break
        }
    }

    /// Gives logind its usual moment to remove a session whose processes are gone, then ends it if logind did not.
    private func endAfterGrace(_ id: String) {
        guard let startedAt = tracker.session(id).map({ $0.startedAt }) else { return }
        scopes.afterGrace(of: id) { [unowned self] in
            guard let session = self.tracker.session(id), session.startedAt == startedAt else { return }
            self.logger.notice("systemd-logind did not remove a session whose processes have all exited (it loses track of sessions that were closing when it restarted); reporting its end", metadata: ["session": "\(id)", "user": "\(session.userName ?? "?")"])
            self.emit(self.tracker.processesEnded(id: id), reason: self.shutdownReason ?? "logind-restart")
        }
    }

    /// A closing session's details arrived: if its scope is already gone, its processes ended unseen.
    private func checkScope(of details: LogindSession, late: Bool, announced: Bool, done: @escaping () -> Void) {
        let id = details.id
        scopes.watch(id, for: self)
        scopes.scopeExists(of: id) { [weak self] exists in
            guard let self else { return }
            if exists {
                self.emit(self.tracker.detailsArrived(details))
            } else if self.tracker.isReported(id) {
                self.logger.notice("a session sensd reported has ended, but systemd-logind still lists it as closing; reporting its end", metadata: ["session": "\(id)"])
                self.emit(self.tracker.processesEnded(id: id, late: late), reason: late ? "sensd-down" : "logind-restart")
            } else if announced {
                // Announced to this run moments ago, it began and ended while its details were on their way
                // (`su -c true`): a session like any other, whose SessionRemoved is coming. Forgotten as
                // dead, its removal would have said nothing and the journal search, which ends at
                // readiness, would not have found it either.
                self.emit(self.tracker.detailsArrived(details))
                self.endAfterGrace(id)
            } else {
                self.logger.info("ignoring a session systemd-logind lists as closing although its processes are gone", metadata: ["session": "\(id)"])
                self.tracker.forgetDead(id: id)
                self.scopes.unwatch(id)
            }
            done()
        }
    }
}

/// Where a ``LogindSource`` reports: the daemon.
protocol LogindObserver: AnyObject {
    /// The events a change produced, in order.
    func publish(_ drafts: [EventDraft])
    /// Every session of the first listing is known (or logind is away): sensd may say it is ready.
    func enumerated()
}

extension LogindSource: DetailConsumer {
    func wantsDetails(of id: String) -> Bool {
        tracker.session(id) != nil
    }

    func detailsArrived(_ request: DetailFetcher.Request, _ properties: [String: BusValue], done: @escaping () -> Void) {
        // A state read from logind's session file since this reply was made is newer: the tracker keeps it.
        let details = LogindSession(id: request.id, properties: properties)
        if details.service == "systemd-run0", let leader = details.leader, scopes.owner != nil {
            // run0 (v256 and later): who ran it, and whether it empowered, are on the service holding the
            // leader. A removal while systemd answers has the user from these details.
            tracker.detailsPending(details)
            return scopes.elevation(ofLeader: leader) { [weak self] elevation in
                guard let self else { return }
                var details = details
                if let elevation {
                    details.invokedBy = elevation.user
                    details.invokedByUid = elevation.uid
                    details.elevated = elevation.empowered ? true : nil
                }
                self.sessionKnown(request, details, done)
            }
        }
        sessionKnown(request, details, done)
    }

    func detailRequestEnded(_ request: DetailFetcher.Request) {
        guard request.backlog else { return }
        gate.detailsEnded()
        finishEnumerationIfDone()
    }
}

extension LogindSource: ScopeRemovals {}

/// logind's property values, read through the field table (SessionFields in SENSCore).
extension BusValue: LogindPropertyValue {
    package var firstField: (any LogindPropertyValue)? { structFields?.first }
}
