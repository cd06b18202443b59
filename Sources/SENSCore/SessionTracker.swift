/// The sessions logind has announced, and the SENS events their changes mean. No I/O: the logind source
/// feeds it what the bus and sd-login said and publishes what it returns.
///
/// The rules (docs/protocol.md, "Event types"):
/// - `Logon` once per session, when its details are first known; never again for a session logind merely
///   re-announces (a logind restart), nor for one remembered from sensd's previous run.
/// - `LogoffInitiated` once per session that ends, always before its `Logoff`: when the session is seen
///   closing, or at the latest right before `Logoff`.
/// - `Logoff` exactly once per session that ends.
/// - Disconnect/Reconnect, DisplayLock/Unlock and Start/StopScreenSaver only on a real change of
///   `Active`, `LockedHint` and `IdleHint`, never for a value re-announced unchanged or first learned.
package struct SessionTracker: Sendable {
    /// Said on events of a session that ended before sensd learned its user.
    public static let unresolvedReason = "the session ended before sensd could learn its user"

    struct Tracked: Sendable {
        /// The session's record lives on the heap, copied on write: a dictionary slot is then 16 bytes, not
        /// 240, and a dictionary keeps up to 2.7 slots per session (its load factor and power-of-two growth).
        private var box: SessionBox
        var session: LogindSession {
            get { box.session }
            set {
                if isKnownUniquelyReferenced(&box) {
                    box.session = newValue
                } else {
                    box = SessionBox(newValue)
                }
            }
        }
        var stage: Stage

        init(session: LogindSession, stage: Stage) {
            box = SessionBox(session)
            self.stage = stage
        }

        var isReported: Bool {
            if case .announced = stage { false } else { true }
        }
    }

    /// Where a tracked session is in its life, as far as its events go. (Its end takes it out of the
    /// tracker; one whose processes are gone while logind still lists it is kept in `ended`.)
    enum Stage: Equatable {
        /// Announced; its `Logon` waits for its details. `closingSeen`: sd-login saw it closing meanwhile,
        /// which sticks, because details asked for earlier may still say "online".
        case announced(closingSeen: Bool)
        /// Its `Logon` has gone out, or it was remembered from the previous run.
        case reported
        /// Its `LogoffInitiated` has gone out too; `Logoff` is all that is left.
        case logoffInitiated
    }

    final class SessionBox: @unchecked Sendable {
        // Mutated only through Tracked, when uniquely referenced.
        var session: LogindSession
        init(_ session: LogindSession) { self.session = session }
    }

    /// A session as kept across restarts of sensd.
    public struct Remembered: Codable, Equatable, Sendable {
        public var session: LogindSession
        public var logoffInitiated: Bool

        public init(session: LogindSession, logoffInitiated: Bool) {
            self.session = session
            self.logoffInitiated = logoffInitiated
        }
    }

    /// Keyed by id; a session's object path is derived from its id (the caller's business), so no index
    /// of paths is kept: with 100,000 sessions that index and the paths cost ~230 bytes a session.
    private var tracked: [String: Tracked] = [:]
    /// Sessions whose processes are gone but which logind still lists: their end is already reported (or
    /// they were never live for sensd), so a later listing, announcement or removal of the same session
    /// is not news.
    private var ended: [String: LogindSession] = [:]

    public init() {}

    /// How many sessions are being tracked.
    public var count: Int { tracked.count }

    /// The session tracked under `id`, if any.
    public func session(_ id: String) -> LogindSession? { tracked[id]?.session }

    /// Every tracked session id.
    public var ids: [String] { Array(tracked.keys) }

    /// The sessions to keep across a restart: every one already reported.
    public var remembered: [Remembered] {
        tracked.values.filter(\.isReported).map { Remembered(session: $0.session, logoffInitiated: $0.stage == .logoffInitiated) }
            .sorted { $0.session.id < $1.session.id }
    }

    /// Sessions known from sensd's previous run. They count as reported; the first resynchronisation ends
    /// those that are gone and keeps the rest without a second `Logon`.
    public mutating func remember(_ sessions: [Remembered]) {
        for r in sessions {
            track(Tracked(session: r.session, stage: r.logoffInitiated ? .logoffInitiated : .reported))
        }
    }

    /// logind announced `id` (`SessionNew`). The caller fetches the details next and reports them with
    /// ``detailsArrived(_:)``.
    public mutating func announced(id: String) {
        // Re-announced (a logind restart) or reused: the details will tell.
        guard tracked[id] == nil else { return }
        track(Tracked(session: LogindSession(id: id), stage: .announced(closingSeen: false)))
    }

    /// The details of a session arrived (`Properties.GetAll`).
    public mutating func detailsArrived(_ details: LogindSession) -> [EventDraft] {
        guard var t = tracked[details.id] else {
            // Removed while the details were on their way; its Logoff has gone out already.
            return []
        }
        var details = details
        if details.state == "opening", let known = t.session.state, known != "opening" {
            // logind never takes a session back to "opening": a state read from its session file while
            // the reply was on its way (``stateRead(id:state:)``, ``closing(id:)``) is the newer one.
            details.state = known
        }
        if let corpse = ended[details.id] {
            if !corpse.isDifferentSession(from: details) {
                // A dead session logind lists again (after its own restart, or after sensd's).
                untrack(details.id)
                return []
            }
            ended[details.id] = nil
        }
        var drafts: [EventDraft] = []
        if t.session.isDifferentSession(from: details) {
            // The id now names another session: the one tracked ended unseen.
            drafts += ending(t, late: true)
            t = Tracked(session: details, stage: .announced(closingSeen: false))
        } else {
            let before = t.session
            t.session = before.updated(with: details)
            if t.isReported { drafts += transitions(from: before, to: t.session) }
        }
        var closingSeen = false
        if case .announced(let seen) = t.stage {
            closingSeen = seen
            t.stage = .reported
            drafts.append(draft(.logon, t.session))
        }
        drafts += closingIfSo(&t, seen: closingSeen)
        track(t)
        return drafts
    }

    /// Details of a session not yet reported whose report waits on another answer (is its scope still
    /// there?): kept, so that a removal meanwhile names its user. No event.
    public mutating func detailsPending(_ details: LogindSession) {
        guard var t = tracked[details.id], !t.isReported, !t.session.isDifferentSession(from: details) else { return }
        t.session = t.session.updated(with: details)
        track(t)
    }

    /// logind changed properties of a session (`PropertiesChanged`); `changes` holds its id and the new values.
    public mutating func propertiesChanged(changes: LogindSession) -> [EventDraft] {
        guard var t = tracked[changes.id] else { return [] }
        let before = t.session
        t.session = before.updated(with: changes)
        var drafts: [EventDraft] = []
        // Before its Logon a session has no history to change: values only set the baseline.
        if t.isReported {
            drafts += transitions(from: before, to: t.session)
            drafts += closingIfSo(&t, seen: false)
        }
        track(t)
        return drafts
    }

    /// sd-login says the session is closing: the user logged out, processes may linger.
    public mutating func closing(id: String) -> [EventDraft] {
        guard var t = tracked[id] else { return [] }
        t.session.state = "closing"
        var drafts: [EventDraft] = []
        if t.isReported {
            drafts = closingIfSo(&t, seen: true)
        } else {
            t.stage = .announced(closingSeen: true)
        }
        track(t)
        return drafts
    }

    /// sd-login read the session's state (`online`, `active`, ...) from logind's session file: kept for the
    /// snapshot, no event (logind v257 does not put every state change on the bus).
    public mutating func stateRead(id: String, state: String) {
        guard var t = tracked[id], t.session.state != state else { return }
        t.session.state = state
        track(t)
    }

    /// logind removed the session (`SessionRemoved`): its `LogoffInitiated` if not yet sent, then exactly one `Logoff`.
    public mutating func removed(id: String) -> [EventDraft] {
        if ended.removeValue(forKey: id) != nil, tracked[id].map({ !$0.isReported }) ?? true {
            untrack(id)
            return []
        }
        guard let t = untrack(id) else {
            // Ended between subscribing and listing: the removal is the only trace, and it is reported, with
            // the Logon sensd could not see (it began before sensd was watching: late).
            let unknown = Tracked(session: LogindSession(id: id), stage: .reported)
            return [draft(.logon, unknown.session, late: true)] + ending(unknown, late: false)
        }
        var drafts: [EventDraft] = []
        if !t.isReported { drafts.append(draft(.logon, t.session)) }
        drafts += ending(t, late: false)
        return drafts
    }

    /// A fresh listing of every live session (at start-up, and whenever logind comes back). Tracked sessions
    /// missing from it ended while nobody said so (logind sends no `SessionRemoved` for a session that was
    /// closing when it restarted, and none at all while sensd was stopped); they end now, marked observed late.
    /// Listed sessions are announced; fetch their details.
    public mutating func resynchronised(live: [LogindSession]) -> [EventDraft] {
        let liveIDs = Set(live.map(\.id))
        // A dead session logind no longer lists is finally gone.
        ended = ended.filter { liveIDs.contains($0.key) }
        var drafts: [EventDraft] = []
        for id in tracked.keys.sorted() where !liveIDs.contains(id) {
            drafts += ending(untrack(id)!, late: true)
        }
        for listed in live {
            if let existing = tracked[listed.id], existing.session.isDifferentSession(from: listed) {
                drafts += ending(untrack(listed.id)!, late: true)
            }
            announced(id: listed.id)
            if var t = tracked[listed.id], !t.isReported {
                // Keep what the listing said (user, uid) in case the details cannot be read.
                t.session = t.session.updated(with: listed)
                track(t)
            }
        }
        return drafts
    }

    /// systemd says the session's scope is gone (its processes have all exited) and logind has not removed
    /// the session: logind loses track of sessions that were closing when it restarted and lists them as
    /// closing forever. The session ends now (`late` if that happened while sensd was not looking); logind
    /// listing or removing it later changes nothing.
    public mutating func processesEnded(id: String, late: Bool = false) -> [EventDraft] {
        guard let t = untrack(id) else { return [] }
        ended[id] = t.session
        var drafts: [EventDraft] = []
        if !t.isReported { drafts.append(draft(.logon, t.session, late: late)) }
        drafts += ending(t, late: late)
        return drafts
    }

    /// A session sensd has not reported turns out to have been dead before sensd learned of it (found closing
    /// with its processes gone): nothing to report, now or when logind lists or removes it again.
    public mutating func forgetDead(id: String) {
        guard let t = untrack(id) else { return }
        ended[id] = t.session
    }

    /// Whether `Logon` has gone out for the session tracked under `id`.
    public func isReported(_ id: String) -> Bool { tracked[id]?.isReported == true }

    /// Sessions known to be dead while logind still lists them.
    public var deadCount: Int { ended.count }

    // MARK: Rules

    private func draft(_ kind: EventKind, _ session: LogindSession, late: Bool = false) -> EventDraft {
        EventDraft(event: kind, session: session, unresolved: session.userName == nil ? Self.unresolvedReason : nil, observedLate: late)
    }

    private func ending(_ t: Tracked, late: Bool) -> [EventDraft] {
        var drafts: [EventDraft] = []
        if t.stage != .logoffInitiated { drafts.append(draft(.logoffInitiated, t.session, late: late)) }
        drafts.append(draft(.logoff, t.session, late: late))
        return drafts
    }

    /// A reported session seen closing (`seen`, or logind's state says so) gets its `LogoffInitiated` now.
    private func closingIfSo(_ t: inout Tracked, seen: Bool) -> [EventDraft] {
        guard t.stage == .reported, seen || t.session.state == "closing" else { return [] }
        t.stage = .logoffInitiated
        return [draft(.logoffInitiated, t.session)]
    }

    private func transitions(from old: LogindSession, to new: LogindSession) -> [EventDraft] {
        var drafts: [EventDraft] = []
        if let a = old.active, let b = new.active, a != b {
            drafts.append(draft(b ? .sessionReconnect : .sessionDisconnect, new))
        }
        if let a = old.locked, let b = new.locked, a != b {
            drafts.append(draft(b ? .displayLock : .displayUnlock, new))
        }
        if let a = old.idle, let b = new.idle, a != b {
            drafts.append(draft(b ? .startScreenSaver : .stopScreenSaver, new))
        }
        return drafts
    }

    private mutating func track(_ t: Tracked) {
        tracked[t.session.id] = t
    }

    @discardableResult
    private mutating func untrack(_ id: String) -> Tracked? {
        tracked.removeValue(forKey: id)
    }
}
