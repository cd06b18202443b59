import FoundationEssentials
import SENSCore
import SystemCalls

// The event model is sensd's own (module SENSCore), so that the library and the daemon cannot disagree on a
// field; these names make it part of this library's API without importing the daemon's internals.

/// One event as sensd publishes it: the event type, `userName`, `sessionId`, `uid`, `seq`, `time` and every
/// other field of docs/protocol.md ("Events").
public typealias SENSEvent = SENSCore.SENSEvent
/// The SENS logon family: `Logon`, `LogoffInitiated`, `Logoff`, `SessionDisconnect`, ...
public typealias EventKind = SENSCore.EventKind
/// Windows' logon type of a session (`Interactive`, `RemoteInteractive`, ...).
public typealias LogonType = SENSCore.LogonType
/// A point in time with microseconds, as RFC 3339 UTC on the wire.
public typealias EventTime = SENSCore.EventTime

/// The first line of every connection.
public struct Hello: Sendable, Equatable {
    /// sensd's version.
    public var version: String
    /// The protocol's version (1).
    public var protocolVersion: Int
    /// The seq of the last event sensd published before this connection (0 if none).
    public var lastSeq: UInt64
    /// The oldest event sensd's log still holds: the furthest back a resume can reach; nil when it holds none.
    public var oldestSeq: UInt64?
}

/// Events that will not come: sensd's log no longer holds them, or never could.
///
/// Delivered in stream order, exactly where the missing events would have been.
public struct Gap: Sendable, Equatable, CustomStringConvertible {
    /// Why (`not-retained`, `damaged`, `lost`, `not-logged`, ...): see docs/protocol.md, "gap".
    public var reason: String
    /// sensd's sentence for people.
    public var message: String
    public var firstMissing: UInt64
    public var lastMissing: UInt64
    /// The oldest event sensd's log still holds, if any.
    public var oldestSeq: UInt64?

    public init(reason: String, message: String, firstMissing: UInt64, lastMissing: UInt64, oldestSeq: UInt64? = nil) {
        self.reason = reason
        self.message = message
        self.firstMissing = firstMissing
        self.lastMissing = lastMissing
        self.oldestSeq = oldestSeq
    }

    public var description: String { message }
}

/// An error line: sensd ended the connection and says why.
public struct ServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable code: `bad-request`, `request-too-long`, `overflow`, `too-many-subscribers`,
    /// `shutting-down`, `log-unavailable`, or one a newer sensd adds.
    public var code: String
    /// sensd's sentence for people.
    public var message: String
    /// The limit that was reached, for the errors that have one.
    public var limit: Int?
    /// For `overflow`: the last event fully written to this client.
    public var lastSeq: UInt64?

    public var description: String { "\(message) [\(code)]" }

    /// Whether a client that reconnects (and resumes) gets past it: sensd restarted, the client fell behind,
    /// or every slot was taken for now.
    public var isTransient: Bool { ["shutting-down", "overflow", "too-many-subscribers"].contains(code) }
}

/// What can end a stream of events or messages.
public enum SENSClientError: Error, Sendable, CustomStringConvertible {
    /// sensd's socket could not be reached (and the stream does not reconnect).
    case unavailable(socketPath: String, SystemCallError)
    /// The connection failed while reading or writing (and the stream does not reconnect).
    case connectionFailed(socketPath: String, SystemCallError)
    /// sensd refused the request or cut the stream off in a way reconnecting does not cure.
    case server(ServerError)
    /// Events are missing from the stream (``SENSClient/events(_:after:reconnect:)`` only; ``SENSClient/messages(_:after:live:reconnect:)``
    /// yields gaps as values). The stream's position is after the gap: a new `events(after: gap.lastMissing)` goes on.
    case eventsMissing(Gap)
    /// sensd sent something this library cannot read: a line over 1 MiB, or no hello.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .unavailable(let path, let error):
            let hint = error.errno == ENOENT || error.errno == ECONNREFUSED ? " (is sensd running?)" : ""
            return "cannot connect to \(path): \(error.reason)\(hint)"
        case .connectionFailed(let path, let error):
            return "the connection to \(path) failed: \(error)"
        case .server(let error):
            return "sensd: \(error)"
        case .eventsMissing(let gap):
            return "events \(gap.firstMissing) to \(gap.lastMissing) are missing: \(gap.message)"
        case .protocolViolation(let what):
            return "sensd's stream cannot be read: \(what)"
        }
    }
}

/// Which events a stream carries. Values within one key are OR-ed, keys are AND-ed; nil is "any".
public struct Filter: Sendable, Hashable {
    public var events: Set<EventKind>?
    public var users: Set<String>?
    public var uids: Set<UInt32>?
    /// logind session classes; service managers (`manager`, `manager-early`) come only when named, or with
    /// ``everyClass``.
    public var classes: Set<String>?

    /// In ``classes``: every class, service managers included.
    public static let everyClass = "*"
    /// Every event (but service managers').
    public static let everything = Filter()

    public init(events: Set<EventKind>? = nil, users: Set<String>? = nil, uids: Set<UInt32>? = nil, classes: Set<String>? = nil) {
        self.events = events
        self.users = users
        self.uids = uids
        self.classes = classes
    }

    func request(since: UInt64?, snapshot: Bool = false, live: Bool = true) -> SubscriptionRequest {
        SubscriptionRequest(events: events, users: users, uids: uids, classes: classes, since: since, snapshot: snapshot, live: live)
    }
}

/// sensd's counters since it started (docs/protocol.md, "Counters"): what `systemctl status sensd` shows.
public struct SensdStats: Decodable, Sendable, Equatable {
    public var version: String
    /// When this run of sensd started.
    public var startedAt: EventTime
    /// Sessions sensd tracks now.
    public var sessions: Int
    /// Subscribers connected now, this connection included.
    public var subscribers: Int
    public var eventsSinceStart: UInt64
    /// The seq of the last event sensd gave out.
    public var lastSeq: UInt64
    /// The oldest event the log still holds; nil when it holds none.
    public var oldestSeq: UInt64?
    /// Subscribers cut off for falling behind.
    public var overflowed: Int
    /// Connections refused at a limit.
    public var refused: Int
    /// Look-alike logind or systemd signals from other peers, dropped.
    public var forgedSignals: Int
    /// `written` (every event is logged first), `failing` (disk full or failing: live only until a write
    /// succeeds), `none` (sensd keeps no log), or a state a newer sensd adds.
    public var log: String
    /// Problems with the state directory set aside at start (`sensd --check-state` lists them).
    public var stateDamaged: Int

    enum CodingKeys: String, CodingKey {
        case version, startedAt, sessions, subscribers, eventsSinceStart, lastSeq, oldestSeq, overflowed, refused, forgedSignals, log, stateDamaged
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(String.self, forKey: .version)
        let text = try c.decode(String.self, forKey: .startedAt)
        guard let time = EventTime(rfc3339: text) else {
            throw DecodingError.dataCorruptedError(forKey: .startedAt, in: c, debugDescription: "not RFC 3339 UTC: \(text)")
        }
        startedAt = time
        sessions = try c.decode(Int.self, forKey: .sessions)
        subscribers = try c.decode(Int.self, forKey: .subscribers)
        eventsSinceStart = try c.decode(UInt64.self, forKey: .eventsSinceStart)
        lastSeq = try c.decode(UInt64.self, forKey: .lastSeq)
        oldestSeq = try c.decodeIfPresent(UInt64.self, forKey: .oldestSeq)
        overflowed = try c.decode(Int.self, forKey: .overflowed)
        refused = try c.decode(Int.self, forKey: .refused)
        forgedSignals = try c.decode(Int.self, forKey: .forgedSignals)
        log = try c.decode(String.self, forKey: .log)
        stateDamaged = try c.decodeIfPresent(Int.self, forKey: .stateDamaged) ?? 0
    }
}

/// Whether and how a stream reconnects after sensd stops, restarts, cuts the client off for falling behind,
/// or is not there yet.
public struct ReconnectPolicy: Sendable, Equatable {
    public var isEnabled: Bool
    /// The wait before the first retry; it doubles with each failed one.
    public var initialDelay: Duration
    /// The longest wait between retries.
    public var maximumDelay: Duration

    /// Never: the first disconnection ends the stream (cleanly for `shutting-down`, with an error otherwise).
    public static let never = ReconnectPolicy(isEnabled: false, initialDelay: .zero, maximumDelay: .zero)
    /// 100 ms, then doubling up to 5 s.
    public static let standard = backoff(initial: .milliseconds(100), maximum: .seconds(5))

    public static func backoff(initial: Duration, maximum: Duration) -> ReconnectPolicy {
        ReconnectPolicy(isEnabled: true, initialDelay: initial, maximumDelay: max(initial, maximum))
    }
}

/// One line of the stream, typed, with the line itself; or a change of connection.
public struct Message: Sendable {
    public enum Kind: Sendable {
        /// A connection's first line.
        case hello(Hello)
        /// sensd's answer to the request: the request as it understood it applies from `fromSeq`.
        case accepted(fromSeq: UInt64)
        case event(SENSEvent)
        case gap(Gap)
        /// A replay without `live` has caught up: every event through `lastSeq` came before this. The stream ends.
        case end(lastSeq: UInt64)
        /// sensd ended the connection. A transient one (see ``ServerError/isTransient``) is followed by a
        /// reconnection when the policy allows; any other ends the stream with ``SENSClientError/server(_:)``.
        case serverError(ServerError)
        /// The connection ended or could not be made; the stream retries after a backoff. Said once per outage.
        case disconnected(reason: String)
        /// A new connection after a disconnection; the stream continues after `resumingAfter`.
        case reconnected(resumingAfter: UInt64?)
        /// A line of a kind this version does not know (a newer sensd): clients must ignore it.
        case other
    }

    public var kind: Kind
    /// The line exactly as sensd sent it, without its newline; nil for `disconnected` and `reconnected`.
    public var line: String?
}

extension SystemCallError {
    /// strerror's sentence alone, without the call.
    var reason: String { String(cString: strerror(errno)) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The non-event lines, decoded by which key they have.
struct ControlLine: Decodable {
    struct Anything: Decodable {}
    var hello: String?
    var version: String?
    var `protocol`: Int?
    var lastSeq: UInt64?
    var oldestSeq: UInt64?
    var accepted: Anything?
    var fromSeq: UInt64?
    var gap: String?
    var firstMissing: UInt64?
    var lastMissing: UInt64?
    var error: String?
    var message: String?
    var limit: Int?
    var end: String?
    var snapshot: String?
    var stats: String?
    var seq: UInt64?
    var sessions: Int?
}

/// Tells the lines apart (docs/protocol.md, "Lines the server sends").
enum LineDecoder {
    static func decode(_ line: ArraySlice<UInt8>) -> (Message.Kind, ControlLine?) {
        let data = Data(line)
        let decoder = JSONDecoder()
        // An event of a type this version does not know fails here and is then "other", as it must be.
        if let event = try? decoder.decode(SENSEvent.self, from: data) { return (.event(event), nil) }
        guard let c = try? decoder.decode(ControlLine.self, from: data) else { return (.other, nil) }
        if c.hello != nil, let last = c.lastSeq {
            return (.hello(Hello(version: c.version ?? "", protocolVersion: c.protocol ?? 1, lastSeq: last, oldestSeq: c.oldestSeq)), c)
        }
        if let code = c.error {
            return (.serverError(ServerError(code: code, message: c.message ?? code, limit: c.limit, lastSeq: c.lastSeq)), c)
        }
        if let reason = c.gap, let first = c.firstMissing, let last = c.lastMissing {
            return (.gap(Gap(reason: reason, message: c.message ?? "events \(first) to \(last) are missing", firstMissing: first, lastMissing: last, oldestSeq: c.oldestSeq)), c)
        }
        if c.accepted != nil, let from = c.fromSeq { return (.accepted(fromSeq: from), c) }
        if c.end != nil, let last = c.lastSeq { return (.end(lastSeq: last), c) }
        return (.other, c)
    }
}
