/// What a client may ask for in the one request line it may send after connecting.
///
/// Protocol 1 defines the request as a JSON object; this version of the daemon knows no keys yet, so `{}`
/// is the only valid request and a client that sends nothing gets the same: every event. Unknown keys are
/// refused by name rather than ignored, so a client asking for a feature learns the daemon lacks it
/// instead of silently getting a stream it did not ask for.
public struct SubscriptionRequest: Equatable, Sendable {
    public init() {}

    /// Parses one request line (without its newline).
    public static func parse(_ line: ArraySlice<UInt8>) throws(ProtocolError) -> SubscriptionRequest {
        let keys: [String]
        do {
            keys = try FlatJSONObject.keys(of: line)
        } catch {
            throw ProtocolError(.badRequest, "request is not a JSON object: \(error.reason)")
        }
        if let unknown = keys.first {
            throw ProtocolError(.badRequest, "unknown request key \"\(unknown)\" (this daemon accepts only {})")
        }
        return SubscriptionRequest()
    }
}

/// Just enough JSON to check a request's outer shape without pulling Foundation into the daemon.
enum FlatJSONObject {
    struct Failure: Error { var reason: String }

    /// The top-level keys of a JSON object, validating the whole text as JSON.
    static func keys(of text: ArraySlice<UInt8>) throws(Failure) -> [String] {
        var p = Parser(bytes: Array(text))
        p.skipSpace()
        guard p.peek() == UInt8(ascii: "{") else { throw Failure(reason: "expected '{'") }
        let keys = try p.object()
        p.skipSpace()
        guard p.atEnd else { throw Failure(reason: "text after the object") }
        return keys
    }

    struct Parser {
        var bytes: [UInt8]
        var i = 0
        var depth = 0

        var atEnd: Bool { i >= bytes.count }
        func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while let b = peek(), b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws(Failure) {
            skipSpace()
            guard peek() == c else { throw Failure(reason: "expected '\(Character(Unicode.Scalar(c)))' at byte \(i)") }
            i += 1
        }

        mutating func object() throws(Failure) -> [String] {
            depth += 1
            guard depth <= 32 else { throw Failure(reason: "nested too deeply") }
            defer { depth -= 1 }
            try expect(UInt8(ascii: "{"))
            var keys: [String] = []
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                i += 1
                return keys
            }
            while true {
                skipSpace()
                keys.append(try string())
                try expect(UInt8(ascii: ":"))
                try value()
                skipSpace()
                if peek() == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "}"))
                return keys
            }
        }

        mutating func value() throws(Failure) {
            skipSpace()
            switch peek() {
            case UInt8(ascii: "{"): _ = try object()
            case UInt8(ascii: "["):
                depth += 1
                guard depth <= 32 else { throw Failure(reason: "nested too deeply") }
                defer { depth -= 1 }
                i += 1
                skipSpace()
                if peek() == UInt8(ascii: "]") { i += 1; return }
                while true {
                    try value()
                    skipSpace()
                    if peek() == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return
                }
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case .some(let b) where b == UInt8(ascii: "-") || (b >= 48 && b <= 57): try number()
            default: throw Failure(reason: "unexpected character at byte \(i)")
            }
        }

        mutating func literal(_ word: String) throws(Failure) {
            for c in word.utf8 {
                guard peek() == c else { throw Failure(reason: "bad literal at byte \(i)") }
                i += 1
            }
        }

        mutating func number() throws(Failure) {
            let start = i
            if peek() == UInt8(ascii: "-") { i += 1 }
            var digits = 0
            while let b = peek(), b >= 48 && b <= 57 { i += 1; digits += 1 }
            guard digits > 0 else { throw Failure(reason: "bad number at byte \(start)") }
            if peek() == UInt8(ascii: ".") {
                i += 1
                var frac = 0
                while let b = peek(), b >= 48 && b <= 57 { i += 1; frac += 1 }
                guard frac > 0 else { throw Failure(reason: "bad number at byte \(start)") }
            }
            if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
                i += 1
                if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { i += 1 }
                var exp = 0
                while let b = peek(), b >= 48 && b <= 57 { i += 1; exp += 1 }
                guard exp > 0 else { throw Failure(reason: "bad number at byte \(start)") }
            }
        }

        mutating func string() throws(Failure) -> String {
            guard peek() == UInt8(ascii: "\"") else { throw Failure(reason: "expected a string at byte \(i)") }
            i += 1
            var out: [UInt8] = []
            while let b = peek() {
                i += 1
                switch b {
                case UInt8(ascii: "\""):
                    guard let s = String(validating: out, as: UTF8.self) else { throw Failure(reason: "string is not UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    guard let e = peek() else { break }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "u"):
                        guard i + 4 <= bytes.count else { throw Failure(reason: "bad \\u escape") }
                        var v: UInt32 = 0
                        for _ in 0..<4 {
                            let h = bytes[i]
                            i += 1
                            switch h {
                            case 48...57: v = v * 16 + UInt32(h - 48)
                            case 65...70: v = v * 16 + UInt32(h - 55)
                            case 97...102: v = v * 16 + UInt32(h - 87)
                            default: throw Failure(reason: "bad \\u escape")
                            }
                        }
                        // Surrogates are kept as U+FFFD: request keys and values are ASCII names.
                        let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: throw Failure(reason: "bad escape at byte \(i - 1)")
                    }
                case 0..<0x20:
                    throw Failure(reason: "control character in string at byte \(i - 1)")
                default:
                    out.append(b)
                }
            }
            throw Failure(reason: "unterminated string")
        }
    }
}
