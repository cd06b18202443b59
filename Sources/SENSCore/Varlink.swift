import FoundationEssentials

/// The Varlink face of the protocol (https://varlink.org, systemd's `sd-varlink`, `varlinkctl`): each message
/// a JSON object ended by a NUL byte; a call `{"method":...,"parameters":{...},"more":true}`, each reply
/// `{"parameters":{...},"continues":true}` or an error `{"error":"io.sensd.Events.Overflow","parameters":{...}}`.
/// The events are the JSON-lines protocol's own objects, byte for byte, under `event`; the JSON-lines
/// protocol stays the canonical one (docs/protocol.md). Pure: the server does the I/O.
package enum Varlink {
    /// The interface sensd implements, beside `org.varlink.service`.
    public static let interface = "io.sensd.Events"
    public static let serviceInterface = "org.varlink.service"

    /// `io.sensd.Events` in the Varlink interface definition language, as `GetInterfaceDescription` and
    /// `varlinkctl introspect` show it.
    public static let description = """
    # sensd's sessions as the SENS logon family (Logon, Logoff, LogoffInitiated, SessionLock, ...), the same
    # events as the JSON-lines socket /run/sensd/events.sock. See sensd-protocol(7).
    interface io.sensd.Events

    # Where a subscription starts.
    type State(
    \t# sensd's version.
    \tversion: string,
    \t# The last event sensd had given out when the call arrived.
    \tlastSeq: int,
    \t# The oldest event the log retains; absent when it retains none.
    \toldestSeq: ?int,
    \t# The first seq this subscription can deliver.
    \tfromSeq: int,
    \t# The subscription as understood: the filters, since, snapshot, live.
    \tsubscription: object,
    \t# With snapshot: the seq the sessions are the state at.
    \tseq: ?int,
    \t# With snapshot: the sessions open at seq, each with the fields of its events and its state now.
    \tsessions: ?[]object
    )

    # Follows sessions: the state first, then each event as it happens, one reply each (with continues).
    # Filters are AND-ed, values within one OR-ed. since: replay every retained event after that seq first.
    # snapshot: the sessions open now in the first reply. live: false (with since) ends once caught up.
    # Requires more.
    method Subscribe(
    \tevents: ?[]string,
    \tusers: ?[]string,
    \tuids: ?[]int,
    \tclasses: ?[]string,
    \tsince: ?int,
    \tsnapshot: ?bool,
    \tlive: ?bool
    ) -> (
    \t# In the first reply only.
    \tstate: ?State,
    \t# One event, as the JSON-lines socket sends it.
    \tevent: ?object,
    \t# With live: false, the last reply: every event through this seq was sent.
    \tendSeq: ?int
    )

    # The sessions open now, as of seq. With more, one reply per session (in session). Each user's service
    # manager has a session of its own (class manager): listed only when classes names it, or is ["*"].
    method ListSessions(classes: ?[]string) -> (
    \tseq: int,
    \tsessions: ?[]object,
    \tsession: ?object
    )

    # The last Logoff events the log retains, oldest first: at most limit (default 10, at most 1000).
    method GetHistory(limit: ?int) -> (logoffs: []object)

    # sensd's counters, as `sensctl stats` shows them.
    method GetStats() -> (stats: object)

    # The subscriber fell limit events behind and was cut off; subscribe again with since: lastSeq.
    error Overflow(message: string, limit: int, lastSeq: ?int)

    # Events firstMissing to lastMissing cannot be sent (no longer retained, or never written); subscribe
    # again with since: lastMissing to go on after them.
    error EventsMissing(message: string, firstMissing: int, lastMissing: int, oldestSeq: ?int)

    # since is ahead of the last event given out: sensd's history was reset. Subscribe without since.
    error NoSuchSeq(message: string, lastSeq: int)

    # sensd keeps no event log, or cannot read it: since and GetHistory are unavailable.
    error LogUnavailable(message: string)

    # sensd serves as many connections as its limits allow (in all, or for this user).
    error TooManySubscribers(message: string, limit: int)

    # A message was longer than limit bytes.
    error MessageTooLong(message: string, limit: int)

    # A message that is not a Varlink call, or a call while a subscription streams on the connection.
    error BadMessage(message: string)

    # sensd is stopping.
    error ShuttingDown(message: string)
    """

    /// The longest message a client may send, NUL excluded: the request line's limit.
    public static let maxMessageBytes = WireFormat.maxRequestBytes

    /// One call, as a client sent it.
    public struct Call: Sendable {
        /// Fully qualified: `io.sensd.Events.Subscribe`.
        public let method: String
        /// The client wants several replies (`continues`).
        public let more: Bool
        /// The client wants no reply.
        public let oneway: Bool
        let parameters: [String: JSONValue]

        /// The method's name within its interface, and the interface.
        public var interface: String { String(method[..<(method.lastIndex(of: ".") ?? method.startIndex)]) }
        public var member: String { method.lastIndex(of: ".").map { String(method[method.index(after: $0)...]) } ?? method }

        /// `Subscribe`'s parameters as a subscription (the request line's keys, `stats` aside).
        public func subscription() throws(ProtocolError) -> SubscriptionRequest {
            if parameters["stats"] != nil {
                throw ProtocolError(.badRequest, "\"stats\" is not a parameter of Subscribe: call GetStats", parameter: "stats")
            }
            return try SubscriptionRequest.make(from: parameters)
        }

        /// A string parameter; nil when absent.
        public func string(_ name: String) throws(ProtocolError) -> String? {
            guard let value = parameters[name], value != .null else { return nil }
            guard case .string(let s) = value else { throw ProtocolError(.badRequest, "\"\(name)\" must be a string", parameter: name) }
            return s
        }

        /// A whole-number parameter within `range`; nil when absent.
        public func integer(_ name: String, in range: ClosedRange<UInt64>) throws(ProtocolError) -> UInt64? {
            guard let value = parameters[name], value != .null else { return nil }
            guard case .number(let n) = value, n >= 0, n.rounded() == n, n <= Double(range.upperBound), UInt64(n) >= range.lowerBound else {
                throw ProtocolError(.badRequest, "\"\(name)\" must be a whole number from \(range.lowerBound) to \(range.upperBound)", parameter: name)
            }
            return UInt64(n)
        }

        /// The parameters not among `known`, first by name: a call with one is refused, by name.
        public func unknownParameter(known: Set<String>) -> String? {
            parameters.keys.filter { !known.contains($0) }.min()
        }
    }

    /// Parses one message (without its NUL).
    public static func parseCall(_ message: ArraySlice<UInt8>) throws(ProtocolError) -> Call {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(message))
        } catch {
            throw ProtocolError(.badRequest, "the message is not valid JSON")
        }
        guard case .object(let fields) = value, case .string(let method)? = fields["method"], !method.isEmpty else {
            throw ProtocolError(.badRequest, "a Varlink call is a JSON object with a \"method\", such as {\"method\":\"io.sensd.Events.Subscribe\",\"more\":true}")
        }
        var parameters: [String: JSONValue] = [:]
        switch fields["parameters"] {
        case nil, .null?: break
        case .object(let p)?: parameters = p
        default: throw ProtocolError(.badRequest, "\"parameters\" must be an object")
        }
        func flag(_ name: String) throws(ProtocolError) -> Bool {
            switch fields[name] {
            case nil, .null?: return false
            case .bool(let b)?: return b
            default: throw ProtocolError(.badRequest, "\"\(name)\" must be true or false")
            }
        }
        return Call(method: method, more: try flag("more"), oneway: try flag("oneway"), parameters: parameters)
    }

    // MARK: Replies

    /// A reply carrying `parameters` (a JSON object), NUL included.
    public static func reply(_ parameters: [UInt8], continues: Bool = false) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("parameters", raw: parameters)
        if continues { w.field("continues", bool: true) }
        return w.finishObject() + [0]
    }

    /// An error reply, NUL included.
    public static func error(_ name: String, _ parameters: [UInt8]) -> [UInt8] {
        var w = JSONLineWriter()
        w.field("error", string: name)
        w.field("parameters", raw: parameters)
        return w.finishObject() + [0]
    }

    /// An error of sensd's own, with a message and numbers.
    public static func error(_ name: String, message: String, extra: [(String, UInt64)] = []) -> [UInt8] {
        error(name, object { w in
            w.field("message", string: message)
            for (key, value) in extra { w.field(key, integer: value) }
        })
    }

    /// The error a protocol error is on this transport: sensd's own under `io.sensd.Events`, a bad
    /// parameter as Varlink's `InvalidParameter`.
    public static func error(_ error: ProtocolError, extra: [(String, UInt64)] = []) -> [UInt8] {
        if error.code == .badRequest, let parameter = error.parameter {
            return Self.error("org.varlink.service.InvalidParameter", object { w in
                w.field("parameter", string: parameter)
                w.field("message", string: error.message)
            })
        }
        let name = switch error.code {
        case .badRequest: "BadMessage"
        case .requestTooLong: "MessageTooLong"
        case .overflow: "Overflow"
        case .tooManySubscribers: "TooManySubscribers"
        case .shuttingDown: "ShuttingDown"
        case .logUnavailable: "LogUnavailable"
        }
        return Self.error(interface + "." + name, object { w in
            w.field("message", string: error.message)
            for (key, value) in extra { w.field(key, integer: value) }
        })
    }

    /// One event, as its JSON-lines line (newline included) carries it, as a `Subscribe` reply.
    public static func event(_ line: OutgoingLine) -> OutgoingLine {
        OutgoingLine(bytes: eventReply(line.bytes[...]), seq: line.seq, facts: line.facts)
    }

    /// An event's JSON (with or without its newline) as a `Subscribe` reply.
    public static func eventReply(_ json: ArraySlice<UInt8>) -> [UInt8] {
        let object = json.last == 0x0A ? json.dropLast() : json
        var bytes: [UInt8] = []
        bytes.reserveCapacity(object.count + 40)
        bytes += #"{"parameters":{"event":"#.utf8
        bytes += object
        bytes += #"},"continues":true}"#.utf8
        bytes.append(0)
        return bytes
    }

    /// `Subscribe`'s first reply: where the stream stands, the subscription, and with `snapshot` the
    /// sessions open at `snapshotSeq`.
    public static func state(version: String, lastSeq: UInt64, oldestSeq: UInt64?, fromSeq: UInt64, request: SubscriptionRequest, snapshot: (seq: UInt64, sessions: [OpenSession])?) -> [UInt8] {
        reply(object { w in
            w.field("state", raw: object { s in
                s.field("version", string: Release.version)
                s.field("lastSeq", integer: lastSeq)
                if let oldestSeq { s.field("oldestSeq", integer: oldestSeq) }
                s.field("fromSeq", integer: fromSeq)
                s.field("subscription", raw: request.json)
                if let snapshot {
                    s.field("seq", integer: snapshot.seq)
                    s.field("sessions", raw: array(snapshot.sessions.map(WireFormat.sessionObject)))
                }
            })
        }, continues: true)
    }

    /// Events `firstMissing...lastMissing` will not come: the `EventsMissing` error, which ends the call.
    public static func eventsMissing(firstMissing: UInt64, lastMissing: UInt64, oldestSeq: UInt64?) -> [UInt8] {
        let range = firstMissing == lastMissing ? "event \(firstMissing) is" : "events \(firstMissing) to \(lastMissing) are"
        let oldest = oldestSeq.map { "the oldest retained event is \($0)" } ?? "the log retains no events"
        return error(interface + ".EventsMissing", object { w in
            w.field("message", string: "\(range) not in sensd's event log (\(oldest)); subscribe again with since \(lastMissing) to go on after them")
            w.field("firstMissing", integer: firstMissing)
            w.field("lastMissing", integer: lastMissing)
            if let oldestSeq { w.field("oldestSeq", integer: oldestSeq) }
        })
    }

    /// The last reply of a `live: false` subscription.
    public static func replayEnd(lastSeq: UInt64) -> [UInt8] {
        reply(object { w in w.field("endSeq", integer: lastSeq) })
    }

    /// `org.varlink.service.GetInfo`'s reply.
    public static func info() -> [UInt8] {
        reply(object { w in
            w.field("vendor", string: "sensd")
            w.field("product", string: "sensd")
            w.field("version", string: Release.version)
            // The package's homepage (debian/control); man sensd-protocol(7) is the reference.
            w.field("url", string: "https://example.invalid/sensd")
            w.field("interfaces", strings: [interface, serviceInterface])
        })
    }

    /// The description of `interface`, or nil for one sensd does not implement.
    public static func interfaceDescription(_ name: String) -> [UInt8]? {
        let text = switch name {
        case interface: description
        case serviceInterface: serviceDescription
        default: nil as String?
        }
        return text.map { text in reply(object { w in w.field("description", string: text + "\n") }) }
    }

    /// `ListSessions` in one reply.
    public static func sessions(_ sessions: [OpenSession], seq: UInt64) -> [UInt8] {
        reply(object { w in
            w.field("seq", integer: seq)
            w.field("sessions", raw: array(sessions.map(WireFormat.sessionObject)))
        })
    }

    /// One session of `ListSessions` with `more`; `continues` on all but the last.
    public static func session(_ session: OpenSession?, seq: UInt64, continues: Bool) -> [UInt8] {
        reply(object { w in
            w.field("seq", integer: seq)
            if let session { w.field("session", raw: WireFormat.sessionObject(session)) }
        }, continues: continues)
    }

    /// `GetHistory`'s reply: event objects (JSON, without newlines).
    public static func history(_ logoffs: [[UInt8]]) -> [UInt8] {
        reply(object { w in w.field("logoffs", raw: array(logoffs)) })
    }

    /// `GetStats`'s reply: the `stats` line's object.
    public static func stats(_ stats: DaemonStats) -> [UInt8] {
        var line = WireFormat.stats(stats)
        if line.last == 0x0A { line.removeLast() }
        return reply(object { w in w.field("stats", raw: line) })
    }

    /// A call's own errors, as `org.varlink.service` names them.
    public static func methodNotFound(_ method: String) -> [UInt8] {
        error("org.varlink.service.MethodNotFound", object { w in w.field("method", string: method) })
    }

    public static func interfaceNotFound(_ name: String) -> [UInt8] {
        error("org.varlink.service.InterfaceNotFound", object { w in w.field("interface", string: name) })
    }

    public static func expectedMore() -> [UInt8] {
        error("org.varlink.service.ExpectedMore", object { _ in })
    }

    /// `org.varlink.service` itself, as the Varlink specification gives it.
    static let serviceDescription = """
    # The Varlink Service Interface is provided by every varlink service. It
    # describes the service and the interfaces it implements.
    interface org.varlink.service

    # Get a list of all the interfaces a service provides and information
    # about the implementation.
    method GetInfo() -> (
    \tvendor: string,
    \tproduct: string,
    \tversion: string,
    \turl: string,
    \tinterfaces: []string
    )

    # Get the description of an interface that is implemented by this service.
    method GetInterfaceDescription(interface: string) -> (description: string)

    # The requested interface was not found.
    error InterfaceNotFound(interface: string)

    # The requested method was not found
    error MethodNotFound(method: string)

    # The interface defines the requested method, but the service does not
    # implement it.
    error MethodNotImplemented(method: string)

    # One of the passed parameters is invalid.
    error InvalidParameter(parameter: string)

    # Client is denied access
    error PermissionDenied()

    # Method is expected to be called with 'more' set to true, but wasn't
    error ExpectedMore()
    """

    private static func object(_ build: (inout JSONLineWriter) -> Void) -> [UInt8] {
        var w = JSONLineWriter()
        build(&w)
        return w.finishObject()
    }

    private static func array(_ objects: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        for (i, o) in objects.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += o
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }
}
