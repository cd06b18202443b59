/// sensd's counters since it started, as a `{"stats": true}` request receives them (docs/protocol.md,
/// "Counters"): what `systemctl status sensd` shows, for monitoring.
package struct DaemonStats: Equatable, Sendable {
    /// Whether events reach the durable log.
    public enum LogState: String, Sendable {
        /// Every event is logged before any subscriber sees it.
        case written
        /// The last write failed (disk full or failing): events go out live only until a write succeeds.
        case failing
        /// sensd keeps no log (`--state-directory none`, or the directory is unusable).
        case none
    }

    public var version: String
    public var startedAt: EventTime
    public var sessions: Int
    public var subscribers: Int
    public var eventsSinceStart: UInt64
    public var lastSeq: UInt64
    public var oldestSeq: UInt64?
    /// Subscribers cut off for falling behind.
    public var overflowed: Int
    /// Connections refused at a limit.
    public var refused: Int
    /// Look-alike logind or systemd signals from other peers, dropped.
    public var forgedSignals: Int
    public var log: LogState
    /// Problems with the state directory set aside at start (`sensd --check-state` lists them).
    public var stateDamaged: Int
    /// Reports of failed logons read from the PAM hook's socket, and of those the ones that were not reports.
    public var failedLogonReports: Int = 0
    public var failedLogonReportsRejected: Int = 0

    public init(version: String, startedAt: EventTime, sessions: Int, subscribers: Int, eventsSinceStart: UInt64, lastSeq: UInt64,
                oldestSeq: UInt64?, overflowed: Int, refused: Int, forgedSignals: Int, log: LogState, stateDamaged: Int) {
        self.version = version
        self.startedAt = startedAt
        self.sessions = sessions
        self.subscribers = subscribers
        self.eventsSinceStart = eventsSinceStart
        self.lastSeq = lastSeq
        self.oldestSeq = oldestSeq
        self.overflowed = overflowed
        self.refused = refused
        self.forgedSignals = forgedSignals
        self.log = log
        self.stateDamaged = stateDamaged
    }
}

extension WireFormat {
    /// The answer to a `stats` request: one line, after which the connection ends.
    public static func stats(_ s: DaemonStats) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("stats", string: "sensd")
        w.field("version", string: s.version)
        w.field("startedAt", string: s.startedAt.rfc3339)
        w.field("sessions", integer: UInt64(s.sessions))
        w.field("subscribers", integer: UInt64(s.subscribers))
        w.field("eventsSinceStart", integer: s.eventsSinceStart)
        w.field("lastSeq", integer: s.lastSeq)
        if let oldestSeq = s.oldestSeq { w.field("oldestSeq", integer: oldestSeq) }
        w.field("overflowed", integer: UInt64(s.overflowed))
        w.field("refused", integer: UInt64(s.refused))
        w.field("forgedSignals", integer: UInt64(s.forgedSignals))
        w.field("log", string: s.log.rawValue)
        w.field("stateDamaged", integer: UInt64(s.stateDamaged))
        w.field("failedLogonReports", integer: UInt64(s.failedLogonReports))
        w.field("failedLogonReportsRejected", integer: UInt64(s.failedLogonReportsRejected))
        return w.finish()
    }
}
