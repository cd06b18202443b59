/// The SENS logon family, by the names of Windows' ISensLogon/ISensLogon2 methods.
public enum EventKind: String, Codable, CaseIterable, Sendable {
    /// The session is gone (logind's `SessionRemoved`): ISensLogon2::Logoff, security event 4634.
    case logoff = "Logoff"
}

/// One event as subscribers receive it.
///
/// `userName` and `uid` are nil only when the session ended before sensd could learn whose it was;
/// `unresolved` then says why, so that no consumer mistakes a missing name for an empty one.
public struct SENSEvent: Codable, Equatable, Sendable {
    public var event: EventKind
    public var seq: UInt64
    public var time: EventTime
    public var sessionId: String
    public var userName: String?
    public var uid: UInt32?
    public var unresolved: String?

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

    enum CodingKeys: String, CodingKey {
        case event, seq, time, sessionId, userName, uid, unresolved
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        event = try c.decode(EventKind.self, forKey: .event)
        seq = try c.decode(UInt64.self, forKey: .seq)
        let text = try c.decode(String.self, forKey: .time)
        guard let t = EventTime(rfc3339: text) else {
            throw DecodingError.dataCorruptedError(forKey: .time, in: c, debugDescription: "not RFC 3339 UTC: \(text)")
        }
        time = t
        sessionId = try c.decode(String.self, forKey: .sessionId)
        userName = try c.decodeIfPresent(String.self, forKey: .userName)
        uid = try c.decodeIfPresent(UInt32.self, forKey: .uid)
        unresolved = try c.decodeIfPresent(String.self, forKey: .unresolved)
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
    }
}

/// An event the tracker has decided on, before the sequencer gives it a `seq` and a `time`.
public struct EventDraft: Equatable, Sendable {
    public var event: EventKind
    public var session: LogindSession
    public var unresolved: String?

    public init(event: EventKind, session: LogindSession, unresolved: String? = nil) {
        self.event = event
        self.session = session
        self.unresolved = unresolved
    }
}

/// Gives events their place in the stream: `seq` one more than the last, `time` when sensd saw the change.
public struct EventSequencer: Sendable {
    public private(set) var lastSeq: UInt64

    public init(lastSeq: UInt64 = 0) {
        self.lastSeq = lastSeq
    }

    public mutating func stamp(_ draft: EventDraft, at time: EventTime) -> SENSEvent {
        lastSeq += 1
        return SENSEvent(
            event: draft.event, seq: lastSeq, time: time, sessionId: draft.session.id,
            userName: draft.session.userName, uid: draft.session.uid, unresolved: draft.unresolved)
    }
}
