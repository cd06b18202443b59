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
    /// sensd's stable code for an error. A struct, not an enum: a newer sensd adds codes, and a program
    /// compares with the ones it knows (`error.code == .overflow`) instead of switching over all of them.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The code as sensd sends it (`overflow`).
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The request line was not a valid request.
        public static let badRequest = Code(rawValue: "bad-request")
        /// The request line was longer than sensd accepts.
        public static let requestTooLong = Code(rawValue: "request-too-long")
        /// The client fell further behind than its queue holds.
        public static let overflow = Code(rawValue: "overflow")
        /// sensd serves as many connections as its limits allow (in all, or for this user).
        public static let tooManySubscribers = Code(rawValue: "too-many-subscribers")
        /// sensd is stopping.
        public static let shuttingDown = Code(rawValue: "shutting-down")
        /// sensd keeps no event log, or cannot read it.
        public static let logUnavailable = Code(rawValue: "log-unavailable")
    }

    public var code: Code
    /// sensd's sentence for people.
    public var message: String
    /// The limit that was reached, for the errors that have one.
    public var limit: Int?
    /// For `overflow`: the last event fully written to this client.
    public var lastSeq: UInt64?

    public init(code: Code, message: String, limit: Int? = nil, lastSeq: UInt64? = nil) {
        self.code = code
        self.message = message
        self.limit = limit
        self.lastSeq = lastSeq
    }

    public var description: String { "\(message) [\(code)]" }

    /// Whether a client that reconnects (and resumes) gets past it: sensd restarted, the client fell behind,
    /// or every slot was taken for now.
    public var isTransient: Bool { [.shuttingDown, .overflow, .tooManySubscribers].contains(code) }
}

/// What can end a stream of events or messages, or a one-off request: a ``Code`` to compare with (more may
/// come in a later release, so never switch over them all) and what goes with it.
public struct SENSClientError: Error, Sendable, CustomStringConvertible {
    /// Which kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// sensd's socket could not be reached (and the stream does not reconnect): ``socketPath``, ``errno``.
        public static let unavailable = Code("unavailable")
        /// The connection failed while reading or writing (and the stream does not reconnect): ``socketPath``,
        /// ``errno``.
        public static let connectionFailed = Code("connectionFailed")
        /// sensd refused the request or cut the stream off in a way reconnecting does not cure: ``serverError``.
        public static let server = Code("server")
        /// Events are missing from the stream (``SensdClient/events(_:after:reconnect:)`` only;
        /// ``SensdClient/messages(_:after:live:reconnect:)`` yields gaps as values): ``gap``. The stream ends
        /// with it; a new `events(after: gap.lastMissing)` goes on after them.
        public static let eventsMissing = Code("eventsMissing")
        /// sensd sent something this library cannot read: a line over 1 MiB, or no hello.
        public static let protocolViolation = Code("protocolViolation")
    }

    public let code: Code
    /// The socket, for ``Code/unavailable`` and ``Code/connectionFailed``.
    public let socketPath: String?
    /// The system's error number, for ``Code/unavailable`` and ``Code/connectionFailed`` (`ENOENT`: no sensd).
    public let errno: Int32?
    /// sensd's error line, for ``Code/server``.
    public let serverError: ServerError?
    /// The events that will not come, for ``Code/eventsMissing``.
    public let gap: Gap?
    public let description: String

    private init(_ code: Code, socketPath: String? = nil, errno: Int32? = nil, serverError: ServerError? = nil, gap: Gap? = nil, description: String) {
        self.code = code
        self.socketPath = socketPath
        self.errno = errno
        self.serverError = serverError
        self.gap = gap
        self.description = description
    }

    package static func unavailable(socketPath: String, _ error: SystemCallError) -> SENSClientError {
        let hint = error.errno == ENOENT || error.errno == ECONNREFUSED ? " (is sensd running?)" : ""
        return SENSClientError(.unavailable, socketPath: socketPath, errno: error.errno, description: "cannot connect to \(socketPath): \(error.reason)\(hint)")
    }

    package static func connectionFailed(socketPath: String, _ error: SystemCallError) -> SENSClientError {
        SENSClientError(.connectionFailed, socketPath: socketPath, errno: error.errno, description: "the connection to \(socketPath) failed: \(error)")
    }

    package static func server(_ error: ServerError) -> SENSClientError {
        SENSClientError(.server, serverError: error, description: "sensd: \(error)")
    }

    package static func eventsMissing(_ gap: Gap) -> SENSClientError {
        SENSClientError(.eventsMissing, gap: gap, description: "events \(gap.firstMissing) to \(gap.lastMissing) are missing: \(gap.message)")
    }

    package static func protocolViolation(_ what: String) -> SENSClientError {
        SENSClientError(.protocolViolation, description: "sensd's stream cannot be read: \(what)")
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
    /// What a line is. Its cases stay as they are for all of 1.x: a kind of line a later sensd adds arrives as
    /// ``other``, so a `switch` without `default` keeps compiling.
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
        /// reconnection when the policy allows; any other ends the stream with a ``SENSClientError`` whose code is ``SENSClientError/Code/server``.
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

/// Tells the lines apart (docs/protocol.md, "Lines the server sends") by the key that says what each is,
/// which sensd always writes first, and decodes each line once, with one decoder for the stream: an event as
/// an event, a hello, accepted, gap, end or error line as a control line; snapshot and stats lines, and any
/// kind a newer sensd adds, are handed on undecoded for whoever asked for them.
final class LineDecoder {
    private let decoder = JSONDecoder()

    func decode(_ line: ArraySlice<UInt8>) -> Message.Kind {
        switch Self.firstKey(line) {
        case "event":
            // An event of a type this version does not know fails here and is then "other", as it must be.
            guard let event = try? decoder.decode(SENSEvent.self, from: Data(line)) else { return .other }
            return .event(event)
        case "hello", "accepted", "gap", "end", "error":
            guard let c = try? decoder.decode(ControlLine.self, from: Data(line)) else { return .other }
            return Self.kind(of: c)
        default:
            return .other
        }
    }

    /// What a decoded control line is.
    static func kind(of c: ControlLine) -> Message.Kind {
        if c.hello != nil, let last = c.lastSeq {
            return .hello(Hello(version: c.version ?? "", protocolVersion: c.protocol ?? 1, lastSeq: last, oldestSeq: c.oldestSeq))
        }
        if let code = c.error {
            return .serverError(ServerError(code: ServerError.Code(rawValue: code), message: c.message ?? code, limit: c.limit, lastSeq: c.lastSeq))
        }
        if let reason = c.gap, let first = c.firstMissing, let last = c.lastMissing {
            return .gap(Gap(reason: reason, message: c.message ?? "events \(first) to \(last) are missing", firstMissing: first, lastMissing: last, oldestSeq: c.oldestSeq))
        }
        if c.accepted != nil, let from = c.fromSeq { return .accepted(fromSeq: from) }
        if c.end != nil, let last = c.lastSeq { return .end(lastSeq: last) }
        return .other
    }

    /// The first key of a JSON object line (`{"event":...` -> `event`); nil if the line does not start so.
    static func firstKey(_ line: ArraySlice<UInt8>) -> Substring? {
        var i = line.startIndex
        while i < line.endIndex, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
        guard i < line.endIndex, line[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while i < line.endIndex, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
        guard i < line.endIndex, line[i] == UInt8(ascii: "\"") else { return nil }
        let start = i + 1
        guard let end = line[start...].firstIndex(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }), line[end] != UInt8(ascii: "\\") else { return nil }
        return Substring(decoding: line[start..<end], as: UTF8.self)
    }
}
