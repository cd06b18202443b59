import Logging
import Systemd

/// swift-log to the journal as structured entries: the message, its priority, where in the code it was
/// logged, and each metadata key as a `SENSD_<KEY>` field (`journalctl -u sensd SENSD_SESSION=c12`).
/// Used when sensd or sensd-hooks runs under systemd; elsewhere ``StderrLogHandler``.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    /// SYSLOG_IDENTIFIER: the program's name.
    private let identifier: String
    /// Whether the text ends with the metadata as `key=value` too, for `journalctl -o cat` and
    /// `systemctl status` (sensd's messages are short and lean on it; the hook runner's say it all in words).
    private let metadataInMessage: Bool

    public init(identifier: String = "sensd", level: Logger.Level, metadataInMessage: Bool = true) {
        self.identifier = identifier
        self.logLevel = level
        self.metadataInMessage = metadataInMessage
    }

    /// The handler for a program: structured journal entries when its standard error is the journal, lines
    /// on standard error otherwise.
    public static func standard(identifier: String, level: Logger.Level, metadataInMessage: Bool = true) -> @Sendable (String) -> any LogHandler {
        if StderrLogHandler.stderrIsJournal() {
            return { _ in JournalLogHandler(identifier: identifier, level: level, metadataInMessage: metadataInMessage) }
        }
        return { StderrLogHandler(label: $0, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    #if compiler(>=6.2)
    public func log(event: LogEvent) {
        write(event.level, event.message, event.metadata, file: event.file, function: event.function, line: event.line)
    }
    #else
    // Swift 6.0 and 6.1 resolve swift-log before 1.11 (Package.swift), which has no LogEvent.
    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        write(level, message, metadata, file: file, function: function, line: line)
    }
    #endif

    private func write(_ level: Logger.Level, _ logged: Logger.Message, _ eventMetadata: Logger.Metadata?, file: String, function: String, line: UInt) {
        let merged = metadata.merging(eventMetadata ?? [:]) { $1 }
        var message = logged.description
        var fields: [(String, String)] = [("PRIORITY", String(StderrLogHandler.priority(level))), ("SYSLOG_IDENTIFIER", identifier)]
        for key in merged.keys.sorted() {
            if metadataInMessage { message += " \(key)=\(merged[key]!)" }
            fields.append(("SENSD_" + Self.fieldName(key), "\(merged[key]!)"))
        }
        fields.insert(("MESSAGE", message), at: 0)
        fields.append(("CODE_FILE", file))
        fields.append(("CODE_LINE", String(line)))
        fields.append(("CODE_FUNC", function))
        JournalWriter.send(fields)
    }

    /// A journal field name: upper case letters, digits and underscores.
    package static func fieldName(_ key: String) -> String {
        String(key.unicodeScalars.map { c -> Character in
            if c.properties.isASCIIHexDigit || ("a"..."z").contains(c) || ("A"..."Z").contains(c) {
                return Character(String(c).uppercased())
            }
            return "_"
        })
    }
}
