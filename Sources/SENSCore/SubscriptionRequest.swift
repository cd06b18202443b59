import FoundationEssentials

/// What a client may ask for in the one request line it may send after connecting.
///
/// A JSON object; every key is optional, values within a key are OR-ed, keys are AND-ed:
/// `{"events":["Logoff"],"users":["alice"],"uids":[1000],"classes":["user"]}`. `since` (a seq) asks for
/// every retained event after it first, then the live ones; `snapshot` asks for the sessions open now,
/// tied to a seq, before the live events after that seq.
/// Sessions of the classes in ``hiddenUnlessNamed`` (each user's service manager) reach only requests that
/// name them in `classes`.
/// Unknown keys are refused by name rather than ignored, so a client asking for a feature this daemon
/// lacks learns so instead of silently getting a stream it did not ask for.
package struct SubscriptionRequest: Equatable, Sendable {
    public var events: Set<EventKind>? {
        didSet { eventMask = Self.mask(events) }
    }
    /// `events` as one bit per kind (``EventFacts/eventBit``): the test every subscriber makes of every
    /// event, without hashing.
    private var eventMask: UInt32?
    public var users: Set<String>?
    public var uids: Set<UInt32>?
    public var classes: Set<String>?
    /// Resume after this seq: replay what the log retains after it, then go live.
    public var since: UInt64?
    /// Send the open sessions first, as of one seq, then the events after it.
    public var snapshot: Bool
    /// With `since`: false ends the connection, with an `end` line, once the replay has caught up.
    public var live: Bool
    /// Asks for the daemon's counters (one `stats` line), then the connection ends; stands alone.
    public var stats: Bool

    public init(events: Set<EventKind>? = nil, users: Set<String>? = nil, uids: Set<UInt32>? = nil, classes: Set<String>? = nil, since: UInt64? = nil, snapshot: Bool = false, live: Bool = true, stats: Bool = false) {
        self.live = live
        self.stats = stats
        self.events = events
        eventMask = Self.mask(events)
        self.users = users
        self.uids = uids
        self.classes = classes
        self.since = since
        self.snapshot = snapshot
    }

    /// The keys this daemon understands.
    public static let keys = ["events", "users", "uids", "classes", "since", "snapshot", "live", "stats"]

    /// Session classes that are not logons of a person: since systemd v256 each user's service manager
    /// (`user@UID.service`) runs in a session of its own, which begins with the user's first login and ends
    /// a while after the last. Counted as logons, every login would look like two. Kept in the log and the
    /// journal; sent only to requests that name the class.
    public static let hiddenUnlessNamed: Set<String> = ["manager", "manager-early"]

    /// In `classes`, every session of every class, service managers included: `{"classes":["*"]}`.
    public static let everyClass = "*"

    /// The largest `since` accepted: JSON numbers are exact up to 2^53.
    public static let maxSince: UInt64 = 1 << 53

    /// Whether an event passes every filter the request names.
    public func matches(_ facts: EventFacts) -> Bool {
        if let eventMask, eventMask & facts.eventBit == 0 { return false }
        return matchesSession(facts)
    }

    private static func mask(_ kinds: Set<EventKind>?) -> UInt32? {
        kinds.map { $0.reduce(0) { $0 | EventFacts.bit($1) } }
    }

    /// Whether a session passes the filters on whose it is (every filter but `events`).
    public func matchesSession(_ facts: EventFacts) -> Bool {
        if let users {
            guard let name = facts.userName, users.contains(name) else { return false }
        }
        if let uids {
            guard let uid = facts.uid, uids.contains(uid) else { return false }
        }
        if let classes {
            guard classes.contains(Self.everyClass) || facts.sessionClass.map(classes.contains) == true else { return false }
        } else if facts.hiddenUnlessNamed {
            return false
        }
        return true
    }

    /// Whether the request names no filter (`since` and `snapshot` are not filters); such a request still
    /// keeps out the classes in ``hiddenUnlessNamed``.
    public var isEverything: Bool { events == nil && users == nil && uids == nil && classes == nil }

    /// The request as sensd understood it, in JSON with sorted values.
    public var json: [UInt8] {
        var w = JSONLineWriter()
        if let events { w.field("events", strings: events.map(\.rawValue).sorted()) }
        if let users { w.field("users", strings: users.sorted()) }
        if let uids { w.field("uids", integers: uids.sorted().map(UInt64.init)) }
        if let classes { w.field("classes", strings: classes.sorted()) }
        if let since { w.field("since", integer: since) }
        if snapshot { w.field("snapshot", bool: true) }
        if !live { w.field("live", bool: false) }
        if stats { w.field("stats", bool: true) }
        return w.finishObject()
    }

    /// Parses one request line (without its newline); the error names what is wrong.
    public static func parse(_ line: ArraySlice<UInt8>) throws(ProtocolError) -> SubscriptionRequest {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(line))
        } catch {
            throw ProtocolError(.badRequest, "request is not valid JSON")
        }
        guard case .object(let fields) = value else {
            throw ProtocolError(.badRequest, "request must be a JSON object such as {\"events\":[\"Logoff\"]}")
        }
        return try make(from: fields)
    }

    /// A request from the fields of a JSON object: the request line's, or a Varlink `Subscribe` call's
    /// parameters. An error about one key names it in ``ProtocolError/parameter``.
    static func make(from fields: [String: JSONValue]) throws(ProtocolError) -> SubscriptionRequest {
        var request = SubscriptionRequest()
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            do throws(ProtocolError) {
                switch key {
                case "events":
                    request.events = Set(try strings(key, value).map { name throws(ProtocolError) in
                        guard let kind = EventKind(rawValue: name) else {
                            throw ProtocolError(.badRequest, "unknown event \"\(name)\" in \"events\" (known: \(EventKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                        }
                        return kind
                    })
                case "users":
                    request.users = Set(try strings(key, value))
                case "classes":
                    request.classes = Set(try strings(key, value))
                case "uids":
                    request.uids = Set(try list(key, value).map { v throws(ProtocolError) in
                        guard case .number(let n) = v, n >= 0, n <= Double(UInt32.max), n.rounded() == n else {
                            throw ProtocolError(.badRequest, "\"uids\" must hold whole numbers from 0 to \(UInt32.max)")
                        }
                        return UInt32(n)
                    })
                case "since":
                    guard case .number(let n) = value, n >= 0, n.rounded() == n, n <= Double(maxSince) else {
                        throw ProtocolError(.badRequest, "\"since\" must be a seq: a whole number from 0 to \(maxSince)")
                    }
                    request.since = UInt64(n)
                case "snapshot":
                    guard case .bool(let b) = value else {
                        throw ProtocolError(.badRequest, "\"snapshot\" must be true or false")
                    }
                    request.snapshot = b
                case "live":
                    guard case .bool(let b) = value else {
                        throw ProtocolError(.badRequest, "\"live\" must be true or false")
                    }
                    request.live = b
                case "stats":
                    guard case .bool(let b) = value else {
                        throw ProtocolError(.badRequest, "\"stats\" must be true or false")
                    }
                    request.stats = b
                default:
                    throw ProtocolError(.badRequest, "unknown request key \"\(key)\" (known: \(keys.joined(separator: ", ")))")
                }
            } catch {
                var named = error
                named.parameter = key
                throw named
            }
        }
        if request.snapshot && request.since != nil {
            throw ProtocolError(.badRequest, "\"snapshot\" and \"since\" cannot be combined: a snapshot is the state at one seq, followed by the events after it", parameter: "snapshot")
        }
        if request.stats && (request.since != nil || request.snapshot || !request.isEverything || !request.live) {
            throw ProtocolError(.badRequest, "\"stats\" stands alone: it answers with sensd's counters and ends the connection, so filters, \"since\", \"snapshot\" and \"live\" have nothing to apply to", parameter: "stats")
        }
        if !request.live && request.since == nil {
            throw ProtocolError(.badRequest, "\"live\": false needs \"since\": it ends the connection once the replay from there has caught up", parameter: "live")
        }
        return request
    }

    private static func list(_ key: String, _ value: JSONValue) throws(ProtocolError) -> [JSONValue] {
        guard case .array(let items) = value else {
            throw ProtocolError(.badRequest, "\"\(key)\" must be a list")
        }
        guard !items.isEmpty else {
            throw ProtocolError(.badRequest, "\"\(key)\" is empty and would match nothing; leave the key out to match everything")
        }
        guard items.count <= 1024 else {
            throw ProtocolError(.badRequest, "\"\(key)\" has more than 1024 values")
        }
        return items
    }

    private static func strings(_ key: String, _ value: JSONValue) throws(ProtocolError) -> [String] {
        try list(key, value).map { v throws(ProtocolError) in
            guard case .string(let s) = v, !s.isEmpty else {
                throw ProtocolError(.badRequest, "\"\(key)\" must hold non-empty strings")
            }
            return s
        }
    }
}

/// What a subscription can filter on, taken from an event once and kept beside its encoded line.
package struct EventFacts: Sendable {
    public let event: EventKind
    public let userName: String?
    public let uid: UInt32?
    public let sessionClass: String?
    /// Worked out once per event rather than by each subscriber it is matched against.
    let eventBit: UInt32
    let hiddenUnlessNamed: Bool
    /// LogonFailed: only for root and administrators (the subscriber server checks).
    public var isRestricted: Bool { event == .logonFailed }

    public init(_ e: SENSEvent) {
        self.init(event: e.event, userName: e.userName, uid: e.uid, sessionClass: e.sessionClass)
    }

    public init(event: EventKind, userName: String? = nil, uid: UInt32? = nil, sessionClass: String? = nil) {
        self.event = event
        self.userName = userName
        self.uid = uid
        self.sessionClass = sessionClass
        eventBit = Self.bit(event)
        hiddenUnlessNamed = sessionClass.map(SubscriptionRequest.hiddenUnlessNamed.contains) ?? false
    }

    static func bit(_ kind: EventKind) -> UInt32 {
        UInt32(1) << UInt32(EventKind.allCases.firstIndex(of: kind)!)
    }
}

/// Any JSON value, for validating requests with messages that name the offending key.
enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: AnyKey.self) {
            var fields: [String: JSONValue] = [:]
            for key in c.allKeys { fields[key.stringValue] = try c.decode(JSONValue.self, forKey: key) }
            self = .object(fields)
        } else if var c = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !c.isAtEnd { items.append(try c.decode(JSONValue.self)) }
            self = .array(items)
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else { self = .string(try c.decode(String.self)) }
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
