import ArgumentParser
import SENSClient

struct Who: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the sessions open now, as sensd knows them.",
        discussion: """
            Like 'loginctl list-sessions' with what sensd knows of each session, and like who(1) on systems without \
            utmp. sensd answers from its own state, as of one seq (printed with --json): a program can follow the \
            stream from that seq on ('sensctl monitor --since SEQ') and miss nothing. Service-manager sessions \
            (classes manager, manager-early) are listed only with --class naming them or --all.
            """
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Flag(help: "Print sensd's snapshot lines as they are: a begin line with the seq, one JSON object per session (the event field names and its state), an end line.")
    var json = false

    @Option(name: .customLong("user"), help: ArgumentHelp("Only this user's sessions (repeatable).", valueName: "NAME"))
    var users: [String] = []

    @Option(name: .customLong("uid"), help: ArgumentHelp("Only sessions of this uid (repeatable).", valueName: "UID"))
    var uids: [UInt32] = []

    @Option(name: .customLong("class"), help: ArgumentHelp("Only sessions of this logind class (repeatable).", valueName: "CLASS"))
    var classes: [String] = []

    @Flag(help: "Also list service-manager sessions.")
    var all = false

    func run() async throws {
        let wanted: Set<String>? = all ? [Filter.everyClass] : classes.isEmpty ? nil : Set(classes)
        let filter = Filter(users: users.isEmpty ? nil : Set(users), uids: uids.isEmpty ? nil : Set(uids), classes: wanted)
        try await talkingToSensd {
            let snapshot = try await SensdClient(socketPath: socket).snapshot(filter)
            var out = Output()
            if json {
                out.line(#"{"snapshot":"begin","seq":\#(snapshot.seq),"sessions":\#(snapshot.sessions.count)}"#.utf8)
                for session in snapshot.sessions { out.line(session.line.utf8) }
                out.line(#"{"snapshot":"end","seq":\#(snapshot.seq),"sessions":\#(snapshot.sessions.count)}"#.utf8)
            } else {
                let rows = snapshot.sessions.map(Self.row)
                out.line(Table.render(header: ["SESSION", "USER", "UID", "CLASS", "SERVICE", "TTY", "FROM", "SINCE", "STATE"], rows: rows).utf8)
                out.line("\(rows.count) session\(rows.count == 1 ? "" : "s")".utf8)
            }
            out.flush()
        }
    }

    static func row(_ e: Snapshot.Session) -> [String] {
        var state = e.state ?? "-"
        if e.locked == true { state += ",locked" }
        if e.idle == true { state += ",idle" }
        let from = e.remoteHost.map { host in e.remoteUser.map { "\($0)@\(host)" } ?? host } ?? e.seat ?? "-"
        return [e.sessionId, e.userName ?? "?", e.uid.map(String.init) ?? "?", e.sessionClass ?? "-", e.service ?? "-",
                e.tty ?? "-", from, e.sessionStart.map(Table.localTime) ?? "-", state]
    }
}

struct Position: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the seq of the last event sensd gave out and of the oldest one its log retains.",
        discussion: "A program that saves the first number can later catch up with 'sensctl monitor --since N' (or the \"since\" request key)."
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Flag(help: "Print sensd's hello line as JSON.")
    var json = false

    func run() async throws {
        try await talkingToSensd {
            // The first message of a stream is sensd's hello, with its line as sensd sent it.
            var messages = SensdClient(socketPath: socket).messages(reconnect: .never).makeAsyncIterator()
            guard let first = try await messages.next(), case .hello(let hello) = first.kind else {
                throw SENSClientError.protocolViolation("sensd's first line was not a hello line")
            }
            var out = Output()
            if json {
                out.line((first.line ?? "").utf8)
            } else {
                out.line("lastSeq \(hello.lastSeq)".utf8)
                out.line("oldestSeq \(hello.oldestSeq.map(String.init) ?? "none (the log retains no events)")".utf8)
            }
            out.flush()
        }
    }
}
