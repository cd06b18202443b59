import Foundation
import Logging
import SENSCore
import Systemd
import Testing
import SystemCalls
@testable import SensdService

/// The pipeline with durability on a real directory, no bus and no socket: the order the daemon's promise
/// rests on (the log before any subscriber), and what a publish and a flush hand out.
/// Subscribers that note each seq handed to them, and what `logged` said at that moment.
final class Recorder: EventSubscribers {
    let logged: () -> UInt64
    private(set) var handed: [UInt64] = []
    private(set) var loggedWhenHanded: [UInt64] = []

    init(logged: @escaping () -> UInt64) { self.logged = logged }

    func broadcast(_ line: OutgoingLine) {
        handed.append(line.seq ?? 0)
        loggedWhenHanded.append(logged())
    }
}

@Suite("EventPipeline: stamped, logged, then handed to the subscribers")
struct EventPipelineTests {
    func drafts(_ ids: ClosedRange<Int>, _ kind: EventKind = .logon) -> [EventDraft] {
        ids.map { EventDraft(event: kind, session: LogindSession(id: "s\($0)", uid: 1000, userName: "alice")) }
    }

    let now = EventTime(microsecondsSinceEpoch: 1_790_000_000_000_000)

    @Test func everyLineIsInTheLogBeforeASubscriberIsHandedItAndSeqsFollowOn() throws {
        let dir = try TemporaryDirectory()
        let loop = try EventLoop()
        let durability = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 1000, maxBytes: 1 << 20), syncIntervalMicroseconds: 0, loop: loop, logger: quiet)
        try durability.start(sessions: NoSessions())
        let pipeline = EventPipeline(lastSeq: durability.recoveredLastSeq, durability: durability, sessions: NoSessions(), journalEvents: false, host: "h", localLogind: false, logger: quiet)
        let subscribers = Recorder { durability.log?.lastSeq ?? 0 }
        pipeline.publish(drafts(1...3), at: now, startingUp: false)
        #expect(subscribers.handed.isEmpty, "published events wait for the flush")
        #expect(pipeline.lastSeq == 3 && pipeline.emittedSeq == 0, "stamped, not yet emitted")
        pipeline.publish(drafts(4...5, .logoff), at: now, startingUp: false)
        pipeline.flush(to: subscribers)
        #expect(subscribers.handed == [1, 2, 3, 4, 5])
        #expect(subscribers.loggedWhenHanded.allSatisfy { $0 == 5 }, "the whole batch was logged before the first line went out: \(subscribers.loggedWhenHanded)")
        #expect(pipeline.emittedSeq == 5 && pipeline.eventsSinceStart == 5)
        pipeline.flush(to: subscribers)
        #expect(subscribers.handed.count == 5, "a flush with nothing pending hands out nothing")
        let log = try #require(durability.log)
        #expect(readAll(log, after: 0).seqs == [1, 2, 3, 4, 5])
    }

    @Test func aRestartGoesOnFromTheSeqsThePreviousRunReservedNeverBelow() throws {
        let dir = try TemporaryDirectory()
        var last: UInt64 = 0
        do {
            let loop = try EventLoop()
            let durability = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 1000, maxBytes: 1 << 20), syncIntervalMicroseconds: 0, loop: loop, logger: quiet)
            try durability.start(sessions: NoSessions())
            let pipeline = EventPipeline(lastSeq: durability.recoveredLastSeq, durability: durability, sessions: NoSessions(), journalEvents: false, host: nil, localLogind: false, logger: quiet)
            pipeline.publish(drafts(1...4), at: now, startingUp: false)
            pipeline.flush(to: nil)
            last = pipeline.emittedSeq
            // No clean stop: as after kill -9.
        }
        let loop = try EventLoop()
        let durability = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 1000, maxBytes: 1 << 20), syncIntervalMicroseconds: 0, loop: loop, logger: quiet)
        try durability.start(sessions: NoSessions())
        let pipeline = EventPipeline(lastSeq: durability.recoveredLastSeq, durability: durability, sessions: NoSessions(), journalEvents: false, host: nil, localLogind: false, logger: quiet)
        let subscribers = Recorder { 0 }
        pipeline.publish(drafts(5...5), at: now, startingUp: false)
        pipeline.flush(to: subscribers)
        let handed = subscribers.handed
        #expect(last == 4 && handed.count == 1 && handed[0] > last, "seq \(handed) after \(last): never reused")
    }

    @Test func aSnapshotFallingDueIsTakenAtTheEndOfTheFlushAsOfTheLastSeqLogged() throws {
        let dir = try TemporaryDirectory()
        let loop = try EventLoop()
        let durability = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 100_000, maxBytes: 64 << 20), syncIntervalMicroseconds: 1_000_000, loop: loop, logger: quiet)
        try durability.start(sessions: NoSessions())
        let pipeline = EventPipeline(lastSeq: 0, durability: durability, sessions: NoSessions(), journalEvents: false, host: nil, localLogind: false, logger: quiet)
        func snapshotLine() -> String? { StateCheck.report(directory: dir.path).lines.first { $0.contains("open sessions as of seq") } }
        let before = snapshotLine()
        // One short of the 10,000 events a snapshot waits for, then past it.
        pipeline.publish(drafts(1...9_999), at: now, startingUp: false)
        pipeline.flush(to: nil)
        #expect(snapshotLine() == before, "not due yet: \(snapshotLine() ?? "none")")
        pipeline.publish(drafts(10_000...10_002), at: now, startingUp: false)
        pipeline.flush(to: nil)
        #expect(!durability.snapshotDue)
        #expect(snapshotLine()?.contains("as of seq 10002") == true, "\(snapshotLine() ?? "none")")
    }
}
