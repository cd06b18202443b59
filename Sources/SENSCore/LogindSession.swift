/// What logind told sensd about one session, remembered from its start because removal carries no details.
package struct LogindSession: Codable, Equatable, Sendable {
    /// logind's session id (`c12`, or the audit session id where audit is on). Not unique over time.
    public var id: String
    public var uid: UInt32?
    public var userName: String?
    /// The session leader's pid (`Leader`).
    public var leader: UInt32?
    /// When logind created the session (`Timestamp`, CLOCK_REALTIME microseconds).
    public var startedAt: UInt64?
    /// `Class`: user, greeter, lock-screen, background, manager.
    public var sessionClass: String?
    /// `Type`: tty, x11, wayland, mir, unspecified.
    public var type: String?
    /// `Service`: the PAM service that opened it (sshd, su-l, login, ...).
    public var service: String?
    public var tty: String?
    public var seat: String?
    public var display: String?
    public var remote: Bool?
    public var remoteHost: String?
    public var remoteUser: String?
    /// Who ran run0 for a run0 session, and whether it was `--empower`: from systemd, not logind (the
    /// session's service unit), learned with the session's details.
    public var invokedBy: String?
    public var invokedByUid: UInt32?
    public var elevated: Bool?
    /// The kernel audit session id; nil when unset.
    public var audit: UInt32?

    // Live state, for transitions.
    /// `Active`: the session is the one in the foreground of its seat.
    public var active: Bool?
    /// `IdleHint`.
    public var idle: Bool?
    /// `LockedHint`.
    public var locked: Bool?
    /// `State`: online, active, closing.
    public var state: String?

    public init(
        id: String, uid: UInt32? = nil, userName: String? = nil, leader: UInt32? = nil, startedAt: UInt64? = nil,
        sessionClass: String? = nil, type: String? = nil, service: String? = nil, tty: String? = nil,
        seat: String? = nil, display: String? = nil, remote: Bool? = nil, remoteHost: String? = nil,
        remoteUser: String? = nil, audit: UInt32? = nil,
        active: Bool? = nil, idle: Bool? = nil, locked: Bool? = nil, state: String? = nil
    ) {
        self.id = id
        self.uid = uid
        self.userName = userName
        self.leader = leader
        self.startedAt = startedAt
        self.sessionClass = sessionClass
        self.type = type
        self.service = service
        self.tty = tty
        self.seat = seat
        self.display = display
        self.remote = remote
        self.remoteHost = remoteHost
        self.remoteUser = remoteUser
        self.audit = audit
        self.active = active
        self.idle = idle
        self.locked = locked
        self.state = state
    }

    /// Whether `other` (same id) is provably a different session: logind reuses ids, e.g. `c1` after a restart
    /// without audit. Leader pid and start time tell a re-announced session from a new one.
    public func isDifferentSession(from other: LogindSession) -> Bool {
        if let a = leader, let b = other.leader, a != b { return true }
        if let a = startedAt, let b = other.startedAt, a != b { return true }
        if let a = uid, let b = other.uid, a != b { return true }
        return false
    }

    /// The Windows logon type this session corresponds to (docs/protocol.md, "Logon types", has the table).
    public var logonType: LogonType? {
        sessionClass.flatMap { LogonType(sessionClass: $0, remote: remote == true, service: service) }
    }

    /// The terminal the user sits at, as sensd reports it: logind's `TTY` without a `/dev/` prefix (pam_systemd
    /// passes both forms on), and nothing where logind's value is not a terminal of the user's. systemd 258.0
    /// and 258.1 set a TTY in the PAM context of services that never asked for one (systemd#39334, fixed in
    /// 258.2): the user's service manager got `tty1` or `console`. A service manager's session never has a
    /// terminal of its own, and the console is a user's terminal only in a session of `login` (getty).
    public var terminal: String? {
        guard var t = tty, !t.isEmpty else { return tty }
        if t.hasPrefix("/dev/") { t.removeFirst(5) }
        if let c = sessionClass, c == "manager" || c == "manager-early" { return nil }
        if t == "console" && service != "login" { return nil }
        return t
    }
}

/// Windows' LogonType, as security events 4624/4634 carry it.
///
/// A struct with a static member per type rather than an enum, as ``EventKind`` is: Windows has more
/// (Network, Unlock, CachedInteractive, ...) than logind's sessions map to today, and a later sensd may
/// use them. A `switch` over it needs a `default`.
public struct LogonType: RawRepresentable, Hashable, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The name on the wire: `"Interactive"`, ...
    public let rawValue: String
    /// The numeric code Windows uses (`logonTypeCode` on the wire).
    public let code: Int

    /// A type this version knows; nil for any other name.
    public init?(rawValue: String) {
        guard let known = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = known
    }

    private init(known name: String, code: Int) {
        rawValue = name
        self.code = code
    }

    /// A person at a seat or terminal: 2.
    public static let interactive = LogonType(known: "Interactive", code: 2)
    /// Work started on a user's behalf with no person at it: 4.
    public static let batch = LogonType(known: "Batch", code: 4)
    /// A service, here the user's service manager: 5.
    public static let service = LogonType(known: "Service", code: 5)
    /// Someone who came over the network (ssh, xrdp, ...): 10.
    public static let remoteInteractive = LogonType(known: "RemoteInteractive", code: 10)

    /// Every type this version knows. A later version's list may be longer.
    public static let allCases: [LogonType] = [.interactive, .batch, .service, .remoteInteractive]

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let name = try c.decode(String.self)
        guard let known = LogonType(rawValue: name) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "a logon type this version does not know: \(name)")
        }
        self = known
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// PAM services that only ever open a session for someone who came over the network, whatever class they
    /// ask for (Teleport's ssh sessions are class `background`, teleport#69773) and even from localhost
    /// (logind's `Remote` is false for a host of 127.0.0.1 or ::1).
    public static let remoteServices: Set<String> = ["sshd", "teleport", "xrdp-sesman", "cockpit", "dropbear"]

    /// The logon type of a session: remoteness and the PAM service first, then the class. A service manager
    /// is a service wherever it came from; a session opened over the network is `RemoteInteractive` whatever
    /// class it asked for (a remote `background` session is someone at work from afar, not a scheduled
    /// task); everything else by its class. Every class systemd 262 knows is here; `none` (v257) creates no
    /// session; a class this table does not know gets no logon type rather than a guess.
    public init?(sessionClass: String, remote: Bool, service: String? = nil) {
        switch sessionClass {
        case "manager", "manager-early":
            // The user's service manager, user@UID.service.
            self = .service
        case "user", "user-early", "user-incomplete", "user-light", "greeter", "lock-screen",
             "background", "background-light":
            if remote || service.map(Self.remoteServices.contains) == true {
                self = .remoteInteractive
            } else if sessionClass.hasPrefix("background") {
                // Work started on the user's behalf with no person at it: su -c, cron, systemd-run, run0
                // without a terminal.
                self = .batch
            } else {
                // A person at a seat or terminal (user-light: run0's elevated sessions, like RunAs).
                self = .interactive
            }
        default:
            return nil
        }
    }
}
