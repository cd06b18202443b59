import Logging
import SENSCore
import Systemd
import UnixSocket

#if canImport(Glibc)
import Glibc
#endif

/// How the daemon is set up, from the command line.
public struct DaemonConfiguration: Sendable {
    public var socketPath: String
    /// Permission bits of a socket sensd creates itself.
    public var socketMode: UInt32
    /// Group of a socket sensd creates itself, if not the daemon's own.
    public var socketGroup: String?
    public var limits: SubscriberLimits
    /// Where sensd remembers sessions across its restarts; nil for nowhere.
    public var stateDirectory: String?
    /// Whether to watch logind's session files for sessions entering "closing"; nil decides by the bus.
    public var watchSessionFiles: Bool?

    public static let defaultSocketPath = "/run/sensd/events.sock"
    public static let defaultStateDirectory = "/var/lib/sensd"

    public init(
        socketPath: String = DaemonConfiguration.defaultSocketPath, socketMode: UInt32 = 0o666, socketGroup: String? = nil,
        limits: SubscriberLimits = SubscriberLimits(), stateDirectory: String? = DaemonConfiguration.defaultStateDirectory,
        watchSessionFiles: Bool? = nil
    ) {
        self.socketPath = socketPath
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

/// The daemon: one event loop driving the bus, the subscriber socket and the signals.
public final class Daemon {
    public static let version = "0.1.0"

    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let loop: EventLoop
    private let bus: Bus
    private let logind: LogindSource
    private var server: SubscriberServer!
    private var sequencer = EventSequencer()
    private var signalSources: [EventSource] = []
    private var ownsSocketFile = false
    private let store: SessionStateStore?
    private var stateDirty = false
    private var stateSource: EventSource?
    private let host = Syscall.hostName()

    public init(configuration: DaemonConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        loop = try EventLoop()
        bus = try Bus.system(description: "sensd-logind")
        try bus.attach(to: loop)
        try bus.exitLoopOnDisconnect()

        var remembered: [SessionTracker.Remembered] = []
        if let directory = configuration.stateDirectory, Self.usableStateDirectory(directory, logger: logger) {
            let store = SessionStateStore(directory: directory, logger: logger)
            if let state = store.load() {
                remembered = state.sessions
                sequencer = EventSequencer(lastSeq: state.lastSeq)
                logger.info("remembered sessions from the previous run", metadata: ["sessions": "\(state.sessions.count)", "lastSeq": "\(state.lastSeq)"])
            }
            self.store = store
        } else {
            store = nil
        }
        let watch = configuration.watchSessionFiles ?? DaemonConfiguration.busIsThisMachines()
        logind = LogindSource(bus: bus, loop: loop, logger: logger, watchSessionFiles: watch, remembered: remembered)
    }

    /// Runs until SIGTERM or SIGINT (exit code 0) or until the bus connection is lost (non-zero).
    public func run() throws -> Int32 {
        for signal in [SIGTERM, SIGINT] {
            signalSources.append(try loop.addSignal(signal) { [unowned self] in
                self.logger.info("stopping on signal \(signal)")
                ServiceManager.notify("STOPPING=1")
                self.loop.exit(code: 0)
            })
        }
        _ = try? loop.enableWatchdog()

        let fd = try listeningSocket()
        server = try SubscriberServer(
            loop: loop, listenFD: fd, limits: configuration.limits, logger: logger,
            daemonVersion: Self.version, lastSeq: { [unowned self] in self.sequencer.lastSeq })
        if store != nil {
            stateSource = try loop.addPost { [unowned self] in self.saveStateIfChanged() }
        }
        logind.publish = { [unowned self] drafts in self.publish(drafts) }
        try logind.start { [unowned self] in
            self.logger.info("ready", metadata: ["sessions": "\(self.logind.sessionCount)", "socket": "\(self.configuration.socketPath)"])
            ServiceManager.notify("READY=1")
        }

        let code = try loop.run()
        saveStateIfChanged()
        server.stop()
        if ownsSocketFile { try? Syscall.unlinkIfPresent(configuration.socketPath) }
        if code != 0 {
            logger.error("lost the system bus; exiting so that the service manager restarts sensd")
        }
        return code
    }

    private func publish(_ drafts: [EventDraft]) {
        let now = EventTime(microsecondsSinceEpoch: Int64(loop.now))
        for draft in drafts {
            let event = sequencer.stamp(draft, at: now, host: host)
            stateDirty = true
            if event.unresolved != nil {
                logger.warning("session ended before its user could be learned", metadata: ["session": "\(event.sessionId)", "seq": "\(event.seq)"])
            }
            logger.debug("event", metadata: ["event": "\(event.event.rawValue)", "session": "\(event.sessionId)", "user": "\(event.userName ?? "?")", "seq": "\(event.seq)", "late": "\(event.observedLate == true)"])
            server.broadcast(WireFormat.line(event))
        }
    }

    /// Writes the state file once per loop iteration that changed it.
    private func saveStateIfChanged() {
        guard stateDirty, let store else { return }
        // Cleared on failure too: retrying every iteration would only repeat the error.
        stateDirty = false
        do {
            try store.save(SessionState(lastSeq: sequencer.lastSeq, sessions: logind.remembered))
        } catch {
            logger.error("cannot write the state file; sessions reported now may be reported again after a restart", metadata: ["file": "\(store.path)", "error": "\(error)"])
        }
    }

    /// Whether the state directory exists (or can be made) and is writable; says once why not.
    private static func usableStateDirectory(_ directory: String, logger: Logger) -> Bool {
        do {
            try Syscall.makeDirectoryIfMissing(directory, mode: 0o755)
        } catch {
            logger.warning("no state directory (\(error)); sessions will be reported again after a restart; see --state-directory")
            return false
        }
        guard access(directory, W_OK) == 0 else {
            logger.warning("state directory \(directory) is not writable; sessions will be reported again after a restart; see --state-directory")
            return false
        }
        return true
    }

    /// The socket systemd passed, or one sensd creates at the configured path.
    private func listeningSocket() throws -> Int32 {
        if let fd = ServiceManager.listenFDs().first(where: ServiceManager.isListeningUnixStream) {
            logger.info("using the socket passed by the service manager")
            return fd
        }
        let path = configuration.socketPath
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try Syscall.makeDirectoryIfMissing(String(path[..<slash]), mode: 0o755)
        }
        if Syscall.isListening(path: path) {
            throw DaemonError("another process is already serving \(path); refusing to take its socket")
        }
        try Syscall.unlinkIfPresent(path)
        let fd = try Syscall.unixStreamSocket(nonBlocking: true)
        do {
            try Syscall.bind(fd, path: path)
            ownsSocketFile = true
            // chmod after bind, before listen: nobody can connect before the mode is right.
            try Syscall.chmod(path, mode: configuration.socketMode)
            if let group = configuration.socketGroup {
                guard let gid = Syscall.groupID(named: group) else { throw DaemonError("no such group: \(group)") }
                try Syscall.chown(path, group: gid)
            }
            try Syscall.listen(fd, backlog: 128)
        } catch {
            Syscall.close(fd)
            throw error
        }
        return fd
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
