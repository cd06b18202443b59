import Systemd

#if canImport(Glibc)
import Glibc
#endif

/// The runner's own messages: journal entries with fields when journald is there (`SENSD_HOOK`, `SENSD_SEQ`,
/// `SENSD_STATUS`, ...), lines on standard error otherwise.
enum Log {
    enum Priority: Int {
        case error = 3, warning = 4, notice = 5, info = 6
    }

    /// Under systemd, standard error goes to the journal; structured entries say more there.
    static let toJournal: Bool = getenv("JOURNAL_STREAM") != nil || getenv("INVOCATION_ID") != nil

    static func write(_ priority: Priority, _ message: String, _ fields: [(String, String)] = []) {
        if toJournal, JournalWriter.send([("MESSAGE", message), ("PRIORITY", String(priority.rawValue)), ("SYSLOG_IDENTIFIER", "sensd-hooks")] + fields) {
            return
        }
        let line = Array("sensd-hooks: \(message)\n".utf8)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func error(_ m: String, _ f: [(String, String)] = []) { write(.error, m, f) }
    static func warning(_ m: String, _ f: [(String, String)] = []) { write(.warning, m, f) }
    static func notice(_ m: String, _ f: [(String, String)] = []) { write(.notice, m, f) }
    static func info(_ m: String, _ f: [(String, String)] = []) { write(.info, m, f) }
}
