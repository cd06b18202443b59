import Foundation
import SENSCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Whether seqs only go up (a filtered stream skips some).
func increasing(_ seqs: [UInt64]) -> Bool {
    zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }
}

@Suite("sensd against a scripted logind on a private bus", .serialized)
struct LogoffScenarioTests {
    @Test func logoffOfASessionThatBeganBeforeTheDaemonStartedCarriesItsUser() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try rig.sensd.subscribe()
        try rig.logind.run("close c1")
        let e = try sub.nextEvent()
        #expect(e.event == .logoff && e.sessionId == "c1" && e.userName == "alice" && e.uid == 1000 && e.unresolved == nil)
    }

    @Test func helloLineComesFirstAndNamesTheProtocol() throws {
        let rig = try Rig()
        let sub = try rig.sensd.subscribe(nil)
        let hello = try object(sub.hello)
        #expect(hello["hello"] as? String == "sensd")
        #expect(hello["protocol"] as? Int == WireFormat.protocolVersion)
        #expect(hello["lastSeq"] as? Int == 0)
    }

    @Test func everySessionOfABurstGetsExactlyOneLogoffWithItsUserInOrderOfSeq() throws {
        let rig = try Rig()
        let a = try rig.sensd.subscribe()
        let b = try rig.sensd.subscribe()
        let users = [(1000, "alice"), (1001, "bob"), (1002, "carol")]
        for i in 0..<90 {
            let (uid, name) = users[i % 3]
            try rig.logind.run("open s\(i) \(uid) \(name)")
        }
        for i in 0..<90 { try rig.logind.run("wait-asked s\(i)") }
        for i in stride(from: 89, through: 0, by: -1) { try rig.logind.run("close s\(i)") }
        for sub in [a, b] {
            let events = try sub.events(90)
            #expect(events.map(\.sessionId) == (0..<90).reversed().map { "s\($0)" })
            #expect(increasing(events.map(\.seq)))
            for e in events {
                let i = Int(e.sessionId.dropFirst())!
                #expect(e.userName == users[i % 3].1 && e.uid == UInt32(users[i % 3].0))
            }
        }
    }

    @Test func sessionRemovedBeforeItsDetailsCouldBeReadGetsOneLogoffThatSaysTheUserIsUnknown() throws {
        let rig = try Rig()
        let sub = try rig.sensd.subscribe()
        // flash: SessionNew and SessionRemoved back to back, details never readable.
        try rig.logind.run("flash c5 1000 alice")
        // hold: sensd's details request is in flight when the session goes.
        try rig.logind.run("hold c6 1000 alice")
        try rig.logind.run("close c6")
        let events = try rig.barrier(sub)
        #expect(events.map(\.sessionId) == ["c5", "c6"])
        for e in events {
            #expect(e.userName == nil && e.uid == nil)
            #expect(e.unresolved == SessionTracker.unresolvedReason)
        }
    }

    @Test func lookAlikeSessionRemovedFromAnotherPeerProducesNoEvent() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try rig.sensd.subscribe()
        // Broadcast (the bus daemon's sender match drops it) and unicast to sensd (only sensd's own check can).
        try rig.logind.run("spoof-broadcast c1")
        try rig.logind.run("spoof-unicast c1")
        try rig.logind.run("spoof-unicast c404")
        #expect(try rig.barrier(sub).isEmpty)
        try rig.logind.run("close c1")
        let e = try sub.nextEvent()
        #expect(e.sessionId == "c1" && e.userName == "alice")
    }

    @Test func aFloodOfLookAlikeSignalsIsWarnedOfOncePerInterval() throws {
        // Said once each, they would reach journald's rate limit for sensd and take its own entries with them.
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try rig.sensd.subscribe()
        for _ in 0..<20 { try rig.logind.run("spoof-unicast c1") }
        #expect(try rig.barrier(sub).isEmpty)
        let warnings = rig.sensdLog.split(separator: "\n").filter { $0.contains("not sent by systemd-logind") }
        #expect(warnings.count == 1, "\(warnings)")
    }

    @Test func systemdsRebootJobGivesTheEndsThatFollowTheirReasonAndALookAlikeDoesNot() throws {
        let rig = try Rig(before: {
            try $0.run("systemd")
            try $0.run("add c1 1000 alice")
            try $0.run("add c2 1001 bob")
        })
        let sub = try rig.sensd.subscribe()
        // A JobNew for reboot.target from another peer, broadcast and sent to sensd; and systemd's own job
        // for a session's scope: neither is a reboot.
        try rig.logind.run("spoof-job reboot.target")
        try rig.logind.run("job session-c1.scope")
        try rig.logind.run("close c1")
        let e = try sub.nextEvent()
        #expect(e.sessionId == "c1" && e.reason == nil)
        #expect(rig.sensdLog.contains("ignored a JobNew signal not sent by systemd"))
        // systemd queues the reboot (the bus daemon routes only the shutdown targets' jobs to sensd, and
        // sd-bus cannot match on JobNew's unit itself): the sessions that end now end for it.
        try rig.logind.run("job reboot.target")
        try rig.logind.run("close c2")
        let f = try sub.nextEvent()
        #expect(f.sessionId == "c2" && f.userName == "bob" && f.reason == "reboot")
    }

    @Test func logindRestartEndsSessionsItForgotAndDoesNotRepeatTheOthers() throws {
        let rig = try Rig(before: {
            try $0.run("add c1 1000 alice")
            try $0.run("add c2 1001 bob")
        })
        let sub = try rig.sensd.subscribe()
        // c2 was closing when logind went away: the new logind never mentions it again.
        try rig.logind.run("vanish c2")
        try rig.logind.run("restart")
        let e = try sub.nextEvent()
        #expect(e.sessionId == "c2" && e.userName == "bob" && e.uid == 1001)
        try rig.logind.run("close c1")
        let f = try sub.nextEvent()
        #expect(f.sessionId == "c1" && f.userName == "alice" && f.seq > e.seq)
        #expect(try rig.barrier(sub).isEmpty)
    }

    @Test func idReusedAfterALogindRestartIsToldApartFromTheOldSession() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice 111") })
        let sub = try rig.sensd.subscribe()
        // logind restarted without audit and counts from c1 again: a different session under the same id.
        try rig.logind.run("vanish c1")
        try rig.logind.run("add c1 1001 bob 222")
        try rig.logind.run("restart")
        let old = try sub.nextEvent()
        #expect(old.sessionId == "c1" && old.userName == "alice")
        try rig.logind.run("close c1")
        let new = try sub.nextEvent()
        #expect(new.sessionId == "c1" && new.userName == "bob")
    }

    @Test func subscribersThatDisconnectMidStreamCostTheOthersNothing() throws {
        let rig = try Rig()
        let steady = try rig.sensd.subscribe()
        var leavers = try (0..<5).map { _ in try rig.sensd.subscribe() }
        try rig.logind.run("burst 100 a 1000 alice")
        // Leave after reading part of the stream, some with unread data pending.
        for (i, l) in leavers.enumerated() {
            _ = try l.events(i * 10)
            l.closeNow()
        }
        leavers.removeAll()
        try rig.logind.run("burst 100 b 1000 alice")
        let events = try steady.events(200)
        #expect(increasing(events.map(\.seq)))
        #expect(Set(events.map(\.sessionId)).count == 200)
        #expect(try rig.barrier(steady).isEmpty)
    }

    @Test func subscribersJoiningWhileABurstPoursInAreAnsweredAtOnceAndGetEveryLaterEvent() throws {
        // Output waits for the bus to pause, with a backstop: a storm that never pauses must not hold back
        // hello and accepted lines, nor starve anyone.
        let rig = try Rig()
        let steady = try rig.sensd.subscribe()
        try rig.logind.start("burst 3000 j 1000 alice")
        var seen = try steady.events(100)  // the burst is under way
        var joined: [(subscriber: TestSubscriber, fromSeq: UInt64)] = []
        for _ in 0..<10 {
            let s = try TestSubscriber(path: rig.sensd.socketPath)
            try s.send(#"{"events":["Logoff"]}"# + "\n")
            let accepted = try object(try s.nextLine())
            let fromSeq = try #require(accepted["fromSeq"] as? Int)
            joined.append((s, UInt64(fromSeq)))
        }
        seen += try steady.events(3000 - 100)
        try rig.logind.finish("burst")
        let burstSeqs = seen.map(\.seq)
        #expect(joined.contains { $0.fromSeq > burstSeqs.first! && $0.fromSeq <= burstSeqs.last! }, "some joined mid-burst")
        for (subscriber, fromSeq) in joined {
            let got = try rig.barrier(subscriber)
            #expect(got.map(\.seq) == seen.filter { $0.seq >= fromSeq }.map(\.seq), "every Logoff from its fromSeq on, once, in order")
        }
    }

    @Test func subscriberThatStopsReadingIsCutOffWithAnOverflowLineAndOthersGetEverything() throws {
        let rig = try Rig(sensdArguments: ["--queue-limit", "16"])
        let stalled = try rig.sensd.subscribe()
        let healthy = try rig.sensd.subscribe()
        // Enough to fill the stalled socket's kernel buffer and then 16 queued lines; the healthy one reads throughout.
        try rig.logind.start("burst 5000 x 1000 alice")
        let events = try healthy.events(5000)
        try rig.logind.finish("burst")
        #expect(increasing(events.map(\.seq)))
        #expect(Set(events.map(\.sessionId)).count == 5000)
        var last: UInt64 = 0
        var final: [String: Any] = [:]
        while let line = try stalled.nextLine() {
            if let e = try? JSONDecoder().decode(SENSEvent.self, from: Data(line.utf8)) {
                #expect(e.seq > last)
                last = e.seq
            } else {
                final = try object(line)
            }
        }
        #expect(final["error"] as? String == "overflow")
        #expect(final["limit"] as? Int == 16)
        #expect((final["lastSeq"] as? Int).map(UInt64.init) == last)
        #expect(last < events.last!.seq)
    }

    @Test(arguments: [
        ("hello\n", "bad-request", "not valid JSON"),
        (#"{"events":["Logof"]}"# + "\n", "bad-request", #"unknown event "Logof""#),
        (#"{"bogus":true}"# + "\n", "bad-request", #"unknown request key "bogus""#),
        (String(repeating: "x", count: 5000), "request-too-long", "4096 bytes"),
        ("{}\n{}\n", "bad-request", "only one request line"),
    ])
    func badRequestGetsOneErrorLineNamingTheProblemAndOnlyThatConnectionCloses(_ input: String, _ code: String, _ phrase: String) throws {
        let rig = try Rig()
        let bystander = try rig.sensd.subscribe()
        let client = try rig.sensd.subscribe(nil)
        try client.send(input)
        let error = try object(try client.nextLine())
        #expect(error["error"] as? String == code)
        #expect((error["message"] as? String)?.contains(phrase) == true, "\(error)")
        #expect(try client.nextLine() == nil, "the connection closes after the error line")
        try rig.logind.run("flash c1 1000 alice")
        #expect(try bystander.nextEvent().sessionId == "c1")
    }

    @Test func emptyRequestAndHalfClosedClientsStillReceiveEvents() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let polite = try rig.sensd.subscribe("{}\n")
        let halfClosed = try rig.sensd.subscribe(nil)
        shutdown(halfClosed.fd, Int32(SHUT_WR))
        #expect(try rig.barrier(polite).map(\.event).allSatisfy { $0 != .logoff })
        try rig.logind.run("close c1")
        #expect(try polite.events(2).map(\.event) == [.logoffInitiated, .logoff])
        // Everything, in order: the barrier session's whole life, then c1's end (its Logon went out at start-up).
        let all = try halfClosed.events(5)
        #expect(all.map(\.sessionId) == ["barrier", "barrier", "barrier", "c1", "c1"])
        #expect(all.map(\.event) == [.logon, .logoffInitiated, .logoff, .logoffInitiated, .logoff])
    }

    @Test func connectionsPastTheLimitAreRefusedWithTheLimitNamed() throws {
        let rig = try Rig(sensdArguments: ["--max-subscribers", "2"])
        let a = try rig.sensd.subscribe()
        let b = try rig.sensd.subscribe()
        let refused = try TestSubscriber(path: rig.sensd.socketPath, expectHello: false)
        let error = try object(try refused.nextLine())
        #expect(error["error"] as? String == "too-many-subscribers")
        #expect(error["limit"] as? Int == 2)
        #expect(try refused.nextLine() == nil)
        try rig.logind.run("flash c1 1000 alice")
        #expect(try a.nextEvent().sessionId == "c1")
        #expect(try b.nextEvent().sessionId == "c1")
    }

    @Test func sigtermStopsCleanlyTellsSubscribersAndRemovesTheSocket() throws {
        let rig = try Rig()
        let sub = try rig.sensd.subscribe(nil)
        rig.sensd.child.signal(SIGTERM)
        try rig.sensd.waitFor("STOPPING=1")
        #expect(try rig.sensd.child.waitForExit() == 0)
        #expect(try object(try sub.nextLine())["error"] as? String == "shutting-down")
        #expect(try sub.nextLine() == nil)
        #expect(!FileManager.default.fileExists(atPath: rig.sensd.socketPath))
    }

    @Test func lostBusMakesSensdExitNonZeroSoSystemdRestartsIt() throws {
        let rig = try Rig()
        try rig.bus.kill()
        #expect(try rig.sensd.child.waitForExit() != 0)
    }

    @Test func secondDaemonRefusesToStealALiveSocket() throws {
        let rig = try Rig()
        let log = rig.dir.path + "/second.log"
        let second = try Child(productsDirectory + "/sensd", ["--socket", rig.sensd.socketPath], environment: ["DBUS_SYSTEM_BUS_ADDRESS": rig.bus.address], stderrPath: log)
        #expect(try second.waitForExit() == 1)
        let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(said.contains("another process is already serving \(rig.sensd.socketPath)"), "\(said)")
        let sub = try rig.sensd.subscribe()
        try rig.logind.run("flash c1 1000 alice")
        #expect(try sub.nextEvent().sessionId == "c1")
    }
}

@Suite("sensctl monitor", .serialized)
struct SensctlTests {
    @Test func printsOneReadableLinePerEventAndRawJSONWithTheFlag() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let raw = try Child(productsDirectory + "/sensctl", ["monitor", "--json", "--event", "Logoff", "--socket", rig.sensd.socketPath])
        // The raw client prints the hello and accepted lines, so it is known to be subscribed.
        #expect(try raw.output.next()?.hasPrefix(#"{"hello":"sensd""#) == true)
        #expect(try raw.output.next() == #"{"accepted":{"events":["Logoff"]},"fromSeq":2}"#)
        let readable = try Child(productsDirectory + "/sensctl", ["monitor", "--event", "Logoff", "--socket", rig.sensd.socketPath])
        // The readable one prints nothing until an event: send barrier sessions until one shows up.
        let probe = try rig.sensd.subscribe()
        var shown: String?
        for attempt in 0..<200 where shown == nil {
            _ = try rig.barrier(probe, id: "b\(attempt)")
            shown = try? readable.output.next(timeout: 0.1)
        }
        let first = try #require(shown)
        #expect(first.contains("Logoff") && first.contains("session b"), "\(first)")
        // The raw client saw every barrier, as JSON.
        let rawBarrier = try raw.output.next() ?? ""
        #expect(try JSONDecoder().decode(SENSEvent.self, from: Data(rawBarrier.utf8)).sessionId == "b0")
        // Skip what else the readable one printed for barriers sent while it connected.
        let lastBarrier = try rig.barrier(probe, id: "last")
        #expect(lastBarrier.isEmpty)
        while try readable.output.next()?.contains("session last") == false {}
        while try raw.output.next()?.contains(#""sessionId":"last""#) == false {}
        try rig.logind.run("close c1")
        let json = try raw.output.next() ?? ""
        let event = try JSONDecoder().decode(SENSEvent.self, from: Data(json.utf8))
        #expect(event.userName == "alice" && event.sessionId == "c1")
        let line = try readable.output.next() ?? ""
        #expect(line == "\(event.time.rfc3339)  Logoff            session c1      alice (uid 1000)  seq \(event.seq)")
    }

    @Test func saysClearlyWhenSensdIsNotThereAndExitsNonZero() throws {
        let dir = try ScratchDirectory()
        let child = try Child(productsDirectory + "/sensctl", ["monitor", "--socket", dir.path + "/absent.sock"], stderrPath: dir.path + "/err")
        #expect(try child.waitForExit() == 69)
        let message = try String(contentsOfFile: dir.path + "/err", encoding: .utf8)
        #expect(message.contains("cannot connect to \(dir.path)/absent.sock") && message.contains("is sensd running?"), "\(message)")
    }

    @Test func positionPrintsTheLastAndOldestSeq() throws {
        let rig = try Rig()
        let watcher = try rig.sensd.subscribe(nil)
        try rig.logind.run("burst 4 a 1000 alice")
        _ = try watcher.events(12)
        let position = try Child(productsDirectory + "/sensctl", ["position", "--socket", rig.sensd.socketPath])
        #expect(try position.output.next() == "lastSeq 12")
        #expect(try position.output.next() == "oldestSeq 1")
        #expect(try position.waitForExit() == 0)
    }

    @Test func reconnectResumesAcrossADaemonRestartWithNothingLostOrRepeated() throws {
        let rig = try Rig()
        let watcher = try rig.sensd.subscribe(nil)
        try rig.logind.run("burst 5 a 1000 alice")
        _ = try watcher.events(15)
        let dir = rig.dir
        let monitor = try Child(productsDirectory + "/sensctl", ["monitor", "--json", "--reconnect", "--event", "Logoff", "--since", "3", "--socket", rig.sensd.socketPath], stderrPath: dir.path + "/monitor.err")
        var seqs: [UInt64] = []
        func nextLogoff() throws -> SENSEvent {
            while true {
                let line = try #require(try monitor.output.next())
                if let e = try? JSONDecoder().decode(SENSEvent.self, from: Data(line.utf8)) {
                    seqs.append(e.seq)
                    return e
                }
            }
        }
        // Replayed: the Logoffs after seq 3 (a1 ... a4; a0's is seq 3 itself).
        #expect(try (0..<4).map { _ in try nextLogoff().sessionId } == ["a1", "a2", "a3", "a4"])
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        rig.sensd = try SensdUnderTest(bus: rig.bus, dir: dir)
        try rig.logind.run("burst 3 b 1001 bob")
        #expect(try (0..<3).map { _ in try nextLogoff().sessionId } == ["b0", "b1", "b2"])
        #expect(increasing(seqs))
        monitor.signal(SIGTERM)
        let err = try String(contentsOfFile: dir.path + "/monitor.err", encoding: .utf8)
        #expect(err.contains("reconnected; resuming after seq 15"), "\(err)")
    }
}
