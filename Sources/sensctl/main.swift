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
        version: "0.1.0",
        subcommands: [Monitor.self, Position.self],
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

    @Option(name: .customLong("class"), help: ArgumentHelp("Only sessions of this logind class (repeatable): user, greeter, lock-screen, background, manager.", valueName: "CLASS"))
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
