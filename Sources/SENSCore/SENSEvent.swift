/// The SENS logon family, by the names of Windows' ISensLogon/ISensLogon2 methods.
public enum EventKind: String, Codable, CaseIterable, Sendable {
    /// A new session: ISensLogon2::Logon, security event 4624.
    case logon = "Logon"
    /// The user logged out; processes may linger (logind's state "closing"): security event 4647.
    case logoffInitiated = "LogoffInitiated"
    /// The session is gone: ISensLogon2::Logoff, security event 4634.
    case logoff = "Logoff"
    /// The session stopped being the active one of its seat: ISensLogon2::SessionDisconnect, 4779.
    case sessionDisconnect = "SessionDisconnect"
    /// The session became the active one of its seat again: ISensLogon2::SessionReconnect, 4778.
    case sessionReconnect = "SessionReconnect"
    /// `LockedHint` became true: ISensLogon::DisplayLock, 4800.
    case displayLock = "DisplayLock"
    /// `LockedHint` became false: ISensLogon::DisplayUnlock, 4801.
    case displayUnlock = "DisplayUnlock"
    /// `IdleHint` became true: ISensLogon::StartScreenSaver.
    case startScreenSaver = "StartScreenSaver"
    /// `IdleHint` became false: ISensLogon::StopScreenSaver.
    case stopScreenSaver = "StopScreenSaver"
}

/// One event as subscribers receive it.
///
/// `userName` and `uid` are nil only when the session ended before sensd could learn whose it was;
/// `unresolved` then says why, so that no consumer mistakes a missing name for an empty one.
/// The other session fields are omitted when logind did not say.
public struct SENSEvent: Codable, Equatable, Sendable {
    public var event: EventKind
    public var seq: UInt64
    public var time: EventTime
    public var sessionId: String
    public var userName: String?
    public var uid: UInt32?
    public var unresolved: String?
    /// The change happened while sensd was not running; `time` is when sensd noticed.
    public var observedLate: Bool?
    /// For an event observed late whose `time` comes from logind's own record (the journal): when sensd
    /// noticed it.
    public var observedAt: EventTime?
    /// Why the session ended, where sensd knows: `reboot`, `shutdown`, `logind-restart`, `sensd-down`.
    public var reason: String?
    public var host: String?
    public var sessionClass: String?
    public var type: String?
    public var service: String?
    public var tty: String?
    public var seat: String?
    public var display: String?
    public var remote: Bool?
    public var remoteHost: String?
    public var remoteUser: String?
    public var leader: UInt32?
    public var audit: UInt32?
    public var sessionStart: EventTime?
    public var logonType: LogonType?
    public var logonTypeCode: Int?

    public init(
        event: EventKind, seq: UInt64, time: EventTime, sessionId: String,
        userName: String?, uid: UInt32?, unresolved: String? = nil
    ) {
        self.event = event
        self.seq = seq
        self.time = time
        self.sessionId = sessionId
        self.userName = userName
        self.uid = uid
        self.unresolved = unresolved
    }

    /// The event for `session`, with every field the session knows.
    public init(_ draft: EventDraft, seq: UInt64, time: EventTime, host: String?) {
        let s = draft.session
        self.init(event: draft.event, seq: seq, time: time, sessionId: s.id, userName: s.userName, uid: s.uid, unresolved: draft.unresolved)
        observedLate = draft.observedLate ? true : nil
        reason = draft.reason
        self.host = host
        sessionClass = s.sessionClass
        type = s.type
        service = s.service
        tty = s.tty
        seat = s.seat
        display = s.display
        remote = s.remote
        remoteHost = s.remoteHost
        remoteUser = s.remoteUser
        leader = s.leader
        audit = s.audit
        sessionStart = s.startedAt.map { EventTime(microsecondsSinceEpoch: Int64($0)) }
        logonType = s.logonType
        logonTypeCode = s.logonType?.code
    }

    enum CodingKeys: String, CodingKey {
        case event, seq, time, sessionId, userName, uid, unresolved, observedLate, observedAt, reason, host
        case sessionClass = "class"
        case type, service, tty, seat, display, remote, remoteHost, remoteUser, leader, audit, sessionStart
        case logonType, logonTypeCode
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func time(_ key: CodingKeys) throws -> EventTime? {
            guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let t = EventTime(rfc3339: text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not RFC 3339 UTC: \(text)")
            }
            return t
        }
        event = try c.decode(EventKind.self, forKey: .event)
        seq = try c.decode(UInt64.self, forKey: .seq)
        guard let t = try time(.time) else {
            throw DecodingError.keyNotFound(CodingKeys.time, .init(codingPath: [], debugDescription: "no time"))
        }
        self.time = t
        sessionId = try c.decode(String.self, forKey: .sessionId)
        userName = try c.decodeIfPresent(String.self, forKey: .userName)
        uid = try c.decodeIfPresent(UInt32.self, forKey: .uid)
        unresolved = try c.decodeIfPresent(String.self, forKey: .unresolved)
        observedLate = try c.decodeIfPresent(Bool.self, forKey: .observedLate)
        observedAt = try time(.observedAt)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        host = try c.decodeIfPresent(String.self, forKey: .host)
        sessionClass = try c.decodeIfPresent(String.self, forKey: .sessionClass)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        service = try c.decodeIfPresent(String.self, forKey: .service)
        tty = try c.decodeIfPresent(String.self, forKey: .tty)
        seat = try c.decodeIfPresent(String.self, forKey: .seat)
        display = try c.decodeIfPresent(String.self, forKey: .display)
        remote = try c.decodeIfPresent(Bool.self, forKey: .remote)
        remoteHost = try c.decodeIfPresent(String.self, forKey: .remoteHost)
        remoteUser = try c.decodeIfPresent(String.self, forKey: .remoteUser)
        leader = try c.decodeIfPresent(UInt32.self, forKey: .leader)
        audit = try c.decodeIfPresent(UInt32.self, forKey: .audit)
        sessionStart = try time(.sessionStart)
        logonType = try c.decodeIfPresent(LogonType.self, forKey: .logonType)
        logonTypeCode = try c.decodeIfPresent(Int.self, forKey: .logonTypeCode)
    }

    /// Encodable for completeness (tests, tools); the daemon writes lines with ``WireFormat/encode(_:)``,
    /// which keeps the documented key order.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(event, forKey: .event)
        try c.encode(seq, forKey: .seq)
        try c.encode(time.rfc3339, forKey: .time)
        try c.encode(sessionId, forKey: .sessionId)
        try c.encode(userName, forKey: .userName)
        try c.encode(uid, forKey: .uid)
        try c.encodeIfPresent(unresolved, forKey: .unresolved)
        try c.encodeIfPresent(observedLate, forKey: .observedLate)
        try c.encodeIfPresent(observedAt?.rfc3339, forKey: .observedAt)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(host, forKey: .host)
        try c.encodeIfPresent(sessionClass, forKey: .sessionClass)
        try c.encodeIfPresent(type, forKey: .type)
        try c.encodeIfPresent(service, forKey: .service)
        try c.encodeIfPresent(tty, forKey: .tty)
        try c.encodeIfPresent(seat, forKey: .seat)
        try c.encodeIfPresent(display, forKey: .display)
        try c.encodeIfPresent(remote, forKey: .remote)
        try c.encodeIfPresent(remoteHost, forKey: .remoteHost)
        try c.encodeIfPresent(remoteUser, forKey: .remoteUser)
        try c.encodeIfPresent(leader, forKey: .leader)
        try c.encodeIfPresent(audit, forKey: .audit)
        try c.encodeIfPresent(sessionStart?.rfc3339, forKey: .sessionStart)
        try c.encodeIfPresent(logonType, forKey: .logonType)
        try c.encodeIfPresent(logonTypeCode, forKey: .logonTypeCode)
    }
}

/// An event the tracker has decided on, before the sequencer gives it a `seq` and a `time`.
public struct EventDraft: Equatable, Sendable {
    public var event: EventKind
    public var session: LogindSession
    public var unresolved: String?
    public var observedLate: Bool
    /// Why the session ended, for its LogoffInitiated and Logoff where sensd knows (docs/protocol.md).
    public var reason: String?

    public init(event: EventKind, session: LogindSession, unresolved: String? = nil, observedLate: Bool = false, reason: String? = nil) {
        self.event = event
        self.session = session
        self.unresolved = unresolved
        self.observedLate = observedLate
        self.reason = reason
    }

    /// Whether it is part of a session's end (the events a `reason` belongs to).
    public var isEnding: Bool { event == .logoffInitiated || event == .logoff }
}

/// Gives events their place in the stream: `seq` one more than the last, `time` when sensd saw the change.
public struct EventSequencer: Sendable {
    public private(set) var lastSeq: UInt64

    public init(lastSeq: UInt64 = 0) {
        self.lastSeq = lastSeq
    }

    public mutating func stamp(_ draft: EventDraft, at time: EventTime, host: String? = nil) -> SENSEvent {
        lastSeq += 1
        return SENSEvent(draft, seq: lastSeq, time: time, host: host)
    }
}
