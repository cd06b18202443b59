import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SENSCore
import SystemCalls
import Testing
@testable import SensdService

@Suite("Replay: the log read into a resuming subscriber's queue, gaps named")
struct ReplayTests {
    /// A subscriber on /dev/null: only its queue matters here.
    static func subscriber(after seq: UInt64, request: SubscriptionRequest = SubscriptionRequest()) throws -> Subscriber {
        let subscriber = Subscriber(fd: try Syscall.openFile("/dev/null", O_RDONLY), uid: 1000, queueLimit: 4096)
        subscriber.request = request
        subscriber.lastSeqSeen = seq
        return subscriber
    }

    /// The lines queued, as JSON objects, emptying the queue.
    static func drain(_ subscriber: Subscriber) -> [[String: Any]] {
        var bytes: [UInt8] = []
        while !subscriber.queue.isEmpty {
            _ = subscriber.queue.write(maxChunks: 64) { chunks in
                for chunk in chunks { bytes += chunk }
                return chunks.reduce(0) { $0 + $1.count }
            }
        }
        return bytes.split(separator: 0x0A).map { try! JSONSerialization.jsonObject(with: Data($0)) as! [String: Any] }
    }

    @Test func readsInBoundedStepsThenCatchesUpWithEveryLoggedEvent() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 1000, maxBytes: 1 << 20), logger: quiet)
        try log.append((1...10).map { line($0) })
        let subscriber = try Self.subscriber(after: 3)
        let cursor = LogCursor(log: log, after: 3)
        let first = Replay.refill(subscriber, from: cursor, room: 4, emittedSeq: 10, oldestSeq: log.oldestSeq)
        #expect(first == .more)
        #expect(Self.drain(subscriber).map { $0["seq"] as? Int } == [4, 5, 6, 7])
        let second = Replay.refill(subscriber, from: cursor, room: 4, emittedSeq: 10, oldestSeq: log.oldestSeq)
        #expect(second == .caughtUp)
        #expect(Self.drain(subscriber).map { $0["seq"] as? Int } == [8, 9, 10])
        #expect(subscriber.lastSeqSeen == 10)
    }

    @Test func eventsGivenOutButNeverLoggedAreAGapLineNotSilence() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 1000, maxBytes: 1 << 20), logger: quiet)
        try log.append((1...5).map { line($0) })
        // The disk was full for seqs 6 to 8: they went out live only.
        let subscriber = try Self.subscriber(after: 0)
        let step = Replay.refill(subscriber, from: LogCursor(log: log, after: 0), room: 100, emittedSeq: 8, oldestSeq: log.oldestSeq)
        #expect(step == .caughtUp)
        let lines = Self.drain(subscriber)
        #expect(lines.compactMap { $0["seq"] as? Int } == [1, 2, 3, 4, 5])
        let gap = try #require(lines.last)
        #expect(gap["gap"] as? String == "not-retained")
        #expect(gap["firstMissing"] as? Int == 6 && gap["lastMissing"] as? Int == 8)
        #expect(subscriber.lastSeqSeen == 8, "the live stream takes over after 8, not again from 6")
    }

    @Test func aFilteredReplaySkipsOtherUsersButStillAccountsForTheirSeqs() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path, retention: LogRetention(maxEvents: 1000, maxBytes: 1 << 20), logger: quiet)
        try log.append((1...6).map { line($0, user: $0 % 2 == 0 ? "bob" : "alice") })
        let request = try SubscriptionRequest.parse(Array(#"{"users":["bob"]}"#.utf8)[...])
        let subscriber = try Self.subscriber(after: 0, request: request)
        let step = Replay.refill(subscriber, from: LogCursor(log: log, after: 0), room: 100, emittedSeq: 6, oldestSeq: log.oldestSeq)
        #expect(step == .caughtUp)
        let lines = Self.drain(subscriber)
        #expect(lines.map { $0["seq"] as? Int } == [2, 4, 6])
        #expect(lines.allSatisfy { $0["userName"] as? String == "bob" })
        #expect(subscriber.lastSeqSeen == 6)
    }
}
