import Logging
import SENSCore
import Systemd
import UnixSocket

#if canImport(Glibc)
import Glibc
#endif

/// Limits on everything a client can make the daemon hold.
public struct SubscriberLimits: Sendable {
    /// Connections served at once; one more gets a `too-many-subscribers` line and is closed.
    public var maxSubscribers: Int
    /// Lines a subscriber may fall behind before it gets an `overflow` line and is disconnected.
    public var queueLimit: Int
    /// How long a connection being closed with a final line waits for its reader before it is dropped.
    public var closeGraceMicroseconds: UInt64

    public init(maxSubscribers: Int = 1024, queueLimit: Int = 4096, closeGraceMicroseconds: UInt64 = 10_000_000) {
        self.maxSubscribers = maxSubscribers
        self.queueLimit = queueLimit
        self.closeGraceMicroseconds = closeGraceMicroseconds
    }
}

/// The listening socket and every subscriber connection, all driven by the one event loop.
public final class SubscriberServer {
    private let loop: EventLoop
    private let listenFD: Int32
    private let limits: SubscriberLimits
    private let logger: Logger
    private let hello: () -> [UInt8]
    private var listenSource: EventSource?
    private var flushSource: EventSource?
    private var subscribers: [ObjectIdentifier: Subscriber] = [:]
    /// Subscribers with output waiting, flushed once per loop iteration.
    private var dirty: Set<ObjectIdentifier> = []

    public var subscriberCount: Int { subscribers.count }
    /// Connections refused or cut off, by reason, since start.
    public private(set) var refused = 0
    public private(set) var overflowed = 0

    /// Serves on `listenFD`, which must be a listening stream socket; the server closes it when it stops.
    public init(loop: EventLoop, listenFD: Int32, limits: SubscriberLimits, logger: Logger, hello: @escaping () -> [UInt8]) throws(SystemdError) {
        self.loop = loop
        self.listenFD = listenFD
        self.limits = limits
        self.logger = logger
        self.hello = hello
        listenSource = try loop.addIO(fd: listenFD, events: .readable) { [unowned self] _ in self.acceptAll() }
        flushSource = try loop.addPost { [unowned self] in self.flush() }
    }

    /// Sends `line` to every subscriber. Never blocks: a subscriber whose queue is full is cut off instead.
    public func broadcast(_ line: OutgoingLine) {
        for (key, subscriber) in subscribers where subscriber.state == .open {
            if subscriber.queue.enqueue(line) {
                dirty.insert(key)
            } else {
                overflow(subscriber)
            }
        }
    }

    /// Stops accepting and ends every connection with a `shutting-down` line (best effort, without waiting).
    public func stop() {
        listenSource = nil
        flushSource = nil
        let line = WireFormat.error(.shuttingDown, "sensd is stopping")
        for subscriber in subscribers.values {
            if subscriber.state == .open {
                subscriber.queue.dropUnstarted()
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: line, seq: nil))
            }
            _ = write(subscriber)
            drop(subscriber)
        }
        Syscall.close(listenFD)
    }

    // MARK: Connections

    private func acceptAll() {
        while true {
            let fd: Int32
            do {
                guard let accepted = try Syscall.accept(listenFD) else { return }
                fd = accepted
            } catch {
                // EMFILE and friends: leave the connection in the backlog and say so; the next event retries.
                logger.error("could not accept a subscriber: \(error)")
                return
            }
            guard subscribers.count < limits.maxSubscribers else {
                refused += 1
                let line = WireFormat.error(.tooManySubscribers, "sensd serves at most \(limits.maxSubscribers) subscribers at once", extra: [("limit", UInt64(limits.maxSubscribers))])
                _ = line.withUnsafeBytes { try? Syscall.send(fd, [$0]) }
                Syscall.close(fd)
                logger.warning("refused a subscriber: limit reached", metadata: ["limit": "\(limits.maxSubscribers)"])
                continue
            }
            let subscriber = Subscriber(fd: fd, queueLimit: limits.queueLimit)
            do {
                subscriber.source = try loop.addIO(fd: fd, events: .readable) { [unowned self, unowned subscriber] events in
                    self.handle(subscriber, events: events)
                }
            } catch {
                logger.error("could not watch a subscriber: \(error)")
                Syscall.close(fd)
                continue
            }
            let key = ObjectIdentifier(subscriber)
            subscribers[key] = subscriber
            _ = subscriber.queue.enqueue(OutgoingLine(bytes: hello(), seq: nil))
            dirty.insert(key)
            logger.debug("subscriber connected", metadata: ["subscribers": "\(subscribers.count)"])
        }
    }

    private func handle(_ subscriber: Subscriber, events: IOEvents) {
        if events.contains(.readable) && !subscriber.readClosed {
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
        var buffer = [UInt8](repeating: 0, count: 4096)
        while subscriber.isAttached && !subscriber.readClosed {
            let n: Int?
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(subscriber.fd, into: raw) }
            } catch {
                drop(subscriber)
                return
            }
            guard let n else { return }
            if n == 0 {
                // Half-closed (`socat -u`, `nc -N`): the client still reads, so keep sending. EPOLLHUP tells when it is gone.
                subscriber.readClosed = true
                updateInterest(subscriber)
                return
            }
            let outcomes = buffer.withUnsafeBytes { subscriber.reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            for outcome in outcomes {
                switch outcome {
                case .tooLong:
                    close(subscriber, with: ProtocolError(.requestTooLong, "request line exceeds \(WireFormat.maxRequestBytes) bytes"), extra: [("limit", UInt64(WireFormat.maxRequestBytes))])
                    return
                case .line(let line):
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                    guard !subscriber.requestReceived else {
                        close(subscriber, with: ProtocolError(.badRequest, "only one request line is accepted per connection"))
                        return
                    }
                    do {
                        _ = try SubscriptionRequest.parse(line)
                        subscriber.requestReceived = true
                    } catch {
                        close(subscriber, with: error)
                        return
                    }
                }
            }
        }
    }

    private func overflow(_ subscriber: Subscriber) {
        overflowed += 1
        let last = subscriber.queue.lastSeqWritten
        logger.warning("subscriber fell \(limits.queueLimit) events behind; disconnecting it", metadata: ["lastSeq": "\(last.map(String.init) ?? "none")"])
        var extra: [(String, UInt64)] = [("limit", UInt64(limits.queueLimit))]
        if let last { extra.append(("lastSeq", last)) }
        close(subscriber, with: ProtocolError(.overflow, "subscriber fell more than \(limits.queueLimit) events behind; reconnect to continue"), extra: extra)
    }

    /// Ends a connection with one final error line: unsent lines are dropped, the error is delivered
    /// once the client reads (within the grace period), then the connection closes.
    private func close(_ subscriber: Subscriber, with error: ProtocolError, extra: [(String, UInt64)] = []) {
        subscriber.state = .closing
        subscriber.queue.dropUnstarted()
        subscriber.queue.enqueueFinal(OutgoingLine(bytes: WireFormat.error(error.code, error.message, extra: extra), seq: nil))
        subscriber.readClosed = true
        let deadline = loop.monotonicNow + limits.closeGraceMicroseconds
        subscriber.graceTimer = try? loop.addTimer(monotonicDeadline: deadline) { [unowned self, unowned subscriber] in
            self.drop(subscriber)
        }
        dirty.insert(ObjectIdentifier(subscriber))
    }

    // MARK: Output

    private func flush() {
        guard !dirty.isEmpty else { return }
        let keys = dirty
        dirty.removeAll(keepingCapacity: true)
        for key in keys {
            if let subscriber = subscribers[key] { _ = write(subscriber) }
        }
    }

    /// Writes as much as the socket takes; false if the subscriber was dropped.
    private func write(_ subscriber: Subscriber) -> Bool {
        var failed = false
        while !subscriber.queue.isEmpty {
            var wouldBlock = false
            let n = subscriber.queue.write(maxChunks: 64) { chunks in
                do {
                    guard let n = try Syscall.send(subscriber.fd, chunks) else {
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
        if subscriber.state == .closing && subscriber.queue.isEmpty {
            drop(subscriber)
            return false
        }
        updateInterest(subscriber)
        return true
    }

    private func updateInterest(_ subscriber: Subscriber) {
        var events: IOEvents = []
        if !subscriber.readClosed { events.insert(.readable) }
        if !subscriber.queue.isEmpty { events.insert(.writable) }
        if events != subscriber.events {
            subscriber.events = events
            subscriber.source?.setIOEvents(events)
        }
    }

    private func drop(_ subscriber: Subscriber) {
        guard subscriber.isAttached else { return }
        let key = ObjectIdentifier(subscriber)
        subscribers[key] = nil
        dirty.remove(key)
        subscriber.detach()
        logger.debug("subscriber disconnected", metadata: ["subscribers": "\(subscribers.count)"])
    }
}

/// One connected client.
final class Subscriber {
    enum State { case open, closing }

    let fd: Int32
    var source: EventSource?
    var graceTimer: EventSource?
    var queue: SubscriberQueue
    var reader = LineReader(limit: WireFormat.maxRequestBytes)
    var state = State.open
    var readClosed = false
    var requestReceived = false
    var events: IOEvents = .readable
    private(set) var isAttached = true

    init(fd: Int32, queueLimit: Int) {
        self.fd = fd
        queue = SubscriberQueue(limit: queueLimit)
    }

    /// Releases the event sources and the descriptor; safe to call from the subscriber's own handler.
    func detach() {
        guard isAttached else { return }
        isAttached = false
        source = nil
        graceTimer = nil
        Syscall.close(fd)
    }

    deinit {
        if isAttached { Syscall.close(fd) }
    }
}
