import Logging
import Systemd

/// swift-log to the journal as structured entries: the message, its priority, where in the code it was
/// logged, and each metadata key as a `SENSD_<KEY>` field (`journalctl -u sensd SENSD_SESSION=c12`).
/// Used when sensd runs under systemd; elsewhere ``StderrLogHandler``.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    public init(level: Logger.Level) {
        logLevel = level
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
        var fields: [(String, String)] = [("PRIORITY", String(StderrLogHandler.priority(level))), ("SYSLOG_IDENTIFIER", "sensd")]
        for key in merged.keys.sorted() {
            // The text keeps the metadata too, for `journalctl -o cat` and `systemctl status`.
            message += " \(key)=\(merged[key]!)"
            fields.append(("SENSD_" + Self.fieldName(key), "\(merged[key]!)"))
        }
        fields.insert(("MESSAGE", message), at: 0)
        fields.append(("CODE_FILE", file))
        fields.append(("CODE_LINE", String(line)))
        fields.append(("CODE_FUNC", function))
        JournalWriter.send(fields)
    }

    /// A journal field name: upper case letters, digits and underscores.
    static func fieldName(_ key: String) -> String {
        String(key.unicodeScalars.map { c -> Character in
            if c.properties.isASCIIHexDigit || ("a"..."z").contains(c) || ("A"..."Z").contains(c) {
                return Character(String(c).uppercased())
            }
            return "_"
        })
    }
}
