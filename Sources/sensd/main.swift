import ArgumentParser
import Logging
import SensdLogging
import SensdService
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

struct Sensd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensd",
        abstract: "Turns systemd-logind's sessions into SENS logon events (Logoff, ...) for local subscribers.",
        discussion: """
            Subscribers connect to the Unix socket and read one JSON object per line, and may resume after any event \
            they saw; see sensd-protocol(7) and sensctl(1). Under systemd, sensd.socket owns the socket and sensd \
            takes it by socket activation; run by hand, sensd creates it. The system bus is the one \
            DBUS_SYSTEM_BUS_ADDRESS names, or the default.

            Files: /var/lib/sensd/log/ holds the event log, /var/lib/sensd/sessions.json what sensd knows of open \
            sessions, /var/lib/sensd/sequence.json the seqs reserved (see --state-directory). Every event is in the \
            log before any subscriber sees it.

            Signals: SIGTERM and SIGINT stop sensd cleanly (subscribers get a shutting-down line; the log is synced). \
            Exit status: 0 after a clean stop, 1 when it cannot start or loses the system bus (systemd then restarts it).
            """,
        version: Daemon.version
    )

    @Option(help: "Path of the subscriber socket.")
    var socket = DaemonConfiguration.defaultSocketPath

    @Option(help: ArgumentHelp("Path of the Varlink socket (io.sensd.Events), or 'none' for none. Default: beside --socket.", valueName: "PATH"))
    var varlinkSocket: String?

    @Option(help: ArgumentHelp("Path of the root-only datagram socket the PAM hook reports failed logons to (LogonFailed events), or 'none' for none. Default: failures.sock beside --socket.", valueName: "PATH"))
    var failedLogonSocket: String?

    @Option(help: ArgumentHelp("Where LogonFailed events come from, comma-separated: pam (the PAM hook's reports), audit (audit's records of failed authentications, through the journal), sshd-message (sshd's own messages, a heuristic: public-key failures PAM never sees). Default: pam,audit.", valueName: "LIST"))
    var failedLogonSources = "pam,audit"

    @Option(help: ArgumentHelp("Follow the journal files in this directory for failed logons, instead of the system journal.", valueName: "DIR"))
    var failedLogonJournal: String?

    @Option(help: ArgumentHelp("During a flood of failed logons from one origin, the first 5 of each window are reported one by one and the rest as one summary (count) when the window ends.", valueName: "SECONDS"))
    var failedLogonWindow: Double = 60

    @Option(help: "Permissions of the sockets, in octal; 0666 lets every local user subscribe, as logind lets every user list sessions.")
    var socketMode = "0666"

    @Option(help: "Group to give the socket (with --socket-mode 0660, only that group may subscribe).")
    var socketGroup: String?

    @Option(help: "Subscribers served at once; one more is refused with an error line. Lowered if the descriptor limit (raised to its hard limit at start) would be reached first.")
    var maxSubscribers = 1024

    @Option(help: "Connections one ordinary user (not root, not in an administrators' group) may hold at once.")
    var maxPerUser = 64

    @Option(help: "Of --max-subscribers, how many are kept for root and the administrators' groups (default: one sixteenth, 64 of 1024).")
    var reservedForAdministrators: Int?

    @Option(name: .customLong("administrators-group"), help: ArgumentHelp("A group whose members count as administrators (repeatable; by the peer's groups at connect). Default: sudo, wheel, adm where they exist.", valueName: "GROUP"))
    var administratorsGroups: [String] = []

    @Option(help: "Events a subscriber may fall behind before it is disconnected with an overflow line.")
    var queueLimit = 4096

    @Option(help: "Directory of the event log and of what sensd remembers about open sessions across its restarts; 'none' to keep nothing (no resume, no recovery).")
    var stateDirectory = DaemonConfiguration.defaultStateDirectory

    @Option(help: "Events the log keeps at least, for clients resuming with \"since\" (it keeps up to 10% more).")
    var logEvents = LogRetention().maxEvents

    @Option(help: "Size the log may reach, in MiB; the oldest events go first.")
    var logMaxMib = LogRetention().maxBytes >> 20

    @Option(help: "Seconds logged events may wait before they are synced to the disk (what a power loss can take); 0 syncs before subscribers see them.")
    var syncInterval = 1.0

    @Option(help: "Watch logind's session files for sessions that start closing (LogoffInitiated): yes, no, or auto (when the bus is this machine's system bus).")
    var sessionFiles = Choice.auto

    @Option(help: "Also write every event to the journal as a structured entry (MESSAGE_ID per event type, SENS_* fields): yes, no, or auto (when running under systemd).")
    var journalEvents = Choice.auto

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Flag(help: "Report what the state directory holds and what of it is damaged or was set aside by a start (*.damaged), without changing anything, and exit: 0 when nothing is damaged or set aside, 1 otherwise.")
    var checkState = false

    func validate() throws {
        guard UInt32(socketMode, radix: 8).map({ $0 <= 0o777 }) == true else {
            throw ValidationError("--socket-mode must be octal permission bits such as 0666, not '\(socketMode)'")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for name in failedLogonSources.split(separator: ",") where !FailedLogonSources.names.contains(where: { $0.0 == name }) {
            throw ValidationError("--failed-logon-sources: unknown source '\(name)'; known: \(FailedLogonSources.names.map(\.0).joined(separator: ", "))")
        }
        guard failedLogonWindow >= 0.1 && failedLogonWindow <= 3600 else {
            throw ValidationError("--failed-logon-window must be between 0.1 and 3600 seconds, not \(failedLogonWindow)")
        }
        guard maxSubscribers > 0, queueLimit > 0, maxPerUser > 0 else {
            throw ValidationError("--max-subscribers, --max-per-user and --queue-limit must be positive")
        }
        if let reserved = reservedForAdministrators, reserved < 0 || reserved >= maxSubscribers {
            throw ValidationError("--reserved-for-administrators must be from 0 to less than --max-subscribers (\(maxSubscribers))")
        }
        guard logEvents > 0, logMaxMib > 0 else {
            throw ValidationError("--log-events and --log-max-mib must be positive")
        }
        guard syncInterval >= 0, syncInterval <= 3600 else {
            throw ValidationError("--sync-interval must be from 0 to 3600 seconds")
        }
    }

    func run() throws {
        if checkState {
            let report = StateCheck.report(directory: stateDirectory)
            print("state directory \(stateDirectory):")
            for line in report.lines { print("  " + line) }
            print("\(report.problems) damaged, \(report.setAside) set aside")
            if report.problems + report.setAside > 0 { throw ExitCode(1) }
            return
        }
        let level = Logger.Level(rawValue: logLevel)!
        // Under systemd, straight to the journal with structured fields; elsewhere to stderr.
        LoggingSystem.bootstrap(JournalLogHandler.standard(identifier: "sensd", level: level))
        let logger = Logger(label: "sensd")
        var groups: Set<UInt32> = []
        for name in administratorsGroups.isEmpty ? ["sudo", "wheel", "adm"] : administratorsGroups {
            if let gid = Syscall.groupID(named: name) {
                groups.insert(gid)
            } else if !administratorsGroups.isEmpty {
                logger.warning("no such group \(name) for --administrators-group, ignoring")
            }
        }
        // Every limit sensd sets must be reached before the kernel's: two descriptors per subscriber (its
        // socket and, while it replays, a log segment), and 64 for the log, the bus, the journal and a spare.
        let descriptors = Syscall.raiseDescriptorLimit()
        var subscribers = maxSubscribers
        if 2 * subscribers > descriptors - 64 {
            subscribers = max(1, (descriptors - 64) / 2)
            logger.warning("--max-subscribers \(maxSubscribers) is more than the descriptor limit (\(descriptors)) allows; serving at most \(subscribers)")
        }
        var configuration = DaemonConfiguration(
            socketPath: socket, varlinkSocketPath: varlinkSocket == "none" ? .some(nil) : varlinkSocket.map { .some($0) } ?? .none, socketMode: UInt32(socketMode, radix: 8)!, socketGroup: socketGroup,
            limits: SubscriberLimits(
                maxSubscribers: subscribers, maxPerUser: maxPerUser, reservedForAdministrators: min(reservedForAdministrators ?? subscribers / 16, subscribers - 1),
                administratorGroups: groups, queueLimit: queueLimit),
            stateDirectory: stateDirectory == "none" ? nil : stateDirectory,
            watchSessionFiles: sessionFiles.value,
            retention: LogRetention(maxEvents: logEvents, maxBytes: logMaxMib << 20),
            syncIntervalMicroseconds: UInt64(syncInterval * 1_000_000),
            journalEvents: journalEvents.value,
            failedLogonSocketPath: failedLogonSocket == "none" ? .some(nil) : failedLogonSocket.map { .some($0) } ?? .none)
        configuration.failedLogonWindowMicroseconds = Int64(failedLogonWindow * 1_000_000)
        configuration.failedLogonSources = FailedLogonSources(failedLogonSources.split(separator: ",").compactMap { name in
            FailedLogonSources.names.first { $0.0 == name }?.1
        })
        configuration.failedLogonJournalDirectory = failedLogonJournal
        let code: Int32
        do {
            code = try Daemon(configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

Sensd.main()

/// yes, no, or auto (sensd decides from where it runs), for options that are on, off or up to sensd.
enum Choice: String, ExpressibleByArgument, CaseIterable {
    case yes, no, auto

    /// true or false when given, nil for auto.
    var value: Bool? {
        switch self {
        case .yes: true
        case .no: false
        case .auto: nil
        }
    }
}
