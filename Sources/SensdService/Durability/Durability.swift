import FoundationEssentials
import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// What makes sensd's promises outlive the process (docs/protocol.md, "Durability"): the event log, the
/// session snapshot and the seq reservation. It recovers the previous run's state, appends and syncs the log,
/// keeps seqs from ever repeating (a reservation ahead of the last seq given out; a note when the log falls
/// behind), takes snapshots, and records a clean stop.
final class Durability {
    /// Seqs reserved at a time: one small synced write per this many events.
    static let reservationBlock: UInt64 = 65_536

    /// Whether the log takes what is appended.
    enum LogHealth: Equatable {
        case writing
        /// An append failed (a full or failing disk): events still go out live, resuming clients are told of
        /// the gap, and the sessions among them are recorded in place.
        case failing
    }

    /// What the previous runs left: the open sessions and the last seq given out.
    struct Recovery {
        var sessions: [SessionTracker.Remembered]
        var lastSeq: UInt64
        var snapshotSeq: UInt64
        /// Until when sensd reported every session that ended (CLOCK_REALTIME microseconds), if it ever ran.
        var watermark: UInt64?
        /// The sessions its records show from a margin before then on.
        var known: [KnownSession]
    }

    let store: SessionStateStore
    /// nil if it could not be opened: sensd runs without resume.
    let log: EventLog?
    /// The last seq the previous runs gave out (or may have).
    let recoveredLastSeq: UInt64
    /// Until when every session that ended is reported (CLOCK_REALTIME microseconds): nil before sensd first
    /// ran here. It moves on once the sessions sensd missed while it was down are found (``downtimeCovered()``),
    /// and each snapshot records it.
    private(set) var watermark: UInt64?
    private var downtimeSearched = false
    /// The sessions sensd's records show from a margin before the watermark on; handed over once.
    private(set) var knownSessions: [KnownSession]
    /// The sessions they left open: handed to the tracker once (``takeRecoveredSessions()``), not kept here.
    private var recoveredSessions: [SessionTracker.Remembered]
    private(set) var logHealth = LogHealth.writing
    private let loop: EventLoop
    private let logger: Logger
    private let syncIntervalMicroseconds: UInt64
    private var reservation: SequenceReservation?
    /// The last event the saved snapshot includes.
    private var snapshotSeq: UInt64
    private var syncTimer: EventSource?

    /// A snapshot is due (every so many events): the pipeline takes it after its flush, when everything
    /// stamped is in the log (``saveSnapshot(lastStamped:sessions:)``).
    private(set) var snapshotDue = false

    /// What start-up found unreadable and set aside or decided around, one sentence each.
    var setAside: [String] { (log?.damage ?? []) + store.setAside }

    /// Opens the state in `directory` (which must be usable, see ``usable(_:logger:)``) and recovers it.
    init(directory: String, retention: LogRetention, syncIntervalMicroseconds: UInt64, loop: EventLoop, logger: Logger) throws {
        self.loop = loop
        self.logger = logger
        self.syncIntervalMicroseconds = syncIntervalMicroseconds
        store = SessionStateStore(directory: directory, logger: logger)
        try store.checkFormat()
        do {
            log = try EventLog(directory: directory + "/log", retention: retention, logger: logger)
        } catch {
            logger.error("cannot open the event log; running without it (no resume, no restart recovery beyond the snapshot)", metadata: ["error": "\(error)"])
            log = nil
        }
        for damage in log?.damage ?? [] {
            logger.error("the event log was damaged; sensd serves what is intact: \(damage)")
        }
        let recovered = Self.recover(store: store, log: log, retention: retention, logger: logger)
        recoveredLastSeq = recovered.lastSeq
        recoveredSessions = recovered.sessions
        snapshotSeq = recovered.snapshotSeq
        watermark = recovered.watermark
        knownSessions = recovered.known
    }

    /// Makes this run's records ready, before the first event: what the previous run handed out without
    /// logging goes into a snapshot first; seqs from here on are reserved.
    /// `sessions` are the open sessions as of the recovered last seq: what the previous runs left, now the
    /// tracker's.
    func start(sessions: some OpenSessions) throws {
        // The reservation first: it is the smallest record and the one that keeps seqs from repeating, so on
        // a nearly full disk it must not lose the space to the others. A stop that is not clean is detected
        // next time. A state directory that cannot take it (read-only) does not stop sensd: events still go
        // out live.
        try? reserve(through: recoveredLastSeq + Self.reservationBlock)
        if store.hasUnlogged { saveSnapshot(lastStamped: recoveredLastSeq, sessions: sessions) }
        store.prepareUnlogged()
    }

    /// The open sessions the previous runs left; empty after the first call.
    func takeRecoveredSessions() -> [SessionTracker.Remembered] {
        defer { recoveredSessions = [] }
        return recoveredSessions
    }

    /// The journal has been searched for the sessions that began and ended while sensd was down (or there
    /// was nothing to search): from now on every session that ends is sensd's to see, and snapshots say so.
    func downtimeCovered() {
        downtimeSearched = true
        knownSessions = []
    }

    /// Reserves further seqs when `seq` is past the reservation.
    func reserve(covering seq: UInt64) {
        if let reservation, seq > reservation.reservedThrough {
            try? reserve(through: seq + Self.reservationBlock)
        }
    }

    /// Appends lines already stamped to the log, then arranges their sync and, every so many events, a
    /// snapshot. `lastStamped` is the last seq given out, every one of them in `lines` or logged before, and
    /// `sessions` the open sessions as of it (the tracker reflects every stamped event).
    func append(_ lines: [OutgoingLine], lastStamped: UInt64, sessions: some OpenSessions) {
        guard let log else { return }
        do {
            // Retention must not delete what the snapshot still depends on: a newer snapshot first. It is
            // taken once the whole batch is in the log, so that it covers nothing the log lacks.
            if let dropping = try log.append(lines) {
                if snapshotSeq < dropping { saveSnapshot(lastStamped: lastStamped, sessions: sessions) }
                log.dropRetained()
            }
            if logHealth == .failing {
                logHealth = .writing
                logger.notice("the event log is being written again")
            }
        } catch {
            logCannotTake(lines, error: error)
            return
        }
        if syncIntervalMicroseconds == 0 {
            syncLog()
        } else if syncTimer == nil {
            syncTimer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + syncIntervalMicroseconds) { [unowned self] in
                self.syncTimer = nil
                self.syncLog()
            }
        }
        // A snapshot costs O(sessions); taking one per that many events keeps it O(1) per event.
        let since = lastStamped - snapshotSeq
        if since >= max(10_000, 2 * UInt64(sessions.sessionCount)) { snapshotDue = true }
    }

    /// Live subscribers still get the events; resuming clients will be told of the gap. First, the
    /// reservation (rewritten in place, so a full disk takes it) says the log is behind: a crash now must not
    /// let the next start give these seqs to other events. And the sessions' beginnings and ends among them
    /// are recorded (in place too): a crash now must not report them again.
    private func logCannotTake(_ lines: [OutgoingLine], error: SystemCallError) {
        let family: Set<EventKind> = [.logon, .logoffInitiated, .logoff]
        do {
            try store.recordUnlogged(lines.filter { $0.facts.map { family.contains($0.event) } ?? false }.map(\.bytes))
        } catch {
            if logHealth == .writing {
                logger.critical("cannot record the events handed out without the log; after a crash now, sessions among them could be reported again", metadata: ["error": "\(error)"])
            }
        }
        guard logHealth == .writing else { return }
        logHealth = .failing
        logger.error("cannot append to the event log; events go to connected subscribers but cannot be replayed", metadata: ["error": "\(error)"])
        if let reservation, let first = lines.first?.seq {
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

    private func syncLog() {
        do {
            try log?.sync()
        } catch {
            logger.error("cannot sync the event log to the disk", metadata: ["error": "\(error)"])
        }
    }

    /// Saves the reported sessions as of the last seq given out. The snapshot reflects every stamped event,
    /// so every one of them must be in the log first: the caller has flushed.
    func saveSnapshot(lastStamped: UInt64, sessions: some OpenSessions) {
        snapshotDue = false
        if downtimeSearched { watermark = loop.now }
        let state = SessionState(lastSeq: lastStamped, sessions: sessions.remembered, watchedUntil: watermark)
        do {
            try store.save(state)
            snapshotSeq = state.lastSeq
            store.clearUnlogged()
            // Likewise the snapshot's encoding, when it was large.
            if state.sessions.count >= 1000 { Syscall.trimHeap() }
        } catch {
            logger.error("cannot write the session snapshot", metadata: ["file": "\(store.path)", "error": "\(error)"])
        }
    }

    private func reserve(through seq: UInt64) throws {
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

    /// Everything on the disk, and a note that the log's last seq is exact. The caller has flushed.
    func stopCleanly(lastStamped: UInt64, sessions: some OpenSessions) {
        syncLog()
        syncTimer = nil
        saveSnapshot(lastStamped: lastStamped, sessions: sessions)
        do {
            try store.save(SequenceReservation(reservedThrough: lastStamped, bootID: Syscall.bootID(), clean: true))
        } catch {
            logger.error("cannot record the clean stop", metadata: ["error": "\(error)"])
        }
    }

    /// Whether the state directory exists (or can be made) and is writable; says once why not.
    static func usable(_ directory: String, logger: Logger) -> Bool {
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

    /// A new seq range when the reservation (the record of the highest seq that may have been given out) is
    /// gone or unreadable while other state is there: it starts after every seq any record still shows, the
    /// log's segment names (a segment holds at most a segment's worth of events) and sensd's own journal
    /// entries among them, plus one reservation block, the most a run ever reserves ahead of what it logged.
    private static func newRange(after known: UInt64, store: SessionStateStore, retention: LogRetention, logger: Logger) -> UInt64 {
        var highest = known
        if let named = EventLog.highestNamedSeq(in: store.logDirectory) {
            highest = max(highest, named + UInt64(retention.segmentEvents) - 1)
        }
        // Entries only sensd's own user can have written (journald sets _UID; anyone may write SENS_SEQ).
        let journaled = (try? JournalReader())?.newestValue(
            of: "SENS_SEQ", matching: EventKind.allCases.map { "MESSAGE_ID=\(JournalEntry.messageID($0))" } + ["_UID=\(getuid())"]
        ).flatMap { UInt64($0) }
        if let journaled { highest = max(highest, journaled) }
        let next = highest + reservationBlock
        logger.error("the sequence reservation is missing or damaged; seqs continue in a new range that no seq given out before can be in, and resuming clients are told of the gap", metadata: [
            "highestSeqFound": "\(highest)", "journalSeq": "\(journaled.map(String.init) ?? "none")", "nextSeq": "\(next + 1)",
        ])
        store.noteSetAside("\(store.reservationPath): no readable sequence reservation; seqs continue after \(next) (the highest seq found, \(highest), plus \(reservationBlock))")
        return next
    }

    /// What the previous runs left: the open sessions (the snapshot plus every logged event after it) and
    /// the last seq given out, never lower than one a subscriber may have seen.
    private static func recover(store: SessionStateStore, log: EventLog?, retention: LogRetention, logger: Logger) -> Recovery {
        // Looked at before anything is read: reading a damaged file sets it aside.
        let hadReservation = store.hasReservationFile
        let hadState = hadReservation || store.hasSnapshotFile || EventLog.highestNamedSeq(in: store.logDirectory) != nil
        let snapshot = store.load()
        var sessions = RememberedSessions(snapshot?.sessions ?? [])
        let base = snapshot?.lastSeq ?? 0
        var applied = 0
        var undecodable = 0
        // Events handed out while the log could not take them, merged in seq order with the logged ones.
        let recorded = store.loadUnlogged()
        var unlogged = recorded.filter { $0.seq > base }[...]
        let lastUnlogged = unlogged.last?.seq ?? 0
        // Since when every session that ended is reported: the snapshot says (a version before 0.3 did not
        // record it: then the last logged event's time). The journal is searched from there for sessions sensd
        // did not see; sensd's own record of sessions since then (a margin earlier) tells which it did.
        var watermark = snapshot?.watchedUntil
        if watermark == nil, let log, let last = log.lastSeq {
            watermark = Self.time(ofRecord: last, in: log)
        }
        var known: [KnownSession] = []
        let knownSince = watermark.map { $0 - min($0, 2 * DowntimeLedger.tolerance) }
        let walkFrom = min(base, knownSince.flatMap { t in log.map { Self.seq(before: t, in: $0) } } ?? base)
        if !unlogged.isEmpty {
            logger.notice("the previous run handed out events its log could not take; sensd knows them from its record of them", metadata: ["events": "\(unlogged.count)", "firstSeq": "\(unlogged.first!.seq)"])
        }
        if let log {
            if let oldest = log.oldestSeq, base + 1 < oldest, base < log.lastSeq ?? 0 {
                logger.warning("the event log no longer holds every event since the session snapshot; sessions that changed in between may be reported again", metadata: ["snapshotSeq": "\(base)", "oldestSeq": "\(oldest)"])
            }
            let decoder = JSONDecoder()
            log.forEachRecord(after: walkFrom) { line in
                guard let event = try? decoder.decode(SENSEvent.self, from: Data(line)) else {
                    undecodable += 1
                    return
                }
                if let knownSince, event.time.microsecondsSinceEpoch >= Int64(knownSince), [.logon, .logoffInitiated, .logoff].contains(event.event) {
                    known.append(KnownSession(id: event.sessionId, at: UInt64(event.sessionStart?.microsecondsSinceEpoch ?? event.time.microsecondsSinceEpoch)))
                }
                guard event.seq > base else { return }
                while let next = unlogged.first, next.seq < event.seq {
                    sessions.apply(next)
                    unlogged = unlogged.dropFirst()
                }
                sessions.apply(event)
                applied += 1
            }
        }
        for event in unlogged { sessions.apply(event) }
        for event in recorded where [.logon, .logoffInitiated, .logoff].contains(event.event) {
            known.append(KnownSession(id: event.sessionId, at: UInt64(event.sessionStart?.microsecondsSinceEpoch ?? event.time.microsecondsSinceEpoch)))
        }
        if undecodable > 0 {
            logger.error("some logged events could not be read back; their sessions may be reported again", metadata: ["events": "\(undecodable)"])
        }
        var lastSeq = max(base, log?.lastSeq ?? 0, lastUnlogged)
        let reservation = store.loadReservation()
        if reservation == nil, hadState {
            lastSeq = newRange(after: lastSeq, store: store, retention: retention, logger: logger)
        }
        if let r = reservation {
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
        return Recovery(sessions: sessions.all, lastSeq: lastSeq, snapshotSeq: base, watermark: watermark, known: known)
    }

    /// The time of the event logged with `seq` (CLOCK_REALTIME microseconds).
    private static func time(ofRecord seq: UInt64, in log: EventLog) -> UInt64? {
        var time: UInt64?
        _ = LogCursor(log: log, after: seq - 1).read(maxLines: 1) { line, s in
            guard s == seq, let e = try? JSONDecoder().decode(SENSEvent.self, from: Data(line)) else { return }
            time = UInt64(max(0, e.time.microsecondsSinceEpoch))
        }
        return time
    }

    /// A seq to read the log after so as to see every event since `realtime`: just before the newest segment
    /// that begins before then (each segment's first event is looked at, newest first).
    private static func seq(before realtime: UInt64, in log: EventLog) -> UInt64 {
        for segment in log.segments.reversed() {
            if let t = time(ofRecord: segment.firstSeq, in: log), t < realtime { return segment.firstSeq - 1 }
        }
        return 0
    }
}

/// The open sessions a snapshot saves, as of the last seq stamped: the session tracker's (``LogindSource``).
protocol OpenSessions {
    var remembered: [SessionTracker.Remembered] { get }
    var sessionCount: Int { get }
}

extension LogindSource: OpenSessions {}
