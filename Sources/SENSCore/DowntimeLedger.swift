/// One journal entry as read: its time (CLOCK_REALTIME microseconds) and the fields the ledger uses.
package struct JournalRecord: Equatable, Sendable {
    public var realtime: UInt64
    public var fields: [String: String]

    public init(realtime: UInt64, fields: [String: String]) {
        self.realtime = realtime
        self.fields = fields
    }
}

/// A session sensd did not see, rebuilt from the journal: when it began and ended, and whose it was.
package struct MissedSession: Equatable, Sendable {
    public var id: String
    public var userName: String?
    public var leader: UInt32?
    /// CLOCK_REALTIME microseconds.
    public var startedAt: UInt64
    public var endedAt: UInt64
    /// Which records told of it: systemd's session scope, logind's own entries, or both.
    public var sources: Set<Source>

    public enum Source: String, Sendable, Hashable {
        case scope, logind
    }

    public init(id: String, userName: String?, leader: UInt32? = nil, startedAt: UInt64, endedAt: UInt64, sources: Set<Source>) {
        self.id = id
        self.userName = userName
        self.leader = leader
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.sources = sources
    }

    /// Its Logon, LogoffInitiated and Logoff, observed late, at the times the journal gives, with
    /// `reason: "sensd-down"` on the ending two.
    public func drafts(uid: UInt32?) -> [EventDraft] {
        let session = LogindSession(id: id, uid: uid, userName: userName, leader: leader, startedAt: startedAt)
        let unresolved = userName == nil ? SessionTracker.unresolvedReason : nil
        let start = EventTime(microsecondsSinceEpoch: Int64(startedAt)), end = EventTime(microsecondsSinceEpoch: Int64(endedAt))
        return [
            EventDraft(event: .logon, session: session, unresolved: unresolved, observedLate: true, time: start),
            EventDraft(event: .logoffInitiated, session: session, unresolved: unresolved, observedLate: true, reason: DowntimeLedger.reason, time: end),
            EventDraft(event: .logoff, session: session, unresolved: unresolved, observedLate: true, reason: DowntimeLedger.reason, time: end),
        ]
    }
}

/// A session sensd has reported (its log, or this start-up): its id and a moment in its life (its start
/// where known, else the time of the event).
package struct KnownSession: Equatable, Sendable {
    public var id: String
    public var at: UInt64

    public init(id: String, at: UInt64) {
        self.id = id
        self.at = at
    }
}

/// The sessions that began and ended while sensd was not running, from what systemd (PID 1) and logind log
/// for every session (docs/systemd-versions.md, "Records of sessions in the journal"):
/// - systemd, for each session's scope, every class included: "Started session-ID.scope - Session ID of User
///   NAME." (`39f53479d3a045ac8e11786248231fbf`), then "Deactivated successfully" (`7ad2d189...`) or
///   "Failed with result" (`d9b373ed...`), paired by `INVOCATION_ID`;
/// - logind, for sessions of every class but `background`: `SESSION_START` (`8d45620c...`) and `SESSION_STOP`
///   (`33549394...`) with `SESSION_ID`, `USER_ID` (the user name) and `LEADER`. From v256 the user's
///   `manager` session has these and no scope.
///
/// Records are fed in journal order; a session is one whose start and end were both seen. No I/O.
package struct DowntimeLedger: Sendable {
    public static let reason = "sensd-down"
    public static let unitStarted = "39f53479d3a045ac8e11786248231fbf"
    public static let unitDeactivated = "7ad2d189f7e94e70a38c781354912448"
    public static let unitFailed = "d9b373ed55a64feb8242e02dbe79a49c"
    public static let sessionStarted = "8d45620c1a4348dbb17410da57c60c66"
    public static let sessionStopped = "3354939424b4456d9802ca8333ed424a"
    /// How far apart logind's and systemd's records of one session, or sensd's own record of it, may be.
    public static let tolerance: UInt64 = 30_000_000

    /// The journal matches, as alternatives: systemd's unit records from PID 1, logind's session records from
    /// logind running as root. Both sides are fields journald sets itself, which no other process can forge.
    public static let matchGroups: [[String]] = [
        ["MESSAGE_ID=\(unitStarted)", "MESSAGE_ID=\(unitDeactivated)", "MESSAGE_ID=\(unitFailed)", "_PID=1"],
        ["MESSAGE_ID=\(sessionStarted)", "MESSAGE_ID=\(sessionStopped)", "_COMM=systemd-logind", "_UID=0"],
    ]
    /// The fields read from each record.
    public static let fields = ["MESSAGE_ID", "UNIT", "INVOCATION_ID", "MESSAGE", "SESSION_ID", "USER_ID", "LEADER"]

    private struct Opening {
        var id: String
        var userName: String?
        var leader: UInt32?
        var at: UInt64
    }

    private var scopesOpen: [String: Opening] = [:]
    private var logindOpen: [String: Opening] = [:]
    private var scopesEnded: [MissedSession] = []
    private var logindEnded: [MissedSession] = []
    /// Records read, for the log.
    public private(set) var records = 0

    public init() {}

    /// The session id of a unit name `session-ID.scope`.
    public static func sessionID(ofScope unit: String) -> String? {
        guard unit.hasPrefix("session-"), unit.hasSuffix(".scope") else { return nil }
        let id = unit.dropFirst("session-".count).dropLast(".scope".count)
        return id.isEmpty ? nil : String(id)
    }

    /// The user in a scope's start message, "... Session ID of User NAME." (logind sets the description; v252
    /// says "Started Session ID of User NAME.", later ones put the unit name first).
    public static func userName(inScopeMessage message: String, id: String) -> String? {
        let marker = "Session \(id) of User "
        guard let range = message.firstRange(of: marker) else { return nil }
        var name = message[range.upperBound...]
        if name.hasSuffix(".") { name = name.dropLast() }
        return name.isEmpty || name.contains(" ") ? nil : String(name)
    }

    public mutating func add(_ record: JournalRecord) {
        records += 1
        let f = record.fields
        switch f["MESSAGE_ID"] {
        case Self.unitStarted:
            guard let unit = f["UNIT"], let id = Self.sessionID(ofScope: unit), let invocation = f["INVOCATION_ID"] else { return }
            scopesOpen[invocation] = Opening(id: id, userName: f["MESSAGE"].flatMap { Self.userName(inScopeMessage: $0, id: id) }, at: record.realtime)
        case Self.unitDeactivated, Self.unitFailed:
            guard let invocation = f["INVOCATION_ID"], let open = scopesOpen.removeValue(forKey: invocation) else { return }
            scopesEnded.append(MissedSession(id: open.id, userName: open.userName, startedAt: open.at, endedAt: record.realtime, sources: [.scope]))
        case Self.sessionStarted:
            guard let id = f["SESSION_ID"] else { return }
            logindOpen[id] = Opening(id: id, userName: f["USER_ID"], leader: f["LEADER"].flatMap { UInt32($0) }, at: record.realtime)
        case Self.sessionStopped:
            guard let id = f["SESSION_ID"], let open = logindOpen.removeValue(forKey: id) else { return }
            logindEnded.append(MissedSession(id: id, userName: open.userName ?? f["USER_ID"], leader: open.leader, startedAt: open.at, endedAt: record.realtime, sources: [.logind]))
        default:
            return
        }
    }

    /// The sessions that began at or after `from` and ended, in the order they began, one per session (a
    /// scope and logind's records of the same session merged), without those sensd knows.
    public func missed(from: UInt64, known: [KnownSession]) -> [MissedSession] {
        var sessions: [MissedSession] = []
        var fromLogind = logindEnded
        for scope in scopesEnded {
            var merged = scope
            if let i = fromLogind.firstIndex(where: { $0.id == scope.id && Self.near($0.startedAt, scope.startedAt) }) {
                let l = fromLogind.remove(at: i)
                // logind's name is the user record's; its stop is the session's removal, after the scope.
                merged.userName = l.userName ?? scope.userName
                merged.leader = l.leader
                merged.startedAt = min(l.startedAt, scope.startedAt)
                merged.endedAt = max(l.endedAt, scope.endedAt)
                merged.sources = [.scope, .logind]
            }
            sessions.append(merged)
        }
        sessions += fromLogind
        var byID: [String: [UInt64]] = [:]
        for k in known { byID[k.id, default: []].append(k.at) }
        return sessions.filter { s in
            guard s.startedAt >= from else { return false }
            // Known if sensd has a record of the same id from this session's life.
            let lifetime = (s.startedAt >= Self.tolerance ? s.startedAt - Self.tolerance : 0)...(s.endedAt + Self.tolerance)
            return !(byID[s.id] ?? []).contains { lifetime.contains($0) }
        }.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
    }

    private static func near(_ a: UInt64, _ b: UInt64) -> Bool {
        (a > b ? a - b : b - a) <= tolerance
    }
}
