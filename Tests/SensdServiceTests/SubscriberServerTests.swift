import Foundation
import Logging
import SENSCore
import Systemd
import Testing
import SystemCalls
@testable import SensdService

#if canImport(Glibc)
import Glibc
#endif

/// The server on a real listening socket and its own event loop, turned by the test: no daemon, no bus.
final class ServerRig {
    let dir: TemporaryDirectory
    let loop: EventLoop
    let server: SubscriberServer
    let path: String
    /// The Varlink socket beside it.
    let varlinkPath: String
    var published: UInt64

    init(limits: SubscriberLimits = SubscriberLimits(), log: EventLog? = nil, lastSeq: UInt64 = 0, dir: TemporaryDirectory? = nil) throws {
        self.dir = try dir ?? TemporaryDirectory()
        loop = try EventLoop()
        path = self.dir.path + "/s.sock"
        let listener = try Syscall.unixStreamSocket(nonBlocking: true)
        try Syscall.bind(listener.rawValue, path: path)
        try Syscall.listen(listener.rawValue, backlog: 128)
        varlinkPath = self.dir.path + "/io.sensd.Events"
        let varlink = try Syscall.unixStreamSocket(nonBlocking: true)
        try Syscall.bind(varlink.rawValue, path: varlinkPath)
        try Syscall.listen(varlink.rawValue, backlog: 128)
        published = lastSeq
        let feed = Feed()
        feed.emittedSeq = lastSeq
        server = try SubscriberServer(loop: loop, listener: listener, varlinkListener: varlink, limits: limits, logger: quiet, daemonVersion: "test", feed: feed, log: log)
        self.feed = feed
    }

    /// The daemon's side, as the server sees it: a seq, nothing pending, the sessions a test puts there.
    final class Feed: SubscriberFeed {
        var emittedSeq: UInt64 = 0
        var sessions: [OpenSession] = []
        private(set) var changes = 0
        func flushPending(to server: any EventSubscribers) {}
        func openSessions() -> (seq: UInt64, sessions: [OpenSession]) { (emittedSeq, sessions) }
        func stats() -> DaemonStats {
            DaemonStats(version: "test", startedAt: EventTime(microsecondsSinceEpoch: 0), sessions: 0, subscribers: 0, eventsSinceStart: 0, lastSeq: emittedSeq,
                        oldestSeq: nil, overflowed: 0, refused: 0, forgedSignals: 0, log: .none, stateDamaged: 0)
        }
        func subscribersChanged() { changes += 1 }
    }

    let feed: Feed

    /// Publishes Logoffs of `ids` as the pipeline would: seq by seq, then a flush.
    func publish(_ ids: [String], user: String = "alice") {
        for id in ids {
            published += 1
            feed.emittedSeq = published
            server.broadcast(WireFormat.line(SENSEvent(event: .logoff, seq: published, time: EventTime(microsecondsSinceEpoch: 1_790_000_000_000_000 + Int64(published)), sessionId: id, userName: user, uid: 1000)))
        }
        server.flush()
    }

    /// Turns the loop `turns` times, whatever happens: for what must not happen.
    func spin(_ turns: Int = 50) throws {
        for _ in 0..<turns {
            _ = try loop.runOnce(timeoutMicroseconds: 1_000)
            server.afterIteration()
        }
    }

    /// Turns the loop until `condition` holds; the deadline guards against a hang only.
    @discardableResult
    func turn(until what: String, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while try !condition() {
            guard Date() < deadline else { throw HarnessFailure("timed out waiting for \(what)") }
            _ = try loop.runOnce(timeoutMicroseconds: 10_000)
            server.afterIteration()
        }
        return true
    }
}

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A client that reads only when told to; of the JSON-lines socket, or with `varlink` of the Varlink one
/// (messages end with NUL).
final class Client {
    let fd: Descriptor
    private let separator: UInt8
    private var buffer: [UInt8] = []
    private(set) var lines: [[String: Any]] = []
    private(set) var closed = false

    init(_ rig: ServerRig, varlink: Bool = false) throws {
        fd = try Syscall.connect(path: varlink ? rig.varlinkPath : rig.path)
        separator = varlink ? 0 : 0x0A
        try Syscall.setNonBlocking(fd.rawValue)
    }

    /// Sends a Varlink call.
    func call(_ method: String, _ parameters: String = "{}", more: Bool = false) throws {
        try Syscall.writeAll(fd.rawValue, Array(#"{"method":"\#(method)","parameters":\#(parameters)\#(more ? #","more":true"# : "")}"#.utf8) + [0])
    }

    func send(_ text: String) throws { try Syscall.writeAll(fd.rawValue, Array(text.utf8)) }

    /// Reads what is there now, without waiting.
    func drain() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !closed {
            let n = try chunk.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(fd.rawValue, into: raw) }
            guard let n else { break }
            if n == 0 { closed = true; break }
            buffer += chunk[0..<n]
        }
        while let newline = buffer.firstIndex(of: separator) {
            let line = Array(buffer[..<newline])
            buffer.removeSubrange(...newline)
            if let o = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] { lines.append(o) }
        }
    }

    var events: [[String: Any]] { lines.filter { $0["event"] != nil } }
    var seqs: [Int] { events.compactMap { $0["seq"] as? Int } }
    func first(_ key: String) -> [String: Any]? { lines.first { $0[key] != nil } }
}

@Suite("SubscriberServer in-process: held, live, overflow, replay")
struct SubscriberServerTests {
    @Test func aClientIsHeldUntilItsRequestThenGetsOnlyWhatItAskedFromTheHelloOn() throws {
        // A long grace: the request decides for the events published before it came.
        let rig = try ServerRig(limits: SubscriberLimits(requestGraceMicroseconds: 60_000_000), lastSeq: 10)
        let client = try Client(rig)
        try rig.turn(until: "the hello") { try client.drain(); return client.first("hello") != nil }
        #expect(client.first("hello")?["lastSeq"] as? Int == 10)
        rig.publish(["a1"], user: "alice")
        rig.publish(["b1"], user: "bob")
        try rig.spin()
        try client.drain()
        #expect(client.events.isEmpty, "held: nothing before the request")
        try client.send(#"{"users":["bob"]}"# + "\n")
        try rig.turn(until: "bob's held Logoff") { try client.drain(); return client.events.count >= 1 }
        rig.publish(["a2"], user: "alice")
        rig.publish(["b2"], user: "bob")
        try rig.turn(until: "bob's live Logoff") { try client.drain(); return client.events.count >= 2 }
        #expect(client.events.map { $0["sessionId"] as? String } == ["b1", "b2"])
        #expect((client.first("accepted")?["fromSeq"] as? Int) == 11)
    }

    @Test func withoutARequestTheGraceEndsAndTheDefaultSubscriptionFlows() throws {
        let rig = try ServerRig(limits: SubscriberLimits(requestGraceMicroseconds: 1_000))
        let client = try Client(rig)
        try rig.turn(until: "the hello") { try client.drain(); return client.first("hello") != nil }
        rig.publish(["x1", "x2"])
        try rig.turn(until: "both Logoffs") { try client.drain(); return client.events.count == 2 }
        #expect(client.seqs == [1, 2])
    }

    @Test func aClientThatNeverReadsIsCutOffWithTheLastSeqItWasSentInFullAndOthersGetEverything() throws {
        let rig = try ServerRig(limits: SubscriberLimits(queueLimit: 8, requestGraceMicroseconds: 1_000))
        let stalled = try Client(rig)
        let healthy = try Client(rig)
        try rig.turn(until: "both hellos") {
            try stalled.drain(); try healthy.drain()
            return stalled.first("hello") != nil && healthy.first("hello") != nil
        }
        try stalled.send("{}\n")
        try healthy.send("{}\n")
        try rig.turn(until: "both accepted") {
            try stalled.drain(); try healthy.drain()
            return stalled.first("accepted") != nil && healthy.first("accepted") != nil
        }
        // Far more than the socket buffer and 8 queued lines; the healthy client reads after each batch.
        var n = 0
        while rig.server.overflowed == 0 && n < 20_000 {
            rig.publish((0..<50).map { "s\(n + $0)" })
            n += 50
            try healthy.drain()
        }
        #expect(rig.server.overflowed == 1)
        try rig.turn(until: "the stalled client's overflow line") { try stalled.drain(); return stalled.closed || stalled.first("error") != nil }
        try rig.turn(until: "the stream to end") { try stalled.drain(); return stalled.closed }
        let error = try #require(stalled.first("error"))
        #expect(error["error"] as? String == "overflow" && error["limit"] as? Int == 8)
        #expect(error["lastSeq"] as? Int == stalled.seqs.last, "the resume point is the last event it got in full")
        #expect(stalled.seqs == Array(1...(stalled.seqs.last ?? 0)), "nothing skipped before the cut")
        try rig.turn(until: "every event at the healthy client") { try healthy.drain(); return healthy.seqs.count == n }
        #expect(healthy.seqs == Array(1...n))
        #expect(rig.server.subscriberCount == 1)
    }

    @Test func aResumeReplaysFromTheLogThenJoinsTheLiveStreamWithNoGapAndNoRepeat() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path + "/log", retention: LogRetention(maxEvents: 100_000, maxBytes: 64 << 20), logger: quiet)
        // A history many times the read-ahead.
        var history: [OutgoingLine] = []
        for seq in UInt64(1)...1000 { history.append(line(seq)) }
        try log.append(history)
        let rig = try ServerRig(limits: SubscriberLimits(replayReadAhead: 16), log: log, lastSeq: 1000, dir: dir)
        let client = try Client(rig)
        try client.send(#"{"since":500}"# + "\n")
        // Live events arrive while the replay is under way: logged first, as the pipeline does.
        var live: [OutgoingLine] = []
        for seq in UInt64(1001)...1010 { live.append(line(seq)) }
        try rig.turn(until: "the replay to start") { try client.drain(); return client.events.count >= 10 }
        try log.append(live)
        rig.published = 1010
        for l in live { rig.server.broadcast(l) }
        // (The rig's own seq is moved on by publish; the lines above were broadcast by hand.)
        rig.server.flush()
        try rig.turn(until: "seq 1010") { try client.drain(); return client.seqs.last == 1010 }
        #expect(client.seqs == Array(501...1010), "replay then live: no gap, no repeat")
        #expect(client.first("gap") == nil)
        #expect((client.first("accepted")?["fromSeq"] as? Int) == 501)
    }
}

/// Descriptors of this process that lead into `directory` (files) or to sockets of the socket at `path`.
/// Counted by what they point at, not in all: the other suites run beside these and open their own.
func descriptors(into directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { fd in
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)).flatMap { $0.hasPrefix(directory) ? $0 : nil }
    }
}

/// The kernel's unix sockets bound to `path`: the listener and every connection it accepted.
func socketsBound(to path: String) throws -> Int {
    try String(contentsOfFile: "/proc/net/unix", encoding: .utf8).split(separator: "\n").filter { $0.hasSuffix(" " + path) }.count
}

@Suite("Descriptors: a subscriber's whole life and a failed start give every one back")
struct DescriptorTests {
    @Test func aServerAndItsSubscribersFromConnectToOverflowToStopLeaveNoSocket() throws {
        let rig = try ServerRig(limits: SubscriberLimits(maxSubscribers: 4, queueLimit: 4, closeGraceMicroseconds: 100_000, requestGraceMicroseconds: 1_000))
        var clients = try (0..<4).map { _ in try Client(rig) }
        let refused = try Client(rig)
        try rig.turn(until: "every first line") {
            for c in clients + [refused] { try c.drain() }
            return (clients + [refused]).allSatisfy { !$0.lines.isEmpty }
        }
        #expect(refused.first("error")?["error"] as? String == "too-many-subscribers")
        // Awaited, not read once: the kernel lists a socket a moment after its last reference goes, and a
        // busy machine stretches that moment. A leaked one never goes, and the wait ends in a failure.
        try rig.turn(until: "the listener and four served, and no other, bound to the path") { try socketsBound(to: rig.path) == 5 }
        try clients[0].send("not json\n")
        // Clients 1 and 2 never read: cut off; 3 reads.
        for i in 0..<40 {
            rig.publish((0..<50).map { "d\(i)-\($0)" })
            try clients[3].drain()
        }
        try rig.turn(until: "the bad request and the stalled ones to be dropped") { rig.server.subscriberCount == 1 }
        try rig.turn(until: "the listener and the one still served, and no other") { try socketsBound(to: rig.path) == 2 }
        clients.removeAll()
        try rig.turn(until: "the last client's close to be seen") { rig.server.subscriberCount == 0 }
        rig.server.stop()
        try rig.turn(until: "no socket bound to the path") { try socketsBound(to: rig.path) == 0 }
    }

    @Test func aStartRefusedOverANewerSensdsStateLeavesNoDescriptorOpenInIt() throws {
        let dir = try TemporaryDirectory()
        try Syscall.replaceFile(dir.path + "/format", with: Array("999\n".utf8))
        let loop = try EventLoop()
        #expect(throws: DaemonError.self) {
            _ = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 10, maxBytes: 1 << 20), syncIntervalMicroseconds: 0, loop: loop, logger: quiet)
        }
        #expect(try descriptors(into: dir.path).isEmpty)
    }

    @Test func aDurabilityThatStartedAndWentLeavesNoDescriptorOpenInItsDirectory() throws {
        let dir = try TemporaryDirectory()
        do {
            let loop = try EventLoop()
            let durability = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 10, maxBytes: 1 << 20), syncIntervalMicroseconds: 0, loop: loop, logger: quiet)
            try durability.start(sessions: NoSessions())
            durability.append((1...25).map(logon), lastStamped: 25, sessions: NoSessions())
            #expect(try !descriptors(into: dir.path).isEmpty, "the log's segment is open while it runs")
            durability.stopCleanly(lastStamped: 25, sessions: NoSessions())
        }
        #expect(try descriptors(into: dir.path).isEmpty)
    }
}
