import ArgumentParser
import Logging
import SENSClient
import SENSHooks
import SensdLogging
import ServiceLifecycle
import Systemd

#if canImport(Glibc)
import Glibc
#endif

@main
struct SensdHooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensd-hooks",
        abstract: "Runs commands or starts units when sessions log on, lock or log off, as rule files say.",
        discussion: """
            Reads the rule files (sensd.hook(5)) NAME.hook in /etc/sensd/hooks.d, /run/sensd/hooks.d and \
            /usr/lib/sensd/hooks.d (a file in an earlier directory overrides one of the same name in a later one; an \
            empty file masks it), and follows sensd's events, one connection per rule. For each event a rule \
            matches it runs the rule's command (or starts its unit), with the event in SENS_* environment \
            variables and as a JSON line on standard input, its output in the journal as sensd-hook/NAME. Each \
            rule keeps the seq of the last event it finished in the state directory, synced: after a crash, a \
            stop or a reboot it runs every matching event it missed, in seq order. That is at least once: a run \
            that was going on when the runner died is run again (SENS_SEQ tells). A failed run is logged and, \
            if the rule says Retry=, tried again; then the rule goes on. A rule file with a mistake is reported \
            and left out; the other rules run. SIGHUP (systemctl reload sensd-hooks) reads the rules again. SIGTERM \
            or SIGINT stops the runner: running commands finish, no new one starts, and the events left run at \
            the next start.
            """,
        version: SensdClient.version
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Option(name: .customLong("rules-directory"), help: ArgumentHelp("Where to look for rule files, the first winning (repeatable; default: \(RuleSet.defaultDirectories.joined(separator: ", "))).", valueName: "DIR"))
    var rulesDirectories: [String] = []

    @Option(help: ArgumentHelp("Where each rule's position is kept.", valueName: "DIR"))
    var stateDirectory = "/var/lib/sensd-hooks"

    @Option(help: ArgumentHelp("Commands running at once, across every rule.", valueName: "N"))
    var maxParallel = 4

    @Flag(help: "Check the rule files, print each mistake with its file and line, and exit: 0 if there is none, 1 otherwise.")
    var check = false

    @Flag(help: "Print what would run for the events after --since, from sensd's log, and exit. Runs nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("With --dry-run: the seq to start after (default 0: everything the log holds).", valueName: "SEQ"))
    var since: UInt64?

    func validate() throws {
        if since != nil && !dryRun { throw ValidationError("--since goes with --dry-run") }
        if maxParallel < 1 { throw ValidationError("--max-parallel must be at least 1") }
    }

    var directories: [String] { rulesDirectories.isEmpty ? RuleSet.defaultDirectories : rulesDirectories }

    /// The rules, with each rule's User= looked up; mistakes in `errors`.
    func load() -> LoadedRules {
        let set = RuleSet.load(from: directories)
        var errors = set.errors
        var rules: [(HookRule, Account?)] = []
        for rule in set.rules {
            guard let name = rule.user else {
                rules.append((rule, .root))
                continue
            }
            if name == HookRule.sessionUser {
                // Looked up for each event.
                rules.append((rule, nil))
                continue
            }
            guard let account = Account.lookUp(name) else {
                errors.append(RuleError(path: rule.path, line: 0, message: "User=\(name): no such user"))
                continue
            }
            rules.append((rule, account))
        }
        return LoadedRules(rules: rules, errors: errors, masked: set.masked)
    }

    func run() async throws {
        // A command that exits without reading its standard input must not kill the runner.
        signal(SIGPIPE, SIG_IGN)
        if check { return try runCheck() }
        LoggingSystem.bootstrap(JournalLogHandler.standard(identifier: "sensd-hooks", level: .info, metadataInMessage: false))
        if dryRun { return try await runDryRun() }
        try await runService()
    }

    private func runCheck() throws {
        let loaded = load()
        let (rules, errors) = (loaded.rules, loaded.errors)
        for error in errors { print(error) }
        for path in loaded.masked { print("\(path): empty, masks the rule of that name") }
        for (rule, account) in rules {
            print("\(rule.path): ok: \(Self.summary(rule, account))")
        }
        print("\(rules.count) rule\(rules.count == 1 ? "" : "s") ok, \(errors.count) mistake\(errors.count == 1 ? "" : "s")")
        if !errors.isEmpty { throw ExitCode(1) }
    }

    static func summary(_ rule: HookRule, _ account: Account?) -> String {
        var text = "on " + rule.match.events.map(\.rawValue).sorted().joined(separator: " ")
        if let users = rule.match.userNames { text += " of " + users.sorted().joined(separator: " ") }
        switch rule.action {
        case .exec(let words): text += ", run \(words.joined(separator: " ")) as \(account?.name ?? "the session's user")"
        case .unit(let unit): text += ", start \(unit)"
        }
        return text + ", time limit " + (rule.timeout?.seconds ?? "none")
    }

    private func runDryRun() async throws {
        let loaded = load()
        let (rules, errors) = (loaded.rules, loaded.errors)
        for error in errors { printError("sensd-hooks: \(error) (left out)") }
        let client = SensdClient(socketPath: socket)
        var count = 0
        do {
            for try await message in client.messages(Filter(classes: [Filter.everyClass]), after: since ?? 0, live: false, reconnect: .never) {
                switch message.kind {
                case .event(let event):
                    for (rule, account) in rules where rule.match.matches(event) {
                        let line = Executor.commandLine(rule, event).map(Self.quoted).joined(separator: " ")
                        let who = rule.user == nil ? "" : " as \(account?.name ?? event.userName ?? "?")"
                        print("seq \(event.seq) \(event.event.rawValue) session \(event.sessionId) \(event.userName ?? "?"): rule \(rule.name) would run\(who): \(line)")
                        count += 1
                    }
                case .gap(let gap):
                    print("events \(gap.firstMissing) to \(gap.lastMissing): not in sensd's log (\(gap.message))")
                case .end(let last):
                    print("\(count) run\(count == 1 ? "" : "s") for the events after seq \(since ?? 0) through \(last)")
                default:
                    break
                }
            }
        } catch let error as SENSClientError {
            printError("sensd-hooks: \(error)")
            throw ExitCode(1)
        }
    }

    static func quoted(_ word: String) -> String {
        word.isEmpty || word.contains(where: { " \t'\"\\$`".contains($0) }) ? "'" + word.replacingAll("'", with: "'\\''") + "'" : word
    }

    private func runService() async throws {
        guard mkdir(stateDirectory, 0o700) == 0 || errno == EEXIST else {
            printError("sensd-hooks: cannot make the state directory \(stateDirectory): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        let command = self
        // SIGTERM and SIGINT: the group's graceful shutdown, each rule letting its running command finish.
        var configuration = ServiceGroupConfiguration(services: [ServiceGroupConfiguration.ServiceConfiguration](), gracefulShutdownSignals: [.sigterm, .sigint], logger: log)
        configuration.logging.keys.serviceKey = "service"
        let group = ServiceGroup(configuration: configuration)
        let supervisor = RuleSupervisor(
            group: group, load: { command.load() }, client: SensdClient(socketPath: socket),
            stateDirectory: stateDirectory, executor: Executor(limiter: Limiter(limit: maxParallel)), shutdown: Shutdown()
        )
        await group.addServiceUnlessShutdown(ServiceGroupConfiguration.ServiceConfiguration(service: supervisor, successTerminationBehavior: .gracefullyShutdownGroup,
                                                   failureTerminationBehavior: .cancelGroup))
        try await group.run()
    }
}

func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
