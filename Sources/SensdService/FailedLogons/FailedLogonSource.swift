import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// What the failed-logon source reports to: the daemon, which publishes the drafts like logind's.
protocol FailedLogonObserver: AnyObject {
    func publish(_ drafts: [EventDraft])
}

/// How many reports came: written by ``FailedLogonSource``, read for `stats`.
final class FailedLogonCounts {
    /// Datagrams read from the socket.
    var received = 0
    /// Of those, the ones that were not a report sensd could read.
    var rejected = 0
}

/// Failed logons reported by the PAM hook: one datagram per failure on a socket only root can write to
/// (mode 0600, sensd's own or passed by sensd-failures.socket). Each is looked up in the user database
/// (`targetExists`, `uid`), then goes through the ``FailureGate`` (duplicates, floods) to the observer.
///
/// Bounded whatever a flood does: a wake-up reads at most ``datagramsPerWakeup`` datagrams, so that logind's
/// signals and the subscribers are served between them; the kernel's queue holds the rest, and when it is
/// full the hook's non-blocking send fails and the login goes on unreported (the hook never waits).
final class FailedLogonSource {
    static let datagramsPerWakeup = 64

    private let loop: EventLoop
    private let logger: Logger
    private let socket: Descriptor
    private var source: EventSource?
    private var timer: EventSource?
    private var gate: FailureGate
    private weak var observer: FailedLogonObserver?
    private var malformed = RateLimitedWarning(intervalMicroseconds: 60_000_000)
    private let counts: FailedLogonCounts

    init(socket: consuming Descriptor, window: Int64, counts: FailedLogonCounts, loop: EventLoop, logger: Logger) {
        self.socket = socket
        self.counts = counts
        gate = FailureGate(window: window)
        self.loop = loop
        self.logger = logger
    }

    func start(reportingTo observer: FailedLogonObserver) throws {
        self.observer = observer
        source = try loop.addIO(fd: socket.rawValue, events: .readable) { [unowned self] _ in self.readable() }
    }

    private func readable() {
        var drafts: [EventDraft] = []
        let now = Int64(loop.now)
        for _ in 0..<Self.datagramsPerWakeup {
            guard let datagram = try? Syscall.receiveDatagram(socket.rawValue, limit: FailureReport.maximumDatagram) else { break }
            counts.received += 1
            guard !datagram.truncated, let items = FailureReport.fromPAM(datagram.bytes) else {
                counts.rejected += 1
                logger.warning(&malformed, "a failed-logon report that is not what sensd-pam-report sends (at most \(FailureReport.maximumDatagram) bytes of JSON with \"user\"); ignored", now: loop.monotonicNow)
                continue
            }
            let uid = Syscall.userID(named: items.user)
            let report = FailureReport(
                userName: items.user, uid: uid, targetExists: uid != nil, service: items.service, tty: items.tty,
                remoteHost: items.rhost, reason: uid != nil ? .badPassword : .unknownUser, source: "pam")
            drafts += gate.admit(report, now: now)
        }
        if !drafts.isEmpty { observer?.publish(drafts) }
        armTimer(now: now)
    }

    /// Wakes up when the first counting window ends, to publish its summary.
    private func armTimer(now: Int64) {
        guard timer == nil, let deadline = gate.nextDeadline else { return }
        let wait = UInt64(max(0, deadline - now))
        timer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + wait, accuracy: 100_000) { [unowned self] in
            self.timer = nil
            let now = Int64(self.loop.now)
            let summaries = self.gate.expire(now: now)
            if !summaries.isEmpty { self.observer?.publish(summaries) }
            self.armTimer(now: now)
        }
    }

    /// The socket systemd passed (sensd-failures.socket), or one sensd creates at `path`, mode 0600.
    static func openSocket(at path: String, created: inout Bool) throws -> Descriptor {
        if let fd = ServiceManager.listenFDs().first(where: { ServiceManager.isUnixDatagram($0, path: path) }) {
            let taken = Descriptor(taking: fd)
            try Syscall.setNonBlocking(taken.rawValue)
            return taken
        }
        try ListeningSocket.checkSocketPlace(path)
        let fd = try Syscall.unixDatagramSocket()
        try Syscall.bind(fd.rawValue, path: path, mode: 0o600)
        created = true
        return fd
    }
}
