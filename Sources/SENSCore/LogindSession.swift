/// What logind told sensd about one session, remembered from its start because removal carries no details.
public struct LogindSession: Equatable, Sendable {
    /// logind's session id (`c12`, or the audit session id where audit is on). Not unique over time.
    public var id: String
    public var uid: UInt32?
    public var userName: String?
    /// The session leader's pid (`Leader`).
    public var leader: UInt32?
    /// When logind created the session (`Timestamp`, CLOCK_REALTIME microseconds).
    public var startedAt: UInt64?

    public init(id: String, uid: UInt32? = nil, userName: String? = nil, leader: UInt32? = nil, startedAt: UInt64? = nil) {
        self.id = id
        self.uid = uid
        self.userName = userName
        self.leader = leader
        self.startedAt = startedAt
    }

    /// Whether `other` (same id) is provably a different session: logind reuses ids, e.g. `c1` after a restart
    /// without audit. Leader pid and start time tell a re-announced session from a new one.
    public func isDifferentSession(from other: LogindSession) -> Bool {
        if let a = leader, let b = other.leader, a != b { return true }
        if let a = startedAt, let b = other.startedAt, a != b { return true }
        if let a = uid, let b = other.uid, a != b { return true }
        return false
    }

    /// This record with every field `newer` knows replacing the old value.
    public func updated(with newer: LogindSession) -> LogindSession {
        LogindSession(
            id: id, uid: newer.uid ?? uid, userName: newer.userName ?? userName,
            leader: newer.leader ?? leader, startedAt: newer.startedAt ?? startedAt)
    }
}
