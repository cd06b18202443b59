import SENSClient

/// A mistake in a rule file, with the line it is on (0: the file as a whole).
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var message: String

    public init(path: String, line: Int, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}

/// Reads a rule file (sensd.hook(5)) in the grammar of systemd's unit files (systemd.syntax(7)).
///
/// Lines are `[Section]` or `Key=value`. Blank lines and lines starting with `#` or `;` are comments; there
/// are no comments after a value (`Exec=/bin/echo a #b` passes `#b` on, as systemd does). A line ending in a
/// backslash goes on on the next line (the backslash becomes a space; comment lines in between are skipped).
/// Keys and sections starting with `X-` are for the administrator's own use and ignored. A key given twice
/// adds to a list (`Event=`, `UserName=`, ...) or replaces a single value; an empty value (`UserName=`)
/// empties the list. Booleans are systemd's (`yes`/`no`, `y`/`n`, `true`/`false`, `t`/`f`, `on`/`off`,
/// `1`/`0`), times its time spans (`90`, `1min 30s`, `2.5s`, `500ms`, `infinity`).
///
/// Unlike systemd, a key this version does not know is a mistake rather than a warning: a mistyped `User=`
/// would otherwise run the command as root.
public enum RuleParser {
    public static func parse(_ text: String, name: String, path: String) throws(RuleErrors) -> HookRule {
        try parse([(path, text)], name: name)
    }

    /// A rule as its lines build it, before the checks of the whole.
    struct Draft {
        var match = HookRule.Match()
        var sawEvent = false
        var exec: [String]?
        var unit: String?
        /// Where the action (Exec= or Unit=) was given, for the mistakes of the whole rule.
        var actionLine = 0
        var actionPath = ""
        var user: String?
        var timeout: Duration? = HookRule.defaultTimeout
        var retries = 0
        var retryDelay = HookRule.defaultRetryDelay
        var inputFormat = EventFormat.sensd
    }

    /// A key's value as its line gave it.
    struct Value {
        /// The text after `=`, trimmed.
        var text: String
        /// It split at blanks (list keys).
        var words: [String]
        var line: Int
        var path: String
    }

    /// One key a rule file may hold: its section, its name, and what its value does to the rule; it answers
    /// the mistakes it found (none: the value was taken).
    struct Key: Sendable {
        let section: String
        let name: String
        let apply: @Sendable (inout Draft, Value) -> [String]

        init(_ section: String, _ name: String, _ apply: @escaping @Sendable (inout Draft, Value) -> [String]) {
            (self.section, self.name, self.apply) = (section, name, apply)
        }
    }

    /// Every key, in the order the documentation and the "known:" lists give them. Adding a key is adding a
    /// row.
    static let keys: [Key] = [
        Key("Match", "Event") { d, v in
            d.sawEvent = true
            if v.words.isEmpty { d.match.events = [] }
            var problems: [String] = []
            for word in v.words {
                guard let kind = EventKind(rawValue: word) else {
                    problems.append("unknown event '\(word)'; known: " + EventKind.allCases.map(\.rawValue).joined(separator: " "))
                    continue
                }
                d.match.events.insert(kind)
            }
            return problems
        },
        Key("Match", "UserName") { d, v in
            d.match.userNames = v.words.isEmpty ? nil : (d.match.userNames ?? []).union(v.words)
            return []
        },
        Key("Match", "UID") { d, v in
            if v.words.isEmpty { d.match.uids = nil }
            var problems: [String] = []
            for word in v.words {
                guard let uid = UInt32(word) else { problems.append("UID= takes numbers, got '\(word)'"); continue }
                d.match.uids = (d.match.uids ?? []).union([uid])
            }
            return problems
        },
        Key("Match", "Class") { d, v in
            d.match.classes = v.words.isEmpty ? nil : (d.match.classes ?? []).union(v.words)
            return []
        },
        Key("Match", "Service") { d, v in
            d.match.services = v.words.isEmpty ? nil : (d.match.services ?? []).union(v.words)
            return []
        },
        Key("Match", "Remote") { d, v in
            guard let flag = boolean(v.text) else { return ["Remote= takes a boolean (yes or no), got '\(v.text)'"] }
            d.match.remote = flag
            return []
        },
        Key("Run", "Exec") { d, v in
            switch splitCommandLine(v.text) {
            case .failure(let problem):
                return ["Exec=: \(problem)"]
            case .success(let argv):
                guard let program = argv.first else { return ["Exec= is empty"] }
                guard program.hasPrefix("/") else {
                    return ["Exec= must start with the program's absolute path (no shell, no PATH search), got '\(program)'"]
                }
                if let problem = argv.lazy.compactMap(Specifiers.check).first { return ["Exec=: \(problem)"] }
                d.exec = argv
                (d.actionLine, d.actionPath) = (v.line, v.path)
                return []
            }
        },
        Key("Run", "Unit") { d, v in
            guard !v.text.isEmpty, !v.text.contains(where: { $0 == " " || $0 == "\t" }) else {
                return ["Unit= takes one unit name, such as cleanup@%u.service"]
            }
            if let problem = Specifiers.check(v.text) { return ["Unit=: \(problem)"] }
            guard let dot = v.text.lastIndex(of: "."), v.text[v.text.index(after: dot)...].count > 0 else {
                return ["Unit= needs the unit's type suffix, such as .service: '\(v.text)'"]
            }
            d.unit = v.text
            (d.actionLine, d.actionPath) = (v.line, v.path)
            return []
        },
        Key("Run", "User") { d, v in
            guard v.words.count <= 1 else { return ["User= takes one user name or uid"] }
            if let word = v.words.first, word.contains("%"), word != HookRule.sessionUser {
                return ["User= takes a user name, a uid, or %u (the session's user), got '\(word)'"]
            }
            d.user = v.words.first
            return []
        },
        Key("Run", "TimeoutSec") { d, v in
            guard let duration = timeSpan(v.text) else {
                return ["TimeoutSec= takes a time span (60, 2.5s, 5min, 1h 30s) or infinity, got '\(v.text)'"]
            }
            // 0 and infinity: no limit, as for systemd's TimeoutSec=.
            d.timeout = duration == .zero || duration == .seconds(Int64.max) ? nil : duration
            return []
        },
        Key("Run", "Retry") { d, v in
            guard let n = Int(v.text), n >= 0, n <= 100 else { return ["Retry= takes a count from 0 to 100, got '\(v.text)'"] }
            d.retries = n
            return []
        },
        Key("Run", "RetrySec") { d, v in
            guard let duration = timeSpan(v.text), duration != .seconds(Int64.max) else {
                return ["RetrySec= takes a time span (10, 500ms, 1min), got '\(v.text)'"]
            }
            d.retryDelay = duration
            return []
        },
        Key("Run", "InputFormat") { d, v in
            guard let format = EventFormat(rawValue: v.text) else {
                return ["InputFormat= takes \(EventFormat.allCases.map(\.rawValue).joined(separator: ", ")), got '\(v.text)'"]
            }
            d.inputFormat = format
            return []
        },
    ]

    static let sections = ["Match", "Run"]

    /// The keys of `section`, as the "known:" part of a mistake says them.
    static func known(in section: String) -> String {
        keys.filter { $0.section == section }.map { $0.name + "=" }.joined(separator: " ")
    }

    /// A rule from its file and its drop-ins (`NAME.hook.d/*.conf`), read in that order as one: a drop-in
    /// adds to list keys and replaces single values, as a unit's drop-ins do. Each mistake names its own file.
    public static func parse(_ pieces: [(path: String, text: String)], name: String) throws(RuleErrors) -> HookRule {
        let path = pieces.first?.path ?? name
        var errors: [RuleError] = []
        // A value holding what looks like a comment (rule files of sensd 0.2 allowed one there): its mistakes
        // say why.
        var commentLine = -1
        var currentPath = path
        func fail(_ line: Int, _ message: String, in file: String? = nil) {
            let hint = line == commentLine ? " (a comment goes on a line of its own, as in systemd's unit files)" : ""
            errors.append(RuleError(path: file ?? (line == 0 ? path : currentPath), line: line, message: message + hint))
        }

        var draft = Draft()
        draft.actionPath = path
        var section: String?

        for piece in pieces {
            currentPath = piece.path
            section = nil
            commentLine = -1
            for (number, line) in logicalLines(piece.text) {
                if line.hasPrefix("[") {
                    guard line.hasSuffix("]") else { fail(number, "a section header must end with ']'"); continue }
                    let name = String(line.dropFirst().dropLast())
                    if name.hasPrefix("X-") {
                        section = name
                        continue
                    }
                    guard sections.contains(name) else {
                        fail(number, "unknown section [\(name)]; a rule has [Match] and [Run]")
                        section = nil
                        continue
                    }
                    section = name
                    continue
                }
                guard let equals = line.firstIndex(of: "=") else {
                    fail(number, "expected Key=value or [Section], got \"\(line.prefix(60))\"")
                    continue
                }
                let key = String(line[..<equals]).trimmed
                let text = String(line[line.index(after: equals)...]).trimmed
                let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                if words.contains(where: { $0.hasPrefix("#") }) { commentLine = number }
                if key.hasPrefix("X-") || section?.hasPrefix("X-") == true { continue }
                guard let section else {
                    fail(number, "\(key)= outside a section; put it under [Match] or [Run]")
                    continue
                }
                guard let row = keys.first(where: { $0.section == section && $0.name == key }) else {
                    fail(number, "unknown key \(key)= in [\(section)]; known: \(known(in: section))")
                    continue
                }
                for problem in row.apply(&draft, Value(text: text, words: words, line: number, path: currentPath)) {
                    fail(number, problem)
                }
            }
        }
        commentLine = -1
        let d = draft
        if d.exec != nil && d.unit != nil { fail(d.actionLine, "a rule has Exec= or Unit=, not both", in: d.actionPath) }
        if d.unit != nil && d.user != nil { fail(d.actionLine, "User= is for Exec=; a unit says its own User= in its unit file", in: d.actionPath) }
        if d.exec == nil && d.unit == nil && errors.isEmpty { fail(0, "no Exec= or Unit= in [Run]: the rule would do nothing") }
        if (!d.sawEvent || d.match.events.isEmpty) && errors.isEmpty { fail(0, "no Event= in [Match]: name the events the rule is for, such as Event=Logoff") }
        guard errors.isEmpty else { throw RuleErrors(errors: errors) }
        let action: HookRule.Action = d.exec.map { .exec($0) } ?? .unit(d.unit!)
        var rule = HookRule(name: name, path: path, match: d.match, action: action, user: d.user, timeout: d.timeout,
                            retries: d.retries, retryDelay: d.retryDelay)
        rule.inputFormat = d.inputFormat
        return rule
    }

    /// systemd's booleans (parse_boolean).
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "yes", "y", "true", "t", "on": return true
        case "0", "no", "n", "false", "f", "off": return false
        default: return nil
        }
    }

    /// The units of systemd's time spans (systemd.time(7)), in microseconds.
    static let timeUnits: [(String, Int64)] = [
        ("usec", 1), ("us", 1), ("µs", 1), ("μs", 1),
        ("msec", 1_000), ("ms", 1_000),
        ("seconds", 1_000_000), ("second", 1_000_000), ("sec", 1_000_000), ("s", 1_000_000),
        ("minutes", 60_000_000), ("minute", 60_000_000), ("min", 60_000_000), ("m", 60_000_000),
        ("hours", 3_600_000_000), ("hour", 3_600_000_000), ("hr", 3_600_000_000), ("h", 3_600_000_000),
        ("days", 86_400_000_000), ("day", 86_400_000_000), ("d", 86_400_000_000),
        ("weeks", 604_800_000_000), ("week", 604_800_000_000), ("w", 604_800_000_000),
        ("months", 2_629_800_000_000), ("month", 2_629_800_000_000), ("M", 2_629_800_000_000),
        ("years", 31_557_600_000_000), ("year", 31_557_600_000_000), ("y", 31_557_600_000_000),
    ]

    /// A time span as systemd reads one (parse_sec): numbers, each with an optional unit (seconds without
    /// one), summed: `90`, `2.5`, `1min 30s`, `1h30m`, `500 ms`. `infinity` is `.seconds(Int64.max)`. Nil for
    /// anything else, or for more than ten years.
    public static func timeSpan(_ text: String) -> Duration? {
        let t = text.trimmed
        if t == "infinity" { return .seconds(Int64.max) }
        var rest = Substring(t)
        var total: Double = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            let number = rest.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count).drop(while: { $0 == " " || $0 == "\t" })
            let word = rest.prefix(while: { $0.isLetter || $0 == "µ" || $0 == "μ" })
            var scale: Int64 = 1_000_000
            if !word.isEmpty {
                guard let unit = timeUnits.first(where: { $0.0 == String(word) }) else { return nil }
                scale = unit.1
                rest = rest.dropFirst(word.count)
            }
            total += value * Double(scale)
        }
        guard total.isFinite, total <= 10 * 31_557_600_000_000 else { return nil }
        return .microseconds(Int64(total.rounded()))
    }

    /// The file's logical lines with the number of the line each starts on: comment lines and blank lines
    /// left out, continuation lines (ending in a backslash) joined with a space, each trimmed.
    static func logicalLines(_ text: String) -> [(Int, String)] {
        var result: [(Int, String)] = []
        var pending: (start: Int, text: String)?
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw).trimmed
            if line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if pending == nil && line.isEmpty { continue }
            let continues = line.hasSuffix("\\")
            let piece = continues ? String(line.dropLast()) : line
            if var p = pending {
                p.text += " " + piece
                pending = p
            } else {
                pending = (index + 1, piece)
            }
            if !continues, let p = pending {
                result.append((p.start, p.text.trimmed))
                pending = nil
            }
        }
        if let p = pending, !p.text.trimmed.isEmpty { result.append((p.start, p.text.trimmed)) }
        return result
    }

    /// Splits a command line as systemd's `ExecStart=` does: words separated by whitespace; "double" and
    /// 'single' quotes keep a word together; a backslash escapes the next character (outside single quotes).
    public static func splitCommandLine(_ text: String) -> Result<[String], RuleErrorText> {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for c in text {
            if escaped {
                current.append(c)
                escaped = false
                continue
            }
            if c == "\\" && quote != "'" {
                escaped = true
                inWord = true
                continue
            }
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
                continue
            }
            if c == "\"" || c == "'" {
                quote = c
                inWord = true
                continue
            }
            if c == " " || c == "\t" {
                if inWord { words.append(current); current = ""; inWord = false }
                continue
            }
            current.append(c)
            inWord = true
        }
        if escaped { return .failure(RuleErrorText("a backslash at the end of the line")) }
        if let quote { return .failure(RuleErrorText("an unclosed \(quote) quote")) }
        if inWord { words.append(current) }
        return .success(words)
    }
}

/// Every mistake in one rule file.
public struct RuleErrors: Error, Sendable {
    public var errors: [RuleError]
}

/// A problem with a piece of text, before it has a line to go with it.
public struct RuleErrorText: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ text: String) { description = text }
}

extension String {
    var trimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
