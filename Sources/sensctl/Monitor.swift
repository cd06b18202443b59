import ArgumentParser
import SENSClient

struct Monitor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as they arrive, one per line.",
        discussion: """
            Exits 0 when sensd stops or closes the stream normally, 69 when sensd cannot be reached, 1 when sensd \
            ends the stream with an error (an overflow, a refused request). With --reconnect it instead waits for \
            sensd (also when it is not there yet) and resumes after the last event it received, so nothing is \
            lost across overflows and restarts (within the log's retention; a gap is reported on standard error).
            """
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Flag(help: "Print the raw JSON lines, including the hello, accepted and error lines.")
    var json = false

    @Option(help: ArgumentHelp("Print each event as one JSON object for a SIEM: ecs (Elastic Common Schema \(EventFormat.ecsVersion)) or ocsf (OCSF \(EventFormat.ocsfVersion) Authentication); sensd prints sensd's own lines, events only. Other lines go to standard error as usual.", valueName: "FORMAT"))
    var format: String?

    @Option(name: .customLong("event"), help: ArgumentHelp("Only this event type (repeatable): \(EventKind.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "EVENT"))
    var events: [String] = []

    @Option(name: .customLong("user"), help: ArgumentHelp("Only this user's sessions (repeatable).", valueName: "NAME"))
    var users: [String] = []

    @Option(name: .customLong("uid"), help: ArgumentHelp("Only sessions of this uid (repeatable).", valueName: "UID"))
    var uids: [UInt32] = []

    @Option(name: .customLong("class"), help: ArgumentHelp("Only sessions of this logind class (repeatable): user, greeter, lock-screen, background, manager, ... Service-manager sessions (manager, manager-early) come only when named.", valueName: "CLASS"))
    var classes: [String] = []

    @Option(help: ArgumentHelp("First replay every retained event after this seq, then the live ones.", valueName: "SEQ"))
    var since: UInt64?

    @Flag(help: "When sensd stops, restarts or cuts this client off, reconnect and resume where the stream left off.")
    var reconnect = false

    func validate() throws {
        if let format, EventFormat(rawValue: format) == nil {
            throw ValidationError("unknown format '\(format)'; known: \(EventFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if format != nil && json { throw ValidationError("--json and --format exclude each other") }
        for e in events where EventKind(rawValue: e) == nil {
            throw ValidationError("unknown event '\(e)'; known: \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    var filter: Filter {
        Filter(events: events.isEmpty ? nil : Set(events.compactMap(EventKind.init(rawValue:))),
               users: users.isEmpty ? nil : Set(users), uids: uids.isEmpty ? nil : Set(uids),
               classes: classes.isEmpty ? nil : Set(classes))
    }

    func run() async throws {
        let stream = SensdClient(socketPath: socket).messages(filter, after: since, reconnect: reconnect ? .standard : .never)
        var messages = stream.makeAsyncIterator()
        var out = Output()
        try await talkingToSensd {
            do {
                while let message = try await messages.next() {
                    show(message, &out, position: messages.position)
                    out.flush()
                }
            } catch let error as SENSClientError where error.code == .server {
                // Printed as it came (show).
                throw ExitCode(1)
            }
        }
    }

    private func show(_ message: Message, _ out: inout Output, position: UInt64?) {
        if json, let line = message.line { out.line(line.utf8) }
        switch message.kind {
        case .event(let event):
            if let format = format.flatMap(EventFormat.init(rawValue:)) {
                out.line(event.formatted(format, line: message.line).utf8)
            } else if !json {
                out.line(Self.describe(event).utf8)
            }
        case .gap(let gap):
            printError("sensctl: warning: \(gap.message)")
        case .serverError(let error):
            if error.code == .shuttingDown {
                if !json { printError("sensctl: sensd: \(error.message)") }
            } else if reconnect && error.isTransient {
                printError("sensctl: sensd: \(error.message); resuming")
            } else {
                let hint = error.code == .overflow ? position.map { " (resume with --since \($0))" } ?? "" : ""
                printError("sensctl: sensd: \(error.message) [\(error.code)]\(hint)")
            }
        case .disconnected(let reason):
            printError("sensctl: \(reason); waiting for sensd")
        case .reconnected(let after):
            printError("sensctl: reconnected; resuming after seq \(after.map(String.init) ?? "none")")
        case .other:
            // A line this version does not know (a newer daemon): show it rather than hide it.
            if !json, format == nil, let line = message.line { out.line(line.utf8) }
        case .hello, .accepted, .end:
            break
        }
    }

    static func describe(_ e: SENSEvent) -> String {
        let who = e.userName.map { "\($0) (uid \(e.uid.map(String.init) ?? "?"))" } ?? "unknown user"
        var text = "\(e.time.rfc3339)  \(e.event.rawValue.padding(16))  session \(e.sessionId.padding(6))  \(who)  seq \(e.seq)"
        var details: [String] = []
        if e.event == .logonFailed {
            details.append(e.failureReason ?? "other")
            if e.targetExists == false { details.append("no such user") }
            if let s = e.service { details.append("via \(s)") }
            if let h = e.remoteHost { details.append("from \(h)" + (e.remotePort.map { " port \($0)" } ?? "")) }
            if let t = e.tty { details.append("on \(t)") }
            if let n = e.count, n > 1 { details.append("\(n) times") }
            if let s = e.source { details.append("reported by \(s)") }
        }
        if e.event == .logon {
            if let t = e.logonType { details.append(t.rawValue) }
            if let s = e.service { details.append("via \(s)") }
            if let h = e.remoteHost { details.append("from \(h)") }
            if let t = e.tty { details.append("on \(t)") }
            if let by = e.invokedBy ?? e.invokedByUid.map({ "uid \($0)" }) { details.append("run by \(by)") }
            if e.elevated == true { details.append("elevated") }
        }
        if e.observedLate == true { details.append("observed late") }
        if let why = e.unresolved { details.append(why) }
        if !details.isEmpty { text += "  [" + details.joined(separator: ", ") + "]" }
        return text
    }
}
