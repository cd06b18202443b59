import ArgumentParser
import SENSClient

struct Last: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the session history in sensd's event log, newest first.",
        discussion: """
            Like last(1), from sensd's log rather than wtmp (which Debian 13 no longer keeps). Each session is one \
            line: user, session, from where, logon and logoff time (or 'still logged in'), duration. Where the log \
            no longer reaches back to a session's Logon, its logon time is the session start its Logoff carries, \
            marked '*'; '?' where even that is unknown. Service-manager sessions are left out unless --all.
            """
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Flag(help: "One JSON object per session: sessionId, userName, uid, class, service, tty, seat, remoteHost, logonTime, logoffTime (null while logged in), stillLoggedIn, durationSeconds, logonFromLog, logonSeq, logoffSeq.")
    var json = false

    @Option(name: .customLong("user"), help: ArgumentHelp("Only this user's sessions (repeatable).", valueName: "NAME"))
    var users: [String] = []

    @Option(help: ArgumentHelp("Only sessions still open at or after this time: RFC 3339 (2026-11-29T10:00:00Z) or a UTC date (2026-11-29).", valueName: "TIME"))
    var since: String?

    @Flag(help: "Also show service-manager sessions.")
    var all = false

    func validate() throws {
        if let since, Self.parseTime(since) == nil {
            throw ValidationError("--since '\(since)': expected RFC 3339 (2026-11-29T10:00:00Z) or a date (2026-11-29)")
        }
    }

    static func parseTime(_ text: String) -> EventTime? {
        EventTime(rfc3339: text) ?? EventTime(rfc3339: text + "T00:00:00Z")
    }

    func run() async throws {
        var history = SessionHistory()
        try await talkingToSensd {
            // Every Logon and Logoff in the log, up to the last event sensd gave out. Service managers reach only
            // a request that names their classes ("*": every class).
            let filter = Filter(events: [.logon, .logoff], classes: all ? [Filter.everyClass] : nil)
            for try await message in SensdClient(socketPath: socket).messages(filter, after: 0, live: false, reconnect: .never) {
                switch message.kind {
                case .event(let event): history.take(event)
                case .gap(let gap): printError("sensctl: \(gap.message)")
                default: break
                }
            }
        }
        let from = since.flatMap(Self.parseTime)
        let sessions = history.sessions
            .filter { users.isEmpty || users.contains($0.session.userName ?? "") }
            .filter { s in from.map { (s.logoffTime ?? EventTime(microsecondsSinceEpoch: .max)) >= $0 } ?? true }
            .sorted { ($0.logonTime ?? $0.logoffTime ?? EventTime(microsecondsSinceEpoch: 0), $0.firstSeq) > ($1.logonTime ?? $1.logoffTime ?? EventTime(microsecondsSinceEpoch: 0), $1.firstSeq) }
        var out = Output()
        if json {
            for s in sessions { out.line(s.json) }
        } else {
            out.line(Table.render(header: ["USER", "SESSION", "FROM", "LOGON", "LOGOFF", "DURATION"], rows: sessions.map(\.row)).utf8)
        }
        out.flush()
    }
}
