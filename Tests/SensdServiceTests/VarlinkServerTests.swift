import Foundation
import SENSCore
import SystemCalls
import Testing
@testable import SensdService

/// The Varlink socket over the same server: calls, the stream in Varlink's framing, its errors, and the
/// limits shared with the JSON-lines socket.
@Suite("Varlink socket in-process: calls, subscription, errors, shared limits")
struct VarlinkServerTests {
    static func parameters(_ reply: [String: Any]?) -> [String: Any]? { reply?["parameters"] as? [String: Any] }

    @Test func getInfoAndTheInterfaceDescriptionAnswerAndTheConnectionTakesTheNextCall() throws {
        let rig = try ServerRig()
        let client = try Client(rig, varlink: true)
        try client.call("org.varlink.service.GetInfo")
        try client.call("org.varlink.service.GetInterfaceDescription", #"{"interface":"io.sensd.Events"}"#)
        try client.call("org.varlink.service.GetInterfaceDescription", #"{"interface":"com.example.Nothing"}"#)
        try client.call("io.sensd.Events.Frobnicate")
        try rig.turn(until: "four replies") { try client.drain(); return client.lines.count == 4 }
        let info = try #require(Self.parameters(client.lines[0]))
        #expect(info["interfaces"] as? [String] == ["io.sensd.Events", "org.varlink.service"])
        let description = try #require(Self.parameters(client.lines[1])?["description"] as? String)
        #expect(description.contains("interface io.sensd.Events\n") && description.contains("method Subscribe("))
        #expect(client.lines[2]["error"] as? String == "org.varlink.service.InterfaceNotFound")
        #expect(client.lines[3]["error"] as? String == "org.varlink.service.MethodNotFound")
        #expect(Self.parameters(client.lines[3])?["method"] as? String == "io.sensd.Events.Frobnicate")
        #expect(!client.closed)
        #expect(rig.server.subscriberCount == 1)
    }

    @Test func subscribeWithoutMoreIsRefusedAndABadFilterNamesItsParameter() throws {
        let rig = try ServerRig()
        let client = try Client(rig, varlink: true)
        try client.call("io.sensd.Events.Subscribe")
        try client.call("io.sensd.Events.Subscribe", #"{"events":["Logout"]}"#, more: true)
        try client.call("io.sensd.Events.Subscribe", #"{"stats":true}"#, more: true)
        try rig.turn(until: "three errors") { try client.drain(); return client.lines.count == 3 }
        #expect(client.lines[0]["error"] as? String == "org.varlink.service.ExpectedMore")
        #expect(client.lines[1]["error"] as? String == "org.varlink.service.InvalidParameter")
        #expect(Self.parameters(client.lines[1])?["parameter"] as? String == "events")
        #expect(Self.parameters(client.lines[2])?["parameter"] as? String == "stats")
    }

    @Test func aSubscriptionGetsTheStateFirstThenEachMatchingEventAsAContinuedReply() throws {
        let rig = try ServerRig(lastSeq: 7)
        let client = try Client(rig, varlink: true)
        try client.call("io.sensd.Events.Subscribe", #"{"users":["bob"]}"#, more: true)
        try rig.turn(until: "the state") { try client.drain(); return !client.lines.isEmpty }
        let state = try #require(Self.parameters(client.lines[0])?["state"] as? [String: Any])
        #expect(state["lastSeq"] as? Int == 7 && state["fromSeq"] as? Int == 8)
        #expect(client.lines[0]["continues"] as? Bool == true)
        rig.publish(["a1"], user: "alice")
        rig.publish(["b1"], user: "bob")
        try rig.turn(until: "bob's Logoff") { try client.drain(); return client.lines.count == 2 }
        let event = try #require(Self.parameters(client.lines[1])?["event"] as? [String: Any])
        #expect(event["event"] as? String == "Logoff" && event["userName"] as? String == "bob" && event["seq"] as? Int == 9)
        #expect(client.lines[1]["continues"] as? Bool == true)
        // A second call on a streaming connection is refused: its replies could not be told apart.
        try client.call("org.varlink.service.GetInfo")
        try rig.turn(until: "the connection to close") { try client.drain(); return client.closed }
        #expect(client.lines.last?["error"] as? String == "io.sensd.Events.BadMessage")
    }

    @Test func aClientThatNeverReadsIsCutOffWithOverflowNamingItsResumePoint() throws {
        let rig = try ServerRig(limits: SubscriberLimits(queueLimit: 8))
        let stalled = try Client(rig, varlink: true)
        try stalled.call("io.sensd.Events.Subscribe", "{}", more: true)
        try rig.turn(until: "the state") { try stalled.drain(); return !stalled.lines.isEmpty }
        var n = 0
        while rig.server.overflowed == 0 && n < 20_000 {
            rig.publish((0..<50).map { "s\(n + $0)" })
            n += 50
        }
        try rig.turn(until: "the stream to end") { try stalled.drain(); return stalled.closed }
        let error = try #require(stalled.lines.last)
        #expect(error["error"] as? String == "io.sensd.Events.Overflow")
        let got = stalled.lines.compactMap { (Self.parameters($0)?["event"] as? [String: Any])?["seq"] as? Int }
        #expect(Self.parameters(error)?["lastSeq"] as? Int == got.last)
        #expect(Self.parameters(error)?["limit"] as? Int == 8)
    }

    @Test func resumingAfterRetentionIsTheEventsMissingErrorAndSinceAheadIsNoSuchSeq() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path + "/log", retention: LogRetention(maxEvents: 100_000, maxBytes: 64 << 20), logger: quiet)
        try log.append((11...20).map { line($0) })
        let rig = try ServerRig(log: log, lastSeq: 20, dir: dir)
        let late = try Client(rig, varlink: true)
        try late.call("io.sensd.Events.Subscribe", #"{"since":5}"#, more: true)
        try rig.turn(until: "the error") { try late.drain(); return late.closed }
        #expect(late.lines.last?["error"] as? String == "io.sensd.Events.EventsMissing")
        #expect(Self.parameters(late.lines.last)?["firstMissing"] as? Int == 6 && Self.parameters(late.lines.last)?["lastMissing"] as? Int == 10)
        // Subscribing again from the last missing one goes on after them, then live.
        let again = try Client(rig, varlink: true)
        try again.call("io.sensd.Events.Subscribe", #"{"since":10}"#, more: true)
        try rig.turn(until: "the replay") { try again.drain(); return again.lines.count == 11 }
        let seqs = again.lines.compactMap { (Self.parameters($0)?["event"] as? [String: Any])?["seq"] as? Int }
        #expect(seqs == Array(11...20))
        let ahead = try Client(rig, varlink: true)
        try ahead.call("io.sensd.Events.Subscribe", #"{"since":99}"#, more: true)
        try rig.turn(until: "the error") { try ahead.drain(); return ahead.closed }
        #expect(ahead.lines.last?["error"] as? String == "io.sensd.Events.NoSuchSeq")
        #expect(Self.parameters(ahead.lines.last)?["lastSeq"] as? Int == 20)
    }

    @Test func getHistoryReadsTheLastLogoffsFromTheLog() throws {
        let dir = try TemporaryDirectory()
        let log = try EventLog(directory: dir.path + "/log", retention: LogRetention(maxEvents: 100_000, maxBytes: 64 << 20), logger: quiet)
        try log.append((1...30).map { line($0) })
        let rig = try ServerRig(log: log, lastSeq: 30, dir: dir)
        let client = try Client(rig, varlink: true)
        try client.call("io.sensd.Events.GetHistory", #"{"limit":3}"#)
        try client.call("io.sensd.Events.GetHistory", #"{"limit":0}"#)
        try rig.turn(until: "two replies") { try client.drain(); return client.lines.count == 2 }
        let logoffs = try #require(Self.parameters(client.lines[0])?["logoffs"] as? [[String: Any]])
        #expect(logoffs.map { $0["seq"] as? Int } == [28, 29, 30])
        #expect(Self.parameters(client.lines[1])?["parameter"] as? String == "limit")
    }

    @Test func messagesTooLongMalformedOrUnfinishedAreRefusedWithoutReplyingToNothing() throws {
        let rig = try ServerRig()
        let long = try Client(rig, varlink: true)
        try long.send(String(repeating: "x", count: Varlink.maxMessageBytes + 10))
        let malformed = try Client(rig, varlink: true)
        try Syscall.writeAll(malformed.fd.rawValue, Array("not json".utf8) + [0])
        let unfinished = try Client(rig, varlink: true)
        try unfinished.send(#"{"method":"org.varlink.service.GetInfo"}"#)
        Syscall.shutdownWrite(unfinished.fd.rawValue)
        try rig.turn(until: "all three closed") {
            try long.drain(); try malformed.drain(); try unfinished.drain()
            return long.closed && malformed.closed && unfinished.closed
        }
        #expect(long.lines.last?["error"] as? String == "io.sensd.Events.MessageTooLong")
        #expect(Self.parameters(long.lines.last)?["limit"] as? Int == Varlink.maxMessageBytes)
        #expect(malformed.lines.last?["error"] as? String == "io.sensd.Events.BadMessage")
        #expect(unfinished.lines.isEmpty, "a message without its NUL is not a call")
        try rig.turn(until: "every connection gone") { rig.server.subscriberCount == 0 }
    }

    @Test func theLimitsCountBothSocketsTogether() throws {
        // Two connections in all, whichever socket (the per-user cap is the same count: AdmissionQuotaTests).
        let rig = try ServerRig(limits: SubscriberLimits(maxSubscribers: 2, reservedForAdministrators: 0))
        let a = try Client(rig)
        let b = try Client(rig, varlink: true)
        try rig.turn(until: "both admitted") { rig.server.subscriberCount == 2 }
        let refused = try Client(rig, varlink: true)
        try refused.call("org.varlink.service.GetInfo")
        try rig.turn(until: "the refusal") { try refused.drain(); return refused.closed }
        #expect(refused.lines.first?["error"] as? String == "io.sensd.Events.TooManySubscribers")
        #expect(Self.parameters(refused.lines.first)?["limit"] as? Int == 2)
        _ = (a, b)
    }

    @Test func aClientCallingWithoutReadingStopsBeingReadInsteadOfGrowingItsQueue() throws {
        let rig = try ServerRig()
        let client = try Client(rig, varlink: true)
        let call = Array(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.sensd.Events"}}"#.utf8) + [0]
        // Each reply is about 4 KiB: sensd writes until the client's socket is full, then lets at most
        // varlinkRepliesAhead replies wait and stops reading. The client's own socket then fills: its
        // sends stop going through. Were sensd to read on, all 5,000 calls (half a megabyte) would go.
        var sent = 0
        while sent < 5_000 {
            let n = call.withUnsafeBytes { raw in (try? Syscall.send(client.fd.rawValue, [raw])) ?? nil }
            // A call the socket took only part of is no call: not counted.
            guard n == call.count else { break }
            sent += 1
            try rig.spin(1)
        }
        try rig.spin(100)
        #expect(sent < 5_000, "the client's socket filled up: sensd stopped reading it")
        // Reading, the client gets a reply to every call, in order.
        try rig.turn(until: "every reply") { try client.drain(); return client.lines.count == sent }
        #expect(client.lines.allSatisfy { Self.parameters($0)?["description"] != nil })
    }
}
