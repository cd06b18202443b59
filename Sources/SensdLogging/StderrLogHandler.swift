import Logging

#if canImport(Glibc)
import Glibc
#endif

/// swift-log to standard error. Under systemd, where stderr is a journal stream, each line starts with its
/// syslog priority (`<3>`), which journald turns into the entry's PRIORITY; elsewhere lines carry a time.
public struct StderrLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let journal: Bool

    public init(label: String, level: Logger.Level, journal: Bool = StderrLogHandler.stderrIsJournal()) {
        self.label = label
        self.logLevel = level
        self.journal = journal
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    #if compiler(>=6.2)
    public func log(event: LogEvent) {
        emit(event.level, event.message, event.metadata)
    }
    #else
    // Swift 6.0 and 6.1 resolve swift-log before 1.11 (Package.swift), which has no LogEvent.
    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        emit(level, message, metadata)
    }
    #endif

    private func emit(_ level: Logger.Level, _ message: Logger.Message, _ eventMetadata: Logger.Metadata?) {
        var line = ""
        if journal {
            line = "<\(Self.priority(level))>"
        } else {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let t = SENSCoreTime.format(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
            line = "\(t) \(label)[\(getpid())] \(level): "
        }
        line += message.description
        let merged = metadata.merging(eventMetadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            line += " \(key)=\(merged[key]!)"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Whether stderr is the stream systemd connected to the journal (`JOURNAL_STREAM=dev:inode`).
    public static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}

import SENSCore

enum SENSCoreTime {
    static func format(seconds: Int64, nanoseconds: Int64) -> String {
        EventTime(microsecondsSinceEpoch: seconds * 1_000_000 + nanoseconds / 1000).rfc3339
    }
}
