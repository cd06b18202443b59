/// The SENS logon family, by the names of Windows' ISensLogon/ISensLogon2 methods.
/// A kind of SENS event.
///
/// A struct with a static member per kind rather than an enum: sensd adds kinds in later releases (the
/// protocol's add-never-break rule), and a `switch` over an enum without `default` would stop compiling
/// the day one is added. Compare with the kinds a program handles; treat the others alike.
public struct EventKind: RawRepresentable, Hashable, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The name on the wire: `"Logon"`, `"Logoff"`, ...
    public let rawValue: String

    /// A kind this version knows (one of ``allCases``); nil for any other name.
    public init?(rawValue: String) {
        guard let known = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = known
    }

    private init(known name: String) {
        rawValue = name
    }

    /// A new session: ISensLogon2::Logon, security event 4624.
    public static let logon = EventKind(known: "Logon")
    /// The user logged out; processes may linger (logind's state "closing"): security event 4647.
    public static let logoffInitiated = EventKind(known: "LogoffInitiated")
    /// The session is gone: ISensLogon2::Logoff, security event 4634.
    public static let logoff = EventKind(known: "Logoff")
    /// The session stopped being the active one of its seat: ISensLogon2::SessionDisconnect, 4779.
    public static let sessionDisconnect = EventKind(known: "SessionDisconnect")
    /// The session became the active one of its seat again: ISensLogon2::SessionReconnect, 4778.
    public static let sessionReconnect = EventKind(known: "SessionReconnect")
    /// `LockedHint` became true: ISensLogon::DisplayLock, 4800.
    public static let displayLock = EventKind(known: "DisplayLock")
    /// `LockedHint` became false: ISensLogon::DisplayUnlock, 4801.
    public static let displayUnlock = EventKind(known: "DisplayUnlock")
    /// `IdleHint` became true: ISensLogon::StartScreenSaver.
    public static let startScreenSaver = EventKind(known: "StartScreenSaver")
    /// `IdleHint` became false: ISensLogon::StopScreenSaver.
    public static let stopScreenSaver = EventKind(known: "StopScreenSaver")
    /// Someone failed to log on (a wrong password, an unknown user): security event 4625. No session was
    /// made; `sessionId` is empty. Sent only to root and administrators (docs/protocol.md).
    public static let logonFailed = EventKind(known: "LogonFailed")

    /// Every kind this version knows, in the order of docs/protocol.md. A later version's list is longer.
    public static let allCases: [EventKind] = [
        .logon, .logoffInitiated, .logoff, .sessionDisconnect, .sessionReconnect,
        .displayLock, .displayUnlock, .startScreenSaver, .stopScreenSaver, .logonFailed,
    ]

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let name = try c.decode(String.self)
        guard let known = EventKind(rawValue: name) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "an event kind this version does not know: \(name)")
        }
        self = known
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
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
    /// For a run0 session (service `systemd-run0`): the user who ran run0, as systemd recorded it on the
    /// session's service (`ELEVATED_USER`, `ELEVATED_UID`).
    public var invokedBy: String?
    public var invokedByUid: UInt32?
    /// A run0 session with privileges added to the user's own (`run0 --empower`, v259).
    public var elevated: Bool?
    public var leader: UInt32?
    public var audit: UInt32?
    public var sessionStart: EventTime?
    public var logonType: LogonType?
    public var logonTypeCode: Int?
    /// LogonFailed: whether the user name as typed is an account of this machine.
    public var targetExists: Bool?
    /// LogonFailed: the client's port, where the source says (sshd's messages).
    public var remotePort: UInt32?
    /// LogonFailed: `bad-password`, `unknown-user`, `account-locked`, `expired` or `other`.
    public var failureReason: String?
    /// LogonFailed: the record it came from: `audit`, `pam`, `sshd-message`.
    public var source: String?
    /// LogonFailed: how many failures of the same user, service and origin this one stands for; more than 1
    /// when a flood was summarised (docs/protocol.md, "LogonFailed").
    public var count: Int?

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
    package init(_ draft: EventDraft, seq: UInt64, time: EventTime, host: String?) {
        self.init(event: draft.event, seq: seq, time: time, sessionId: draft.session.id, userName: nil, uid: nil, unresolved: draft.unresolved)
        copyFields(from: draft.session)
        observedLate = draft.observedLate ? true : nil
        reason = draft.reason
        self.host = host
        if let failure = draft.failure {
            targetExists = failure.targetExists
            remotePort = failure.remotePort
            failureReason = failure.reason.rawValue
            source = failure.source
            count = failure.count
            logonType = failure.logonType
            logonTypeCode = failure.logonType?.code
        }
    }

    /// The event's identity; every other key is a row of ``SessionFields``.
    private static let eventKey = FieldKey("event"), seqKey = FieldKey("seq"), timeKey = FieldKey("time"), sessionIdKey = FieldKey("sessionId")

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: FieldKey.self)
        event = try c.decode(EventKind.self, forKey: Self.eventKey)
        seq = try c.decode(UInt64.self, forKey: Self.seqKey)
        guard let t = try EventTime.decode(c, Self.timeKey) else {
            throw DecodingError.keyNotFound(Self.timeKey, .init(codingPath: [], debugDescription: "no time"))
        }
        time = t
        sessionId = try c.decode(String.self, forKey: Self.sessionIdKey)
        for field in SessionFields.all where field.isInEvents { try field.decode(&self, c) }
    }

    /// Encodable for completeness (tests, tools); the daemon writes lines with ``WireFormat/encode(_:)``,
    /// which keeps the documented key order.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: FieldKey.self)
        try c.encode(event, forKey: Self.eventKey)
        try c.encode(seq, forKey: Self.seqKey)
        try c.encode(time.rfc3339, forKey: Self.timeKey)
        try c.encode(sessionId, forKey: Self.sessionIdKey)
        for field in SessionFields.all where field.isInEvents { try field.encode(self, &c) }
    }
}

/// An event the tracker has decided on, before the sequencer gives it a `seq` and a `time`.
package struct EventDraft: Equatable, Sendable {
    public var event: EventKind
    public var session: LogindSession
    public var unresolved: String?
    public var observedLate: Bool
    /// Why the session ended, for its LogoffInitiated and Logoff where sensd knows (docs/protocol.md).
    public var reason: String?
    /// When the change really happened, for one sensd learned of later from a record of it (the journal):
    /// the event's `time`, and the moment sensd noticed becomes its `observedAt`.
    public var time: EventTime?
    /// A LogonFailed's own facts; its user, service, terminal and origin are in `session`.
    public var failure: FailedLogon?

    public init(event: EventKind, session: LogindSession, unresolved: String? = nil, observedLate: Bool = false, reason: String? = nil, time: EventTime? = nil, failure: FailedLogon? = nil) {
        self.event = event
        self.session = session
        self.unresolved = unresolved
        self.observedLate = observedLate
        self.reason = reason
        self.time = time
        self.failure = failure
    }

    /// Whether it is part of a session's end (the events a `reason` belongs to).
    public var isEnding: Bool { event == .logoffInitiated || event == .logoff }
}

/// Gives events their place in the stream: `seq` one more than the last, `time` when sensd saw the change.
package struct EventSequencer: Sendable {
    public private(set) var lastSeq: UInt64

    public init(lastSeq: UInt64 = 0) {
        self.lastSeq = lastSeq
    }

    public mutating func stamp(_ draft: EventDraft, at time: EventTime, host: String? = nil) -> SENSEvent {
        lastSeq += 1
        return SENSEvent(draft, seq: lastSeq, time: time, host: host)
    }
}
