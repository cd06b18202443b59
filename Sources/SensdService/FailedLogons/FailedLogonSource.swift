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

/// Where failed logons come from (`--failed-logon-sources`).
public struct FailedLogonSources: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The PAM hook's reports on the root-only socket.
    public static let pam = FailedLogonSources(rawValue: 1)
    /// Audit's records of failed authentications, through the journal.
    public static let audit = FailedLogonSources(rawValue: 2)
    /// sshd's own messages, through the journal: a heuristic, off unless named.
    public static let sshdMessages = FailedLogonSources(rawValue: 4)

    public static let names: [(String, FailedLogonSources)] = [("pam", .pam), ("audit", .audit), ("sshd-message", .sshdMessages)]
}

/// Failed logons from their sources, through one ``FailureGate`` (duplicates across sources, floods) to the
/// observer:
/// - the PAM hook: one datagram per failure on a socket only root can write to (mode 0600, sensd's own or
///   passed by sensd-failures.socket), looked up in the user database (`targetExists`, `uid`);
/// - the journal: audit's records (`USER_AUTH`, `USER_LOGIN` with `res=failed`) and, where asked, sshd's
///   messages, matched by ``FailureRecords``.
///
/// Bounded whatever a flood does: a wake-up reads at most ``datagramsPerWakeup`` datagrams or journal
/// entries, so that logind's signals and the subscribers are served between them; the kernel's queue holds
/// the rest, and when it is full the hook's non-blocking send fails and the login goes on unreported (the
/// hook never waits).
final class FailedLogonSource {
    static let datagramsPerWakeup = 64

    private let loop: EventLoop
    private let logger: Logger
    private var socket: Descriptor?
    private let journal: JournalFollower?
    private let sources: FailedLogonSources
    private var socketSource: EventSource?
    private var journalSource: EventSource?
    /// Reads on when a wake-up left journal entries unread (the journal's descriptor says only that
    /// something was written, once).
    private var journalBacklog: EventSource?
    private var timer: EventSource?
    private var gate: FailureGate
    private weak var observer: FailedLogonObserver?
    private var malformed = RateLimitedWarning(intervalMicroseconds: 60_000_000)
    private let counts: FailedLogonCounts

    init(socket: consuming Descriptor?, journal: JournalFollower?, sources: FailedLogonSources, window: Int64, counts: FailedLogonCounts,
         loop: EventLoop, logger: Logger) {
        self.socket = socket
        self.journal = journal
        self.sources = sources
        self.counts = counts
        gate = FailureGate(window: window)
        self.loop = loop
        self.logger = logger
    }

    func start(reportingTo observer: FailedLogonObserver) throws {
        self.observer = observer
        if let fd = socket?.rawValue {
            socketSource = try loop.addIO(fd: fd, events: .readable) { [unowned self] _ in self.readable() }
        }
        if let journal {
            journalSource = try loop.addIO(fd: try journal.descriptor(), events: .readable) { [unowned self] _ in self.journalChanged() }
            journalBacklog = try loop.addDefer { [unowned self] in self.journalChanged() }
            // Entries written between the open and now.
            journalChanged()
        }
    }

    private func readable() {
        guard let fd = socket?.rawValue else { return }
        var drafts: [EventDraft] = []
        let now = Int64(loop.now)
        for _ in 0..<Self.datagramsPerWakeup {
            guard let datagram = try? Syscall.receiveDatagram(fd, limit: FailureReport.maximumDatagram) else { break }
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

    /// New journal entries: audit's records and sshd's messages, as many as one wake-up reads; if more
    /// wait, the loop comes back for them once it has nothing more urgent.
    private func journalChanged() {
        guard let journal else { return }
        let (entries, more) = journal.newEntries(limit: Self.datagramsPerWakeup)
        journalBacklog?.setEnabled(more, oneshot: true)
        var drafts: [EventDraft] = []
        let now = Int64(loop.now)
        for entry in entries {
            let time = EventTime(microsecondsSinceEpoch: Int64(entry.realtime))
            var found: (FailureReport, Bool)?
            if sources.contains(.audit), let report = FailureRecords.audit(entry.fields, time: time) {
                found = (report, false)
            } else if sources.contains(.sshdMessages),
                      let match = FailureRecords.sshd(identifier: entry.fields["SYSLOG_IDENTIFIER"], message: entry.fields["MESSAGE"], time: time) {
                found = (match.report, match.closing)
            }
            guard let (found, closing) = found else { continue }
            var report = found
            if report.targetExists == nil || report.uid == nil {
                let uid = Syscall.userID(named: report.userName)
                report.uid = uid
                report.targetExists = uid != nil
                if uid == nil, report.reason == .badPassword { report.reason = .unknownUser }
            }
            drafts += gate.admit(report, now: now, closing: closing)
        }
        if !drafts.isEmpty { observer?.publish(drafts) }
        armTimer(now: now)
    }

    /// The journal follower for `sources` (audit, sshd's messages), from the system journal or the journal
    /// files in `directory`; nil when neither is asked for. A journal sensd may not read is said and left out.
    static func openJournal(for sources: FailedLogonSources, directory: String?, logger: Logger) -> JournalFollower? {
        var groups: [[String]] = []
        if sources.contains(.audit) { groups.append(FailureRecords.auditMatches) }
        if sources.contains(.sshdMessages) { groups.append(FailureRecords.sshdMatches) }
        guard !groups.isEmpty else { return nil }
        do {
            return try JournalFollower(matching: groups, fields: FailureRecords.fields, directory: directory)
        } catch {
            logger.warning("cannot follow the journal for failed logons (\(error)): only the PAM hook's reports")
            return nil
        }
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
