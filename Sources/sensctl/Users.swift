import ArgumentParser
import SENSClient
import SENSMonitoring

#if canImport(Glibc)
import Glibc
#endif

struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the names of the users logged in, on one line.",
        discussion: """
            Like users(1) of coreutils, which reads utmp and so shows nobody on systems without it (Debian 13 and \
            later): one name per open session, sorted, separated by spaces; a user with two sessions is named twice \
            (--unique: once). Every session logind knows counts, su and ssh alike; service-manager sessions do not.
            """
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Flag(help: "Name each user once.")
    var unique = false

    func run() async throws {
        try await talkingToSensd {
            let snapshot = try await SensdClient(socketPath: socket).snapshot()
            var names = snapshot.sessions.map { $0.userName ?? $0.uid.map { "uid \($0)" } ?? "?" }.sorted()
            if unique { names = Array(Set(names)).sorted() }
            var out = Output()
            out.line(names.joined(separator: " ").utf8)
            out.flush()
        }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Monitoring plugins (Nagios, Icinga, Naemon, Sensu).",
        subcommands: [CheckUsers.self]
    )
}

/// A check following the Monitoring Plugins guidelines: one line with performance data, exit code 0-3.
struct CheckUsers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Check how many users (or sessions) are logged in.",
        discussion: """
            Prints one line such as 'USERS WARNING - 3 users logged in, 5 sessions (alice, bob, carol) | users=3;2;10;0; \
            sessions=5;;;0;' and exits 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN: sensd cannot be reached, or a \
            threshold does not parse). Thresholds are ranges as the Monitoring Plugins guidelines define them: N \
            alerts above N (or below 0), N: below N, ~:N above N, N:M outside N..M, @N:M inside N..M. Service-manager \
            sessions are never counted.
            """
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Option(name: [.customShort("w"), .long], help: ArgumentHelp("WARNING when the count is outside this range.", valueName: "RANGE"))
    var warning: String?

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp("CRITICAL when the count is outside this range.", valueName: "RANGE"))
    var critical: String?

    @Option(help: ArgumentHelp("What the thresholds apply to: users (distinct) or sessions.", valueName: "users|sessions"))
    var count: String = "users"

    @Option(name: .customLong("class"), help: ArgumentHelp("Only sessions of this logind class (repeatable).", valueName: "CLASS"))
    var classes: [String] = []

    @Option(name: .customLong("user"), help: ArgumentHelp("Only this user's sessions (repeatable).", valueName: "NAME"))
    var users: [String] = []

    @Flag(help: "Only remote sessions (ssh and other sessions logind calls remote).")
    var remote = false

    @Flag(help: "Only local sessions.")
    var local = false

    func run() async throws {
        let check: UsersCheck
        do {
            guard let measure = UsersCheck.Measure(rawValue: count) else {
                throw ThresholdError.measure(count)
            }
            check = UsersCheck(measure: measure, warning: try warning.map(ThresholdRange.init(parsing:)),
                               critical: try critical.map(ThresholdRange.init(parsing:)))
            if remote && local { throw ThresholdError.conflict }
        } catch {
            return report(UsersCheck.unknown("\(error)"))
        }
        let filter = Filter(users: users.isEmpty ? nil : Set(users), classes: classes.isEmpty ? nil : Set(classes))
        let snapshot: Snapshot
        do {
            snapshot = try await SensdClient(socketPath: socket).snapshot(filter)
        } catch {
            return report(UsersCheck.unknown("cannot ask sensd: \(error)"))
        }
        let sessions = snapshot.sessions.filter { session in
            if remote { return session.remote == true }
            if local { return session.remote != true }
            return true
        }
        report(check.evaluate(Snapshot.logons(sessions)))
    }

    private func report(_ result: (status: UsersCheck.Status, line: String)) {
        var out = Output()
        out.line(result.line.utf8)
        out.flush()
        Glibc.exit(result.status.rawValue)
    }
}

extension ThresholdError {
    static func measure(_ text: String) -> UsageError { UsageError("--count \(text): expected users or sessions") }
    static let conflict = UsageError("--remote and --local exclude each other")
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
