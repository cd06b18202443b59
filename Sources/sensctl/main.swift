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
        subcommands: [Monitor.self],
        defaultSubcommand: Monitor.self
    )
}

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as they arrive, one per line.",
        discussion: "Exits 0 when sensd stops or closes the stream normally, 69 when sensd cannot be reached, 1 when sensd ends the stream with an error (an overflow, a refused request)."
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

    func validate() throws {
        for e in events where EventKind(rawValue: e) == nil {
            throw ValidationError("unknown event '\(e)'; known: \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The request line for the options given, or nil for everything.
    var request: [UInt8]? {
        let r = SubscriptionRequest(
            events: events.isEmpty ? nil : Set(events.compactMap(EventKind.init(rawValue:))),
            users: users.isEmpty ? nil : Set(users),
            uids: uids.isEmpty ? nil : Set(uids),
            classes: classes.isEmpty ? nil : Set(classes))
        return r.isEverything ? nil : r.json + [0x0A]
    }

    func run() throws {
        let fd: Int32
        do {
            fd = try Syscall.unixStreamSocket(nonBlocking: false)
            try Syscall.connect(fd, path: socket)
        } catch {
            let hint = (error.errno == ENOENT || error.errno == ECONNREFUSED) ? " (is sensd running?)" : ""
            printError("sensctl: cannot connect to \(socket): \(String(cString: strerror(error.errno)))\(hint)")
            throw ExitCode(69)  // EX_UNAVAILABLE
        }
        defer { Syscall.close(fd) }
        if let request {
            do {
                try Syscall.writeAll(fd, request)
            } catch {
                printError("sensctl: sending the subscription to \(socket): \(error)")
                throw ExitCode(1)
            }
        }

        let decoder = JSONDecoder()
        var reader = LineReader(limit: 1 << 20)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var endedWithError = false
        while true {
            let n: Int?
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(fd, into: raw) }
            } catch {
                printError("sensctl: reading from \(socket): \(error)")
                throw ExitCode(1)
            }
            guard let n, n > 0 else { break }
            let lines = buffer.withUnsafeBytes { reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            var out = Output()
            defer { out.flush() }
            for outcome in lines {
                guard case .line(let line) = outcome else {
                    printError("sensctl: sensd sent a line longer than 1 MiB; stopping")
                    throw ExitCode(1)
                }
                if json {
                    out.line(line)
                    if Self.isFailure(line, decoder) { endedWithError = true }
                } else {
                    if Self.render(line, decoder: decoder, into: &out) == false { endedWithError = true }
                }
            }
        }
        if endedWithError { throw ExitCode(1) }
    }

    /// An error line other than the daemon's own orderly shutdown.
    static func isFailure(_ line: ArraySlice<UInt8>, _ decoder: JSONDecoder) -> Bool {
        guard let error = (try? decoder.decode(ControlLine.self, from: Data(line)))?.error else { return false }
        return error != "shutting-down"
    }

    /// Prints one line for people; false when it was an error line from the daemon.
    static func render(_ line: ArraySlice<UInt8>, decoder: JSONDecoder, into out: inout Output) -> Bool {
        let data = Data(line)
        if let event = try? decoder.decode(SENSEvent.self, from: data) {
            out.line(describe(event).utf8)
            return true
        }
        if let control = try? decoder.decode(ControlLine.self, from: data) {
            if let error = control.error {
                printError("sensctl: sensd: \(control.message ?? error) [\(error)]")
                return error == "shutting-down"
            }
            if control.hello != nil || control.accepted != nil { return true }
        }
        // A line this version does not know (a newer daemon): show it rather than hide it.
        out.line(line)
        return true
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

struct AcceptedRequest: Decodable {}

/// The non-event lines of the protocol: the hello line and error lines.
struct ControlLine: Decodable {
    var hello: String?
    var accepted: AcceptedRequest?
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

Sensctl.main()
