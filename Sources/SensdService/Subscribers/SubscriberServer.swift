import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// Limits on everything a client can make the daemon hold.
public struct SubscriberLimits: Sendable {
    /// Connections served at once; one more gets a `too-many-subscribers` line and is closed.
    public var maxSubscribers: Int
    /// Connections one ordinary user (not root, not in an administrators' group) may hold at once.
    public var maxPerUser: Int
    /// Of `maxSubscribers`, how many only root and the administrators' groups may take: one user, or many,
    /// filling the socket never locks them out.
    public var reservedForAdministrators: Int
    /// Groups whose members count as administrators (by the peer's credentials at connect).
    public var administratorGroups: Set<UInt32>
    /// Lines a subscriber may fall behind before it gets an `overflow` line and is disconnected.
    public var queueLimit: Int
    /// Lines read ahead from the log for a replaying subscriber: its memory is this, not its backlog.
    public var replayReadAhead: Int
    /// How long a connection being closed with a final line waits for its reader before it is dropped.
    public var closeGraceMicroseconds: UInt64
    /// How long after connecting events are held for a request that may still come, so that a filter
    /// applies to every event after the hello line.
    public var requestGraceMicroseconds: UInt64

    public init(
        maxSubscribers: Int = 1024, maxPerUser: Int = 64, reservedForAdministrators: Int = 64, administratorGroups: Set<UInt32> = [],
        queueLimit: Int = 4096, replayReadAhead: Int = 128, closeGraceMicroseconds: UInt64 = 10_000_000, requestGraceMicroseconds: UInt64 = 250_000
    ) {
        self.maxSubscribers = maxSubscribers
        self.maxPerUser = maxPerUser
        self.reservedForAdministrators = reservedForAdministrators
        self.administratorGroups = administratorGroups
        self.queueLimit = queueLimit
        self.replayReadAhead = replayReadAhead
        self.closeGraceMicroseconds = closeGraceMicroseconds
        self.requestGraceMicroseconds = requestGraceMicroseconds
    }
}

/// A warning that a client can cause over and over: said at most once per interval, with how many were
/// left unsaid since.
struct RateLimitedWarning {
    let intervalMicroseconds: UInt64
    private var lastSaid: UInt64?
    private var suppressed = 0

    init(intervalMicroseconds: UInt64 = 10_000_000) {
        self.intervalMicroseconds = intervalMicroseconds
    }

    /// nil: stay quiet; otherwise say it, noting how many were suppressed before.
    mutating func due(now: UInt64) -> Int? {
        if let last = lastSaid, now < last + intervalMicroseconds {
            suppressed += 1
            return nil
        }
        lastSaid = now
        defer { suppressed = 0 }
        return suppressed
    }
}

/// The listening socket and every subscriber connection, all driven by the one event loop.
public final class SubscriberServer {
    private let loop: EventLoop
    private let admission: Admission
    let limits: SubscriberLimits
    private let logger: Logger
    let daemonVersion: String
    /// The daemon, which the server asks and tells and nothing else: see ``SubscriberFeed``.
    unowned let feed: any SubscriberFeed
    /// The event history resuming clients replay from; nil when sensd keeps none.
    let log: EventLog?
    /// When to write (``FlushTiming``), and the two event sources that carry it out: the loop's idle moment,
    /// and a timer for the wait after an expensive flush.
    private var timing = FlushTiming()
    private var idleFlush: EventSource?
    private var backstop: EventSource?
    private var subscribers: [ObjectIdentifier: Subscriber] = [:]
    /// Subscribers with output waiting, written at the next flush, in the order they got it; each is in it
    /// at most once (``Subscriber/awaitingFlush``). A flag rather than a set: a broadcast marks every
    /// subscriber, and hashing each one per event was a fifth of sensd's time with 1,000 subscribers.
    private var dirty: [Subscriber] = []

    /// How many are connected, refused and cut off: kept here and in the admission, read by the daemon.
    let counts: SubscriberCounts
    public var subscriberCount: Int { subscribers.count }
    /// Connections refused at a limit, and cut off for falling behind, since start.
    public var refused: Int { counts.refused }
    public var overflowed: Int { counts.overflowed }
    private var overflowWarning = RateLimitedWarning()
    /// Gives memory back to the system a moment after a burst of clients has gone.
    private var trimTimer: EventSource?
    /// Serves on `listener`, which must be a listening stream socket; the server closes it when it goes.
    init(
        loop: EventLoop, listener: consuming Descriptor, varlinkListener: consuming Descriptor? = nil, limits: SubscriberLimits, logger: Logger,
        daemonVersion: String, feed: any SubscriberFeed, counts: SubscriberCounts = SubscriberCounts(), log: EventLog? = nil
    ) throws(SystemdError) {
        self.daemonVersion = daemonVersion
        self.feed = feed
        self.counts = counts
        self.log = log
        self.loop = loop
        self.limits = limits
        self.logger = logger
        admission = Admission(loop: loop, listener: listener, varlinkListener: varlinkListener, limits: limits, counts: counts, logger: logger)
        try admission.start(serving: self)
        idleFlush = try loop.addDefer { [unowned self] in self.flush() }
        idleFlush?.setPriority(EventSource.idlePriority)
        backstop = try loop.addTimer(monotonicDeadline: 0, accuracy: 100) { [unowned self] in self.flush() }
        backstop?.setPriority(EventSource.importantPriority)
        backstop?.setEnabled(false)
    }

    /// Asks for a flush once the loop is idle, or 1 ms later at the latest; after an expensive flush, not
    /// before as long again has passed (``FlushTiming``).
    func requestFlush() {
        switch timing.request(now: loop.monotonicNow) {
        case .alreadyRequested:
            break
        case .whenIdle:
            // No timer: setting one per event, and disarming it after the flush, were two system calls
            // per event (timerfd_settime) for a deadline that is hardly ever reached.
            idleFlush?.setEnabled(true, oneshot: true)
        case .at(let deadline):
            backstop?.setTime(monotonicDeadline: deadline)
            backstop?.setEnabled(true, oneshot: true)
        }
    }

    /// Called after every iteration of the loop: while the idle flush waits, the bus keeps the loop busy,
    /// so the loop comes back here at once each time; past the deadline, the flush goes out regardless.
    func afterIteration() {
        guard timing.overdue(now: loop.monotonicNow) else { return }
        flush()
    }

    func markDirty(_ subscriber: Subscriber) {
        if !subscriber.awaitingFlush {
            subscriber.awaitingFlush = true
            dirty.append(subscriber)
        }
        requestFlush()
    }

    /// Sends an event line to every subscriber whose subscription it matches. Never blocks: a subscriber
    /// whose queue is full is cut off instead. Replaying subscribers read the line from the log instead.
    package func broadcast(_ line: OutgoingLine) {
        // Wrapped for Varlink once per event, when a Varlink subscriber takes it.
        var varlinkLine: OutgoingLine?
        for subscriber in subscribers.values where subscriber.isHeld || subscriber.isLive {
            if let seq = line.seq {
                // The seam between replay and live: never a line twice.
                guard seq > subscriber.lastSeqSeen else { continue }
                subscriber.lastSeqSeen = seq
            }
            // Held (no request yet): everything waits, and the request decides.
            if let facts = line.facts, !subscriber.wants(facts) { continue }
            let line = subscriber.dialect == .jsonLines ? line : varlinkLine ?? Varlink.event(line)
            if subscriber.dialect == .varlink { varlinkLine = line }
            if subscriber.queue.enqueue(line) {
                // Held lines wait for the request; the others go out at the next flush.
                if subscriber.isLive { markDirty(subscriber) }
                continue
            }
            // Full: what the socket takes now makes room (a burst is enqueued before its flush), and a
            // held subscriber stops waiting for a request rather than being cut off.
            release(subscriber)
            if write(subscriber), subscriber.queue.enqueue(line) {
                markDirty(subscriber)
                continue
            }
            guard subscriber.isAttached else { continue }
            overflow(subscriber)
        }
    }

    /// Stops accepting and ends every connection with a `shutting-down` line (best effort, without waiting).
    public func stop() {
        admission.stop()
        idleFlush = nil
        backstop = nil
        let stopping = ProtocolError(.shuttingDown, "sensd is stopping")
        for subscriber in subscribers.values {
            if !subscriber.isClosing {
                subscriber.queue.dropUnstarted()
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: errorBytes(stopping, for: subscriber), seq: nil))
            }
            _ = write(subscriber)
            drop(subscriber)
        }
        trimTimer = nil
    }

    // MARK: Connections

    /// Says a warning a client can provoke at most once per interval, with how many were not said.
    private func warn(_ limiter: inout RateLimitedWarning, _ message: String) {
        logger.warning(&limiter, message, now: loop.monotonicNow)
    }

    /// Serves a connection the admission let in; false if it cannot be watched.
    func serve(_ fd: consuming Descriptor, _ peer: Peer) -> Bool {
        let raw = fd.rawValue
        let subscriber = Subscriber(fd: fd, uid: peer.uid, queueLimit: limits.queueLimit, dialect: peer.dialect,
                                    administrator: peer.isAdministrator(limits.administratorGroups))
        do {
            subscriber.source = try loop.addIO(fd: raw, events: .readable) { [unowned self, unowned subscriber] events in
                self.handle(subscriber, events: events)
            }
        } catch {
            logger.error("could not watch a subscriber: \(error)")
            // The subscriber owns the descriptor: it goes with it (closing it here as well, as this once did,
            // closed it twice).
            subscriber.detach()
            return false
        }
        subscribers[ObjectIdentifier(subscriber)] = subscriber
        counts.connected = subscribers.count
        if subscriber.dialect == .varlink {
            // Varlink: nothing until the client calls.
            subscriber.enter(.idle)
            logger.debug("Varlink client connected", metadata: ["subscribers": "\(subscribers.count)", "uid": "\(peer.uid)"])
            feed.subscribersChanged()
            return true
        }
        // One reading: the hello line's lastSeq is the point a subscription applies from.
        subscriber.helloSeq = feed.emittedSeq
        subscriber.lastSeqSeen = subscriber.helloSeq
        let hello = WireFormat.hello(daemonVersion: daemonVersion, lastSeq: subscriber.helloSeq, oldestSeq: log?.oldestSeq)
        _ = subscriber.queue.enqueue(OutgoingLine(bytes: hello, seq: nil))
        guard write(subscriber) else { return true }
        subscriber.enter(.held(grace: try? loop.addTimer(monotonicDeadline: loop.monotonicNow + limits.requestGraceMicroseconds) { [unowned self, unowned subscriber] in
            self.release(subscriber)
        }))
        logger.debug("subscriber connected", metadata: ["subscribers": "\(subscribers.count)", "uid": "\(peer.uid)"])
        feed.subscribersChanged()
        return true
    }

    private func handle(_ subscriber: Subscriber, events: IOEvents) {
        if events.contains(.readable) && subscriber.input != .ended {
            readInput(subscriber)
            guard subscriber.isAttached else { return }
        }
        if !events.isDisjoint(with: [.error, .hangUp]) {
            // The peer is gone in both directions: nothing more can be delivered.
            drop(subscriber)
            return
        }
        if events.contains(.writable) {
            _ = write(subscriber)
        }
    }

    private func readInput(_ subscriber: Subscriber) {
        // One read per turn: the socket stays readable, and the loop comes back after others had theirs.
        var buffer = [UInt8](repeating: 0, count: 4096)
        if subscriber.isAttached && subscriber.input != .ended {
            let n: Int?
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(subscriber.rawFD, into: raw) }
            } catch {
                drop(subscriber)
                return
            }
            guard let n else { return }
            let outcomes: [LineReader.Outcome]
            if n == 0 {
                // Half-closed (`socat -u`, `nc -N`): the client still reads, so keep sending. EPOLLHUP tells when
                // it is gone. A request it sent without a final newline counts: the end of its input ends the line.
                // A Varlink message is not whole without its NUL.
                outcomes = subscriber.reader.partial.isEmpty || subscriber.dialect == .varlink ? [] : [.line(subscriber.reader.partial)]
            } else {
                outcomes = buffer.withUnsafeBytes { subscriber.reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            for outcome in outcomes {
                switch outcome {
                case .tooLong:
                    let what = subscriber.dialect == .varlink ? "message" : "request line"
                    close(subscriber, with: ProtocolError(.requestTooLong, "\(what) exceeds \(subscriber.reader.limit) bytes"), extra: [("limit", UInt64(subscriber.reader.limit))])
                    return
                case .line(let line) where subscriber.dialect == .varlink:
                    called(subscriber, line)
                    guard subscriber.isAttached, !subscriber.isClosing else { return }
                case .line(let line):
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                    guard subscriber.input != .requestReceived else {
                        close(subscriber, with: ProtocolError(.badRequest, "only one request line is accepted per connection"))
                        return
                    }
                    do {
                        subscribe(subscriber, to: try SubscriptionRequest.parse(line))
                    } catch {
                        close(subscriber, with: error)
                        return
                    }
                }
            }
            if n == 0 {
                // Marked only now: the lines above still had to tell a first request from a second.
                subscriber.input = .ended
                if subscriber.isIdle {
                    // A Varlink client that will call no more: once its replies are read, nothing is left.
                    finish(subscriber)
                    return
                }
                release(subscriber)
                updateInterest(subscriber)
                return
            }
        }
    }

    /// Applies a request to everything not yet written (within the grace period: every event after the hello
    /// line) and to everything after, and confirms it with an `accepted` line.
    func subscribe(_ subscriber: Subscriber, to request: SubscriptionRequest) {
        subscriber.input = .requestReceived
        if request.stats {
            subscriber.request = request
            // Held events are not for this connection; the hello, if not yet written, still goes first.
            subscriber.queue.removeUnstarted { $0.seq != nil }
            var bytes = WireFormat.accepted(request, fromSeq: subscriber.helloSeq + 1)
            bytes += WireFormat.stats(feed.stats())
            subscriber.queue.enqueueFinal(OutgoingLine(bytes: bytes, seq: nil))
            finish(subscriber)
            return
        }
        if let since = request.since {
            resume(subscriber, request, since: since)
            return
        }
        subscriber.request = request
        subscriber.queue.removeUnstarted { line in line.facts.map { !subscriber.wants($0) } ?? false }
        var fromSeq = subscriber.isHeld ? subscriber.helloSeq + 1 : (subscriber.queue.lastSeqWritten ?? subscriber.helloSeq) + 1
        var snapshot: (seq: UInt64, sessions: [OpenSession])?
        if request.snapshot {
            // The state at one seq, then the events after it: the events it already reflects are not sent.
            let (seq, sessions) = feed.openSessions()
            subscriber.queue.removeUnstarted { line in line.seq.map { $0 <= seq } ?? false }
            subscriber.lastSeqSeen = max(subscriber.lastSeqSeen, seq)
            fromSeq = max(fromSeq, seq + 1)
            snapshot = (seq, sessions.filter { request.matchesSession(EventFacts($0.fields)) })
        }
        let accepted = switch subscriber.dialect {
        case .jsonLines: WireFormat.accepted(request, fromSeq: fromSeq) + (snapshot.map { WireFormat.snapshot($0.sessions, seq: $0.seq) } ?? [])
        case .varlink: Varlink.state(version: daemonVersion, lastSeq: subscriber.helloSeq, oldestSeq: log?.oldestSeq, fromSeq: fromSeq, request: request, snapshot: snapshot)
        }
        subscriber.queue.insertBeforeUnstarted(OutgoingLine(bytes: accepted, seq: nil))
        release(subscriber)
        markDirty(subscriber)
    }

    /// Starts a replay: every retained event after `since` (and after whatever this connection has already
    /// been sent), read from the log as the client takes it, then the live stream.
    func resume(_ subscriber: Subscriber, _ request: SubscriptionRequest, since: UInt64) {
        guard let log else {
            close(subscriber, with: ProtocolError(.logUnavailable, "this sensd keeps no event log (started with --state-directory none), so it cannot resume; connect without \"since\""))
            return
        }
        let last = feed.emittedSeq
        guard since <= last else {
            let message = "since \(since) is ahead of the last event sensd has given out (\(last)); its history was reset, so reconnect without \"since\""
            if subscriber.dialect == .varlink {
                return closeVarlink(subscriber, Varlink.error(Varlink.interface + ".NoSuchSeq", message: message, extra: [("lastSeq", last)]))
            }
            close(subscriber, with: ProtocolError(.badRequest, message), extra: [("lastSeq", last)])
            return
        }
        // Events already queued live are read again from the log, in order, with the rest.
        subscriber.queue.removeUnstarted { $0.seq != nil }
        let base = max(since, subscriber.queue.lastSeqStarted ?? 0)
        subscriber.request = request
        subscriber.lastSeqSeen = base
        let accepted = switch subscriber.dialect {
        case .jsonLines: WireFormat.accepted(request, fromSeq: base + 1)
        case .varlink: Varlink.state(version: daemonVersion, lastSeq: last, oldestSeq: log.oldestSeq, fromSeq: base + 1, request: request, snapshot: nil)
        }
        subscriber.queue.insertBeforeUnstarted(OutgoingLine(bytes: accepted, seq: nil))
        subscriber.enter(.replaying(LogCursor(log: log, after: base)))
        pump(subscriber)
        if subscriber.isAttached { markDirty(subscriber) }
    }

    /// Refills a replaying subscriber's queue from the log, up to its limit. Missing seqs are announced with
    /// a gap line; once the log is read to its end the subscriber joins the live stream.
    private func pump(_ subscriber: Subscriber) {
        guard case .replaying(let cursor) = subscriber.phase else { return }
        // A replay holds a bounded read-ahead, not its backlog: the log is read as the client takes it.
        let room = min(limits.queueLimit, limits.replayReadAhead) - subscriber.queue.count
        guard room > 0 else { return }
        switch Replay.refill(subscriber, from: cursor, room: room, emittedSeq: feed.emittedSeq, oldestSeq: log?.oldestSeq) {
        case .more:
            break
        case .missing:
            // Varlink: the EventsMissing error ends the call (queued by the replay).
            finish(subscriber)
        case .caughtUp:
            if subscriber.request?.live == false {
                let end = subscriber.dialect == .varlink ? Varlink.replayEnd(lastSeq: subscriber.lastSeqSeen) : WireFormat.replayEnd(lastSeq: subscriber.lastSeqSeen)
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: end, seq: nil))
                finish(subscriber)
                return
            }
            subscriber.enter(.live)
        case .overtaken:
            overflow(subscriber, "the replay fell behind sensd's event log retention; reconnect with \"since\" to continue")
        case .failed(let reason):
            logger.error("cannot replay the event log to a subscriber", metadata: ["error": "\(reason)"])
            close(subscriber, with: ProtocolError(.logUnavailable, "sensd cannot read its event log: \(reason)"))
        }
    }

    /// Ends the wait for a request: held events start to flow. Without a request, the default subscription
    /// applies from the hello line on.
    private func release(_ subscriber: Subscriber) {
        guard subscriber.isHeld else { return }
        if subscriber.request == nil {
            let request = SubscriptionRequest()
            subscriber.request = request
            subscriber.queue.removeUnstarted { line in line.facts.map { !subscriber.wants($0) } ?? false }
        }
        subscriber.enter(.live)
        markDirty(subscriber)
    }

    /// Cuts off a subscriber that fell behind (its queue, or a replay overtaken by retention) with an
    /// `overflow` line naming the last event it was sent in full, the point to resume after.
    private func overflow(_ subscriber: Subscriber, _ message: String? = nil) {
        counts.overflowed += 1
        let last = subscriber.queue.lastSeqWritten
        if message == nil {
            warn(&overflowWarning, "a subscriber fell \(limits.queueLimit) events behind; disconnecting it (lastSeq \(last.map(String.init) ?? "none"))")
        }
        var extra: [(String, UInt64)] = [("limit", UInt64(limits.queueLimit))]
        if let last { extra.append(("lastSeq", last)) }
        let text = message ?? "subscriber fell more than \(limits.queueLimit) events behind; reconnect with \"since\" set to lastSeq to continue without loss"
        close(subscriber, with: ProtocolError(.overflow, text), extra: extra)
    }

    /// Ends a connection with one final error line: unsent lines are dropped, the error is delivered
    /// once the client reads (within the grace period), then the connection closes.
    func close(_ subscriber: Subscriber, with error: ProtocolError, extra: [(String, UInt64)] = []) {
        subscriber.queue.dropUnstarted()
        subscriber.queue.enqueueFinal(OutgoingLine(bytes: errorBytes(error, extra: extra, for: subscriber), seq: nil))
        finish(subscriber)
    }

    /// An error as `subscriber`'s protocol says it.
    func errorBytes(_ error: ProtocolError, extra: [(String, UInt64)] = [], for subscriber: Subscriber) -> [UInt8] {
        switch subscriber.dialect {
        case .jsonLines: WireFormat.error(error.code, error.message, extra: extra)
        case .varlink: Varlink.error(error, extra: extra)
        }
    }

    /// Ends a Varlink connection with one final error reply already encoded.
    func closeVarlink(_ subscriber: Subscriber, _ reply: [UInt8]) {
        subscriber.queue.dropUnstarted()
        subscriber.queue.enqueueFinal(OutgoingLine(bytes: reply, seq: nil))
        finish(subscriber)
    }

    /// Closes the connection once what is queued has been read (within the grace period).
    func finish(_ subscriber: Subscriber) {
        let deadline = loop.monotonicNow + limits.closeGraceMicroseconds
        subscriber.enter(.closing(deadline: try? loop.addTimer(monotonicDeadline: deadline) { [unowned self, unowned subscriber] in
            self.drop(subscriber)
        }))
        markDirty(subscriber)
    }

    // MARK: Output

    /// Hands over what was published, then writes every subscriber with output waiting: one `sendmsg` each
    /// for everything since the last flush.
    func flush() {
        let start = Syscall.monotonicNanoseconds() / 1000
        feed.flushPending(to: self)
        let batch = dirty
        dirty.removeAll(keepingCapacity: true)
        for subscriber in batch {
            subscriber.awaitingFlush = false
            if subscriber.isAttached, !subscriber.isHeld { _ = write(subscriber) }
        }
        timing.flushed(start: start, end: Syscall.monotonicNanoseconds() / 1000)
        idleFlush?.setEnabled(false)
        backstop?.setEnabled(false)
        // Output queued during this flush (a closing line) waits out this flush's own duration too.
        if !dirty.isEmpty { requestFlush() }
    }

    /// Writes as much as the socket takes; false if the subscriber was dropped.
    private func write(_ subscriber: Subscriber) -> Bool {
        var failed = false
        while !subscriber.queue.isEmpty {
            var wouldBlock = false
            let n = subscriber.queue.write(maxChunks: 64) { chunks in
                do {
                    guard let n = try Syscall.send(subscriber.rawFD, chunks) else {
                        wouldBlock = true
                        return 0
                    }
                    return n
                } catch {
                    failed = true
                    return 0
                }
            }
            if failed {
                drop(subscriber)
                return false
            }
            if wouldBlock || n == 0 { break }
        }
        if subscriber.isReplaying && subscriber.queue.count <= min(limits.queueLimit, limits.replayReadAhead) / 2 {
            // One refill per call: the loop comes back when the socket takes more, so a long replay
            // shares the loop with everyone else.
            pump(subscriber)
            guard subscriber.isAttached else { return false }
        }
        if subscriber.isClosing && subscriber.queue.isEmpty {
            drop(subscriber)
            return false
        }
        updateInterest(subscriber)
        return true
    }

    private func updateInterest(_ subscriber: Subscriber) {
        var events: IOEvents = []
        // A Varlink client's calls wait in its socket while it leaves its replies unread.
        let readsAhead = subscriber.dialect == .varlink && subscriber.queue.count >= Self.varlinkRepliesAhead
        if subscriber.input != .ended && !readsAhead { events.insert(.readable) }
        if (!subscriber.queue.isEmpty || subscriber.isReplaying) && !subscriber.isHeld { events.insert(.writable) }
        if events != subscriber.events {
            subscriber.events = events
            subscriber.source?.setIOEvents(events)
        }
    }

    private func drop(_ subscriber: Subscriber) {
        guard subscriber.isAttached else { return }
        let key = ObjectIdentifier(subscriber)
        subscribers[key] = nil
        counts.connected = subscribers.count
        admission.left(uid: subscriber.uid)
        subscriber.detach()
        if trimTimer == nil {
            // Once the clients of a spike have gone, their buffers go back to the system (glibc keeps them).
            trimTimer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + 1_000_000) { [unowned self] in
                self.trimTimer = nil
                Syscall.trimHeap()
            }
        }
        logger.debug("subscriber disconnected", metadata: ["subscribers": "\(subscribers.count)"])
        feed.subscribersChanged()
    }
}

extension SubscriberServer: EventSubscribers, ConnectionServer {}

/// What the subscriber server asks of the daemon, and the one thing it tells it. The server holds it
/// unowned: the daemon owns both and they go together.
protocol SubscriberFeed: AnyObject {
    /// The last seq logged and handed to the subscribers: what a new subscriber's hello line says.
    var emittedSeq: UInt64 { get }
    /// Hands `server`, through its ``EventSubscribers/broadcast(_:)``, everything published since the last
    /// flush; called at the start of every flush.
    func flushPending(to server: any EventSubscribers)
    /// The open sessions and the seq they are the state at: every event up to it is reflected, none after.
    func openSessions() -> (seq: UInt64, sessions: [OpenSession])
    /// The whole daemon's counters, for a `{"stats": true}` request.
    func stats() -> DaemonStats
    /// A subscriber connected or went.
    func subscribersChanged()
}
