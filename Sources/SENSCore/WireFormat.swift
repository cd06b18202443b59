/// The line protocol on the subscriber socket: UTF-8 JSON, one object per line (docs/protocol.md).
///
/// Events are written by hand rather than by JSONEncoder for two reasons measured on this code: a stable,
/// documented key order (`event` first, which people reading `socat` output rely on) and about ten times
/// less CPU per event on the daemon's hot path. Decoding stays Codable; tests hold the two to each other.
package enum WireFormat {
    /// The protocol's version, in the hello line. Additive changes (new keys, new events) keep it.
    public static let protocolVersion = 1

    /// The longest request line a client may send, newline excluded.
    public static let maxRequestBytes = 4096

    /// One event as a line, newline included.
    public static func encode(_ e: SENSEvent) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("event", string: e.event.rawValue)
        w.field("seq", integer: e.seq)
        w.field("time", string: e.time.rfc3339)
        w.field("sessionId", string: e.sessionId)
        for field in SessionFields.all { field.write(e, &w) }
        return w.finish()
    }

    /// The answer to a `snapshot` request: a `begin` line, one line per open session (the event fields, then
    /// its state now), an `end` line; all tied to `seq`, the last event the state reflects.
    public static func snapshot(_ sessions: [OpenSession], seq: UInt64) -> [UInt8] {
        var begin = JSONLineWriter()
        begin.field("snapshot", string: "begin")
        begin.field("seq", integer: seq)
        begin.field("sessions", integer: UInt64(sessions.count))
        var out = begin.finish()
        for open in sessions {
            var w = JSONLineWriter()
            w.field("snapshot", string: "session")
            sessionFields(open, &w)
            out += w.finish()
        }
        var end = JSONLineWriter()
        end.field("snapshot", string: "end")
        end.field("seq", integer: seq)
        end.field("sessions", integer: UInt64(sessions.count))
        return out + end.finish()
    }

    /// An open session as a JSON object (without newline): its id, the fields of its events and its state now.
    public static func sessionObject(_ open: OpenSession) -> [UInt8] {
        var w = JSONLineWriter()
        sessionFields(open, &w)
        return w.finishObject()
    }

    private static func sessionFields(_ open: OpenSession, _ w: inout JSONLineWriter) {
        let e = open.fields
        w.field("sessionId", string: e.sessionId)
        for field in SessionFields.all {
            field.write(e, &w)
            field.writeState(open.session, &w)
        }
        w.field("logoffInitiated", bool: open.logoffInitiated)
    }

    /// The first line a subscriber receives: who is talking and where the stream stands.
    /// `oldestSeq` is the oldest event the log retains, absent when it retains none (or there is no log).
    public static func hello(daemonVersion: String, lastSeq: UInt64, oldestSeq: UInt64? = nil) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("hello", string: "sensd")
        w.field("protocol", integer: UInt64(protocolVersion))
        w.field("version", string: daemonVersion)
        w.field("lastSeq", integer: lastSeq)
        if let oldestSeq { w.field("oldestSeq", integer: oldestSeq) }
        return w.finish()
    }

    /// Tells a resuming client that events `firstMissing...lastMissing` will not come: no longer retained,
    /// or never written (see docs/protocol.md). `oldestSeq` is the oldest event the log still holds.
    public static func gap(firstMissing: UInt64, lastMissing: UInt64, oldestSeq: UInt64?) -> [UInt8] {
        var w = JSONLineWriter()
        let range = firstMissing == lastMissing ? "event \(firstMissing) is" : "events \(firstMissing) to \(lastMissing) are"
        let oldest = oldestSeq.map { "the oldest retained event is \($0)" } ?? "the log retains no events"
        w.field("gap", string: "not-retained")
        w.field("message", string: "\(range) no longer in sensd's event log (\(oldest)); they cannot be sent")
        w.field("firstMissing", integer: firstMissing)
        w.field("lastMissing", integer: lastMissing)
        if let oldestSeq { w.field("oldestSeq", integer: oldestSeq) }
        return w.finish()
    }

    /// The last line of a replay asked for with `"live": false`: every event through `lastSeq` was sent (or
    /// announced missing); the connection closes after it.
    public static func replayEnd(lastSeq: UInt64) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("end", string: "caught-up")
        w.field("lastSeq", integer: lastSeq)
        return w.finish()
    }

    /// One event as a line with the facts subscriptions filter on.
    public static func line(_ e: SENSEvent) -> OutgoingLine {
        OutgoingLine(bytes: encode(e), seq: e.seq, facts: EventFacts(e))
    }

    /// The answer to a valid request: what the subscription is, and the seq from which it applies.
    public static func accepted(_ request: SubscriptionRequest, fromSeq: UInt64) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("accepted", raw: request.json)
        w.field("fromSeq", integer: fromSeq)
        return w.finish()
    }

    /// A line telling the client why the server is closing its connection; the last line it gets.
    public static func error(_ code: ProtocolError.Code, _ message: String, extra: [(String, UInt64)] = []) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("error", string: code.rawValue)
        w.field("message", string: message)
        for (key, value) in extra { w.field(key, integer: value) }
        return w.finish()
    }
}

/// Why the server ends a connection, as the client sees it in an `error` line.
package struct ProtocolError: Error, Equatable, Sendable {
    public enum Code: String, Sendable {
        /// The request line was not a valid request.
        case badRequest = "bad-request"
        /// The request line was longer than ``WireFormat/maxRequestBytes``.
        case requestTooLong = "request-too-long"
        /// The subscriber fell more than its queue limit behind.
        case overflow = "overflow"
        /// The server has as many subscribers as it accepts.
        case tooManySubscribers = "too-many-subscribers"
        /// The daemon is stopping.
        case shuttingDown = "shutting-down"
        /// The event log cannot serve a resuming client (none kept, or unreadable).
        case logUnavailable = "log-unavailable"
    }

    public var code: Code
    public var message: String
    /// The request key (or Varlink parameter) the error is about, when it is about one.
    public var parameter: String?

    public init(_ code: Code, _ message: String, parameter: String? = nil) {
        self.code = code
        self.message = message
        self.parameter = parameter
    }
}

/// Writes one flat JSON object, in the order fields are added, as a newline-terminated line.
struct JSONLineWriter {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]

    init() {
        bytes.reserveCapacity(192)
    }

    private mutating func key(_ name: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func field(_ name: String, string value: String?) {
        key(name)
        if let value { appendString(value) } else { bytes.append(contentsOf: "null".utf8) }
    }

    mutating func field(_ name: String, integer value: UInt64?) {
        key(name)
        guard let value else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A value that is already JSON.
    mutating func field(_ name: String, raw json: [UInt8]) {
        key(name)
        bytes.append(contentsOf: json)
    }

    mutating func field(_ name: String, bool value: Bool) {
        key(name)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func field(_ name: String, strings values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (i, v) in values.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            appendString(v)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func field(_ name: String, integers values: [UInt64]) {
        key(name)
        bytes.append(contentsOf: ("[" + values.map(String.init).joined(separator: ",") + "]").utf8)
    }

    private mutating func appendString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        // Nearly every value needs no escaping: then one copy instead of a byte at a time.
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 != 0x7F }) {
            bytes.append(contentsOf: s.utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The object without a newline, to nest inside another line.
    mutating func finishObject() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        bytes.append(0x0A)
        return bytes
    }
}

/// A session open now, as a `snapshot` request reports it: the fields its events carry, and its state.
package struct OpenSession: Equatable, Sendable {
    /// The session's fields as its events carry them (`event`, `seq` and `time` are not sent).
    public var fields: SENSEvent
    /// The session as sensd tracks it, with its state now: `state` (`online`, `active` or `closing`),
    /// `active`, `locked`, `idle`.
    public var session: LogindSession
    /// Whether its `LogoffInitiated` has gone out.
    public var logoffInitiated: Bool

    public init(_ session: LogindSession, logoffInitiated: Bool, host: String?) {
        fields = SENSEvent(EventDraft(event: .logon, session: session), seq: 0, time: EventTime(microsecondsSinceEpoch: 0), host: host)
        self.session = session
        self.logoffInitiated = logoffInitiated
    }
}

extension OpenSession: Decodable {
    private static let sessionIdKey = FieldKey("sessionId"), logoffInitiatedKey = FieldKey("logoffInitiated")

    /// A snapshot's `session` line read back by the table that wrote it (``WireFormat/snapshot(_:seq:)``):
    /// the event fields into ``fields`` (a Logon, seq 0), the state now into ``session``. A field added to
    /// the table is read here with nothing else to change.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: FieldKey.self)
        let id = try c.decode(String.self, forKey: Self.sessionIdKey)
        fields = SENSEvent(event: .logon, seq: 0, time: EventTime(microsecondsSinceEpoch: 0), sessionId: id, userName: nil, uid: nil)
        for field in SessionFields.all { try field.decode(&fields, c) }
        // The session as its fields describe it, then its state now.
        session = LogindSession(event: fields)
        for field in SessionFields.all { try field.decodeState(&session, c) }
        logoffInitiated = try c.decodeIfPresent(Bool.self, forKey: Self.logoffInitiatedKey) ?? false
    }
}
