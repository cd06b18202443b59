import SENSClient

/// A check of who is logged in, following the Monitoring Plugins guidelines: one status line with
/// performance data, and the exit code 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN).
public struct UsersCheck: Sendable {
    public enum Status: Int32, Sendable, Comparable {
        case ok = 0, warning = 1, critical = 2, unknown = 3

        public var label: String {
            switch self {
            case .ok: "OK"
            case .warning: "WARNING"
            case .critical: "CRITICAL"
            case .unknown: "UNKNOWN"
            }
        }

        public static func < (a: Status, b: Status) -> Bool { a.rawValue < b.rawValue }
    }

    /// What the thresholds apply to.
    public enum Measure: String, Sendable, CaseIterable {
        /// Distinct users with at least one session.
        case users
        case sessions
    }

    public var measure: Measure = .users
    public var warning: ThresholdRange?
    public var critical: ThresholdRange?

    public init(measure: Measure = .users, warning: ThresholdRange? = nil, critical: ThresholdRange? = nil) {
        self.measure = measure
        self.warning = warning
        self.critical = critical
    }

    /// The plugin's line and exit status for the sessions of a snapshot (already filtered as asked).
    public func evaluate(_ sessions: [Snapshot.Session]) -> (status: Status, line: String) {
        let users = Set(sessions.map { $0.uid.map { "uid \($0)" } ?? $0.userName ?? "session \($0.sessionId)" }).count
        let value = Double(measure == .users ? users : sessions.count)
        let status: Status = critical?.alerts(value) == true ? .critical : warning?.alerts(value) == true ? .warning : .ok
        let names = Set(sessions.compactMap(\.userName)).sorted()
        var text = "\(users) user\(users == 1 ? "" : "s") logged in, \(sessions.count) session\(sessions.count == 1 ? "" : "s")"
        if !names.isEmpty { text += " (\(Self.abbreviated(names)))" }
        let thresholds = (usersWarn: measure == .users ? warning?.text ?? "" : "", usersCrit: measure == .users ? critical?.text ?? "" : "",
                          sessionsWarn: measure == .sessions ? warning?.text ?? "" : "", sessionsCrit: measure == .sessions ? critical?.text ?? "" : "")
        let perfdata = "users=\(users);\(thresholds.usersWarn);\(thresholds.usersCrit);0; sessions=\(sessions.count);\(thresholds.sessionsWarn);\(thresholds.sessionsCrit);0;"
        return (status, "USERS \(status.label) - \(text) | \(perfdata)")
    }

    /// The line when sensd cannot be asked.
    public static func unknown(_ reason: String) -> (status: Status, line: String) {
        (.unknown, "USERS UNKNOWN - \(reason)")
    }

    /// The first names, and how many more: a status line stays one short line on a host with hundreds of users.
    static func abbreviated(_ names: [String], limit: Int = 10) -> String {
        names.count <= limit ? names.joined(separator: ", ") : names.prefix(limit).joined(separator: ", ") + " and \(names.count - limit) more"
    }
}

extension Snapshot {
    /// The sessions that are logons: every class but the service managers'.
    public static func logons(_ sessions: [Snapshot.Session]) -> [Snapshot.Session] {
        sessions.filter { !["manager", "manager-early"].contains($0.sessionClass ?? "") }
    }
}
