import Foundation
import SENSClient
import SystemCalls
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How many of this process's threads sleep in the kernel function `name` (their wchan).
func threadsIn(_ name: String) throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").filter { tid in
        (try? String(contentsOfFile: "/proc/self/task/\(tid)/wchan", encoding: .utf8)) == name
    }.count
}

/// The SENSClient library against sensd and the logind stand-in: reconnecting, resuming, overflow, gaps,
/// cancellation and the snapshot, as a program using the library sees them.
@Suite("SENSClient against sensd", .timeLimit(.minutes(2)))
struct ClientLibraryTests {
    /// Reads messages until `count` events came; returns them with every other message's kind.
    func collect(_ messages: inout SensdClient.Messages.Iterator, events count: Int) async throws -> (events: [SENSEvent], others: [Message.Kind]) {
        var events: [SENSEvent] = []
        var others: [Message.Kind] = []
        while events.count < count {
            guard let message = try await messages.next() else { throw HarnessError("the stream ended after \(events.count) events") }
            if case .event(let e) = message.kind { events.append(e) } else { others.append(message.kind) }
        }
        return (events, others)
    }

    /// Reads messages through the first `accepted`: from then on, sensd applies the request.
    func awaitAccepted(_ messages: inout SensdClient.Messages.Iterator) async throws {
        while let message = try await messages.next() {
            if case .accepted = message.kind { return }
        }
        throw HarnessError("the stream ended before sensd accepted the request")
    }

    @Test func aStreamReconnectsAcrossASensdRestartWithNothingLostOrTwice() async throws {
        let rig = try Rig()
        var messages = SensdClient(socketPath: rig.sensd.socketPath).messages(reconnect: .backoff(initial: .milliseconds(50), maximum: .milliseconds(400))).makeAsyncIterator()
        try await awaitAccepted(&messages)
        try rig.logind.run("burst 5 a 1000 alice")
        let before = try await collect(&messages, events: 15)
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        rig.sensd = try SensdUnderTest(bus: rig.bus, dir: rig.dir)
        try rig.logind.run("burst 3 b 1001 bob")
        let after = try await collect(&messages, events: 9)
        let seqs = (before.events + after.events).map(\.seq)
        #expect(seqs == Array(1...24), "every event once, in order: \(seqs)")
        #expect(after.events.filter { $0.event == .logoff }.map(\.sessionId) == ["b0", "b1", "b2"])
        // The restart is visible to a program that wants to see it, as typed values.
        #expect(after.others.contains { if case .serverError(let e) = $0 { e.code == .shuttingDown } else { false } }, "\(after.others)")
        #expect(after.others.contains { if case .reconnected(resumingAfter: 15) = $0 { true } else { false } }, "\(after.others)")
    }

    @Test func fiftyStreamsWaitingForEventsHoldNoThreadEachAndEndAtOnceWhenCancelled() async throws {
        let rig = try Rig()
        let client = SensdClient(socketPath: rig.sensd.socketPath)
        final class Count: Sendable { let value = Mutex(0) }
        let accepted = Count()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    var messages = client.messages(Filter(users: ["nobody-logs-in"]), reconnect: .never).makeAsyncIterator()
                    try await self.awaitAccepted(&messages)
                    accepted.value.withLock { $0 += 1 }
                    do {
                        let nothing = try await messages.next()  // nothing comes: it waits until cancelled
                        Issue.record("a message for nobody: \(String(describing: nothing))")
                    } catch is CancellationError {}
                }
            }
            // Every stream is parked in the library's one readiness thread, not in a read of its own. (Other
            // suites' streams may wait there too: they only make the count come sooner.)
            try await until("the 50 streams and a stats request connected") { try counters(rig)["subscribers"] as? Int == 51 }
            // Accepted too: a stream cancelled before its answer came would end with the cancellation.
            try await until("the 50 streams' requests accepted") { accepted.value.withLock { $0 } == 50 }
            try await until("50 streams waiting for readiness") { Readiness.shared.waiting >= 50 }
            let reading = try threadsIn("unix_stream_read_generic")
            #expect(reading < 10, "\(reading) threads wait in a socket read for 50 streams")
            group.cancelAll()
            while try await group.next() != nil {}
        }
        // Cancelled, every stream closed its connection at once: sensd counts only the stats request.
        try await until("sensd to see the 50 connections closed") { try counters(rig)["subscribers"] as? Int == 1 }
    }

    /// Waits for `condition`, looking again every 10 ms; the deadline guards against a hang only.
    func until(_ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(patience)
        while try !condition() {
            guard Date() < deadline else { throw HarnessError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func aStreamWaitsForASocketThatIsNotThereYet() async throws {
        let rig = try Rig()
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        #expect(access(rig.sensd.socketPath, F_OK) != 0, "sensd removed its socket")
        var messages = SensdClient(socketPath: rig.sensd.socketPath).messages(Filter(events: [.logoff]), reconnect: .backoff(initial: .milliseconds(20), maximum: .milliseconds(200))).makeAsyncIterator()
        let first = try #require(try await messages.next())
        guard case .disconnected(let reason) = first.kind else { Issue.record("first: \(first.kind)"); return }
        #expect(reason.contains("cannot connect to \(rig.sensd.socketPath)"), "\(reason)")
        rig.sensd = try SensdUnderTest(bus: rig.bus, dir: rig.dir)
        try await awaitAccepted(&messages)
        try rig.logind.run("burst 2 c 1002 carol")
        let got = try await collect(&messages, events: 2)
        #expect(got.events.map(\.sessionId) == ["c0", "c1"] && got.events.allSatisfy { $0.event == .logoff })
    }

    @Test func aReaderThatFellBehindIsCutOffAndResumesWithEveryEventOnce() async throws {
        let rig = try Rig(sensdArguments: ["--queue-limit", "16"])
        let watcher = try rig.sensd.subscribe()
        var messages = SensdClient(socketPath: rig.sensd.socketPath).messages(reconnect: .backoff(initial: .milliseconds(50), maximum: .milliseconds(400))).makeAsyncIterator()
        try await awaitAccepted(&messages)
        // Not reading while 3,000 events go out: far more than the socket buffer and the 16 sensd may hold.
        try rig.logind.run("burst 1000 a 1000 alice")
        _ = try watcher.events(1000)
        let got = try await collect(&messages, events: 3000)
        #expect(got.events.map(\.seq) == Array(1...3000), "every event once, in order")
        #expect(got.others.contains { if case .serverError(let e) = $0 { e.code == .overflow && e.limit == 16 } else { false } },
                "sensd cut the reader off (else this test shows nothing): \(got.others.prefix(6))")
        #expect(got.others.contains { if case .reconnected = $0 { true } else { false } })
    }

    @Test func missingHistoryIsATypedGapNeverASilentSkip() async throws {
        let rig = try Rig(sensdArguments: ["--log-events", "30"])
        let watcher = try rig.sensd.subscribe(nil)
        try rig.logind.run("burst 100 a 1000 alice")
        _ = try watcher.events(300)
        let client = SensdClient(socketPath: rig.sensd.socketPath)
        let hello = try await client.hello()
        let oldest = try #require(hello.oldestSeq)
        #expect(hello.lastSeq == 300)

        // events(): the gap ends the iteration with an error that says where to go on.
        var events = client.events(after: 5, reconnect: .never).makeAsyncIterator()
        do {
            let e = try await events.next()
            Issue.record("an event instead of the gap: \(String(describing: e))")
        } catch let error as SENSClientError where error.code == .eventsMissing {
            let gap = try #require(error.gap)
            #expect(gap.firstMissing == 6 && gap.lastMissing == oldest - 1 && gap.reason == "not-retained")
        }
        // The stream that threw is over; its position is after the gap, where a new one goes on.
        #expect(events.position == oldest - 1)
        let afterThrow = try await events.next()
        #expect(afterThrow == nil)

        // messages(): the gap is a value, in stream order, then the retained events.
        var messages = client.messages(after: 5, live: false, reconnect: .never).makeAsyncIterator()
        var kinds: [Message.Kind] = []
        while let m = try await messages.next() { kinds.append(m.kind) }
        let gaps = kinds.compactMap { if case .gap(let g) = $0 { g } else { nil } }
        let seqs = kinds.compactMap { if case .event(let e) = $0 { e.seq } else { nil } }
        #expect(gaps.map(\.firstMissing) == [6] && gaps.map(\.lastMissing) == [oldest - 1])
        #expect(seqs == Array(oldest...300))
        guard case .end(lastSeq: 300)? = kinds.last else { Issue.record("last: \(String(describing: kinds.last))"); return }
    }

    @Test func cancellingTheTaskEndsAStreamThatIsWaitingForEvents() async throws {
        let rig = try Rig()
        let socketPath = rig.sensd.socketPath
        let (connected, signalConnected) = AsyncStream.makeStream(of: Void.self)
        let task = Task {
            var count = 0
            for try await message in SensdClient(socketPath: socketPath).messages() {
                if case .accepted = message.kind { signalConnected.yield() }
                if case .event = message.kind { count += 1 }
            }
            return count
        }
        for await _ in connected { break }
        // The stream is now waiting in a read for an event that will not come.
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        // sensd saw the client go: a new connection is the only one (its status counts subscribers).
        let watcher = try rig.sensd.subscribe(nil)
        try rig.logind.run("burst 1 z 1000 alice")
        _ = try watcher.events(3)
    }

    @Test func theSnapshotThenTheStreamAfterItMissNothing() async throws {
        let rig = try Rig()
        let watcher = try rig.sensd.subscribe(#"{"events":["Logon"]}"#)
        try rig.logind.run("open s1 1000 alice")
        try rig.logind.run("open s2 1001 bob")
        // The snapshot holds what has gone out: both Logons.
        _ = try watcher.events(2)
        let client = SensdClient(socketPath: rig.sensd.socketPath)
        let snapshot = try await client.snapshot(Filter(users: ["alice"]))
        #expect(snapshot.sessions.map(\.sessionId) == ["s1"])
        let alice = try #require(snapshot.sessions.first)
        #expect(alice.userName == "alice" && alice.uid == 1000 && alice.logoffInitiated == false && alice.line.contains(#""snapshot":"session""#))
        var events = client.events(Filter(users: ["alice"]), after: snapshot.seq, reconnect: .never).makeAsyncIterator()
        try rig.logind.run("close s1")
        var kinds: [EventKind] = []
        while kinds.last != .logoff, let e = try await events.next() {
            #expect(e.sessionId == "s1" && e.seq > snapshot.seq)
            kinds.append(e.event)
        }
        #expect(kinds == [.logoffInitiated, .logoff] || kinds == [.logoff], "\(kinds)")
    }

    @Test func aRefusedRequestIsAnErrorNamingTheProblem() async throws {
        let rig = try Rig()
        var events = SensdClient(socketPath: rig.sensd.socketPath).events(after: 1 << 40).makeAsyncIterator()
        do {
            _ = try await events.next()
            Issue.record("no error")
        } catch let error as SENSClientError where error.code == .server {
            let refusal = try #require(error.serverError)
            #expect(refusal.code == .badRequest && refusal.message.contains("since"), "\(error)")
        }
    }

    @Test func withoutReconnectingAMissingSocketIsUnavailable() async throws {
        let dir = try ScratchDirectory()
        var events = SensdClient(socketPath: dir.path + "/absent.sock").events(reconnect: .never).makeAsyncIterator()
        do {
            _ = try await events.next()
            Issue.record("no error")
        } catch let error as SENSClientError {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.socketPath == dir.path + "/absent.sock" && error.errno == ENOENT)
            #expect(error.description.contains("is sensd running?"))
        }
    }
}
