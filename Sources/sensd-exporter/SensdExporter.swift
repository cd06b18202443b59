import ArgumentParser
import Dispatch
import SENSClient
import SENSMonitoring
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Who is logged in, for Prometheus: a client of sensd's socket that serves the metrics over HTTP
/// (socket-activated by sensd-exporter.socket, or on --listen) or writes them for node_exporter's textfile
/// collector.
@main
struct SensdExporter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensd-exporter",
        abstract: "Serves sensd's sessions and counters as Prometheus metrics.",
        discussion: """
            A client of sensd's socket: each scrape asks sensd for the open sessions and its counters, and a stream \
            of events feeds the event counters and the session-duration histogram (they start at 0 with the exporter). \
            Under systemd, sensd-exporter.socket listens (127.0.0.1:9848 by default) and starts it; run by hand it \
            listens on --listen. With --textfile it writes the metrics for node_exporter's textfile collector instead, \
            after every event and every --interval seconds (--once: once, then exits).
            """,
        version: SensdClient.version
    )

    @Option(help: "Path of sensd's socket.")
    var socket = SensdClient.defaultSocketPath

    @Option(help: ArgumentHelp("Listen on this address when not socket-activated.", valueName: "HOST:PORT"))
    var listen = "127.0.0.1:9848"

    @Option(help: ArgumentHelp("Write the metrics to this file (atomically) instead of serving HTTP.", valueName: "PATH"))
    var textfile: String?

    @Option(help: ArgumentHelp("With --textfile: rewrite at least this often, for the lock and idle states and sensd's counters.", valueName: "SECONDS"))
    var interval = 60

    @Flag(help: "With --textfile: write once and exit (for a timer).")
    var once = false

    func validate() throws {
        if once && textfile == nil { throw ValidationError("--once goes with --textfile") }
        if interval < 1 { throw ValidationError("--interval must be at least 1 second") }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let client = SensdClient(socketPath: socket)
        let metrics = SessionMetrics()
        if let textfile {
            let writer = TextfileWriter(path: textfile, client: client, metrics: metrics)
            if once {
                try await writer.write()
                return
            }
            try await writer.run(countingFrom: client, every: interval)
            return
        }
        var listeners = HTTPListener.inherited()
        if listeners.isEmpty {
            do {
                listeners = [try HTTPListener.listen(on: listen)]
            } catch {
                printError("sensd-exporter: \(error)")
                throw ExitCode.failure
            }
            printError("sensd-exporter: serving /metrics on port \(HTTPListener.port(of: listeners[0]).map(String.init) ?? "?") (--listen \(listen))")
        } else {
            let ports = listeners.map { HTTPListener.port(of: $0).map(String.init) ?? "?" }
            printError("sensd-exporter: serving /metrics on the sockets systemd passed (port \(ports.joined(separator: ", ")))")
        }
        let server = HTTPListener(listeners: listeners) { Scrape.blocking(client, metrics) }
        // Its own thread, outside Swift's concurrency pool: it waits in poll(2) and for each scrape.
        DispatchQueue(label: "sensd-exporter http").async { server.run() }
        try await count(from: client, into: metrics) {}
    }
}

/// Feeds the event counters from sensd's stream, reconnecting and resuming after sensd restarts; calls
/// `changed` after each line that changed something.
func count(from client: SensdClient, into metrics: SessionMetrics, changed: () async -> Void) async throws {
    for try await message in client.messages() {
        switch message.kind {
        case .event(let event):
            metrics.observe(event)
            await changed()
        case .gap(let gap):
            metrics.observe(gap)
        case .accepted:
            metrics.streamConnected(true)
            await changed()
        case .disconnected:
            metrics.streamConnected(false)
            await changed()
        default:
            break
        }
    }
}

/// One scrape: the open sessions and sensd's counters, asked anew.
enum Scrape {
    static func render(_ client: SensdClient, _ metrics: SessionMetrics) async -> (status: Int, text: String) {
        do {
            let snapshot = try await client.snapshot(Filter(classes: [Filter.everyClass]))
            let stats = try await client.stats()
            return (200, metrics.render(snapshot: snapshot, stats: stats))
        } catch {
            // Still 200: `sensd_up 0` is the answer a monitoring system alerts on; the reason goes to the log.
            printError("sensd-exporter: cannot ask sensd: \(error)")
            return (200, metrics.render(snapshot: nil, stats: nil))
        }
    }

    /// For the HTTP thread, which is not part of Swift's concurrency pool and may wait.
    static func blocking(_ client: SensdClient, _ metrics: SessionMetrics) -> (status: Int, text: String) {
        let result = Mutex<(status: Int, text: String)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = Task {
            let page = await render(client, metrics)
            result.withLock { $0 = page }
            done.signal()
        }
        if done.wait(timeout: .now() + .seconds(8)) == .timedOut {
            task.cancel()
            return (503, "sensd did not answer within 8 s\n")
        }
        return result.withLock { $0 } ?? (503, "no answer\n")
    }
}

/// Writes the metrics for node_exporter's textfile collector: a temporary file in the same directory,
/// renamed over the old one, so the collector never reads half a file.
struct TextfileWriter: Sendable {
    let path: String
    let client: SensdClient
    let metrics: SessionMetrics

    func write() async throws {
        let (_, text) = await Scrape.render(client, metrics)
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExporterError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw ExporterError("cannot write \(temporary): \(reason)")
            }
            offset += n
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ExporterError("cannot rename \(temporary) to \(path): \(reason)")
        }
    }

    /// Writes now, after each event (a burst is one write: what comes during a write makes one more), and
    /// every `seconds` at the latest.
    func run(countingFrom client: SensdClient, every seconds: Int) async throws {
        try await write()
        let (changes, changed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await count(from: client, into: metrics) { changed.yield() }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: .seconds(seconds))
                    changed.yield()
                }
            }
            group.addTask {
                for await _ in changes {
                    do { try await write() } catch { printError("sensd-exporter: \(error)") }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

func printError(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
}
