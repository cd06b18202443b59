import Logging
import SENSCore
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// How much of the event history the log keeps.
public struct LogRetention: Sendable {
    /// Events kept at least (when that many exist): the oldest segment goes only once the rest hold this many.
    public var maxEvents: Int
    /// Bytes kept at most: older segments go first, the newest always stays.
    public var maxBytes: Int

    public init(maxEvents: Int = 100_000, maxBytes: Int = 64 << 20) {
        precondition(maxEvents > 0 && maxBytes > 0)
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }

    /// A segment holds a tenth of the retention, so the log keeps between 100% and 110% of it.
    var segmentEvents: Int { max(1, maxEvents / 10) }
    var segmentBytes: Int { max(4096, maxBytes / 10) }
}

/// The durable, bounded event history: every event line, byte for byte as subscribers receive it and
/// followed by its checksum (``EventRecord/stored(_:)``), appended to segment files `<first seq>.log` in the
/// log directory before any subscriber sees it.
///
/// Durability (docs/protocol.md, "Durability"): an append is one write(2), so once `append` returns the
/// record survives a crash of sensd (the kernel has it); the data reaches the disk at the next ``sync()``,
/// which the daemon runs at most a sync interval after the first unsynced append, at every segment change
/// and at a clean stop.
final class EventLog {
    struct Segment {
        /// Creation order; a reader that finds the next ordinal missing knows retention overtook it.
        let ordinal: Int
        let firstSeq: UInt64
        var lastSeq: UInt64
        var count: Int
        var bytes: Int
        let path: String
    }

    let directory: String
    private let retention: LogRetention
    private let logger: Logger
    private(set) var segments: [Segment] = []
    private var appendFD: Descriptor?
    private var nextOrdinal = 0
    /// Appended data not yet synced to the disk.
    private(set) var needsSync = false
    /// What start-up found damaged and dropped, one sentence each.
    private(set) var damage: [String] = []

    var lastSeq: UInt64? { segments.last?.lastSeq }
    var oldestSeq: UInt64? { segments.first?.firstSeq }
    var eventCount: Int { segments.reduce(0) { $0 + $1.count } }
    var byteCount: Int { segments.reduce(0) { $0 + $1.bytes } }

    /// Opens the log in `directory`, checking every record: a torn or damaged tail is cut off (kept beside
    /// as `.damaged`), a damaged older segment is set aside with everything older, so that what remains is
    /// intact and in order. Nothing found damaged is fatal; ``damage`` says what was dropped.
    init(directory: String, retention: LogRetention, logger: Logger) throws(SystemCallError) {
        self.directory = directory
        self.retention = retention
        self.logger = logger
        try Syscall.makeDirectoryIfMissing(directory, mode: 0o750)
        let files = try Syscall.listDirectory(directory).compactMap { name -> (UInt64, String)? in
            guard name.hasSuffix(".log"), let seq = UInt64(name.dropLast(4)), name.count == 24 else { return nil }
            return (seq, name)
        }.sorted { $0.0 < $1.0 }
        var previous: UInt64 = 0
        for (index, (firstSeq, name)) in files.enumerated() {
            let path = directory + "/" + name
            let isLast = index == files.count - 1
            let check = try Self.check(path: path, namedSeq: firstSeq, after: previous)
            if let problem = check.problem {
                if isLast {
                    // A torn tail: keep every intact record, set the rest aside.
                    let bytes = try Syscall.readFile(path, limit: Int.max) ?? []
                    let tail = bytes.count > check.goodBytes ? Array(bytes[check.goodBytes...]) : []
                    _ = try? Syscall.replaceFile(path + ".damaged", with: tail)
                    try Syscall.truncate(path, to: check.goodBytes)
                    damage.append("\(name): \(problem); dropped its last \(tail.count) bytes (kept in \(name).damaged), kept \(check.count) events")
                } else {
                    // Damage in the middle: what comes after it is intact, what was before no longer connects.
                    let dropped = segments.reduce(0) { $0 + $1.count } + check.count
                    for s in segments { try Syscall.unlinkIfPresent(s.path) }
                    segments.removeAll()
                    _ = rename(path, path + ".damaged")
                    damage.append("\(name): \(problem); set the segment aside as \(name).damaged and dropped it and every older segment (\(dropped) intact events before the damage)")
                    continue
                }
            }
            if check.count == 0 {
                try Syscall.unlinkIfPresent(path)
                continue
            }
            segments.append(Segment(ordinal: nextOrdinal, firstSeq: check.firstSeq!, lastSeq: check.lastSeq, count: check.count, bytes: check.goodBytes, path: path))
            nextOrdinal += 1
            previous = check.lastSeq
        }
        // Best effort: a repair that did not reach the disk is found and made again at the next start, and a
        // log that cannot be opened over it would cost every event's durability.
        if !damage.isEmpty { try? Syscall.syncDirectory(directory) }
        if let last = segments.last, last.count < retention.segmentEvents, last.bytes < retention.segmentBytes {
            appendFD = try Syscall.openForAppend(last.path)
        }
    }

    /// The last `limit` records whose facts pass `wanted`, oldest first (event JSON without newline), read
    /// from the newest segments back only as far as needed.
    func lastRecords(limit: Int, where wanted: (EventFacts) -> Bool) throws(SystemCallError) -> [[UInt8]] {
        var found: [[UInt8]] = []
        for segment in segments.reversed() where found.count < limit {
            guard let file = try Syscall.openForReading(segment.path) else { continue }
            var inSegment: [[UInt8]] = []
            _ = try RecordScan.lines(fd: file.rawValue, from: 0, chunk: 256 << 10) { record, _ in
                if let json = EventRecord.verified(record), let facts = EventRecord.facts(of: json), wanted(facts) {
                    inSegment.append(Array(json))
                }
                return true
            }
            found = inSegment.suffix(limit - found.count) + found
        }
        return found
    }

    /// The highest first seq a segment file in `directory` is named after, set-aside segments included: what
    /// the names still say when the contents cannot be read.
    static func highestNamedSeq(in directory: String) -> UInt64? {
        let names = (try? Syscall.listDirectory(directory)) ?? []
        return names.compactMap { name -> UInt64? in
            let base = name.hasSuffix(".log.damaged") ? name.dropLast(".damaged".count) : Substring(name)
            guard base.hasSuffix(".log"), base.count == 24 else { return nil }
            return UInt64(base.dropLast(4))
        }.max()
    }

    struct Check {
        var firstSeq: UInt64?
        var lastSeq: UInt64 = 0
        var count = 0
        var goodBytes = 0
        var problem: String?
    }

    /// Walks a segment's records; stops at the first that is not whole, fails its checksum, is not an event
    /// line, or does not have a seq above the one before.
    static func check(path: String, namedSeq: UInt64, after previous: UInt64) throws(SystemCallError) -> Check {
        var c = Check()
        guard let file = try Syscall.openForReading(path) else { return c }
        var last = previous
        let (_, end) = try RecordScan.lines(fd: file.rawValue, from: 0, chunk: 256 << 10) { record, at in
            guard let json = EventRecord.verified(record), let seq = EventRecord.seq(of: json) else {
                c.problem = "damaged record after seq \(last) at byte \(at)"
                return false
            }
            guard seq > last, c.firstSeq != nil || seq == namedSeq else {
                c.problem = "record with seq \(seq) out of order after seq \(last) at byte \(at)"
                return false
            }
            if c.firstSeq == nil { c.firstSeq = seq }
            last = seq
            c.lastSeq = seq
            c.count += 1
            c.goodBytes = at + record.count + 1
            return true
        }
        switch end {
        case .stopped:
            break
        case .endOfFile(let trailing):
            if trailing > 0 { c.problem = "torn record after seq \(last) (\(trailing) bytes without an end of line)" }
        case .lineTooLong(let limit):
            c.problem = "damaged record after seq \(last) at byte \(c.goodBytes) (no end of line in \(limit) bytes)"
        }
        return c
    }


    /// Appends event lines (each ending in a newline) in seq order, starting a new segment when the current
    /// one is full. On a failed write the segment is cut back to its last whole record.
    ///
    /// Answers the last seq of the old segments retention now wants gone, or nil. They stay until the caller
    /// calls ``dropRetained()``: whatever still depends on them (a snapshot older than they are) is the
    /// caller's to replace first, and only once the whole batch is in the log, so that a snapshot taken then
    /// (which covers every event stamped) finds all of them here. Retention once ran in the middle of a
    /// batch, and such a snapshot named events the log did not have yet.
    @discardableResult
    func append(_ lines: [OutgoingLine]) throws(SystemCallError) -> UInt64? {
        try write(lines)
        return retentionDue
    }

    private func write(_ lines: [OutgoingLine]) throws(SystemCallError) {
        var pending: [UInt8] = []
        var pendingCount = 0
        var pendingLast: UInt64 = 0
        for line in lines {
            guard let seq = line.seq else { continue }
            if appendFD == nil || (segments.last.map { $0.count + pendingCount >= retention.segmentEvents || $0.bytes + pending.count >= retention.segmentBytes } ?? true) {
                try write(&pending, count: &pendingCount, last: pendingLast)
                try startSegment(at: seq)
            }
            pending += EventRecord.stored(line.bytes)
            pendingCount += 1
            pendingLast = seq
        }
        try write(&pending, count: &pendingCount, last: pendingLast)
    }

    private func write(_ pending: inout [UInt8], count: inout Int, last: UInt64) throws(SystemCallError) {
        guard count > 0, let index = segments.indices.last, let fd = appendFD?.rawValue else { return }
        do {
            try Syscall.writeAll(fd, pending)
        } catch {
            try? Syscall.truncate(segments[index].path, to: segments[index].bytes)
            throw error
        }
        segments[index].bytes += pending.count
        segments[index].count += count
        segments[index].lastSeq = last
        needsSync = true
        pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
        count = 0
    }

    private func startSegment(at seq: UInt64) throws(SystemCallError) {
        if let full = appendFD.take() {
            try? Syscall.syncData(full.rawValue)
            try? full.close()
            needsSync = false
        }
        var name = String(seq)
        name = String(repeating: "0", count: max(0, 20 - name.count)) + name + ".log"
        let path = directory + "/" + name
        // A leftover file of that name (an empty segment cut back to nothing) is replaced.
        try Syscall.unlinkIfPresent(path)
        appendFD = try Syscall.openForAppend(path)
        segments.append(Segment(ordinal: nextOrdinal, firstSeq: seq, lastSeq: seq, count: 0, bytes: 0, path: path))
        nextOrdinal += 1
        try Syscall.syncDirectory(directory)
    }

    /// How many of the oldest segments retention deletes: while the rest still hold `maxEvents`, or while the
    /// log is over `maxBytes`. The newest always stays.
    private var segmentsDue: Int {
        var events = eventCount, bytes = byteCount, due = 0
        while due < segments.count - 1 {
            let oldest = segments[due]
            guard events - oldest.count >= retention.maxEvents || bytes > retention.maxBytes else { break }
            events -= oldest.count
            bytes -= oldest.bytes
            due += 1
        }
        return due
    }

    /// The last seq of the segments retention would delete now, if any.
    var retentionDue: UInt64? {
        let due = segmentsDue
        return due > 0 ? segments[due - 1].lastSeq : nil
    }

    /// Deletes what ``retentionDue`` names.
    func dropRetained() {
        for _ in 0..<segmentsDue {
            let oldest = segments[0]
            do {
                try Syscall.unlinkIfPresent(oldest.path)
            } catch {
                logger.error("cannot delete an old event log segment", metadata: ["file": "\(oldest.path)", "error": "\(error)"])
                return
            }
            segments.removeFirst()
        }
        do {
            try Syscall.syncDirectory(directory)
        } catch {
            // The segments are gone from sensd's view either way; a crash now may leave a name on the disk,
            // which start-up reads as an old segment and retention deletes again.
            logger.warning("cannot sync the event log's directory after retention", metadata: ["error": "\(error)"])
        }
    }

    /// Puts appended data on the disk.
    func sync() throws(SystemCallError) {
        guard needsSync, let fd = appendFD?.rawValue else { return }
        needsSync = false
        try Syscall.syncData(fd)
    }

    /// The segment a reader positioned after `seq` starts in.
    fileprivate func segment(forReadingAfter seq: UInt64) -> Segment? {
        segments.last { $0.firstSeq <= seq + 1 } ?? segments.first
    }

    fileprivate func segment(ordinal: Int) -> Segment? {
        guard let first = segments.first, ordinal >= first.ordinal, ordinal - first.ordinal < segments.count else { return nil }
        return segments[ordinal - first.ordinal]
    }

    /// Every retained event after `seq`, in order, for start-up's rebuilding of sessions.
    func forEachRecord(after seq: UInt64, _ body: (UnsafeRawBufferPointer) -> Void) {
        let cursor = LogCursor(log: self, after: seq)
        while true {
            let step = cursor.read(maxLines: 4096) { line, _ in body(line) }
            if case .more = step { continue }
            return
        }
    }
}

/// A reader of the log from a seq onwards, for one replaying subscriber. It holds its segment open, so
/// retention deleting the file under it does not disturb it; it notices when retention overtook it.
final class LogCursor {
    enum Step {
        /// Stopped at `maxLines`; more is retained.
        case more
        /// Everything logged has been read.
        case caughtUp
        /// Retention deleted segments this reader had not read yet.
        case overtaken
        /// The log could not be read (the error says why).
        case failed(String)
    }

    private let log: EventLog
    /// The seq of the last record read (or the starting point).
    private(set) var lastSeq: UInt64
    private var file: Descriptor?
    private var ordinal: Int?
    private var offset = 0
    private static let chunk = 65536

    init(log: EventLog, after seq: UInt64) {
        self.log = log
        lastSeq = seq
    }

    /// Hands up to `maxLines` records after ``lastSeq`` to `deliver` (the event JSON without newline, seq).
    func read(maxLines: Int, _ deliver: (UnsafeRawBufferPointer, UInt64) -> Void) -> Step {
        var delivered = 0
        while delivered < maxLines {
            if file == nil {
                let segment: EventLog.Segment?
                if let ordinal {
                    segment = log.segment(ordinal: ordinal + 1)
                    if segment == nil {
                        if let newest = log.segments.last, newest.ordinal > ordinal { return .overtaken }
                        return .caughtUp
                    }
                } else {
                    segment = log.segment(forReadingAfter: lastSeq)
                }
                guard let segment else { return .caughtUp }
                do {
                    file = try Syscall.openForReading(segment.path)
                    if file == nil { return .overtaken }
                } catch {
                    return .failed("\(error)")
                }
                ordinal = segment.ordinal
                offset = 0
            }
            guard let fd = file?.rawValue else { return .failed("no segment open") }
            var malformed = false
            let scan: (next: Int, end: RecordScan.End)
            do {
                scan = try RecordScan.lines(fd: fd, from: offset, chunk: Self.chunk) { record, _ in
                    guard let line = EventRecord.verified(record), let seq = EventRecord.seq(of: line) else {
                        malformed = true
                        return false
                    }
                    if seq > lastSeq {
                        deliver(line, seq)
                        lastSeq = seq
                        delivered += 1
                    }
                    return delivered < maxLines
                }
            } catch {
                return .failed("\(error)")
            }
            if malformed { return .failed("damaged record in the event log after seq \(lastSeq)") }
            offset = scan.next
            switch scan.end {
            case .stopped:
                continue
            case .lineTooLong(let limit):
                return .failed("a record in the event log after seq \(lastSeq) is longer than \(limit) bytes")
            case .endOfFile(let trailing) where trailing > 0:
                return .failed("a torn record in the event log after seq \(lastSeq)")
            case .endOfFile:
                // The end of this segment: move on if a newer one exists, else everything is read.
                if let ordinal, let newest = log.segments.last, newest.ordinal > ordinal {
                    file = nil
                    continue
                }
                return .caughtUp
            }
        }
        return .more
    }
}

/// A segment's lines from a byte offset on, read a chunk at a time with `pread` (a segment can be megabytes,
/// and sensd's memory does not grow with it): the one loop both readers of the log use, the check at
/// start-up and a replaying subscriber's cursor.
enum RecordScan {
    enum End: Equatable {
        /// The visitor said stop.
        case stopped
        /// The end of the file; `trailing` bytes after the last whole line have no end of line.
        case endOfFile(trailing: Int)
        /// A line longer than the chunk (`limit` bytes) can hold.
        case lineTooLong(limit: Int)
    }

    /// Hands each line (without its newline, not yet verified) and the byte offset it starts at to `visit`,
    /// which answers whether to go on. Answers the offset after the last line visited, and why it stopped.
    static func lines(fd: Int32, from start: Int, chunk: Int, _ visit: (UnsafeRawBufferPointer, Int) -> Bool) throws(SystemCallError) -> (next: Int, end: End) {
        var buffer = [UInt8](repeating: 0, count: chunk)
        var offset = start  // the file offset of buffer[0]
        var filled = 0
        while true {
            let n: Int
            let readAt = offset + filled, into = filled
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) -> Int in
                    try Syscall.read(fd, at: readAt, into: UnsafeMutableRawBufferPointer(rebasing: raw[into...]))
                }
            } catch let error as SystemCallError {
                throw error
            } catch {
                throw SystemCallError("pread", errno: EIO)
            }
            filled += n
            var consumed = 0
            var goOn = true
            buffer.withUnsafeBytes { raw in
                while goOn, let newline = raw[consumed..<filled].firstIndex(of: 0x0A) {
                    goOn = visit(UnsafeRawBufferPointer(rebasing: raw[consumed..<newline]), offset + consumed)
                    consumed = newline + 1
                }
            }
            if !goOn { return (offset + consumed, .stopped) }
            if n == 0 { return (offset + consumed, .endOfFile(trailing: filled - consumed)) }
            if consumed == 0 && filled == buffer.count { return (offset, .lineTooLong(limit: chunk)) }
            // Keep the unfinished line at the front and read on after it.
            buffer.withUnsafeMutableBytes { raw in
                raw.baseAddress!.copyMemory(from: raw.baseAddress! + consumed, byteCount: filled - consumed)
            }
            offset += consumed
            filled -= consumed
        }
    }
}
