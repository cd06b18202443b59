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
// usage: seat-release --cursor FILE [--ledger FILE] [--socket PATH]
//
// "Releasing" here appends "<seq> <user> <session> <time>" to the ledger file, standing in for a call to
// the license server.

import SENSClient

#if canImport(Glibc)
import Glibc
#endif

func option(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func say(_ text: String) {
    let line = Array("seat-release: \(text)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

guard let cursorPath = option("--cursor") else {
    say("usage: seat-release --cursor FILE [--ledger FILE] [--socket PATH]")
    exit(64)
}
let client = SensdClient(socketPath: option("--socket") ?? SensdClient.defaultSocketPath)
let cursor = SENSCursor(path: cursorPath)
let ledger = option("--ledger") ?? "/dev/stdout"

struct LedgerError: Error, CustomStringConvertible {
    var description: String
}

/// Gives the seat back. Must be safe to repeat for the same seq.
func release(_ event: SENSEvent) throws {
    guard let f = fopen(ledger, "a") else { throw LedgerError(description: "cannot open \(ledger): \(String(cString: strerror(errno)))") }
    defer { fclose(f) }
    fputs("\(event.seq) \(event.userName ?? "?") \(event.sessionId) \(event.time)\n", f)
    fflush(f)
    fsync(fileno(f))
}

do {
    if try cursor.load() == nil {
        // The first start: everything after sensd's last event is ours, even if the agent dies before the
        // first Logoff, so the cursor starts there rather than at "from now on" on each start.
        let hello = try await client.hello()
        try cursor.save(hello.lastSeq)
    }
    say("following Logoffs at \(client.socketPath) after seq \(try cursor.load() ?? 0)")
} catch {
    say("\(error)")
    exit(1)
}
while true {
    do {
        for try await event in try client.events(Filter(events: [.logoff]), resumingFrom: cursor) {
            guard event.userName != nil else {
                // sensd could not learn whose session it was (it ended before logind said): nothing to free.
                say("session \(event.sessionId) ended without a known user (\(event.unresolved ?? "unknown")); seq \(event.seq)")
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
        say("events \(gap.firstMissing) to \(gap.lastMissing) are lost (\(gap.message)); going on after them")
        try cursor.save(gap.lastMissing)
    } catch {
        say("\(error)")
        exit(1)
    }
}
