/// Every field of an event and of a session, described once (``SessionFields/all``): where it lives in
/// ``SENSEvent`` and ``LogindSession`` (its two accessors in each), its key on the wire and in the journal, when it is left out, and the
/// logind property it comes from. Encoding, decoding, journal entries, the logind mapping and merging a
/// session's updates all walk this one table; adding a field is adding a row.
///
/// `event`, `seq`, `time` and `sessionId` are the event's identity rather than fields of the table: every
/// event has them, in that order, first.
package enum SessionFields {
    /// The table, in wire order (docs/protocol.md lists the same fields in the same order).
    static let all: [Field] = [
        // Who: always on the wire, `null` when sensd could not learn it (with `unresolved` saying why).
        Field("userName", journal: "SENS_USER_NAME", event: Access({ $0.userName }, { $0.userName = $1 }), session: Access({ $0.userName }, { $0.userName = $1 }), logind: ("Name", text), omit: .never),
        Field("uid", journal: "SENS_UID", event: Access({ $0.uid }, { $0.uid = $1 }), session: Access({ $0.uid }, { $0.uid = $1 }), logind: ("User", firstOfStruct(number)), omit: .never),
        // About the event.
        Field("unresolved", journal: "SENS_UNRESOLVED", event: Access({ $0.unresolved }, { $0.unresolved = $1 })),
        Field("observedLate", journal: "SENS_OBSERVED_LATE", event: Access({ $0.observedLate }, { $0.observedLate = $1 }), omit: .ifBlank),
        Field("observedAt", journal: "SENS_OBSERVED_AT", event: Access({ $0.observedAt }, { $0.observedAt = $1 })),
        Field("reason", journal: "SENS_REASON", event: Access({ $0.reason }, { $0.reason = $1 })),
        // The machine's own name: the journal has it already (_HOSTNAME).
        Field("host", journal: nil, event: Access({ $0.host }, { $0.host = $1 })),
        // About the session, as logind describes it.
        Field("class", journal: "SENS_CLASS", event: Access({ $0.sessionClass }, { $0.sessionClass = $1 }), session: Access({ $0.sessionClass }, { $0.sessionClass = $1 }), logind: ("Class", text)),
        Field("type", journal: "SENS_TYPE", event: Access({ $0.type }, { $0.type = $1 }), session: Access({ $0.type }, { $0.type = $1 }), logind: ("Type", text)),
        Field("service", journal: "SENS_SERVICE", event: Access({ $0.service }, { $0.service = $1 }), session: Access({ $0.service }, { $0.service = $1 }), logind: ("Service", text), omit: .ifBlank),
        Field("tty", journal: "SENS_TTY", event: Access({ $0.tty }, { $0.tty = $1 }), session: Access({ $0.terminal }, { $0.tty = $1 }), logind: ("TTY", text), omit: .ifBlank),
        Field("seat", journal: "SENS_SEAT", event: Access({ $0.seat }, { $0.seat = $1 }), session: Access({ $0.seat }, { $0.seat = $1 }), logind: ("Seat", firstOfStruct(text)), omit: .ifBlank),
        Field("display", journal: "SENS_DISPLAY", event: Access({ $0.display }, { $0.display = $1 }), session: Access({ $0.display }, { $0.display = $1 }), logind: ("Display", text), omit: .ifBlank),
        Field("remote", journal: "SENS_REMOTE", event: Access({ $0.remote }, { $0.remote = $1 }), session: Access({ $0.remote }, { $0.remote = $1 }), logind: ("Remote", flag)),
        Field("remoteHost", journal: "SENS_REMOTE_HOST", event: Access({ $0.remoteHost }, { $0.remoteHost = $1 }), session: Access({ $0.remoteHost }, { $0.remoteHost = $1 }), logind: ("RemoteHost", text), omit: .ifBlank),
        Field("remoteUser", journal: "SENS_REMOTE_USER", event: Access({ $0.remoteUser }, { $0.remoteUser = $1 }), session: Access({ $0.remoteUser }, { $0.remoteUser = $1 }), logind: ("RemoteUser", text), omit: .ifBlank),
        // Who ran run0, and whether with --empower: from the session's service unit (systemd), not from logind.
        Field("invokedBy", journal: "SENS_INVOKED_BY", event: Access({ $0.invokedBy }, { $0.invokedBy = $1 }), session: Access({ $0.invokedBy }, { $0.invokedBy = $1 }), omit: .ifBlank),
        Field("invokedByUid", journal: "SENS_INVOKED_BY_UID", event: Access({ $0.invokedByUid }, { $0.invokedByUid = $1 }), session: Access({ $0.invokedByUid }, { $0.invokedByUid = $1 })),
        Field("elevated", journal: "SENS_ELEVATED", event: Access({ $0.elevated }, { $0.elevated = $1 }), session: Access({ $0.elevated }, { $0.elevated = $1 }), omit: .ifBlank),
        // Pid 0 is no leader.
        Field("leader", journal: "SENS_LEADER", event: Access({ $0.leader }, { $0.leader = $1 }), session: Access({ $0.leader }, { $0.leader = $1 }), logind: ("Leader", nonZero(number)), omit: .ifBlank),
        // 0 and 4294967295 mean "no audit session".
        Field("audit", journal: "SENS_AUDIT", event: Access({ $0.audit }, { $0.audit = $1 }), session: Access({ $0.audit }, { $0.audit = $1 }), logind: ("Audit", { v in number(v).flatMap { $0 == 0 || $0 == .max ? nil : $0 } })),
        Field("sessionStart", journal: "SENS_SESSION_START", event: Access({ $0.sessionStart }, { $0.sessionStart = $1 }), session: Access({ $0.startedAt }, { $0.startedAt = $1 }), logind: ("Timestamp", nonZero(number64)),
              eventValue: { EventTime(microsecondsSinceEpoch: Int64(clamping: $0)) }, sessionValue: { UInt64(max(0, $0.microsecondsSinceEpoch)) }),
        // Windows' terms for the session (docs/protocol.md, "Logon types"): from the session, never stored in it.
        Field("logonType", journal: "SENS_LOGON_TYPE", event: Access({ $0.logonType }, { $0.logonType = $1 }), derived: { $0.logonType }),
        Field("logonTypeCode", journal: "SENS_LOGON_TYPE_CODE", event: Access({ $0.logonTypeCode }, { $0.logonTypeCode = $1 }), derived: { $0.logonType?.code }),
        // A failed logon's own facts (LogonFailed only).
        Field("targetExists", journal: "SENS_TARGET_EXISTS", event: Access({ $0.targetExists }, { $0.targetExists = $1 })),
        Field("remotePort", journal: "SENS_REMOTE_PORT", event: Access({ $0.remotePort }, { $0.remotePort = $1 })),
        Field("failureReason", journal: "SENS_FAILURE_REASON", event: Access({ $0.failureReason }, { $0.failureReason = $1 })),
        Field("source", journal: "SENS_SOURCE", event: Access({ $0.source }, { $0.source = $1 })),
        Field("count", journal: "SENS_COUNT", event: Access({ $0.count }, { $0.count = $1 })),
        // The session's state now: in snapshot lines and in sensd's memory, never in an event.
        Field("state", session: Access({ $0.state }, { $0.state = $1 }), logind: ("State", text)),
        Field("active", session: Access({ $0.active }, { $0.active = $1 }), logind: ("Active", flag)),
        Field("locked", session: Access({ $0.locked }, { $0.locked = $1 }), logind: ("LockedHint", flag)),
        Field("idle", session: Access({ $0.idle }, { $0.idle = $1 }), logind: ("IdleHint", flag)),
    ]

    /// When a field is left out of a line or a journal entry.
    enum Omission {
        /// Never: `null` on the wire when unknown (a journal entry leaves it out).
        case never
        /// When unknown.
        case ifNil
        /// When unknown or blank: empty text, a zero id, `false`.
        case ifBlank
    }

    /// One row of the table, its operations built once from its accessors. A class: walking the table on
    /// every event must not copy (and retain and release) a dozen closures per row.
    final class Field: Sendable {
        let wireKey: String
        let journalKey: String?
        /// logind's name for it, for fields a session has.
        let logindProperty: String?
        let isInEvents: Bool
        let write: @Sendable (SENSEvent, inout JSONLineWriter) -> Void
        let writeState: @Sendable (LogindSession, inout JSONLineWriter) -> Void
        let journalText: @Sendable (SENSEvent) -> String?
        let decode: @Sendable (inout SENSEvent, KeyedDecodingContainer<FieldKey>) throws -> Void
        /// A snapshot line's state now (`state`, `active`, ...), read back into the session.
        let decodeState: @Sendable (inout LogindSession, KeyedDecodingContainer<FieldKey>) throws -> Void
        let encode: @Sendable (SENSEvent, inout KeyedEncodingContainer<FieldKey>) throws -> Void
        /// Session -> event, event -> session (a Logon describes its session), newer -> older.
        let fromSession: @Sendable (LogindSession, inout SENSEvent) -> Void
        let toSession: @Sendable (SENSEvent, inout LogindSession) -> Void
        let merge: @Sendable (inout LogindSession, LogindSession) -> Void
        let readLogind: @Sendable (inout LogindSession, any LogindPropertyValue) -> Void

        /// A field events carry, kept in the session as it is in the event (or not at all, without `session`).
        convenience init<E: FieldValue>(
            _ wire: String, journal: String?, event: Access<SENSEvent, E>,
            session: Access<LogindSession, E>? = nil,
            logind: (String, @Sendable (any LogindPropertyValue) -> E?)? = nil, omit: Omission = .ifNil
        ) {
            self.init(wire, journal: journal, event: event, session: session, logind: logind, omit: omit, eventValue: { $0 }, sessionValue: { $0 })
        }

        /// A field events carry that is worked out from the session rather than kept in it.
        convenience init<E: FieldValue>(_ wire: String, journal: String, event: Access<SENSEvent, E>, derived: @escaping @Sendable (LogindSession) -> E?) {
            self.init(wire, journal: journal, event: event, session: nil as Access<LogindSession, E>?, logind: nil,
                      omit: .ifNil, eventValue: { $0 }, sessionValue: { $0 }, derived: derived)
        }

        /// A field events carry whose session counterpart has another type (`sessionStart`, `startedAt`).
        init<E: FieldValue, S>(
            _ wire: String, journal: String?, event: Access<SENSEvent, E>,
            session: Access<LogindSession, S>?,
            logind: (String, @Sendable (any LogindPropertyValue) -> S?)?, omit: Omission = .ifNil,
            eventValue: @escaping @Sendable (S) -> E?, sessionValue: @escaping @Sendable (E) -> S?,
            derived: (@Sendable (LogindSession) -> E?)? = nil
        ) {
            wireKey = wire
            journalKey = journal
            logindProperty = logind?.0
            isInEvents = true
            let key = FieldKey(wire)
            let kept: @Sendable (E?) -> E? = { value in
                guard let value else { return nil }
                return omit == .ifBlank && value.isBlank ? nil : value
            }
            write = { e, w in
                if let v = kept(event.get(e)) { v.write(wire, into: &w) } else if omit == .never { w.field(wire, string: nil) }
            }
            writeState = { _, _ in }
            journalText = { e in kept(event.get(e)).map(\.journalText).flatMap { $0.isEmpty ? nil : $0 } }
            decode = { e, c in event.set(&e, try E.decode(c, key)) }
            decodeState = { _, _ in }
            encode = { e, c in
                if let v = event.get(e) { try v.encode(&c, key) } else if omit == .never { try c.encodeNil(forKey: key) }
            }
            if let derived {
                fromSession = { s, e in event.set(&e, derived(s)) }
            } else if let session {
                fromSession = { s, e in event.set(&e, session.get(s).flatMap(eventValue)) }
            } else {
                fromSession = { _, _ in }
            }
            if let session {
                toSession = { e, s in session.set(&s, event.get(e).flatMap(sessionValue)) }
                merge = { old, new in if let v = session.get(new) { session.set(&old, v) } }
            } else {
                toSession = { _, _ in }
                merge = { _, _ in }
            }
            if let session, let (_, read) = logind {
                readLogind = { s, v in session.set(&s, read(v)) }
            } else {
                readLogind = { _, _ in }
            }
        }

        /// A session's state now: remembered and shown in snapshots, not carried by events.
        init<S: FieldValue>(_ wire: String, session: Access<LogindSession, S>, logind: (String, @Sendable (any LogindPropertyValue) -> S?)) {
            wireKey = wire
            journalKey = nil
            logindProperty = logind.0
            isInEvents = false
            write = { _, _ in }
            writeState = { s, w in session.get(s)?.write(wire, into: &w) }
            journalText = { _ in nil }
            decode = { _, _ in }
            let key = FieldKey(wire)
            decodeState = { s, c in session.set(&s, try S.decode(c, key)) }
            encode = { _, _ in }
            fromSession = { _, _ in }
            toSession = { _, _ in }
            merge = { old, new in if let v = session.get(new) { session.set(&old, v) } }
            let read = logind.1
            readLogind = { s, v in session.set(&s, read(v)) }
        }
    }

    // MARK: Reading logind's properties

    // Closures typed @Sendable rather than static functions: Swift 6.0's compiler (Debian 13's swiftlang
    // 6.0.3) crashes converting a function reference to the @Sendable type inside the table's tuples.
    /// Text; empty means logind does not know.
    static let text: @Sendable (any LogindPropertyValue) -> String? = { v in v.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
    static let flag: @Sendable (any LogindPropertyValue) -> Bool? = { v in v.boolValue }
    static let number: @Sendable (any LogindPropertyValue) -> UInt32? = { v in v.uint32Value }
    static let number64: @Sendable (any LogindPropertyValue) -> UInt64? = { v in v.uint64Value }
    /// The first member of a structure: `User` is (uid, object path), `Seat` is (id, object path).
    static func firstOfStruct<T>(_ read: @escaping @Sendable (any LogindPropertyValue) -> T?) -> @Sendable (any LogindPropertyValue) -> T? {
        { v in v.firstField.flatMap(read) }
    }
    static func nonZero(_ read: @escaping @Sendable (any LogindPropertyValue) -> UInt32?) -> @Sendable (any LogindPropertyValue) -> UInt32? {
        { v in read(v).flatMap { $0 == 0 ? nil : $0 } }
    }
    static func nonZero(_ read: @escaping @Sendable (any LogindPropertyValue) -> UInt64?) -> @Sendable (any LogindPropertyValue) -> UInt64? {
        { v in read(v).flatMap { $0 == 0 ? nil : $0 } }
    }
}

/// A stored property of `Root`, by its two accessors: what the table's rows hold instead of key paths. A key
/// path kept in a closure is walked by the runtime (through its metadata caches) on every use, which doubled
/// sensd's CPU per event on the stand-in; these closures compile to plain loads and stores.
struct Access<Root, Value>: Sendable {
    let get: @Sendable (Root) -> Value?
    let set: @Sendable (inout Root, Value?) -> Void

    init(_ get: @escaping @Sendable (Root) -> Value?, _ set: @escaping @Sendable (inout Root, Value?) -> Void) {
        self.get = get
        self.set = set
    }
}

/// A value of one of logind's session properties, as the bus layer read it (its own type conforms).
package protocol LogindPropertyValue {
    var stringValue: String? { get }
    var boolValue: Bool? { get }
    var uint32Value: UInt32? { get }
    var uint64Value: UInt64? { get }
    /// The first member, if it is a structure.
    var firstField: (any LogindPropertyValue)? { get }
}

struct FieldKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// How a field's type is written, shown and read: once per type, not once per field.
protocol FieldValue: Sendable {
    func write(_ key: String, into w: inout JSONLineWriter)
    var journalText: String { get }
    /// Empty text, a zero id, `false`: left out where the table says so.
    var isBlank: Bool { get }
    static func decode(_ c: KeyedDecodingContainer<FieldKey>, _ key: FieldKey) throws -> Self?
    func encode(_ c: inout KeyedEncodingContainer<FieldKey>, _ key: FieldKey) throws
}

extension FieldValue where Self: Codable {
    static func decode(_ c: KeyedDecodingContainer<FieldKey>, _ key: FieldKey) throws -> Self? { try c.decodeIfPresent(Self.self, forKey: key) }
    func encode(_ c: inout KeyedEncodingContainer<FieldKey>, _ key: FieldKey) throws { try c.encode(self, forKey: key) }
}

extension String: FieldValue {
    func write(_ key: String, into w: inout JSONLineWriter) { w.field(key, string: self) }
    var journalText: String { self }
    var isBlank: Bool { isEmpty }
}

extension Bool: FieldValue {
    func write(_ key: String, into w: inout JSONLineWriter) { w.field(key, bool: self) }
    var journalText: String { self ? "true" : "false" }
    var isBlank: Bool { !self }
}

extension UInt32: FieldValue {
    func write(_ key: String, into w: inout JSONLineWriter) { w.field(key, integer: UInt64(self)) }
    var journalText: String { String(self) }
    var isBlank: Bool { self == 0 }
}

extension Int: FieldValue {
    func write(_ key: String, into w: inout JSONLineWriter) { w.field(key, integer: UInt64(clamping: self)) }
    var journalText: String { String(self) }
    var isBlank: Bool { self == 0 }
}

extension EventTime: FieldValue {
    func write(_ key: String, into w: inout JSONLineWriter) { w.field(key, string: rfc3339) }
    var journalText: String { rfc3339 }
    var isBlank: Bool { false }
    static func decode(_ c: KeyedDecodingContainer<FieldKey>, _ key: FieldKey) throws -> EventTime? {
        guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
        guard let time = EventTime(rfc3339: text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not RFC 3339 UTC: \(text)")
        }
        return time
    }
    func encode(_ c: inout KeyedEncodingContainer<FieldKey>, _ key: FieldKey) throws { try c.encode(rfc3339, forKey: key) }
}

extension LogonType: FieldValue {
    func write(_ key: String, into w: inout JSONLineWriter) { w.field(key, string: rawValue) }
    var journalText: String { rawValue }
    var isBlank: Bool { false }
    /// A logon type this version does not know is read as unknown, never as a broken line: Windows has more
    /// (Network, Unlock, NewCredentials, ...) than logind's sessions map to today (docs/protocol.md).
    static func decode(_ c: KeyedDecodingContainer<FieldKey>, _ key: FieldKey) throws -> LogonType? {
        try c.decodeIfPresent(String.self, forKey: key).flatMap(LogonType.init(rawValue:))
    }
}

extension SENSEvent {
    /// Every field the session knows, copied from it (and the ones worked out from it).
    mutating func copyFields(from session: LogindSession) {
        for field in SessionFields.all { field.fromSession(session, &self) }
    }
}

extension LogindSession {
    /// The session as a `Logon` event describes it. Live state (active, idle, locked) is not in a Logon, so
    /// it stays unknown until logind says it again.
    public init(event e: SENSEvent) {
        self.init(id: e.sessionId)
        for field in SessionFields.all { field.toSession(e, &self) }
    }

    /// A session from logind's properties (`GetAll` on a session object): what a property does not say stays
    /// unknown. `id` is used if the properties lack `Id`.
    public init(id: String, properties: [String: some LogindPropertyValue]) {
        self.init(id: properties["Id"].flatMap { SessionFields.text($0) } ?? id)
        for field in SessionFields.all {
            if let name = field.logindProperty, let value = properties[name] { field.readLogind(&self, value) }
        }
    }

    /// This record with every field `newer` knows replacing the old value.
    public func updated(with newer: LogindSession) -> LogindSession {
        var s = self
        for field in SessionFields.all { field.merge(&s, newer) }
        return s
    }

    /// The logind property names the table maps (what a `PropertiesChanged` signal may carry).
    public static var logindProperties: [String] { ["Id"] + SessionFields.all.compactMap(\.logindProperty) }
}
