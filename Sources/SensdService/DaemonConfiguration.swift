import SENSCore

#if canImport(Glibc)
import Glibc
#endif

/// How the daemon is set up, from the command line.
public struct DaemonConfiguration: Sendable {
    public var socketPath: String
    /// The Varlink socket (`io.sensd.Events`), beside the JSON-lines one by default; nil for none.
    public var varlinkSocketPath: String?
    /// The root-only datagram socket the PAM hook (sensd-pam-report) reports failed logons to, beside the
    /// JSON-lines one by default; nil for none.
    public var failedLogonSocketPath: String?
    /// Where failed logons come from.
    public var failedLogonSources: FailedLogonSources = [.pam, .audit]
    /// Journal files to follow for them instead of the system journal (tests, forensics).
    public var failedLogonJournalDirectory: String?
    /// The window failed logons of one origin are counted in during a flood (docs/protocol.md), µs.
    public var failedLogonWindowMicroseconds: Int64 = 60_000_000
    /// Permission bits of a socket sensd creates itself.
    public var socketMode: UInt32
    /// Group of a socket sensd creates itself, if not the daemon's own.
    public var socketGroup: String?
    public var limits: SubscriberLimits
    /// Where sensd remembers sessions across its restarts; nil for nowhere.
    public var stateDirectory: String?
    /// Whether to watch logind's session files for sessions entering "closing"; nil decides by the bus.
    public var watchSessionFiles: Bool?
    /// How much history the event log keeps.
    public var retention: LogRetention
    /// How long appended events may wait before they are synced to the disk; 0 syncs every batch before
    /// subscribers see it.
    public var syncIntervalMicroseconds: UInt64
    /// Whether every event is also written to the journal as a structured entry; nil: when running under
    /// systemd (stderr is a journal stream).
    public var journalEvents: Bool?

    public static let defaultSocketPath = "/run/sensd/events.sock"
    /// The Varlink socket's name, as systemd names its services' sockets: after the interface.
    public static let varlinkSocketName = "io.sensd.Events"

    /// The Varlink socket beside the JSON-lines socket at `socketPath`.
    public static func varlinkSocketPath(beside socketPath: String) -> String {
        guard let slash = socketPath.lastIndex(of: "/") else { return varlinkSocketName }
        return socketPath[...slash] + varlinkSocketName
    }
    public static let defaultStateDirectory = "/var/lib/sensd"
    /// The PAM hook's socket's name.
    public static let failedLogonSocketName = "failures.sock"

    /// The PAM hook's socket beside the JSON-lines socket at `socketPath`.
    public static func failedLogonSocketPath(beside socketPath: String) -> String {
        guard let slash = socketPath.lastIndex(of: "/") else { return failedLogonSocketName }
        return socketPath[...slash] + failedLogonSocketName
    }

    public init(
        socketPath: String = DaemonConfiguration.defaultSocketPath, varlinkSocketPath: String?? = .none, socketMode: UInt32 = 0o666, socketGroup: String? = nil,
        limits: SubscriberLimits = SubscriberLimits(), stateDirectory: String? = DaemonConfiguration.defaultStateDirectory,
        watchSessionFiles: Bool? = nil, retention: LogRetention = LogRetention(), syncIntervalMicroseconds: UInt64 = 1_000_000,
        journalEvents: Bool? = nil, failedLogonSocketPath: String?? = .none
    ) {
        self.failedLogonSocketPath = failedLogonSocketPath ?? Self.failedLogonSocketPath(beside: socketPath)
        self.journalEvents = journalEvents
        self.retention = retention
        self.syncIntervalMicroseconds = syncIntervalMicroseconds
        self.socketPath = socketPath
        self.varlinkSocketPath = varlinkSocketPath ?? Self.varlinkSocketPath(beside: socketPath)
        self.socketMode = socketMode
        self.socketGroup = socketGroup
        self.limits = limits
        self.stateDirectory = stateDirectory
        self.watchSessionFiles = watchSessionFiles
    }

    /// sd-login reads this machine's logind; it agrees with the bus only when the bus is this machine's own.
    static func busIsThisMachines() -> Bool {
        guard let address = getenv("DBUS_SYSTEM_BUS_ADDRESS").map({ String(cString: $0) }) else { return true }
        return address == "unix:path=/run/dbus/system_bus_socket" || address == "unix:path=/var/run/dbus/system_bus_socket"
    }
}
