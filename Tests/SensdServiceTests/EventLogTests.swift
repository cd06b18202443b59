import Foundation
import Logging
import SENSCore
import Testing
import SystemCalls
@testable import SensdService

/// A fresh directory under /tmp, removed afterwards.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/sensd-log-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: p)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension EventLog {
    /// Appends and applies retention at once, as Durability does when no snapshot stands in the way.
    func appendRetaining(_ lines: [OutgoingLine]) throws {
        if try append(lines) != nil { dropRetained() }
    }
}

let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

func line(_ seq: UInt64, user: String = "alice") -> OutgoingLine {
    WireFormat.line(SENSEvent(event: .logoff, seq: seq, time: EventTime(microsecondsSinceEpoch: 1_790_000_000_000_000 + Int64(seq)), sessionId: "c\(seq)", userName: user, uid: 1000))
}

/// Everything a cursor reads after `seq`, and how it stopped.
func readAll(_ log: EventLog, after seq: UInt64, batch: Int = 1000) -> (seqs: [UInt64], end: LogCursor.Step) {
    let cursor = LogCursor(log: log, after: seq)
    var seqs: [UInt64] = []
    while true {
        let step = cursor.read(maxLines: batch) { _, s in seqs.append(s) }
        if case .more = step { continue }
        return (seqs, step)
    }
}

@Suite("Event log: durable, bounded, damage-tolerant")
struct EventLogTests {
    @Test func appendedEventsAreReadBackInOrderAcrossSegmentsAndAfterReopening() throws {
        let dir = try TemporaryDirectory()
        let retention = LogRetention(maxEvents: 100, maxBytes: 1 << 20)
        do {
            let log = try EventLog(directory: dir.path, retention: retention, logger: quiet)
            for start in stride(from: UInt64(1), through: 91, by: 10) {
                try log.appendRetaining((start..<(start + 10)).map { line($0) })
            }
            try log.sync()
            #expect(log.segments.count == 10)
            #expect(log.lastSeq == 100 && log.oldestSeq == 1 && log.eventCount == 100)
            #expect(readAll(log, after: 0).seqs == Array(1...100))
            #expect(readAll(log, after: 57, batch: 3).seqs == Array(58...100))
            #expect(readAll(log, after: 100).seqs.isEmpty)
        }
        let reopened = try EventLog(directory: dir.path, retention: retention, logger: quiet)
        #expect(reopened.damage.isEmpty)
        #expect(reopened.lastSeq == 100 && reopened.oldestSeq == 1)
        try reopened.appendRetaining([line(101)])
        #expect(readAll(reopened, after: 95).seqs == Array(96...101))
        // The bytes read back are the bytes subscribers were sent.
        let cursor = LogCursor(log: reopened, after: 100)
        var bytes: [UInt8] = []
        _ = cursor.read(maxLines: 1) { l, _ in bytes = Array(l) + [0x0A] }
        #expect(bytes == line(101).bytes)
    }

    @Test func retentionDropsWholeOldSegmentsAndAsksBeforeDoingSo() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 50, maxBytes: 1 << 20), logger: quiet)
        var asked: [UInt64] = []
        for seq in UInt64(1)...200 {
            guard let through = try log.append([line(seq)]) else { continue }
            // Told before the segments go, after the batch is written; they stay until dropped.
            #expect(log.lastSeq == seq && log.oldestSeq! <= through)
            #expect(log.retentionDue == through)
            asked.append(through)
            log.dropRetained()
            #expect(log.oldestSeq! > through)
        }
        // Segments of 5: at least 50 events kept, at most 55.
        #expect(log.eventCount >= 50 && log.eventCount <= 55)
        #expect(log.lastSeq == 200)
        #expect(asked.first == 5 && asked == asked.sorted())
        #expect(readAll(log, after: 0).seqs == Array(log.oldestSeq!...200))
        let files = try Syscall.listDirectory(dir.path).filter { $0.hasSuffix(".log") }
        #expect(files.count == log.segments.count)
    }

    @Test func byteLimitBoundsTheLog() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 1_000_000, maxBytes: 40_960), logger: quiet)
        for seq in UInt64(1)...2000 { try log.appendRetaining([line(seq)]) }
        #expect(log.byteCount <= 40_960 + 4096 + 200)
        #expect(log.lastSeq == 2000)
    }

    @Test func aTornLastRecordIsCutOffKeptAsideAndReported() throws {
        let dir = try TemporaryDirectory()
        do {
            let log = try EventLog(directory: dir.path, retention: LogRetention(), logger: quiet)
            try log.appendRetaining((1...20).map { line($0) })
        }
        let segment = dir.path + "/00000000000000000001.log"
        var bytes = try #require(try Syscall.readFile(segment))
        let whole = bytes.count
        bytes += EventRecord.stored(line(21).bytes).prefix(30)
        try Syscall.replaceFile(segment, with: bytes)
        let log = try EventLog(directory: dir.path, retention: LogRetention(), logger: quiet)
        #expect(log.lastSeq == 20)
        #expect(log.damage.count == 1)
        #expect(log.damage.first?.contains("torn record after seq 20") == true, "\(log.damage)")
        #expect(log.damage.first?.contains("dropped its last 30 bytes") == true)
        #expect(try Syscall.readFile(segment)?.count == whole)
        #expect(try Syscall.readFile(segment + ".damaged")?.count == 30)
        try log.appendRetaining([line(21)])
        #expect(readAll(log, after: 0).seqs == Array(1...21))
    }

    @Test func garbageInTheMiddleDropsItAndEverythingOlderAndKeepsTheRest() throws {
        let dir = try TemporaryDirectory()
        let retention = LogRetention(maxEvents: 100, maxBytes: 1 << 20)
        do {
            let log = try EventLog(directory: dir.path, retention: retention, logger: quiet)
            for seq in UInt64(1)...35 { try log.appendRetaining([line(seq)]) }
        }
        // Segments of 10: 1-10, 11-20, 21-30, 31-35. Damage the second one.
        let second = dir.path + "/00000000000000000011.log"
        var bytes = try #require(try Syscall.readFile(second))
        bytes.replaceSubrange(200..<260, with: Array(repeating: UInt8(ascii: "#"), count: 60))
        try Syscall.replaceFile(second, with: bytes)
        let log = try EventLog(directory: dir.path, retention: retention, logger: quiet)
        #expect(log.oldestSeq == 21 && log.lastSeq == 35)
        #expect(log.damage.count == 1 && log.damage[0].contains("damaged record"), "\(log.damage)")
        #expect(readAll(log, after: 0).seqs == Array(21...35))
        #expect(FileManager.default.fileExists(atPath: second + ".damaged"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/00000000000000000001.log"))
    }

    @Test func segmentsLargerThanTheReadChunkAreCheckedWhole() throws {
        let dir = try TemporaryDirectory()
        let retention = LogRetention(maxEvents: 100_000, maxBytes: 1 << 30)
        do {
            let log = try EventLog(directory: dir.path, retention: retention, logger: quiet)
            try log.appendRetaining((1...6000).map { line($0, user: "user-with-a-longer-name-\($0)") })
            #expect(log.byteCount > 3 * (256 << 10), "several read chunks")
        }
        let segment = dir.path + "/00000000000000000001.log"
        let clean = try EventLog(directory: dir.path, retention: retention, logger: quiet)
        #expect(clean.damage.isEmpty && clean.lastSeq == 6000 && clean.eventCount == 6000)
        // Damage deep inside, past the first chunk.
        var bytes = try #require(try Syscall.readFile(segment))
        bytes[700_000] ^= 0x01
        try Syscall.replaceFile(segment, with: bytes)
        let damaged = try EventLog(directory: dir.path, retention: retention, logger: quiet)
        let kept = try #require(damaged.lastSeq)
        #expect(kept > 3000 && kept < 6000)
        #expect(damaged.damage.first?.contains("damaged record after seq \(kept)") == true, "\(damaged.damage)")
        #expect(readAll(damaged, after: 0).seqs == Array(1...kept))
    }

    @Test func aFlippedByteInsideANameFailsTheChecksum() throws {
        let dir = try TemporaryDirectory()
        do {
            let log = try EventLog(directory: dir.path, retention: LogRetention(), logger: quiet)
            try log.appendRetaining((1...5).map { line($0) })
        }
        let segment = dir.path + "/00000000000000000001.log"
        var bytes = try #require(try Syscall.readFile(segment))
        let at = try #require(bytes.indices.first { i in bytes[i...].starts(with: Array("alice".utf8)) && i > bytes.count / 2 })
        bytes[at] = UInt8(ascii: "A")
        try Syscall.replaceFile(segment, with: bytes)
        let log = try EventLog(directory: dir.path, retention: LogRetention(), logger: quiet)
        #expect(log.lastSeq! < 5)
        #expect(log.damage.first?.contains("damaged record after seq \(log.lastSeq!)") == true, "\(log.damage)")
    }

    @Test func recordsOutOfOrderCountAsDamage() throws {
        let dir = try TemporaryDirectory()
        let segment = dir.path + "/00000000000000000005.log"
        try Syscall.replaceFile(segment, with: [5, 6, 6, 7].flatMap { EventRecord.stored(line($0).bytes) })
        let log = try EventLog(directory: dir.path, retention: LogRetention(), logger: quiet)
        #expect(log.lastSeq == 6)
        #expect(log.damage.first?.contains("out of order") == true)
    }

    @Test func aCursorOvertakenByRetentionSaysSoInsteadOfSkipping() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 20, maxBytes: 1 << 20), logger: quiet)
        for seq in UInt64(1)...20 { try log.appendRetaining([line(seq)]) }
        let cursor = LogCursor(log: log, after: 0)
        var seen: [UInt64] = []
        #expect({ if case .more = cursor.read(maxLines: 3, { seen.append($1) }) { true } else { false } }())
        // Retention deletes the segments the cursor has not reached yet.
        for seq in UInt64(21)...80 { try log.appendRetaining([line(seq)]) }
        var step = cursor.read(maxLines: 1000) { seen.append($1) }
        while case .more = step { step = cursor.read(maxLines: 1000) { seen.append($1) } }
        guard case .overtaken = step else {
            Issue.record("expected .overtaken, got \(step) after \(seen)")
            return
        }
        // It finished the segment it held open, and never jumped.
        #expect(seen == (1...UInt64(seen.count)).map { $0 })
    }

    @Test func readingStartsBeforeTheOldestWhenAskedForLess() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 20, maxBytes: 1 << 20), logger: quiet)
        for seq in UInt64(1)...100 { try log.appendRetaining([line(seq)]) }
        let oldest = try #require(log.oldestSeq)
        #expect(oldest > 1)
        // The server turns the jump from 10 to `oldest` into a gap line.
        #expect(readAll(log, after: 10).seqs.first == oldest)
    }
}
