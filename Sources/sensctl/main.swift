import ArgumentParser
import FoundationEssentials
import SENSCore
import UnixSocket

#if canImport(Glibc)
import Glibc
#endif

struct Sensctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensctl",
        abstract: "Watches the SENS logon events sensd publishes.",
        version: Release.version,
        subcommands: [Monitor.self, Who.self, Last.self, Position.self],
        defaultSubcommand: Monitor.self
    )
}

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as they arrive, one per line.",
        discussion: """
            Exits 0 when sensd stops or closes the stream normally, 69 when sensd cannot be reached, 1 when sensd \
            ends the stream with an error (an overflow, a refused request). With --reconnect it instead waits for \
            sensd and resumes after the last event it received, so nothing is lost across overflows and restarts \
            (within the log's retention; a gap is reported on standard error).
            """
    )

    @Option(help: "Path of sensd's socket.")
    var socket = "/run/sensd/events.sock"

    @Flag(help: "Print the raw JSON lines, including the hello, accepted and error lines.")
    var json = false

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
        for e in events where EventKind(rawValue: e) == nil {
            throw ValidationError("unknown event '\(e)'; known: \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The request line for the options given and the point to resume after, or nil for everything live.
    func request(since: UInt64?) -> [UInt8]? {
        let r = SubscriptionRequest(
            events: events.isEmpty ? nil : Set(events.compactMap(EventKind.init(rawValue:))),
            users: users.isEmpty ? nil : Set(users),
            uids: uids.isEmpty ? nil : Set(uids),
            classes: classes.isEmpty ? nil : Set(classes),
            since: since)
        return r.isEverything && since == nil ? nil : r.json + [0x0A]
    }

    /// How one connection ended.
    enum Ending {
        case closed
        case shuttingDown
        case overflow
        case failed
    }

    func run() throws {
        var stream = StreamPosition(since: since)
        var connectedOnce = false
        while true {
            let fd: Int32
            do {
                fd = try Syscall.connect(path: socket)
            } catch {
                if reconnect && connectedOnce {
                    // Waiting for sensd to come back (a restart); a client backoff, not synchronisation.
                    usleep(200_000)
                    continue
                }
                let hint = (error.errno == ENOENT || error.errno == ECONNREFUSED) ? " (is sensd running?)" : ""
                printError("sensctl: cannot connect to \(socket): \(String(cString: strerror(error.errno)))\(hint)")
                throw ExitCode(69)  // EX_UNAVAILABLE
            }
            if connectedOnce { printError("sensctl: reconnected; resuming after seq \(stream.position.map(String.init) ?? "none")") }
            connectedOnce = true
            let ending = try follow(fd, &stream)
            Syscall.close(fd)
            switch ending {
            case .closed, .shuttingDown, .overflow:
                if reconnect { continue }
                if ending == .overflow { throw ExitCode(1) }
                return
            case .failed:
                throw ExitCode(1)
            }
        }
    }

    /// Reads one connection to its end, printing as it goes.
    private func follow(_ fd: Int32, _ stream: inout StreamPosition) throws -> Ending {
        if let request = request(since: stream.position) {
            do {
                try Syscall.writeAll(fd, request)
            } catch {
                printError("sensctl: sending the subscription to \(socket): \(error)")
                return reconnect ? .closed : .failed
            }
        }
        let decoder = JSONDecoder()
        var reader = LineReader(limit: 1 << 20)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var ending = Ending.closed
        while true {
            let n: Int?
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(fd, into: raw) }
            } catch {
                printError("sensctl: reading from \(socket): \(error)")
                return reconnect ? .closed : .failed
            }
            guard let n, n > 0 else { return ending }
            let lines = buffer.withUnsafeBytes { reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            var out = Output()
            defer { out.flush() }
            for outcome in lines {
                guard case .line(let line) = outcome else {
                    printError("sensctl: sensd sent a line longer than 1 MiB; stopping")
                    return .failed
                }
                let kind = stream.take(line, decoder)
                if json { out.line(line) }
                switch kind {
                case .event(let event):
                    if !json { out.line(Self.describe(event).utf8) }
                case .gap(let message):
                    printError("sensctl: warning: \(message)")
                case .error(let code, let message):
                    if code == "shutting-down" {
                        if !json { printError("sensctl: sensd: \(message)") }
                        ending = .shuttingDown
                    } else if code == "overflow" && reconnect {
                        printError("sensctl: sensd: \(message); resuming")
                        ending = .overflow
                    } else {
                        let hint = code == "overflow" ? stream.position.map { " (resume with --since \($0))" } ?? "" : ""
                        printError("sensctl: sensd: \(message) [\(code)]\(hint)")
                        ending = code == "overflow" ? .overflow : .failed
                    }
                case .control:
                    break
                case .unknown:
                    // A line this version does not know (a newer daemon): show it rather than hide it.
                    if !json { out.line(line) }
                }
            }
        }
    }

    static func describe(_ e: SENSEvent) -> String {
        let who = e.userName.map { "\($0) (uid \(e.uid.map(String.init) ?? "?"))" } ?? "unknown user"
        var text = "\(e.time.rfc3339)  \(e.event.rawValue.padding(16))  session \(e.sessionId.padding(6))  \(who)  seq \(e.seq)"
        var details: [String] = []
        if e.event == .logon {
            if let t = e.logonType { details.append(t.rawValue) }
            if let s = e.service { details.append("via \(s)") }
            if let h = e.remoteHost { details.append("from \(h)") }
            if let t = e.tty { details.append("on \(t)") }
        }
        if e.observedLate == true { details.append("observed late") }
        if let why = e.unresolved { details.append(why) }
        if !details.isEmpty { text += "  [" + details.joined(separator: ", ") + "]" }
        return text
    }
}

/// One connection to sensd, read line by line.
final class Connection {
    let socket: String
    let fd: Int32
    private var reader = LineReader(limit: 1 << 20)
    private var buffer = [UInt8](repeating: 0, count: 65536)

    /// Connects, or says why not and exits 69 (EX_UNAVAILABLE).
    init(socket: String) throws {
        self.socket = socket
        do {
            fd = try Syscall.connect(path: socket)
        } catch {
            let hint = (error.errno == ENOENT || error.errno == ECONNREFUSED) ? " (is sensd running?)" : ""
            printError("sensctl: cannot connect to \(socket): \(String(cString: strerror(error.errno)))\(hint)")
            throw ExitCode(69)
        }
    }

    func send(_ request: SubscriptionRequest) throws {
        do {
            try Syscall.writeAll(fd, request.json + [0x0A])
        } catch {
            printError("sensctl: sending the request to \(socket): \(error)")
            throw ExitCode(1)
        }
    }

    /// Hands each line to `body` until it returns false; an error line from sensd ends the program.
    func read(_ body: (ArraySlice<UInt8>) throws -> Bool) throws {
        while true {
            let n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(fd, into: raw) }
            guard let n, n > 0 else {
                printError("sensctl: sensd closed the connection early")
                throw ExitCode(1)
            }
            for outcome in buffer.withUnsafeBytes({ reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) {
                guard case .line(let line) = outcome else {
                    printError("sensctl: sensd sent a line longer than 1 MiB; stopping")
                    throw ExitCode(1)
                }
                if let control = try? JSONDecoder().decode(ControlLine.self, from: Data(line)), let code = control.error {
                    printError("sensctl: sensd: \(control.message ?? code) [\(code)]")
                    throw ExitCode(1)
                }
                if try !body(line) { return }
            }
        }
    }

    func close() { Syscall.close(fd) }
}

/// A session as a `snapshot` line describes it (docs/protocol.md, "Snapshot of the open sessions").
struct SnapshotLine: Decodable {
    var snapshot: String
    var seq: UInt64?
    var sessions: Int?
    var sessionId: String?
    var userName: String?
    var uid: UInt32?
    var sessionClass: String?
    var service: String?
    var tty: String?
    var seat: String?
    var remoteHost: String?
    var remoteUser: String?
    var sessionStart: String?
    var state: String?
    var locked: Bool?
    var idle: Bool?

    enum CodingKeys: String, CodingKey {
        case snapshot, seq, sessions, sessionId, userName, uid, service, tty, seat, remoteHost, remoteUser, sessionStart, state, locked, idle
        case sessionClass = "class"
    }
}

struct Who: ParsableCommand {
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
    var socket = "/run/sensd/events.sock"

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

    func run() throws {
        let connection = try Connection(socket: socket)
        defer { connection.close() }
        let wanted: Set<String>? = all ? [SubscriptionRequest.everyClass] : classes.isEmpty ? nil : Set(classes)
        try connection.send(SubscriptionRequest(
            users: users.isEmpty ? nil : Set(users), uids: uids.isEmpty ? nil : Set(uids), classes: wanted, snapshot: true))
        var rows: [[String]] = []
        var out = Output()
        try connection.read { line in
            guard let entry = try? JSONDecoder().decode(SnapshotLine.self, from: Data(line)) else { return true }
            if json { out.line(line) }
            if entry.snapshot == "session" { rows.append(Self.row(entry)) }
            return entry.snapshot != "end"
        }
        if !json {
            out.line(Table.render(header: ["SESSION", "USER", "UID", "CLASS", "SERVICE", "TTY", "FROM", "SINCE", "STATE"], rows: rows).utf8)
            out.line("\(rows.count) session\(rows.count == 1 ? "" : "s")".utf8)
        }
        out.flush()
    }

    static func row(_ e: SnapshotLine) -> [String] {
        var state = e.state ?? "-"
        if e.locked == true { state += ",locked" }
        if e.idle == true { state += ",idle" }
        let from = e.remoteHost.map { host in e.remoteUser.map { "\($0)@\(host)" } ?? host } ?? e.seat ?? "-"
        return [e.sessionId ?? "?", e.userName ?? "?", e.uid.map(String.init) ?? "?", e.sessionClass ?? "-", e.service ?? "-",
                e.tty ?? "-", from, e.sessionStart.flatMap { EventTime(rfc3339: $0) }.map(Table.localTime) ?? "-", state]
    }
}

struct Last: ParsableCommand {
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
    var socket = "/run/sensd/events.sock"

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

    /// Every Logon and Logoff in the log, up to the last event sensd gave out.
    static func replay(socket: String, classes: Set<String>?, _ body: (SENSEvent) -> Void) throws {
        let connection = try Connection(socket: socket)
        defer { connection.close() }
        try connection.send(SubscriptionRequest(events: [.logon, .logoff], classes: classes, since: 0, live: false))
        let decoder = JSONDecoder()
        try connection.read { line in
            if let event = try? decoder.decode(SENSEvent.self, from: Data(line)) {
                body(event)
                return true
            }
            guard let control = try? decoder.decode(ControlLine.self, from: Data(line)) else { return true }
            if control.gap != nil, let message = control.message { printError("sensctl: \(message)") }
            return control.end == nil
        }
    }

    static func parseTime(_ text: String) -> EventTime? {
        EventTime(rfc3339: text) ?? EventTime(rfc3339: text + "T00:00:00Z")
    }

    func run() throws {
        let connection = try Connection(socket: socket)
        defer { connection.close() }
        var history = SessionHistory()
        // Service managers reach only a request that names their classes ("*": every class).
        try Self.replay(socket: socket, classes: all ? [SubscriptionRequest.everyClass] : nil) { history.take($0) }
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

/// Sessions paired from their Logon and Logoff events, in the order the log holds them.
struct SessionHistory {
    struct Entry {
        /// The first of its events in the log (its Logon, or its Logoff when the log no longer reaches back):
        /// the session's fields as its events carry them.
        var session: SENSEvent
        var logonTime: EventTime?
        var logonFromLog: Bool
        var logoffTime: EventTime?
        var logonSeq: UInt64?
        var logoffSeq: UInt64?

        var firstSeq: UInt64 { session.seq }

        var json: [UInt8] {
            let e = session
            var o: [String: Any] = ["sessionId": e.sessionId, "stillLoggedIn": logoffSeq == nil, "logonFromLog": logonFromLog]
            o["userName"] = e.userName ?? NSNullValue.null
            o["uid"] = e.uid.map { Int($0) } ?? NSNullValue.null
            o["logonTime"] = logonTime?.rfc3339 ?? NSNullValue.null
            o["logoffTime"] = logoffTime?.rfc3339 ?? NSNullValue.null
            if let logonTime, let logoffTime { o["durationSeconds"] = Double(logoffTime.microsecondsSinceEpoch - logonTime.microsecondsSinceEpoch) / 1e6 }
            for (k, v) in [("class", e.sessionClass), ("service", e.service), ("tty", e.tty), ("seat", e.seat), ("remoteHost", e.remoteHost)] {
                if let v { o[k] = v }
            }
            if let logonSeq { o["logonSeq"] = Int(logonSeq) }
            if let logoffSeq { o["logoffSeq"] = Int(logoffSeq) }
            return JSONText.object(o)
        }

        var row: [String] {
            let logon = logonTime.map { Table.localTime($0) + (logonFromLog ? "" : "*") } ?? "?"
            let logoff = logoffTime.map(Table.localTime) ?? "still logged in"
            var duration = "-"
            if let logonTime, let logoffTime {
                let seconds = max(0, (logoffTime.microsecondsSinceEpoch - logonTime.microsecondsSinceEpoch) / 1_000_000)
                duration = seconds >= 86_400 ? "\(seconds / 86_400)+" : ""
                duration += format2(seconds % 86_400 / 3600) + ":" + format2(seconds % 3600 / 60) + ":" + format2(seconds % 60)
            }
            return [session.userName ?? "?", session.sessionId, session.remoteHost ?? session.tty ?? session.seat ?? "-", logon, logoff, duration]
        }
    }

    private(set) var sessions: [Entry] = []
    /// Open entries by session id and session start: ids are reused (a logind restart counts from c1 again).
    private var open: [String: Int] = [:]

    private static func key(_ e: SENSEvent) -> String { e.sessionId + " " + (e.sessionStart?.rfc3339 ?? "") }

    mutating func take(_ e: SENSEvent) {
        switch e.event {
        case .logon:
            open[Self.key(e)] = sessions.count
            sessions.append(Entry(session: e, logonTime: e.time, logonFromLog: true, logonSeq: e.seq))
        case .logoff:
            if let i = open.removeValue(forKey: Self.key(e)) {
                sessions[i].logoffTime = e.time
                sessions[i].logoffSeq = e.seq
                if sessions[i].session.userName == nil { (sessions[i].session.userName, sessions[i].session.uid) = (e.userName, e.uid) }
            } else {
                // The log no longer reaches back to its Logon (or it began before sensd's first start).
                sessions.append(Entry(session: e, logonTime: e.sessionStart, logonFromLog: false, logoffTime: e.time, logoffSeq: e.seq))
            }
        default:
            break
        }
    }
}

func format2(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// JSON null for ``JSONText``.
enum NSNullValue { case null }

/// A flat JSON object with sorted keys, for --json output.
enum JSONText {
    static func object(_ o: [String: Any]) -> [UInt8] {
        var parts: [String] = []
        for key in o.keys.sorted() {
            let value: String
            switch o[key] {
            case let s as String: value = quote(s)
            case let b as Bool: value = b ? "true" : "false"
            case let i as Int: value = String(i)
            case let d as Double: value = String(d)
            default: value = "null"
            }
            parts.append(quote(key) + ":" + value)
        }
        return Array(("{" + parts.joined(separator: ",") + "}").utf8)
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20: out += "\\u00" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Columns padded to their widest cell.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(widths[i]) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Local time as last(1) shows it, to the minute.
    static func localTime(_ t: EventTime) -> String {
        var seconds = time_t(t.microsecondsSinceEpoch / 1_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%a %b %e %H:%M", &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

struct Position: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the seq of the last event sensd gave out and of the oldest one its log retains.",
        discussion: "A program that saves the first number can later catch up with 'sensctl monitor --since N' (or the \"since\" request key)."
    )

    @Option(help: "Path of sensd's socket.")
    var socket = "/run/sensd/events.sock"

    @Flag(help: "Print sensd's hello line as JSON.")
    var json = false

    func run() throws {
        let fd: Int32
        do {
            fd = try Syscall.connect(path: socket)
        } catch {
            printError("sensctl: cannot connect to \(socket): \(String(cString: strerror(error.errno)))")
            throw ExitCode(69)
        }
        defer { Syscall.close(fd) }
        var reader = LineReader(limit: 1 << 20)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(fd, into: raw) }
            guard let n, n > 0 else {
                printError("sensctl: sensd closed the connection before saying hello")
                throw ExitCode(1)
            }
            for case .line(let line) in buffer.withUnsafeBytes({ reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) {
                guard let hello = try? JSONDecoder().decode(ControlLine.self, from: Data(line)), hello.hello != nil, let last = hello.lastSeq else {
                    printError("sensctl: sensd's first line was not a hello line: \(String(decoding: line, as: UTF8.self))")
                    throw ExitCode(1)
                }
                var out = Output()
                if json {
                    out.line(line)
                } else {
                    out.line("lastSeq \(last)".utf8)
                    out.line("oldestSeq \(hello.oldestSeq.map(String.init) ?? "none (the log retains no events)")".utf8)
                }
                out.flush()
                return
            }
        }
    }
}

/// Where a stream stands: the seq through which this client has everything it asked for.
struct StreamPosition {
    private(set) var position: UInt64?

    init(since: UInt64?) {
        position = since
    }

    enum Line {
        case event(SENSEvent)
        case gap(String)
        case error(code: String, message: String)
        case control
        case unknown
    }

    mutating func take(_ line: ArraySlice<UInt8>, _ decoder: JSONDecoder) -> Line {
        let data = Data(line)
        if let event = try? decoder.decode(SENSEvent.self, from: data) {
            advance(event.seq)
            return .event(event)
        }
        guard let control = try? decoder.decode(ControlLine.self, from: data) else { return .unknown }
        if let error = control.error { return .error(code: error, message: control.message ?? error) }
        if control.gap != nil, let last = control.lastMissing {
            advance(last)
            return .gap(control.message ?? "events are missing")
        }
        if control.hello != nil, position == nil, let last = control.lastSeq {
            // Everything from here on is what this client asked for.
            position = last
            return .control
        }
        if control.accepted != nil, let from = control.fromSeq, from > 0 {
            advance(from - 1)
            return .control
        }
        return control.hello != nil || control.accepted != nil ? .control : .unknown
    }

    private mutating func advance(_ seq: UInt64) {
        position = max(position ?? 0, seq)
    }
}

struct AcceptedRequest: Decodable {}

/// The non-event lines of the protocol: hello, accepted, gap and error lines.
struct ControlLine: Decodable {
    var hello: String?
    var lastSeq: UInt64?
    var oldestSeq: UInt64?
    var accepted: AcceptedRequest?
    var fromSeq: UInt64?
    var gap: String?
    var lastMissing: UInt64?
    var error: String?
    var message: String?
    var end: String?
}

/// Lines for standard output, written with one write(2) per batch so a pipe reader sees each event at once.
struct Output {
    private var bytes: [UInt8] = []

    mutating func line<S: Sequence>(_ text: S) where S.Element == UInt8 {
        bytes.append(contentsOf: text)
        bytes.append(0x0A)
    }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        // A closed stdout (`sensctl monitor | head`) ends the program quietly.
        if (try? Syscall.writeAll(1, bytes)) == nil { exit(0) }
        bytes.removeAll(keepingCapacity: true)
    }
}

func printError(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

// A connection sensd resets while the request is being written (it stopped between accepting and
// reading) must be an error to handle, with --reconnect a reason to reconnect, not a silent death by SIGPIPE.
signal(SIGPIPE, SIG_IGN)
Sensctl.main()
