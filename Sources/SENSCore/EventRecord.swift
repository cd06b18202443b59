/// Reading back the event lines sensd itself wrote. Fast paths for what replay and start-up need: the seq of
/// a line without decoding it, and the facts a subscription filters on. Full decoding stays Codable.
///
/// In the event log each line is stored as `<event JSON>\t<CRC-32 of the JSON, 8 hex digits>\n`: the JSON is
/// byte for byte what subscribers receive, and the checksum catches damage a parser would not (a flipped
/// byte inside a name, two records run together).
package enum EventRecord {
    /// The stored form of an event line (which ends in a newline).
    public static func stored(_ line: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(line.count + 9)
        let json = line.last == 0x0A ? line.dropLast() : line[...]
        out += json
        out.append(0x09)
        let crc = CRC32.checksum(json)
        for shift in stride(from: 28, through: 0, by: -4) { out.append(hexDigits[Int((crc >> UInt32(shift)) & 0xF)]) }
        out.append(0x0A)
        return out
    }

    /// The event JSON of a stored record (newline excluded), or nil if its checksum does not match.
    public static func verified(_ record: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let n = record.count
        guard n > 9, record[n - 9] == 0x09 else { return nil }
        var crc: UInt32 = 0
        for i in (n - 8)..<n {
            guard let v = hexValue(record[i]) else { return nil }
            crc = crc << 4 | v
        }
        let json = UnsafeRawBufferPointer(rebasing: record[0..<(n - 9)])
        return CRC32.checksum(json) == crc ? json : nil
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
        default: nil
        }
    }

    private static let prefix = Array(#"{"event":""#.utf8)
    private static let seqKey = Array(#"","seq":"#.utf8)

    /// The seq of one event line as ``WireFormat/encode(_:)`` writes it (newline excluded), or nil if the
    /// line does not have that shape: the check start-up uses to find a torn or damaged record.
    public static func seq(of line: UnsafeRawBufferPointer) -> UInt64? {
        let n = line.count
        guard n > prefix.count + seqKey.count + 2, line[n - 1] == UInt8(ascii: "}") else { return nil }
        for (i, b) in prefix.enumerated() where line[i] != b { return nil }
        // The event name: letters only, then the seq key.
        var i = prefix.count
        while i < n, (UInt8(ascii: "A")...UInt8(ascii: "z")).contains(line[i]) { i += 1 }
        guard i > prefix.count, i + seqKey.count < n else { return nil }
        for (k, b) in seqKey.enumerated() where line[i + k] != b { return nil }
        i += seqKey.count
        var value: UInt64 = 0
        let start = i
        while i < n, let digit = Self.digit(line[i]) {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = s
            i += 1
        }
        guard i > start, i - start <= 20, i < n, line[i] == UInt8(ascii: ",") else { return nil }
        return value
    }

    public static func seq(of line: [UInt8]) -> UInt64? {
        line.withUnsafeBytes { seq(of: $0) }
    }

    private static func digit(_ b: UInt8) -> UInt64? {
        b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") ? UInt64(b - UInt8(ascii: "0")) : nil
    }

    /// The facts a subscription filters on, read from an event line (newline optional); nil if it is not one.
    public static func facts(of line: UnsafeRawBufferPointer) -> EventFacts? {
        var scanner = FlatObjectScanner(line)
        var event: EventKind?
        var userName: String?, uid: UInt32?, sessionClass: String?
        while let key = scanner.nextKey() {
            switch key {
            case "event":
                guard case .string(let s)? = scanner.value(), let kind = EventKind(rawValue: s) else { return nil }
                event = kind
            case "userName":
                guard let v = scanner.value() else { return nil }
                if case .string(let s) = v { userName = s }
            case "uid":
                guard let v = scanner.value() else { return nil }
                if case .integer(let u) = v, u <= UInt64(UInt32.max) { uid = UInt32(u) }
            case "class":
                guard let v = scanner.value() else { return nil }
                if case .string(let s) = v { sessionClass = s }
            default:
                guard scanner.value() != nil else { return nil }
            }
        }
        guard scanner.isComplete, let event else { return nil }
        return EventFacts(event: event, userName: userName, uid: uid, sessionClass: sessionClass)
    }
}

/// CRC-32 (IEEE 802.3, as zlib computes it), table-driven.
package enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}

/// Scans one flat JSON object as sensd writes it: string keys; string, whole-number, boolean or null values.
struct FlatObjectScanner {
    enum Value: Equatable {
        case string(String)
        case integer(UInt64)
        case bool(Bool)
        case null
    }

    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private var end: Int
    private(set) var isComplete = false
    private var failed = false

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        end = bytes.count
        if end > 0, bytes[end - 1] == 0x0A { end -= 1 }
        if end > 0, bytes[0] == UInt8(ascii: "{") { i = 1 } else { failed = true }
    }

    /// The next key, or nil at the end of the object (``isComplete`` tells a clean end from a damaged one).
    mutating func nextKey() -> String? {
        guard !failed, i < end else { return nil }
        if bytes[i] == UInt8(ascii: "}") {
            isComplete = i == end - 1
            return nil
        }
        if i > 1 {
            guard bytes[i] == UInt8(ascii: ",") else { return fail() }
            i += 1
        }
        guard let key = string(), i < end, bytes[i] == UInt8(ascii: ":") else { return fail() }
        i += 1
        return key
    }

    mutating func value() -> Value? {
        guard !failed, i < end else { return fail() }
        switch bytes[i] {
        case UInt8(ascii: "\""):
            return string().map(Value.string) ?? fail()
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default:
            var v: UInt64 = 0
            let start = i
            while i < end, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(bytes[i] - UInt8(ascii: "0")))
                guard !o1, !o2 else { return fail() }
                v = s
                i += 1
            }
            return i > start ? .integer(v) : fail()
        }
    }

    private mutating func literal(_ word: String, _ value: Value) -> Value? {
        for b in word.utf8 {
            guard i < end, bytes[i] == b else { return fail() }
            i += 1
        }
        return value
    }

    private mutating func string() -> String? {
        guard i < end, bytes[i] == UInt8(ascii: "\"") else { return nil }
        i += 1
        var out: [UInt8] = []
        while i < end {
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < end else { return nil }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    // sensd escapes only control characters this way (\u00XX).
                    guard i + 4 <= end, let h = UInt8(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 4)]), as: UTF8.self), radix: 16) else { return nil }
                    out.append(h)
                    i += 4
                default: out.append(e)
                }
            default:
                out.append(b)
            }
        }
        return nil
    }

    private mutating func fail<T>() -> T? {
        failed = true
        return nil
    }
}

/// The open sessions as the events describe them: what sensd rebuilds at start-up from its last snapshot
/// plus the events logged after it. Pure bookkeeping; ``apply(_:)`` follows the tracker's rules in reverse.
package struct RememberedSessions: Sendable {
    public private(set) var byID: [String: SessionTracker.Remembered] = [:]

    public init(_ sessions: [SessionTracker.Remembered] = []) {
        for r in sessions { byID[r.session.id] = r }
    }

    public var all: [SessionTracker.Remembered] { byID.values.sorted { $0.session.id < $1.session.id } }

    public mutating func apply(_ e: SENSEvent) {
        switch e.event {
        case .logon:
            byID[e.sessionId] = SessionTracker.Remembered(session: LogindSession(event: e), logoffInitiated: false)
        case .logoffInitiated:
            byID[e.sessionId]?.logoffInitiated = true
        case .logoff:
            byID[e.sessionId] = nil
        case .sessionDisconnect: byID[e.sessionId]?.session.active = false
        case .sessionReconnect: byID[e.sessionId]?.session.active = true
        case .displayLock: byID[e.sessionId]?.session.locked = true
        case .displayUnlock: byID[e.sessionId]?.session.locked = false
        case .startScreenSaver: byID[e.sessionId]?.session.idle = true
        case .stopScreenSaver: byID[e.sessionId]?.session.idle = false
        default: break
        }
    }
}
