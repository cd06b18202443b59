import SENSCore
import Systemd

/// What the daemon's parts know, gathered in one place for the two that ask: the subscriber server (the
/// seq a hello line names, the pending events at a flush, the snapshot, a `stats` request) and the service
/// manager (`systemctl status`). It reads the parts and never calls back into the server: the server and
/// its admission keep their counts in ``SubscriberCounts``, which both are given. So the daemon makes this,
/// then the server with it, and nothing is wired after the fact.
final class DaemonState: SubscriberFeed {
    private let loop: EventLoop
    private let pipeline: EventPipeline
    private let sessions: LogindSource
    private let durability: Durability?
    private let subscribers: SubscriberCounts
    private let failedLogons: FailedLogonCounts
    private let keepsNoLog: Bool
    /// When this run of sensd started, for `stats`.
    let startedAt: EventTime
    /// Until sensd is ready, `systemctl status` shows what systemd shows for a starting service.
    private var ready = false
    private var statusTimer: EventSource?

    init(loop: EventLoop, pipeline: EventPipeline, sessions: LogindSource, durability: Durability?, subscribers: SubscriberCounts,
         failedLogons: FailedLogonCounts = FailedLogonCounts(), stateDirectory: String?) {
        self.failedLogons = failedLogons
        self.loop = loop
        self.pipeline = pipeline
        self.sessions = sessions
        self.durability = durability
        self.subscribers = subscribers
        keepsNoLog = stateDirectory != nil && durability?.log == nil
        startedAt = EventTime(microsecondsSinceEpoch: Int64(loop.now))
    }

    /// sensd is ready: from now on changes are shown.
    func becameReady() {
        ready = true
    }

    // MARK: SubscriberFeed

    var emittedSeq: UInt64 { pipeline.emittedSeq }

    func flushPending(to server: any EventSubscribers) {
        pipeline.flush(to: server)
    }

    func openSessions() -> (seq: UInt64, sessions: [OpenSession]) {
        // Every stamped event is reflected in the tracker: the snapshot is the state at the last seq given out.
        let host = pipeline.host
        return (pipeline.lastSeq, sessions.remembered.map { OpenSession($0.session, logoffInitiated: $0.logoffInitiated, host: host) })
    }

    func subscribersChanged() {
        changed()
    }

    /// What `systemctl status` shows, as numbers: the answer to a `{"stats": true}` request.
    func stats() -> DaemonStats {
        let logState: DaemonStats.LogState = durability?.log == nil ? .none : durability?.logHealth == .failing ? .failing : .written
        var stats = DaemonStats(
            version: Release.version, startedAt: startedAt, sessions: sessions.sessionCount, subscribers: subscribers.connected,
            eventsSinceStart: UInt64(pipeline.eventsSinceStart), lastSeq: pipeline.emittedSeq, oldestSeq: durability?.log?.oldestSeq,
            overflowed: subscribers.overflowed, refused: subscribers.refused, forgedSignals: sessions.ignoredSignals, log: logState,
            stateDamaged: durability?.setAside.count ?? 0)
        stats.failedLogonReports = failedLogons.received
        stats.failedLogonReportsRejected = failedLogons.rejected
        return stats
    }

    // MARK: systemctl status

    /// What `systemctl status` shows.
    var status: String {
        let sessionCount = sessions.sessionCount, connected = subscribers.connected, events = pipeline.eventsSinceStart
        var parts = [
            "\(sessionCount) session\(sessionCount == 1 ? "" : "s") tracked",
            "\(connected) subscriber\(connected == 1 ? "" : "s")",
            "\(events) event\(events == 1 ? "" : "s") since start",
            "last seq \(pipeline.lastSeq)",
        ]
        if subscribers.overflowed > 0 { parts.append("\(subscribers.overflowed) cut off for falling behind") }
        if subscribers.refused > 0 { parts.append("\(subscribers.refused) connections refused at a limit") }
        if sessions.ignoredSignals > 0 { parts.append("\(sessions.ignoredSignals) forged signals ignored") }
        if let damaged = durability?.setAside.count, damaged > 0 {
            parts.append("STATE DAMAGED AT START: \(damaged) problem\(damaged == 1 ? "" : "s") set aside, see sensd --check-state")
        }
        if durability?.logHealth == .failing { parts.append("EVENT LOG NOT WRITTEN (disk full or failing): live only") }
        else if keepsNoLog { parts.append("NO EVENT LOG: live only") }
        return parts.joined(separator: ", ")
    }

    /// Something shown changed: STATUS= goes out at most once a second, and only after a change, so that
    /// an idle sensd never wakes for it.
    func changed() {
        guard ready, statusTimer == nil else { return }
        statusTimer = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + 1_000_000) { [unowned self] in
            self.statusTimer = nil
            ServiceManager.notify("STATUS=\(self.status)")
        }
    }
}

/// The subscriber server's counts, kept by the server and its admission and read by ``DaemonState``.
final class SubscriberCounts {
    /// Connections served now.
    var connected = 0
    /// Subscribers cut off for falling behind, since start.
    var overflowed = 0
    /// Connections refused at a limit, since start.
    var refused = 0

    init() {}
}
