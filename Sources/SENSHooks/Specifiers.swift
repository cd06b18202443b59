import SENSClient

/// The `%` specifiers of `Exec=` and `Unit=` (sensd.hook(5)): the event's fields.
public enum Specifiers {
    /// Each letter, what it stands for, and the value for an event ("" when the event lacks it).
    public static let table: [(letter: Character, meaning: String, value: @Sendable (SENSEvent) -> String)] = [
        ("e", "the event type (Logoff, Logon, ...)", { $0.event.rawValue }),
        ("q", "the event's seq", { String($0.seq) }),
        ("t", "the event's time, RFC 3339 UTC", { $0.time.rfc3339 }),
        ("s", "the session id", { $0.sessionId }),
        ("u", "the user name", { $0.userName ?? "" }),
        ("U", "the uid", { $0.uid.map(String.init) ?? "" }),
        ("c", "the session class", { $0.sessionClass ?? "" }),
        ("S", "the PAM service", { $0.service ?? "" }),
        ("T", "the tty", { $0.tty ?? "" }),
        ("h", "the remote host", { $0.remoteHost ?? "" }),
        ("H", "the host name", { $0.host ?? "" }),
        ("r", "why the session ended (reboot, shutdown, ...)", { $0.reason ?? "" }),
    ]

    static let letters: Set<Character> = Set(table.map(\.letter))

    /// The first unknown specifier in `text`, or a `%` at its end, as an error message.
    public static func check(_ text: String) -> String? {
        var chars = text.makeIterator()
        while let c = chars.next() {
            guard c == "%" else { continue }
            guard let letter = chars.next() else { return "a lone '%' at the end (write %% for a percent sign)" }
            if letter != "%" && !letters.contains(letter) {
                return "unknown specifier '%\(letter)'; known: " + table.map { "%\($0.letter)" }.joined(separator: " ") + " %%"
            }
        }
        return nil
    }

    /// `text` with each specifier replaced by the event's value, passed through `escape`.
    public static func expand(_ text: String, _ event: SENSEvent, escape: (String) -> String = { $0 }) -> String {
        var out = ""
        var chars = text.makeIterator()
        while let c = chars.next() {
            guard c == "%", let letter = chars.next() else {
                out.append(c)
                continue
            }
            if letter == "%" {
                out.append("%")
            } else if let entry = table.first(where: { $0.letter == letter }) {
                out += escape(entry.value(event))
            }
        }
        return out
    }

    /// A string escaped as a unit name's instance, as `systemd-escape` does: a unit can get it back with `%I`.
    public static func unitEscape(_ s: String) -> String {
        var out = ""
        for (i, byte) in s.utf8.enumerated() {
            let c = Character(Unicode.Scalar(byte))
            if byte == UInt8(ascii: "/") {
                out.append("-")
            } else if (c.isASCII && (c.isLetter || c.isNumber)) || c == ":" || c == "_" || (c == "." && i > 0) {
                out.append(c)
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}
