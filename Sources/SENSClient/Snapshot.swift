import SENSCore

/// The sessions open at one point of the stream (docs/protocol.md, "Snapshot of the open sessions").
public struct Snapshot: Sendable, Equatable {
    /// Every event up to this seq is reflected in ``sessions``, none after it.
    public var seq: UInt64
    public var sessions: [Session]

    public init(seq: UInt64, sessions: [Session]) {
        self.seq = seq
        self.sessions = sessions
    }

    /// An open session: the fields its events carry, and its state now.
    public struct Session: Decodable, Sendable, Equatable {
        public var sessionId: String
        public var userName: String?
        public var uid: UInt32?
        public var unresolved: String?
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
        /// logind's state: `online`, `active` or `closing`.
        public var state: String?
        public var active: Bool?
        public var locked: Bool?
        public var idle: Bool?
        /// Whether the session's `LogoffInitiated` has gone out.
        public var logoffInitiated: Bool
        /// The line exactly as sensd sent it, with every key (a newer sensd's too).
        public var line: String = ""

        enum CodingKeys: String, CodingKey {
            case sessionId, userName, uid, unresolved, host, type, service, tty, seat, display, remote, remoteHost, remoteUser
            case leader, audit, sessionStart, logonType, state, active, locked, idle, logoffInitiated
            case sessionClass = "class"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            sessionId = try c.decode(String.self, forKey: .sessionId)
            userName = try c.decodeIfPresent(String.self, forKey: .userName)
            uid = try c.decodeIfPresent(UInt32.self, forKey: .uid)
            unresolved = try c.decodeIfPresent(String.self, forKey: .unresolved)
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
            if let text = try c.decodeIfPresent(String.self, forKey: .sessionStart) {
                guard let time = EventTime(rfc3339: text) else {
                    throw DecodingError.dataCorruptedError(forKey: .sessionStart, in: c, debugDescription: "not RFC 3339 UTC: \(text)")
                }
                sessionStart = time
            }
            // A logon type a newer sensd adds is left out rather than failing the whole snapshot.
            logonType = (try? c.decodeIfPresent(LogonType.self, forKey: .logonType)) ?? nil
            state = try c.decodeIfPresent(String.self, forKey: .state)
            active = try c.decodeIfPresent(Bool.self, forKey: .active)
            locked = try c.decodeIfPresent(Bool.self, forKey: .locked)
            idle = try c.decodeIfPresent(Bool.self, forKey: .idle)
            logoffInitiated = try c.decodeIfPresent(Bool.self, forKey: .logoffInitiated) ?? false
        }
    }
}
