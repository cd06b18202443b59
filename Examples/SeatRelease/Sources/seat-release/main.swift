// seat-release: frees a user's license seat when their session ends, and never misses one.
//
// A license server, a lab booking system or a VPN concentrator counts seats per user; a seat must be given
// back when the user's session ends, however it ends (logout, killed session, reboot). This agent does it
// with the SENSClient library:
//
// - it follows sensd's Logoff events (reconnecting by itself when sensd restarts or is not there yet);
// - after releasing a seat it saves the event's seq in a cursor file, so that a restarted agent continues
//   exactly after what it finished, even across its own crash or a reboot (at-least-once: a release that
//   was under way when it died is done again, with the same seq, which `release` passes on);
// - when sensd's log no longer holds some events (the agent was stopped longer than the log's retention) it
//   says so and goes on, never silently.
//
// It runs as a service of swift-service-lifecycle, as a server's parts do: SIGTERM or SIGINT starts the
// group's graceful shutdown, the event stream (`cancelOnGracefulShutdown()`) ends between two events, never
// in the middle of a release, and the program exits 0 with its cursor on the last seat it gave back.
//
// usage: seat-release --cursor FILE [--ledger FILE] [--socket PATH]
//
// "Releasing" here appends "<seq> <user> <session> <time>" to the ledger file, standing in for a call to
// the license server.

import Logging
import SENSClient
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

func option(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

struct LedgerError: Error, CustomStringConvertible {
    var description: String
}

/// Follows sensd's Logoffs and gives each session's seat back, once, in seq order.
struct SeatReleaser: Service {
    let client: SensdClient
    let cursor: SENSCursor
    let ledger: String
    let logger: Logger

    /// Gives the seat back. Must be safe to repeat for the same seq.
    func release(_ event: SENSEvent) throws {
        guard let f = fopen(ledger, "a") else { throw LedgerError(description: "cannot open \(ledger): \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        fputs("\(event.seq) \(event.userName ?? "?") \(event.sessionId) \(event.time)\n", f)
        fflush(f)
        fsync(fileno(f))
    }

    func run() async throws {
        if try cursor.load() == nil {
            // The first start: everything after sensd's last event is ours, even if the agent dies before the
            // first Logoff, so the cursor starts there rather than at "from now on" on each start.
            let hello = try await client.hello()
            try cursor.save(hello.lastSeq)
        }
        let start = try cursor.load() ?? 0
        logger.info("following Logoffs at \(client.socketPath) after seq \(start)")
        // The stream reconnects by itself when sensd restarts; it ends only at the graceful shutdown.
        while !Task.isShuttingDownGracefully {
            do {
                for try await event in try client.events(Filter(events: [.logoff]), resumingFrom: cursor).cancelOnGracefulShutdown() {
                    guard event.userName != nil else {
                        // sensd could not learn whose session it was (it ended before logind said): nothing to free.
                        logger.notice("session \(event.sessionId) ended without a known user (\(event.unresolved ?? "unknown")); seq \(event.seq)")
                        try cursor.save(event.seq)
                        continue
                    }
                    try release(event)
                    try cursor.save(event.seq)
                }
            } catch let error as SENSClientError where error.code == .eventsMissing {
                guard let gap = error.gap else { throw error }
                // Seats of sessions in the gap may still be held: a real agent would reconcile with the license
                // server here (or with `SensdClient.snapshot()`, the sessions open now).
                logger.warning("events \(gap.firstMissing) to \(gap.lastMissing) are lost (\(gap.message)); going on after them")
                try cursor.save(gap.lastMissing)
            }
        }
        let last = try cursor.load() ?? 0
        logger.info("stopped; the last seat given back is seq \(last)")
    }
}

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
let logger = Logger(label: "seat-release")
guard let cursorPath = option("--cursor") else {
    logger.error("usage: seat-release --cursor FILE [--ledger FILE] [--socket PATH]")
    exit(64)
}
let releaser = SeatReleaser(
    client: SensdClient(socketPath: option("--socket") ?? SensdClient.defaultSocketPath),
    cursor: SENSCursor(path: cursorPath),
    ledger: option("--ledger") ?? "/dev/stdout",
    logger: logger
)
let group = ServiceGroup(services: [releaser], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
do {
    try await group.run()
} catch {
    logger.error("\(error)")
    exit(1)
}
