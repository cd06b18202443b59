import FoundationEssentials
import Logging
import SENSCore
import Systemd
import UnixSocket

#if canImport(Glibc)
import Glibc
#endif

/// How the daemon is set up, from the command line.
public struct DaemonConfiguration: Sendable {
    public var socketPath: String
    /// Permission bits of a socket sensd creates itself.
    public var socketMode: UInt32
    /// Group of a socket sensd creates itself, if not the daemon's own.
    public var socketGroup: String?
    public var limits: SubscriberLimits
    /// Where sensd remembers sessions across its restarts; nil for nowhere.
    public var stateDirectory: String?
    /// Whether to watch logind's session files for sessions entering "closing"; nil decides by the bus.
    public var watchSessionFiles: Bool?
    /// How much history the event log keeps.
    public var retention: LogRetention
    /// How long appended events may wait before they are synced to the disk; 0 syncs every batch before
    /// subscribers see it.
    public var syncIntervalMicroseconds: UInt64
    /// Whether every event is also written to the journal as a structured entry; nil: when running under
    /// systemd (stderr is a journal stream).
    public var journalEvents: Bool?

    public static let defaultSocketPath = "/run/sensd/events.sock"
    public static let defaultStateDirectory = "/var/lib/sensd"

    public init(
        socketPath: String = DaemonConfiguration.defaultSocketPath, socketMode: UInt32 = 0o666, socketGroup: String? = nil,
        limits: SubscriberLimits = SubscriberLimits(), stateDirectory: String? = DaemonConfiguration.defaultStateDirectory,
        watchSessionFiles: Bool? = nil, retention: LogRetention = LogRetention(), syncIntervalMicroseconds: UInt64 = 1_000_000,
        journalEvents: Bool? = nil
    ) {
        self.journalEvents = journalEvents
        self.retention = retention
        self.syncIntervalMicroseconds = syncIntervalMicroseconds
        self.socketPath = socketPath
        self.socketMode = socketMode
        self.socketGroup = socketGroup
        self.limits = limits
        self.stateDirectory = stateDirectory
        self.watchSessionFiles = watchSessionFiles
    }

    /// sd-login reads this machine's logind; it agrees with the bus only when the bus is this machine's own.
    static func busIsThisMachines() -> Bool {
        guard let address = getenv("DBUS_SYSTEM_BUS_ADDRESS").map({ String(cString: $0) }) else { return true }
        return address == "unix:path=/run/dbus/system_bus_socket" || address == "unix:path=/var/run/dbus/system_bus_socket"
    }
}

/// The daemon: one event loop driving the bus, the subscriber socket and the signals.
public final class Daemon {
    public static let version = Release.version

    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let loop: EventLoop
    private let bus: Bus
    private let logind: LogindSource
    /// Whether sd-login and the journal describe the logind sensd follows (it is this machine's).
    private let localLogind: Bool
    private var server: SubscriberServer!
    private var sequencer = EventSequencer()
    private var signalSources: [EventSource] = []
    private var ownsSocketFile = false
    private let host = Syscall.hostName()

    // Durability (docs/protocol.md, "Durability"): the log, the session snapshot and the seq reservation.
    private let store: SessionStateStore?
    private let log: EventLog?
    private var reservation: SequenceReservation?
    /// The last event the saved snapshot includes.
    private var snapshotSeq: UInt64 = 0
    private var snapshotDue = false
    private var snapshotSource: EventSource?
    private var syncTimer: EventSource?
    private var logFailing = false
    /// Seqs reserved at a time: one small synced write per this many events.
    static let reservationBlock: UInt64 = 65_536

    /// Events stamped but not yet logged and sent: they go out together at the next flush, one log write
    /// and one write per subscriber for the whole burst.
    private var pendingLines: [OutgoingLine] = []
    /// Their journal entries, written after the log like everything else (a crash in between must not
    /// leave the journal naming a seq that the next run gives to another event).
    private var pendingJournal: [[(String, String)]] = []
    /// The last seq logged and handed to the subscribers: what a new subscriber's hello line says.
    private var emittedSeq: UInt64 = 0

    private let journalEvents: Bool
    private var eventsSinceStart = 0
    private var statusTimer: EventSource?
    private var ready = false
    /// Set when SIGTERM came while the system goes down with sessions still tracked: sensd stops when the
    /// last of them ends or when this fires.
    private var finalWait: EventSource?
    static let finalWaitMicroseconds: UInt64 = 3_000_000
    /// Whether start-up has used its one second of asking the journal again (see bestKnownEnd).
    private var bootEndRetriesSpent = false

    public init(configuration: DaemonConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        loop = try EventLoop()
        bus = try Bus.system(description: "sensd-logind")
        try bus.attach(to: loop)
        try bus.exitLoopOnDisconnect()

        var remembered: [SessionTracker.Remembered] = []
        if let directory = configuration.stateDirectory, Self.usableStateDirectory(directory, logger: logger) {
            let store = SessionStateStore(directory: directory, logger: logger)
            try store.checkFormat()
            let log: EventLog?
            do {
                log = try EventLog(directory: directory + "/log", retention: configuration.retention, logger: logger)
            } catch {
                logger.error("cannot open the event log; running without it (no resume, no restart recovery beyond the snapshot)", metadata: ["error": "\(error)"])
                log = nil
            }
            for damage in log?.damage ?? [] {
                logger.error("the event log was damaged; sensd serves what is intact: \(damage)")
            }
            let recovered = Self.recover(store: store, log: log, logger: logger)
            remembered = recovered.sessions
            snapshotSeq = recovered.snapshotSeq
            sequencer = EventSequencer(lastSeq: recovered.lastSeq)
            emittedSeq = recovered.lastSeq
            self.store = store
            self.log = log
        } else {
            store = nil
            log = nil
        }
        let watch = configuration.watchSessionFiles ?? DaemonConfiguration.busIsThisMachines()
        localLogind = watch
        journalEvents = configuration.journalEvents ?? StderrLogHandler.stderrIsJournal()
        logind = LogindSource(bus: bus, loop: loop, logger: logger, watchSessionFiles: watch, remembered: remembered)
    }

    /// The best time known for the end of a session that ended unseen (CLOCK_REALTIME microseconds): when
    /// logind logged its removal, or else, if the boot it began in is over (a power loss), that boot's last
    /// journal entry. nil: the time sensd noticed is the best there is.
    private func bestKnownEnd(of session: LogindSession, startedAt start: UInt64, journal: inout JournalReader??) -> UInt64? {
        if journal == nil { journal = try? JournalReader() }
        if let reader = journal ?? nil, let removed = reader.sessionRemoval(id: session.id, notBefore: start) { return removed }
        // At start-up journald may still be moving the previous boot's journal file aside (a power loss leaves
        // it open) just as sensd asks: "unknown" is asked again with a fresh reader, for up to a second; once a
        // whole second of that found nothing, start-up asks no more.
        var answer = (journal ?? nil)?.bootEnd(containing: start) ?? .unknown
        var attempts = 1
        while answer == .unknown && !ready && !bootEndRetriesSpent && attempts < 10 {
            usleep(100_000)
            attempts += 1
            journal = try? JournalReader()
            answer = (journal ?? nil)?.bootEnd(containing: start) ?? .unknown
        }
        if answer == .unknown && attempts > 1 { bootEndRetriesSpent = true }
        guard case .ended(let end) = answer else { return nil }
        logger.info("a session sensd remembered began in a boot that has ended; it ended by that boot's last journal entry", metadata: ["session": "\(session.id)", "lastEntry": "\(EventTime(microsecondsSinceEpoch: Int64(end)))", "attempts": "\(attempts)"])
        return end
    }

    /// What the previous runs left: the open sessions (the snapshot plus every logged event after it) and
    /// the last seq given out, never lower than one a subscriber may have seen.
    private static func recover(store: SessionStateStore, log: EventLog?, logger: Logger) -> (sessions: [SessionTracker.Remembered], lastSeq: UInt64, snapshotSeq: UInt64) {
        let snapshot = store.load()
        var sessions = RememberedSessions(snapshot?.sessions ?? [])
        let base = snapshot?.lastSeq ?? 0
        var applied = 0
        var undecodable = 0
        // Events handed out while the log could not take them, merged in seq order with the logged ones.
        var unlogged = store.loadUnlogged().filter { $0.seq > base }[...]
        if !unlogged.isEmpty {
            logger.notice("the previous run handed out events its log could not take; sensd knows them from its record of them", metadata: ["events": "\(unlogged.count)", "firstSeq": "\(unlogged.first!.seq)"])
        }
        if let log {
            if let oldest = log.oldestSeq, base + 1 < oldest, base < log.lastSeq ?? 0 {
                logger.warning("the event log no longer holds every event since the session snapshot; sessions that changed in between may be reported again", metadata: ["snapshotSeq": "\(base)", "oldestSeq": "\(oldest)"])
            }
            let decoder = JSONDecoder()
            log.forEachRecord(after: base) { line in
                guard let event = try? decoder.decode(SENSEvent.self, from: Data(line)) else {
                    undecodable += 1
                    return
                }
                while let next = unlogged.first, next.seq < event.seq {
                    sessions.apply(next)
                    unlogged = unlogged.dropFirst()
                }
                sessions.apply(event)
                applied += 1
            }
        }
        for event in unlogged { sessions.apply(event) }
        if undecodable > 0 {
            logger.error("some logged events could not be read back; their sessions may be reported again", metadata: ["events": "\(undecodable)"])
        }
        var lastSeq = max(base, log?.lastSeq ?? 0)
        if let r = store.loadReservation() {
            if let behind = r.logBehindFrom, r.reservedThrough > lastSeq {
                // Events were handed out that the log could not take: none of their seqs may come again.
                logger.error("the previous run handed out events it could not log (its disk was full or failing); seqs continue after every one it could have given out, and resuming clients are told of the gap", metadata: ["firstUnlogged": "\(behind)", "nextSeq": "\(r.reservedThrough + 1)"])
                lastSeq = r.reservedThrough
            } else if r.clean {
                // A clean stop recorded the exact last seq: it holds even if the log lost its tail since.
                lastSeq = max(lastSeq, r.reservedThrough)
            } else if r.bootID != nil && r.bootID == Syscall.bootID() {
                // sensd itself stopped (crash, kill -9, watchdog): the kernel kept every logged event.
            } else if r.reservedThrough > lastSeq {
                logger.warning("the machine went down without a clean stop of sensd; seqs continue after every one that could have been given out, and events not yet on the disk are lost", metadata: ["lastLogged": "\(lastSeq)", "nextSeq": "\(r.reservedThrough + 1)"])
                lastSeq = r.reservedThrough
            }
        }
        logger.info("recovered state from the previous run", metadata: [
            "sessions": "\(sessions.byID.count)", "snapshotSeq": "\(base)", "eventsAfterSnapshot": "\(applied)",
            "lastSeq": "\(lastSeq)", "logEvents": "\(log?.eventCount ?? 0)",
        ])
        return (sessions.all, lastSeq, base)
    }

    /// Runs until SIGTERM or SIGINT (exit code 0) or until the bus connection is lost (non-zero).
    public func run() throws -> Int32 {
        for signal in [SIGTERM, SIGINT] {
            signalSources.append(try loop.addSignal(signal) { [unowned self] in
                self.logger.info("stopping on signal \(signal)")
                ServiceManager.notify("STOPPING=1")
                if let reason = self.logind.shutdownReason, self.logind.sessionCount > 0, self.finalWait == nil {
                    // The machine is going down and sensd is ordered to stop after the sessions' scopes: their
                    // removals may still be on their way from logind. Wait for them, a bounded while.
                    self.logger.info("the system is going down (\(reason)); waiting up to \(Self.finalWaitMicroseconds / 1000) ms for the \(self.logind.sessionCount) sessions still tracked to end")
                    self.finalWait = try? self.loop.addTimer(monotonicDeadline: self.loop.monotonicNow + Self.finalWaitMicroseconds) { [unowned self] in
                        self.logger.info("stopping with sessions still tracked", metadata: ["sessions": "\(self.logind.sessionCount)"])
                        self.loop.exit(code: 0)
                    }
                    if self.finalWait != nil { return }
                }
                self.loop.exit(code: 0)
            })
        }
        _ = try? loop.enableWatchdog()

        if let store {
            // What the previous run handed out without logging is in the tracker now: a snapshot holds it
            // before its record is emptied and made ready for this run.
            if store.hasUnlogged { saveSnapshot() }
            store.prepareUnlogged()
            // Seqs from here on are not durable until reserved; a stop that is not clean is detected next time.
            // A state directory that cannot take it (read-only) does not stop sensd: events still go out live.
            try? reserve(through: sequencer.lastSeq + Self.reservationBlock)
            log?.willDrop = { [unowned self] seq in
                if self.snapshotSeq < seq { self.saveSnapshot() }
            }
            snapshotSource = try loop.addPost { [unowned self] in
                if self.snapshotDue { self.saveSnapshot() }
            }
        }
        server = try SubscriberServer(
            loop: loop, listener: try listeningSocket(), limits: configuration.limits, logger: logger,
            daemonVersion: Self.version, lastSeq: { [unowned self] in self.emittedSeq }, log: log)
        server.onSubscribersChanged = { [unowned self] in self.statusChanged() }
        server.prepareFlush = { [unowned self] in self.emitPending() }
        server.openSessions = { [unowned self] in
            // Every stamped event is reflected in the tracker: the snapshot is the state at the last seq given out.
            (self.sequencer.lastSeq, self.logind.remembered.map { OpenSession($0.session, logoffInitiated: $0.logoffInitiated, host: self.host) })
        }
        logind.publish = { [unowned self] drafts in self.publish(drafts) }
        try logind.start { [unowned self] in
            self.logger.info("ready", metadata: ["sessions": "\(self.logind.sessionCount)", "socket": "\(self.configuration.socketPath)", "journalEvents": "\(self.journalEvents)"])
            self.ready = true
            // What start-up found is logged and handed out before anyone is told sensd is ready.
            self.server.flush()
            // The listing and its replies are freed: give the memory back (glibc keeps it otherwise).
            Syscall.trimHeap()
            ServiceManager.notify("READY=1\nSTATUS=\(self.status)")
        }

        let code = try loop.run()
        emitPending()
        server.stop()
        stopCleanly()
        if ownsSocketFile { try? Syscall.unlinkIfPresent(configuration.socketPath) }
        if code != 0 {
            logger.error("lost the system bus; exiting so that the service manager restarts sensd")
        }
        return code
    }

    /// Stamps the events and asks for a flush, where they are logged, then sent: nothing reaches a
    /// subscriber before it is in the log.
    private func publish(_ drafts: [EventDraft]) {
        guard !drafts.isEmpty else { return }
        if let reservation, sequencer.lastSeq + UInt64(drafts.count) > reservation.reservedThrough {
            try? reserve(through: sequencer.lastSeq + UInt64(drafts.count) + Self.reservationBlock)
        }
        let now = EventTime(microsecondsSinceEpoch: Int64(loop.now))
        var lines: [OutgoingLine] = []
        lines.reserveCapacity(drafts.count)
        var journal: JournalReader??
        var bestEnds: [String: UInt64?] = [:]
        for draft in drafts {
            var event = sequencer.stamp(draft, at: now, host: host)
            if draft.observedLate, localLogind, event.event == .logoff || event.event == .logoffInitiated, let start = draft.session.startedAt {
                // Looked up once per session, for its LogoffInitiated and its Logoff alike.
                let id = draft.session.id
                if bestEnds[id] == nil { bestEnds[id] = bestKnownEnd(of: draft.session, startedAt: start, journal: &journal) }
                if let end = bestEnds[id] ?? nil {
                    event.observedAt = now
                    event.time = EventTime(microsecondsSinceEpoch: Int64(end))
                }
            }
            if event.unresolved != nil {
                logger.warning("session ended before its user could be learned", metadata: ["session": "\(event.sessionId)", "seq": "\(event.seq)"])
            }
            logger.debug("event", metadata: ["event": "\(event.event.rawValue)", "session": "\(event.sessionId)", "user": "\(event.userName ?? "?")", "seq": "\(event.seq)", "late": "\(event.observedLate == true)"])
            lines.append(WireFormat.line(event))
            if journalEvents { pendingJournal.append(JournalEntry.fields(event)) }
        }
        eventsSinceStart += drafts.count
        statusChanged()
        pendingLines += lines
        server.requestFlush()
        if finalWait != nil && logind.sessionCount == 0 {
            logger.info("every session has ended; stopping")
            loop.exit(code: 0)
        }
    }

    /// Logs, then broadcasts, every event stamped since the last flush.
    private func emitPending() {
        guard let last = pendingLines.last?.seq else { return }
        let lines = pendingLines
        let entries = pendingJournal
        pendingLines.removeAll(keepingCapacity: pendingLines.capacity <= 4096)
        pendingJournal.removeAll(keepingCapacity: pendingJournal.capacity <= 4096)
        if let log { append(lines, to: log) }
        for entry in entries { JournalWriter.send(entry) }
        emittedSeq = last
        for line in lines { server.broadcast(line) }
    }

    /// What `systemctl status` shows.
    private var status: String {
        var parts = [
            "\(logind.sessionCount) session\(logind.sessionCount == 1 ? "" : "s") tracked",
            "\(server.subscriberCount) subscriber\(server.subscriberCount == 1 ? "" : "s")",
            "\(eventsSinceStart) event\(eventsSinceStart == 1 ? "" : "s") since start",
            "last seq \(sequencer.lastSeq)",
        ]
        if server.overflowed > 0 { parts.append("\(server.overflowed) cut off for falling behind") }
        if server.refused > 0 { parts.append("\(server.refused) connections refused at a limit") }
        if logind.ignoredSignals > 0 { parts.append("\(logind.ignoredSignals) forged signals ignored") }
        if logFailing { parts.append("EVENT LOG NOT WRITTEN (disk full or failing): live only") }
        else if configuration.stateDirectory != nil && log == nil { parts.append("NO EVENT LOG: live only") }
        return parts.joined(separator: ", ")
    }

    /// Sends STATUS= at most once a second, and only after a change: no wakeups while idle.
    private func statusChanged() {
        guard ready, statusTimer == nil else { return }
        statusTimer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + 1_000_000) { [unowned self] in
            self.statusTimer = nil
            ServiceManager.notify("STATUS=\(self.status)")
        }
    }

    private func append(_ lines: [OutgoingLine], to log: EventLog) {
        do {
            try log.append(lines)
            if logFailing {
                logFailing = false
                logger.notice("the event log is being written again")
            }
        } catch {
            // Live subscribers still get the events; resuming clients will be told of the gap. First, the
            // reservation (rewritten in place, so a full disk takes it) says the log is behind: a crash now
            // must not let the next start give these seqs to other events. And the sessions' beginnings and
            // ends among them are recorded (in place too): a crash now must not report them again.
            if let store {
                let family: Set<EventKind> = [.logon, .logoffInitiated, .logoff]
                do {
                    try store.recordUnlogged(lines.filter { $0.facts.map { family.contains($0.event) } ?? false }.map(\.bytes))
                } catch {
                    if !logFailing {
                        logger.critical("cannot record the events handed out without the log; after a crash now, sessions among them could be reported again", metadata: ["error": "\(error)"])
                    }
                }
            }
            if !logFailing {
                logFailing = true
                logger.error("cannot append to the event log; events go to connected subscribers but cannot be replayed", metadata: ["error": "\(error)"])
                if let store, let reservation, let first = lines.first?.seq {
                    var behind = reservation
                    behind.logBehindFrom = behind.logBehindFrom ?? first
                    do {
                        try store.save(behind)
                        self.reservation = behind
                    } catch {
                        logger.critical("cannot record that the log is behind; after a crash now, seqs of events sent but not logged could repeat", metadata: ["error": "\(error)"])
                    }
                }
            }
            return
        }
        if configuration.syncIntervalMicroseconds == 0 {
            syncLog()
        } else if syncTimer == nil {
            syncTimer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + configuration.syncIntervalMicroseconds) { [unowned self] in
                self.syncTimer = nil
                self.syncLog()
            }
        }
        // A snapshot costs O(sessions); taking one per that many events keeps it O(1) per event.
        let since = sequencer.lastSeq - snapshotSeq
        if since >= max(10_000, 2 * UInt64(logind.sessionCount)) { snapshotDue = true }
    }

    private func syncLog() {
        do {
            try log?.sync()
        } catch {
            logger.error("cannot sync the event log to the disk", metadata: ["error": "\(error)"])
        }
    }

    /// Saves the reported sessions as of the last seq given out.
    private func saveSnapshot() {
        guard let store else { return }
        snapshotDue = false
        // The snapshot reflects every stamped event, so every one of them must be in the log first.
        emitPending()
        do {
            try store.save(SessionState(lastSeq: sequencer.lastSeq, sessions: logind.remembered))
            snapshotSeq = sequencer.lastSeq
            store.clearUnlogged()
            // Likewise the snapshot's encoding, when it was large.
            if logind.sessionCount >= 1000 { Syscall.trimHeap() }
        } catch {
            logger.error("cannot write the session snapshot", metadata: ["file": "\(store.path)", "error": "\(error)"])
        }
    }

    private func reserve(through seq: UInt64) throws {
        guard let store else { return }
        // Once the log is behind, it stays behind for every later start until a clean stop says otherwise.
        let r = SequenceReservation(reservedThrough: seq, bootID: Syscall.bootID(), clean: false, logBehindFrom: reservation?.logBehindFrom)
        do {
            try store.save(r)
            reservation = r
        } catch {
            logger.error("cannot write the sequence reservation; after a power loss seqs could repeat", metadata: ["file": "\(store.reservationPath)", "error": "\(error)"])
            throw error
        }
    }

    /// Everything on the disk, and a note that the log's last seq is exact.
    private func stopCleanly() {
        guard let store else { return }
        syncLog()
        syncTimer = nil
        saveSnapshot()
        do {
            try store.save(SequenceReservation(reservedThrough: sequencer.lastSeq, bootID: Syscall.bootID(), clean: true))
        } catch {
            logger.error("cannot record the clean stop", metadata: ["error": "\(error)"])
        }
    }

    /// Whether the state directory exists (or can be made) and is writable; says once why not.
    private static func usableStateDirectory(_ directory: String, logger: Logger) -> Bool {
        do {
            try Syscall.makeDirectoryIfMissing(directory, mode: 0o755)
        } catch {
            logger.warning("no state directory (\(error)); sessions will be reported again after a restart; see --state-directory")
            return false
        }
        guard access(directory, W_OK) == 0 else {
            logger.warning("state directory \(directory) is not writable; sessions will be reported again after a restart; see --state-directory")
            return false
        }
        return true
    }

    /// The socket systemd passed, or one sensd creates at the configured path.
    private func listeningSocket() throws -> Descriptor {
        if let passed = ServiceManager.listenFDs().first(where: ServiceManager.isListeningUnixStream) {
            logger.info("using the socket passed by the service manager")
            let fd = Descriptor(taking: passed)
            // Accepting drains the backlog until it would block: it must not block.
            try Syscall.setNonBlocking(fd.rawValue)
            return fd
        }
        let path = configuration.socketPath
        try Self.checkSocketPlace(path)
        let fd = try Syscall.unixStreamSocket(nonBlocking: true)
        // Created with its mode (umask), its group set on the path itself: nothing follows a symlink.
        try Syscall.bind(fd.rawValue, path: path, mode: configuration.socketMode)
        ownsSocketFile = true
        if let group = configuration.socketGroup {
            guard let gid = Syscall.groupID(named: group) else { throw DaemonError("no such group: \(group)") }
            try Syscall.setGroupNoFollow(path, group: gid)
        }
        try Syscall.listen(fd.rawValue, backlog: 128)
        return fd
    }

    /// Where sensd creates its socket by hand (`--socket`): the directory must be one that no other user can
    /// write to, or a sticky one (like /tmp) where they cannot remove or replace what sensd made; whatever is
    /// at the path already is removed only if it is sensd's user's own and not a live socket.
    static func checkSocketPlace(_ path: String) throws {
        let me = UInt32(geteuid())
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        if slash != nil && directory != "/" {
            try Syscall.makeDirectoryIfMissing(directory, mode: 0o755)
        }
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw DaemonError("\(directory) is not a directory") }
        let othersMayWrite = st.st_mode & 0o022 != 0
        let sticky = st.st_mode & mode_t(S_ISVTX) != 0
        if othersMayWrite && !sticky {
            throw DaemonError("refusing to create the socket in \(directory): other users can write there (mode \(String(st.st_mode & 0o7777, radix: 8))), so they could replace it; use a directory only sensd's user can write to")
        }
        if UInt32(st.st_uid) != me && UInt32(st.st_uid) != 0 && !sticky {
            throw DaemonError("refusing to create the socket in \(directory): it belongs to uid \(st.st_uid), not to sensd's user")
        }
        guard let existing = try Syscall.linkStatus(path) else { return }
        if existing.uid != me {
            throw DaemonError("\(path) exists and belongs to uid \(existing.uid); refusing to touch it")
        }
        let type = existing.mode & UInt32(S_IFMT)
        if type == UInt32(S_IFSOCK) && Syscall.isListening(path: path) {
            throw DaemonError("another process is already serving \(path); refusing to take its socket")
        }
        guard type == UInt32(S_IFSOCK) || type == UInt32(S_IFLNK) else {
            throw DaemonError("\(path) exists and is not a socket; refusing to replace it")
        }
        // sensd's own stale socket, or its own symlink: removed, never followed.
        try Syscall.unlinkIfPresent(path)
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
