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

/// Reads the systemd-style INI of a rule file (sensd.hook(5)).
///
/// Lines are `[Section]` or `Key=value`. Blank lines and lines starting with `#` or `;` are ignored; outside
/// quotes, whitespace followed by `#` starts a comment. A key given twice adds to a list (`Event=`,
/// `UserName=`, ...) or replaces a single value; an empty value (`UserName=`) empties the list.
public enum RuleParser {
    public static func parse(_ text: String, name: String, path: String) throws(RuleErrors) -> HookRule {
        var errors: [RuleError] = []
        func fail(_ line: Int, _ message: String) { errors.append(RuleError(path: path, line: line, message: message)) }

        var match = HookRule.Match()
        var exec: [String]?
        var unit: String?
        var actionLine = 0
        var user: String?
        var timeout: Duration? = HookRule.defaultTimeout
        var retries = 0
        var retryDelay = HookRule.defaultRetryDelay
        var section: String?
        var sawEvent = false

        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = stripComment(String(raw)).trimmed
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else { fail(number, "a section header must end with ']'"); continue }
                let name = String(line.dropFirst().dropLast())
                guard name == "Match" || name == "Run" else {
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
            let value = String(line[line.index(after: equals)...]).trimmed
            let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            switch (section, key) {
            case (nil, _):
                fail(number, "\(key)= outside a section; put it under [Match] or [Run]")
            case ("Match", "Event"):
                sawEvent = true
                if words.isEmpty { match.events = [] }
                for word in words {
                    guard let kind = EventKind(rawValue: word) else {
                        fail(number, "unknown event '\(word)'; known: " + EventKind.allCases.map(\.rawValue).joined(separator: " "))
                        continue
                    }
                    match.events.insert(kind)
                }
            case ("Match", "UserName"):
                match.userNames = words.isEmpty ? nil : (match.userNames ?? []).union(words)
            case ("Match", "UID"):
                if words.isEmpty { match.uids = nil }
                for word in words {
                    guard let uid = UInt32(word) else { fail(number, "UID= takes numbers, got '\(word)'"); continue }
                    match.uids = (match.uids ?? []).union([uid])
                }
            case ("Match", "Class"):
                match.classes = words.isEmpty ? nil : (match.classes ?? []).union(words)
            case ("Match", "Service"):
                match.services = words.isEmpty ? nil : (match.services ?? []).union(words)
            case ("Match", "Remote"):
                guard let flag = boolean(value) else { fail(number, "Remote= takes yes or no, got '\(value)'"); continue }
                match.remote = flag
            case ("Run", "Exec"):
                switch splitCommandLine(value) {
                case .failure(let problem):
                    fail(number, "Exec=: \(problem)")
                case .success(let argv):
                    guard let program = argv.first else { fail(number, "Exec= is empty"); continue }
                    guard program.hasPrefix("/") else {
                        fail(number, "Exec= must start with the program's absolute path (no shell, no PATH search), got '\(program)'")
                        continue
                    }
                    if let problem = argv.lazy.compactMap(Specifiers.check).first { fail(number, "Exec=: \(problem)"); continue }
                    exec = argv
                    actionLine = number
                }
            case ("Run", "Unit"):
                guard !value.isEmpty, !value.contains(where: { $0 == " " || $0 == "\t" }) else {
                    fail(number, "Unit= takes one unit name, such as cleanup@%u.service")
                    continue
                }
                if let problem = Specifiers.check(value) { fail(number, "Unit=: \(problem)"); continue }
                guard let dot = value.lastIndex(of: "."), value[value.index(after: dot)...].count > 0 else {
                    fail(number, "Unit= needs the unit's type suffix, such as .service: '\(value)'")
                    continue
                }
                unit = value
                actionLine = number
            case ("Run", "User"):
                guard words.count <= 1 else { fail(number, "User= takes one user name or uid"); continue }
                if let word = words.first, word.contains("%"), word != HookRule.sessionUser {
                    fail(number, "User= takes a user name, a uid, or %u (the session's user), got '\(word)'")
                    continue
                }
                user = words.first
            case ("Run", "TimeoutSec"):
                if value == "infinity" || value == "0" {
                    timeout = nil
                } else if let duration = seconds(value) {
                    timeout = duration
                } else {
                    fail(number, "TimeoutSec= takes seconds (such as 60 or 2.5) or infinity, got '\(value)'")
                }
            case ("Run", "Retry"):
                guard let n = Int(value), n >= 0, n <= 100 else { fail(number, "Retry= takes a count from 0 to 100, got '\(value)'"); continue }
                retries = n
            case ("Run", "RetrySec"):
                guard let duration = seconds(value) else { fail(number, "RetrySec= takes seconds, got '\(value)'"); continue }
                retryDelay = duration
            case ("Match", _):
                fail(number, "unknown key \(key)= in [Match]; known: Event= UserName= UID= Class= Service= Remote=")
            default:
                fail(number, "unknown key \(key)= in [Run]; known: Exec= Unit= User= TimeoutSec= Retry= RetrySec=")
            }
        }
        if exec != nil && unit != nil { fail(actionLine, "a rule has Exec= or Unit=, not both") }
        if unit != nil && user != nil { fail(actionLine, "User= is for Exec=; a unit says its own User= in its unit file") }
        if exec == nil && unit == nil && errors.isEmpty { fail(0, "no Exec= or Unit= in [Run]: the rule would do nothing") }
        if (!sawEvent || match.events.isEmpty) && errors.isEmpty { fail(0, "no Event= in [Match]: name the events the rule is for, such as Event=Logoff") }
        guard errors.isEmpty else { throw RuleErrors(errors: errors) }
        let action: HookRule.Action = exec.map { .exec($0) } ?? .unit(unit!)
        return (HookRule(name: name, path: path, match: match, action: action, user: user, timeout: timeout, retries: retries, retryDelay: retryDelay))
    }

    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "yes", "true", "1", "on": return true
        case "no", "false", "0", "off": return false
        default: return nil
        }
    }

    static func seconds(_ text: String) -> Duration? {
        var t = text
        if t.hasSuffix("s") { t.removeLast() }
        guard let value = Double(t), value >= 0, value.isFinite, value < 1e9 else { return nil }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    /// The line up to a comment: outside quotes, `#` after whitespace (or at the start).
    static func stripComment(_ line: String) -> String {
        var quote: Character?
        var previous: Character = " "
        var escaped = false
        for (offset, c) in line.enumerated() {
            defer { previous = c }
            if escaped { escaped = false; continue }
            if c == "\\" && quote != "'" { escaped = true; continue }
            if let q = quote {
                if c == q { quote = nil }
                continue
            }
            if c == "\"" || c == "'" { quote = c; continue }
            if c == "#" && (previous == " " || previous == "\t") || (c == "#" && offset == 0) {
                return String(line.prefix(offset))
            }
        }
        return line
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
