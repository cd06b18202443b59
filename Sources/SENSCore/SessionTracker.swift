/// The sessions logind has announced, and the SENS events their changes mean. No I/O: the logind source
/// feeds it what the bus said and publishes what it returns.
public struct SessionTracker: Sendable {
    /// Said on a `Logoff` whose session ended before sensd learned its user.
    public static let unresolvedReason = "the session ended before sensd could learn its user"

    struct Tracked: Sendable {
        var session: LogindSession
        /// Details were asked for and have not arrived.
        var fetchPending: Bool
    }

    private var tracked: [String: Tracked] = [:]

    public init() {}

    /// How many sessions are being tracked.
    public var count: Int { tracked.count }

    /// The session tracked under `id`, if any.
    public func session(_ id: String) -> LogindSession? { tracked[id]?.session }

    /// Every tracked session id.
    public var ids: [String] { Array(tracked.keys) }

    /// logind announced `id` (`SessionNew`, or an enumeration listed it, with what the listing said).
    /// The caller fetches the details next and reports them with ``detailsArrived(_:)``.
    public mutating func announced(id: String, listed: LogindSession? = nil) {
        if var existing = tracked[id] {
            existing.fetchPending = true
            // A listing that names another user means another session under a reused id; the fetched
            // details decide, so keep the old record until they arrive.
            tracked[id] = existing
        } else {
            tracked[id] = Tracked(session: listed ?? LogindSession(id: id), fetchPending: true)
        }
    }

    /// The details of a session arrived. When they show that the id now names a different session than the
    /// one tracked, the tracked one ended unseen, and its `Logoff` is returned.
    public mutating func detailsArrived(_ session: LogindSession) -> [EventDraft] {
        guard let existing = tracked[session.id] else {
            // Removed while the details were on their way; its Logoff has gone out already.
            return []
        }
        if existing.session.isDifferentSession(from: session) {
            tracked[session.id] = Tracked(session: session, fetchPending: false)
            return [logoff(existing.session)]
        }
        tracked[session.id] = Tracked(session: existing.session.updated(with: session), fetchPending: false)
        return []
    }

    /// The details of `id` could not be read (the session is probably already gone; its removal follows).
    public mutating func detailsUnavailable(id: String) {
        tracked[id]?.fetchPending = false
    }

    /// logind removed the session (`SessionRemoved`): exactly one `Logoff`, whatever is known of it.
    public mutating func removed(id: String) -> [EventDraft] {
        let session = tracked.removeValue(forKey: id)?.session ?? LogindSession(id: id)
        return [logoff(session)]
    }

    /// A fresh listing of every live session (after logind came back, or at start-up). Tracked sessions
    /// missing from it ended while nobody told sensd (logind sends no `SessionRemoved` for a session that was
    /// closing when it restarted); their `Logoff`s are returned. Listed ids are announced; fetch their details.
    public mutating func resynchronised(live: [LogindSession]) -> [EventDraft] {
        let liveIDs = Set(live.map(\.id))
        var drafts: [EventDraft] = []
        for id in tracked.keys.sorted() where !liveIDs.contains(id) {
            drafts.append(logoff(tracked.removeValue(forKey: id)!.session))
        }
        for session in live {
            if let existing = tracked[session.id], existing.session.isDifferentSession(from: session) {
                drafts.append(logoff(existing.session))
                tracked[session.id] = Tracked(session: session, fetchPending: true)
            } else {
                announced(id: session.id, listed: session)
            }
        }
        return drafts
    }

    private func logoff(_ session: LogindSession) -> EventDraft {
        EventDraft(event: .logoff, session: session, unresolved: session.userName == nil ? Self.unresolvedReason : nil)
    }
}
