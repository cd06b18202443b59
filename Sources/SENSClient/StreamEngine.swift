import SENSCore
import SystemCalls

/// One stream's connections, one after another: connects, sends the request, reads lines, keeps the
/// position, reconnects and resumes after it.
///
/// The position is the seq through which the stream has handed out everything it asked for: the last
/// event it yielded, or further when a hello, an `accepted` or a gap says so. A new connection resumes after
/// it (`since`), and an event at or below it is never yielded again, so a reconnection neither loses nor
/// repeats anything the log retains.
final class StreamEngine {
    let socketPath: String
    let filter: Filter
    let live: Bool
    /// Asks for the open sessions first (`"snapshot": true`).
    let snapshot: Bool
    /// Asks for sensd's counters instead of events (`"stats": true`).
    let stats: Bool
    let policy: ReconnectPolicy
    private(set) var position: UInt64?

    private var connection: Connection?
    private var reader = LineReader(limit: 1 << 20)
    private let decoder = LineDecoder()
    private var lines: [ArraySlice<UInt8>] = []
    private var nextLine = 0
    private var connections = 0
    private var delay: Duration
    /// Why the current outage began, once `disconnected` has been said for it.
    private var outageReported = false
    /// The error that ends the stream, thrown by the next call after the line that carried it.
    private var failure: (any Error)?
    /// The stream ends cleanly (nil) on the next call.
    private var finished = false
    /// The transient error line of the current connection: reconnect after its end at once, or after a backoff.
    private var cutOff: ServerError?

    init(socketPath: String, filter: Filter, after seq: UInt64?, live: Bool, snapshot: Bool = false, stats: Bool = false, policy: ReconnectPolicy) {
        self.stats = stats
        self.socketPath = socketPath
        self.filter = filter
        self.position = seq
        self.live = live
        self.snapshot = snapshot
        self.policy = policy
        self.delay = policy.initialDelay
    }

    deinit {
        connection?.close()
    }

    /// The next message; nil when the stream has ended.
    func next() async throws -> Message? {
        while true {
            if let failure {
                finish()
                self.failure = nil
                finished = true
                throw failure
            }
            if finished {
                finish()
                return nil
            }
            if nextLine < lines.count {
                let line = lines[nextLine]
                nextLine += 1
                if let message = take(line) { return message }
                continue
            }
            if connection == nil {
                if let message = try await connect() { return message }
                continue
            }
            if let message = try await read() { return message }
        }
    }

    private func finish() {
        connection?.close()
        connection = nil
    }

    /// Ends the stream now: the connection closes, and the next call answers nil.
    func end() {
        finished = true
        finish()
    }

    /// Makes the next connection, waiting out the backoff first when this is a retry.
    private func connect() async throws -> Message? {
        let isRetry = connections > 0 || outageReported
        if isRetry && policy.isEnabled && cutOff?.code != .overflow {
            try await Task.sleep(for: delay)
            delay = min(delay * 2, policy.maximumDelay)
        }
        cutOff = nil
        try Task.checkCancellation()
        let connection: Connection
        do {
            connection = try await Connection.open(socketPath)
        } catch {
            try Task.checkCancellation()
            guard policy.isEnabled else { throw SENSClientError.unavailable(socketPath: socketPath, error) }
            return disconnected("cannot connect to \(socketPath): \(error.reason)")
        }
        self.connection = connection
        reader = LineReader(limit: reader.limit)
        var request = filter.request(since: position, snapshot: snapshot, live: live)
        request.stats = stats
        // Always a request, `{}` included: the filter then starts with the first event after the hello,
        // instead of after sensd's quarter-second wait for one.
        do {
            try await connection.write(request.json + [0x0A])
        } catch {
            // sensd may have written an error line (too many subscribers) and closed: read it.
        }
        connections += 1
        if connections > 1 || outageReported {
            outageReported = false
            return Message(kind: .reconnected(resumingAfter: position), line: nil)
        }
        return nil
    }

    private func disconnected(_ reason: String) -> Message? {
        finish()
        guard !outageReported else { return nil }
        outageReported = true
        return Message(kind: .disconnected(reason: reason), line: nil)
    }

    /// Reads what sensd sent next; at the end of a connection, decides whether the stream goes on.
    private func read() async throws -> Message? {
        guard let connection else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try await connection.read()
        } catch {
            try Task.checkCancellation()
            guard policy.isEnabled else { throw SENSClientError.connectionFailed(socketPath: socketPath, error) }
            return disconnected("reading from \(socketPath): \(error)")
        }
        if bytes.isEmpty {
            try Task.checkCancellation()
            // The end of this connection: sensd stopped (after `shutting-down`, or killed), or cut us off.
            if policy.isEnabled && !finished {
                return disconnected(cutOff.map { "sensd: \($0.message)" } ?? "sensd closed the connection")
            }
            finished = true
            return nil
        }
        lines.removeAll(keepingCapacity: true)
        nextLine = 0
        for outcome in bytes.withUnsafeBytes({ reader.feed($0) }) {
            guard case .line(let line) = outcome else {
                throw SENSClientError.protocolViolation("a line longer than \(reader.limit) bytes")
            }
            lines.append(line)
        }
        return nil
    }

    /// One line: updates the position and says what to hand out, if anything.
    private func take(_ line: ArraySlice<UInt8>) -> Message? {
        let kind = decoder.decode(line)
        let text = String(decoding: line, as: UTF8.self)
        switch kind {
        case .hello(let hello):
            // Good contact: the next outage starts its backoff from the beginning.
            delay = policy.initialDelay
            // With no position yet, everything after this is what the stream asked for.
            if position == nil { position = hello.lastSeq }
        case .accepted(let from):
            if from > 0 { advance(to: from - 1) }
        case .event(let event):
            if let position, event.seq <= position { return nil }
            position = event.seq
        case .gap(let gap):
            advance(to: gap.lastMissing)
        case .end:
            finished = true
        case .serverError(let error):
            if policy.isEnabled && error.isTransient {
                cutOff = error
            } else if error.code == .shuttingDown {
                finished = true
            } else {
                failure = SENSClientError.server(error)
            }
        case .disconnected, .reconnected, .other:
            break
        }
        return Message(kind: kind, line: text)
    }

    private func advance(to seq: UInt64) {
        position = max(position ?? 0, seq)
    }
}
