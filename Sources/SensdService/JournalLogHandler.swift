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

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        var message = event.message.description
        var fields: [(String, String)] = [("PRIORITY", String(StderrLogHandler.priority(event.level))), ("SYSLOG_IDENTIFIER", "sensd")]
        for key in merged.keys.sorted() {
            // The text keeps the metadata too, for `journalctl -o cat` and `systemctl status`.
            message += " \(key)=\(merged[key]!)"
            fields.append(("SENSD_" + Self.fieldName(key), "\(merged[key]!)"))
        }
        fields.insert(("MESSAGE", message), at: 0)
        fields.append(("CODE_FILE", event.file))
        fields.append(("CODE_LINE", String(event.line)))
        fields.append(("CODE_FUNC", event.function))
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
