import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Read access to this machine's system journal, for what logind logged while sensd was not running.
public final class JournalReader {
    private var journal: OpaquePointer?

    /// logind's "Removed session" entry (`SD_MESSAGE_SESSION_STOP` in sd-messages.h).
    public static let sessionStopMessageID = "3354939424b4456d9802ca8333ed424a"

    /// Opens the local system journal; fails without the right to read it (root, or the systemd-journal group).
    public init() throws(SystemdError) {
        var j: OpaquePointer?
        try check(sd_journal_open(&j, Int32(SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM)), "sd_journal_open")
        journal = j
    }

    deinit { sd_journal_close(journal) }

    /// When logind logged the removal of session `id` (CLOCK_REALTIME microseconds), if it did so no
    /// earlier than `notBefore` (ids are reused: an older entry is another session's).
    public func sessionRemoval(id: String, notBefore: UInt64) -> UInt64? {
        sd_journal_flush_matches(journal)
        guard sd_journal_add_match(journal, "MESSAGE_ID=\(Self.sessionStopMessageID)", 0) >= 0,
              sd_journal_add_match(journal, "SESSION_ID=\(id)", 0) >= 0,
              sd_journal_seek_tail(journal) >= 0,
              sd_journal_previous(journal) > 0 else { return nil }
        var usec: UInt64 = 0
        guard sd_journal_get_realtime_usec(journal, &usec) >= 0, usec >= notBefore else { return nil }
        return usec
    }

    /// Whether the boot that was running at `realtime` (CLOCK_REALTIME microseconds) has ended, and if so the
    /// time of its last entry: the last moment it is known to have been alive. Boots are told apart by the
    /// journal's own boot ids (in a container, a process's /proc view may show the host's).
    public func bootEnd(containing realtime: UInt64) -> BootEnd {
        sd_journal_flush_matches(journal)
        guard sd_journal_seek_realtime_usec(journal, realtime) >= 0, sd_journal_previous(journal) > 0,
              let then = currentBootID() else { return .unknown }
        guard sd_journal_seek_tail(journal) >= 0, sd_journal_previous(journal) > 0, let now = currentBootID() else { return .unknown }
        if then == now { return .stillRunning }
        let hex = then.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        guard sd_journal_add_match(journal, "_BOOT_ID=\(hex)", 0) >= 0, sd_journal_seek_tail(journal) >= 0,
              sd_journal_previous(journal) > 0 else { return .unknown }
        var usec: UInt64 = 0
        guard sd_journal_get_realtime_usec(journal, &usec) >= 0, usec >= realtime else { return .unknown }
        return .ended(usec)
    }

    /// The newest entry that has every one of `matches` (FIELD=value; several values of one field are
    /// alternatives): its time and those of `fields` it has.
    public func newestEntry(matching matches: [String], fields: [String]) -> (realtime: UInt64, fields: [String: String])? {
        sd_journal_flush_matches(journal)
        for m in matches { guard sd_journal_add_match(journal, m, 0) >= 0 else { return nil } }
        guard sd_journal_seek_tail(journal) >= 0, sd_journal_previous(journal) > 0 else { return nil }
        var usec: UInt64 = 0
        guard sd_journal_get_realtime_usec(journal, &usec) >= 0 else { return nil }
        var values: [String: String] = [:]
        for f in fields { if let v = value(of: f) { values[f] = v } }
        return (usec, values)
    }

    /// The value of `field` in the newest entry that has every one of `matches` (FIELD=value; several
    /// values of one field are alternatives), or nil.
    public func newestValue(of field: String, matching matches: [String]) -> String? {
        sd_journal_flush_matches(journal)
        for m in matches { guard sd_journal_add_match(journal, m, 0) >= 0 else { return nil } }
        guard sd_journal_seek_tail(journal) >= 0, sd_journal_previous(journal) > 0 else { return nil }
        return value(of: field)
    }

    /// Positions the reader before the first entry at or after `realtime` (CLOCK_REALTIME microseconds) that
    /// matches one of `groups`: within a group, values of one field are alternatives and different fields must
    /// all match; the groups are alternatives. ``next(fields:)`` then reads forward.
    public func scan(from realtime: UInt64, matching groups: [[String]]) -> Bool {
        sd_journal_flush_matches(journal)
        for (i, group) in groups.enumerated() {
            if i > 0 { guard sd_journal_add_disjunction(journal) >= 0 else { return false } }
            for m in group { guard sd_journal_add_match(journal, m, 0) >= 0 else { return false } }
        }
        return sd_journal_seek_realtime_usec(journal, realtime) >= 0
    }

    /// The next matching entry: its time and those of `fields` it has; nil at the end.
    public func next(fields: [String]) -> (realtime: UInt64, fields: [String: String])? {
        guard sd_journal_next(journal) > 0 else { return nil }
        var usec: UInt64 = 0
        guard sd_journal_get_realtime_usec(journal, &usec) >= 0 else { return nil }
        var values: [String: String] = [:]
        for f in fields { if let v = value(of: f) { values[f] = v } }
        return (usec, values)
    }

    /// The current entry's `field`, as text.
    func value(of field: String) -> String? {
        currentValue(journal, field)
    }

    public enum BootEnd: Equatable, Sendable {
        /// The boot is this one.
        case stillRunning
        /// It ended; its last entry was written then.
        case ended(UInt64)
        /// The journal does not say (no entries then, or they are being moved: try again).
        case unknown
    }

    private func currentBootID() -> [UInt8]? {
        var usec: UInt64 = 0
        var boot = sd_id128_t()
        guard sd_journal_get_monotonic_usec(journal, &usec, &boot) >= 0 else { return nil }
        return withUnsafeBytes(of: boot) { Array($0) }
    }
}

/// New entries of the system journal as they are written, those that match: for the records of failed
/// logons (sshd's messages). Its descriptor goes in the event loop; each time it is readable, ``newEntries``
/// reads what came. The corresponding C functions are `sd_journal_get_fd` and `sd_journal_process`.
public final class JournalFollower {
    private var journal: OpaquePointer?
    private let fields: [String]

    /// Follows the local system journal (or the journal files in `directory`), from now on, for entries
    /// that match one of `groups` (within a group, values of one field are alternatives and different
    /// fields must all match); each entry read gives its time and those of `fields` it has.
    public init(matching groups: [[String]], fields: [String], directory: String? = nil) throws(SystemdError) {
        var j: OpaquePointer?
        if let directory {
            try check(sd_journal_open_directory(&j, directory, 0), "sd_journal_open_directory(\(directory))")
        } else {
            try check(sd_journal_open(&j, Int32(SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM)), "sd_journal_open")
        }
        journal = j
        self.fields = fields
        for (i, group) in groups.enumerated() {
            if i > 0 { try check(sd_journal_add_disjunction(journal), "sd_journal_add_disjunction") }
            for m in group { try check(sd_journal_add_match(journal, m, 0), "sd_journal_add_match(\(m))") }
        }
        // From now: what was written before is not news. By time, not by seeking the tail: with no matching
        // entry yet (no audit record ever), the tail stays unresolved until entries come, and is then taken
        // as after them, so the first batch was lost but for its last entry.
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        try check(sd_journal_seek_realtime_usec(journal, UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000), "sd_journal_seek_realtime_usec")
    }

    deinit { sd_journal_close(journal) }

    /// The descriptor to watch (readable), for the event loop.
    public func descriptor() throws(SystemdError) -> Int32 {
        let fd = sd_journal_get_fd(journal)
        try check(fd, "sd_journal_get_fd")
        return fd
    }

    /// The entries written since the last call, at most `limit` (the rest at the next); whether more wait.
    public func newEntries(limit: Int) -> (entries: [(realtime: UInt64, fields: [String: String])], more: Bool) {
        _ = sd_journal_process(journal)
        var out: [(realtime: UInt64, fields: [String: String])] = []
        while out.count < limit {
            guard sd_journal_next(journal) > 0 else { return (out, false) }
            var usec: UInt64 = 0
            guard sd_journal_get_realtime_usec(journal, &usec) >= 0 else { continue }
            var values: [String: String] = [:]
            for f in fields { values[f] = currentValue(journal, f) }
            out.append((usec, values))
        }
        return (out, true)
    }
}

/// The current entry's `field` in `journal`, as text; nil if it has none.
private func currentValue(_ journal: OpaquePointer?, _ field: String) -> String? {
    var data: UnsafeRawPointer?
    var length = 0
    guard sd_journal_get_data(journal, field, &data, &length) >= 0, let data else { return nil }
    // The data is FIELD=value.
    let bytes = UnsafeRawBufferPointer(start: data, count: length)
    guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
    return String(decoding: bytes[(equals + 1)...], as: UTF8.self)
}

/// Structured entries for the system journal. The corresponding C function is `sd_journal_sendv`.
public enum JournalWriter {
    /// Sends one entry; `fields` are (NAME, value) pairs, NAME in upper case (`MESSAGE`, `PRIORITY`, ...).
    /// Values may hold any bytes, newlines included. Returns false if journald did not take it.
    @discardableResult
    public static func send(_ fields: [(String, String)]) -> Bool {
        // One buffer for every field, so that every iovec points into memory valid for the whole call.
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for (name, value) in fields {
            let start = bytes.count
            bytes += name.utf8
            bytes.append(UInt8(ascii: "="))
            bytes += value.utf8
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { raw in
            let vectors = ranges.map { iovec(iov_base: raw.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return sd_journal_sendv(vectors, Int32(vectors.count)) >= 0
        }
    }

    /// A descriptor whose lines journald records as entries of `identifier`, at `priority` (6: info), for a
    /// child's standard output and error; nil when there is no journald to take them.
    /// The corresponding C function is `sd_journal_stream_fd`.
    public static func streamDescriptor(identifier: String, priority: Int32 = 6) -> Int32? {
        let fd = sd_journal_stream_fd(identifier, priority, 0)
        return fd >= 0 ? fd : nil
    }
}
