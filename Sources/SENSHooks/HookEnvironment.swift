import FoundationEssentials

/// The environment a hook's command gets: every field of the event's line as `SENS_<FIELD>`, the field's
/// name in upper case with `_` between words (`userName` -> `SENS_USER_NAME`, `class` -> `SENS_CLASS`).
/// Made from the line itself, so a field a newer sensd adds reaches commands without a change here.
public enum HookEnvironment {
    enum Scalar: Decodable {
        case string(String)
        case number(String)
        case bool(Bool)
        case other

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .other }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int64.self) { self = .number(String(i)) }
            else if let u = try? c.decode(UInt64.self) { self = .number(String(u)) }
            else if let d = try? c.decode(Double.self) { self = .number(String(d)) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { self = .other }
        }
    }

    /// `SENS_*` for each field with a value (a null or a nested value is left out), sorted by name.
    public static func variables(forLine line: String) -> [(name: String, value: String)] {
        guard let fields = try? JSONDecoder().decode([String: Scalar].self, from: Data(line.utf8)) else { return [] }
        var out: [(String, String)] = []
        for (key, value) in fields {
            let text: String
            switch value {
            case .string(let s): text = s
            case .number(let n): text = n
            case .bool(let b): text = b ? "yes" : "no"
            case .other: continue
            }
            // A NUL cannot be in an environment variable; sensd never sends one, but the line is foreign input.
            guard !text.utf8.contains(0) else { continue }
            out.append((variableName(key), text))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// `userName` -> `SENS_USER_NAME`.
    public static func variableName(_ key: String) -> String {
        var name = "SENS_"
        var previousLower = false
        for c in key {
            if c.isUppercase && previousLower { name.append("_") }
            if c.isLetter || c.isNumber { name += c.uppercased() } else { name.append("_") }
            previousLower = c.isLowercase || c.isNumber
        }
        return name
    }
}
