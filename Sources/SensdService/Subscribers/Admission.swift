import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// Who connected, as the kernel recorded it at connect.
struct Peer {
    let uid: UInt32
    let gid: UInt32
    let groups: [UInt32]
    /// Which socket it connected to.
    var dialect: Dialect = .jsonLines

    /// Root, or a member of one of `groups` (sensd's administrators' groups): such a peer takes from the
    /// reserved share and is sent LogonFailed events.
    func isAdministrator(_ administratorGroups: Set<UInt32>) -> Bool {
        uid == 0 || administratorGroups.contains(gid) || !administratorGroups.isDisjoint(with: groups)
    }
}

/// The door of the subscriber socket: accepts connections, a bounded number per wake-up, and lets in only
/// those within the limits (all together, per ordinary user, and the share kept for root and the
/// administrators); the others get one `too-many-subscribers` line naming the limit. With no descriptor left
/// it still refuses clearly, on a spare one, and pauses instead of spinning on the backlog.
final class Admission {
    private let loop: EventLoop
    private let logger: Logger
    private let limits: SubscriberLimits
    /// The listening sockets, one per protocol: every limit counts the connections through both, so that
    /// a user cannot double her share by using both.
    private var doors: [Door] = []
    /// Kept open to accept and refuse a connection when no other descriptor is left (EMFILE).
    private var spare: Descriptor?
    /// While accepting fails for want of descriptors: when to try again.
    private var acceptRetry: EventSource?
    private var refusalWarning = RateLimitedWarning()
    private var acceptWarning = RateLimitedWarning()
    /// Connections held, in all and by the uid that opened them.
    private(set) var quota: AdmissionQuota
    /// Where the connections refused at a limit since start are counted.
    private let counts: SubscriberCounts
    var refused: Int { counts.refused }

    /// Connections accepted per wake-up at most. The listening socket, every client and the bus share one
    /// priority, and sd-event gives sources that stay ready turns in the order they became ready: with the
    /// work of each turn bounded (this many accepts, one read of a request, one refill of a replay), no
    /// amount of client activity holds the bus back for more than a few turns, and clients joining during a
    /// storm that never pauses are still answered.
    static let acceptsPerWakeup = 16

    /// Will accept on `listener` (the JSON-lines protocol) and `varlinkListener`, which must be listening
    /// stream sockets; closed when the admission goes.
    init(loop: EventLoop, listener: consuming Descriptor, varlinkListener: consuming Descriptor? = nil, limits: SubscriberLimits, counts: SubscriberCounts = SubscriberCounts(), logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.limits = limits
        self.counts = counts
        quota = AdmissionQuota(limits: limits)
        doors.append(Door(.jsonLines, listener))
        if let varlink = varlinkListener.take() { doors.append(Door(.varlink, varlink)) }
        spare = Syscall.openSpareDescriptor()
    }

    /// Starts accepting: each connection let in (already counted) goes to `server`, which owns this
    /// admission. One served is reported gone with ``left(uid:)``.
    func start(serving server: some ConnectionServer) throws(SystemdError) {
        for door in doors {
            guard let raw = door.listener?.rawValue else { continue }
            door.source = try loop.addIO(fd: raw, events: .readable) { [unowned self, unowned server, unowned door] _ in self.acceptAll(door, server) }
        }
    }

    /// Stops accepting and closes the listening sockets: a client connecting now is refused by the kernel.
    func stop() {
        for door in doors {
            door.source = nil
            door.listener = nil
        }
        acceptRetry = nil
        spare = nil
    }

    /// A connection let in has gone.
    func left(uid: UInt32) {
        quota.left(uid: uid)
    }

    private func acceptAll(_ door: Door, _ server: some ConnectionServer) {
        guard let listening = door.listener?.rawValue else { return }
        for _ in 0..<Self.acceptsPerWakeup {
            let accepted: Descriptor?
            do {
                accepted = try Syscall.accept(listening)
            } catch where error.errno == EMFILE || error.errno == ENFILE {
                outOfDescriptors(error, door: door)
                return
            } catch {
                warn(&acceptWarning, "could not accept a subscriber: \(error)")
                return
            }
            guard let fd = accepted else { return }
            consider(fd, door.dialect, server)
        }
    }

    /// No descriptor left: the spare one makes room to accept the next connection and tell it why it is
    /// refused; then accepting pauses briefly instead of spinning on a backlog it cannot take.
    private func outOfDescriptors(_ error: SystemCallError, door: Door) {
        if spare != nil, let listening = door.listener?.rawValue {
            spare = nil
            if let fd = try? Syscall.accept(listening) {
                refuse(fd, door.dialect, ProtocolError(.tooManySubscribers, "sensd has no file descriptor left for another subscriber"), limit: limits.maxSubscribers)
            }
            spare = Syscall.openSpareDescriptor()
        }
        warn(&acceptWarning, "could not accept a subscriber (\(error)); pausing accepts for 100 ms")
        for door in doors { door.source?.setEnabled(false) }
        acceptRetry = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + 100_000) { [unowned self] in
            self.acceptRetry = nil
            for door in self.doors { door.source?.setEnabled(true) }
        }
    }

    /// Lets a new connection in, unless its user or everyone together is at the limit.
    private func consider(_ fd: consuming Descriptor, _ dialect: Dialect, _ server: some ConnectionServer) {
        guard let credentials = try? Syscall.peerCredentials(fd.rawValue) else { return }
        let peer = Peer(uid: credentials.uid, gid: credentials.gid, groups: credentials.groups, dialect: dialect)
        if let (refusal, limit) = quota.refusal(for: peer) { return refuse(fd, dialect, refusal, limit: limit) }
        quota.admit(peer)
        if !server.serve(fd, peer) { left(uid: peer.uid) }
    }

    private func refuse(_ fd: consuming Descriptor, _ dialect: Dialect, _ error: ProtocolError, limit: Int) {
        counts.refused += 1
        let extra = [("limit", UInt64(limit))]
        let line = switch dialect {
        case .jsonLines: WireFormat.error(error.code, error.message, extra: extra)
        case .varlink: Varlink.error(error, extra: extra)
        }
        let raw = fd.rawValue
        _ = line.withUnsafeBytes { try? Syscall.send(raw, [$0]) }
        // What the client already sent (a Varlink client calls at once) is read and dropped: closing a Unix
        // socket with unread input resets the connection, and the client would get ECONNRESET instead of
        // the line naming the limit.
        var scratch = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<16 {
            let n = scratch.withUnsafeMutableBytes { buffer in (try? Syscall.read(raw, into: buffer)) ?? nil }
            guard let n, n > 0 else { break }
        }
        _ = consume fd
        warn(&refusalWarning, "refused a subscriber: \(error.message)")
    }

    private func warn(_ limiter: inout RateLimitedWarning, _ message: String) {
        logger.warning(&limiter, message, now: loop.monotonicNow)
    }
}

/// One listening socket and the protocol spoken on it.
private final class Door {
    let dialect: Dialect
    /// nil once stopped.
    var listener: Descriptor?
    var source: EventSource?

    init(_ dialect: Dialect, _ listener: consuming Descriptor) {
        self.dialect = dialect
        self.listener = .some(listener)
    }
}

/// What an ``Admission`` hands the connections it lets in to: the subscriber server.
protocol ConnectionServer: AnyObject {
    /// Serves a connection let in (already counted); false if it cannot be served after all.
    func serve(_ fd: consuming Descriptor, _ peer: Peer) -> Bool
}

/// Who may connect now: the connections held, in all and per ordinary user, against the limits. Pure, so
/// each rule is checked without a socket; ``Admission`` keeps one.
struct AdmissionQuota {
    let limits: SubscriberLimits
    private(set) var admitted = 0
    private var perUser: [UInt32: Int] = [:]

    init(limits: SubscriberLimits) {
        self.limits = limits
    }

    /// Connections `uid` holds now.
    func held(by uid: UInt32) -> Int { perUser[uid, default: 0] }

    /// Why `peer` may not connect now, and the limit to name; nil if it may.
    func refusal(for peer: Peer) -> (ProtocolError, Int)? {
        if admitted >= limits.maxSubscribers {
            return (ProtocolError(.tooManySubscribers, "sensd serves at most \(limits.maxSubscribers) subscribers at once"), limits.maxSubscribers)
        }
        guard !peer.isAdministrator(limits.administratorGroups) else { return nil }
        let open = limits.maxSubscribers - limits.reservedForAdministrators
        if admitted >= open {
            return (ProtocolError(.tooManySubscribers, "sensd serves at most \(open) subscribers of ordinary users at once (\(limits.reservedForAdministrators) more are kept for root and administrators)"), open)
        }
        let held = held(by: peer.uid)
        if held >= limits.maxPerUser {
            return (ProtocolError(.tooManySubscribers, "uid \(peer.uid) already has \(held) connections to sensd, the most one user may hold"), limits.maxPerUser)
        }
        return nil
    }

    /// Counts a connection let in.
    mutating func admit(_ peer: Peer) {
        admitted += 1
        perUser[peer.uid, default: 0] += 1
    }

    /// A connection let in has gone.
    mutating func left(uid: UInt32) {
        admitted -= 1
        if let n = perUser[uid] { perUser[uid] = n > 1 ? n - 1 : nil }
    }
}

extension Logger {
    /// Says a warning a client can provoke at most once per interval, with how many were not said.
    func warning(_ limiter: inout RateLimitedWarning, _ message: String, now: UInt64) {
        guard let suppressed = limiter.due(now: now) else { return }
        warning("\(message)\(suppressed > 0 ? " (\(suppressed) more like it in the last \(limiter.intervalMicroseconds / 1_000_000) s not logged)" : "")")
    }
}
