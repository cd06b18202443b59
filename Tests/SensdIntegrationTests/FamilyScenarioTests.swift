import Foundation
import SENSCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("The SENS logon family against a scripted logind", .serialized)
struct FamilyScenarioTests {
    /// A subscriber to everything, past its accepted line.
    func everything(_ rig: Rig) throws -> TestSubscriber { try rig.sensd.subscribe("{}") }

    @Test func newSessionGivesLogonWithEveryFieldLogindKnows() throws {
        let rig = try Rig()
        let sub = try everything(rig)
        try rig.logind.run("open c1 1000 alice 4242")
        let e = try sub.nextEvent()
        #expect(e.event == .logon && e.sessionId == "c1" && e.userName == "alice" && e.uid == 1000)
        #expect(e.leader == 4242 && e.sessionClass == "user" && e.type == "tty" && e.service == "login" && e.seat == "seat0")
        #expect(e.remote == false && e.remoteHost == nil && e.audit == nil)
        #expect(e.logonType == .interactive && e.logonTypeCode == 2)
        #expect(e.sessionStart != nil && e.host != nil && !e.host!.isEmpty)
    }

    @Test func remoteSessionIsRemoteInteractive() throws {
        let rig = try Rig(before: {
            try $0.run("add r1 1000 alice")
            try $0.run("set r1 Remote true")
        })
        let sub = try everything(rig)
        try rig.logind.run("close r1")
        let e = try sub.nextEvent()
        #expect(e.event == .logoffInitiated && e.remote == true && e.remoteHost == "192.0.2.7" && e.service == "sshd")
        #expect(e.logonType == .remoteInteractive && e.logonTypeCode == 10)
        #expect(try sub.nextEvent().event == .logoff)
    }

    @Test func seatSwitchingIsDisconnectAndReconnectOncePerRealChange() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try everything(rig)
        try rig.logind.run("set c1 Active false")
        try rig.logind.run("set c1 Active false")  // re-announced unchanged: nothing
        try rig.logind.run("set c1 Active true")
        let events = try rig.barrier(sub)
        #expect(events.map(\.event) == [.sessionDisconnect, .sessionReconnect])
        #expect(events.allSatisfy { $0.userName == "alice" && $0.sessionId == "c1" })
    }

    @Test func lockedHintIsDisplayLockAndUnlock() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try everything(rig)
        try rig.logind.run("set c1 LockedHint true")
        try rig.logind.run("set c1 LockedHint true")
        try rig.logind.run("set c1 LockedHint false")
        #expect(try rig.barrier(sub).map(\.event) == [.displayLock, .displayUnlock])
    }

    @Test func idleHintIsTheScreenSaverPair() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try everything(rig)
        try rig.logind.run("set c1 IdleHint true")
        try rig.logind.run("set c1 IdleHint false")
        #expect(try rig.barrier(sub).map(\.event) == [.startScreenSaver, .stopScreenSaver])
    }

    @Test func closingAnnouncedOnTheBusGivesLogoffInitiatedOnceAndBeforeTheLogoff() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try everything(rig)
        try rig.logind.run("set c1 State closing")
        let first = try sub.nextEvent()
        #expect(first.event == .logoffInitiated && first.sessionId == "c1")
        try rig.logind.run("set c1 State closing")
        try rig.logind.run("close c1")
        #expect(try sub.nextEvent().event == .logoff)
        #expect(try rig.barrier(sub).filter { $0.sessionId == "c1" }.isEmpty)
    }

    @Test func propertyChangesFromAnotherPeerAreIgnored() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let sub = try everything(rig)
        // The stand-in's impostor only spoofs SessionRemoved; a spoofed lock goes the same way through the
        // sender check, so here the real logind's change after the spoof must be the first event.
        try rig.logind.run("spoof-unicast c1")
        try rig.logind.run("set c1 LockedHint true")
        let e = try sub.nextEvent()
        #expect(e.event == .displayLock)
    }

    @Test func logindRestartReannouncingSessionsRepeatsNoLogon() throws {
        let rig = try Rig()
        let sub = try everything(rig)
        try rig.logind.run("open c1 1000 alice")
        #expect(try sub.nextEvent().event == .logon)
        try rig.logind.run("wait-asked c1")
        try rig.logind.run("restart")
        // The restarted logind re-announces c1 with SessionNew; sensd must see it is the same session.
        try rig.logind.run("wait-asked c1")
        #expect(try rig.barrier(sub).isEmpty)
    }

    @Test func subscriberFilteringOnOneUserReceivesOnlyThatUsersEvents() throws {
        let rig = try Rig()
        let alice = try rig.sensd.subscribe(#"{"users":["alice"]}"#)
        let logoffsOfUid1001 = try rig.sensd.subscribe(#"{"events":["Logoff"],"uids":[1001]}"#)
        let all = try everything(rig)
        for (i, (uid, name)) in [(1000, "alice"), (1001, "bob"), (1000, "alice"), (1002, "carol")].enumerated() {
            try rig.logind.run("open f\(i) \(uid) \(name)")
            try rig.logind.run("wait-asked f\(i)")
            try rig.logind.run("set f\(i) LockedHint true")
            try rig.logind.run("close f\(i)")
        }
        let everything = try all.events(16)
        #expect(Set(everything.compactMap(\.userName)) == ["alice", "bob", "carol"])
        let a = try alice.events(8)
        #expect(a.allSatisfy { $0.userName == "alice" })
        #expect(a.map(\.event) == [.logon, .displayLock, .logoffInitiated, .logoff, .logon, .displayLock, .logoffInitiated, .logoff])
        let b = try logoffsOfUid1001.nextEvent()
        #expect(b.event == .logoff && b.uid == 1001)
        // Nothing else was queued for either: stopping sensd, the next line each gets is the shutdown notice.
        rig.sensd.child.signal(SIGTERM)
        #expect(try object(try alice.nextLine())["error"] as? String == "shutting-down")
        #expect(try object(try logoffsOfUid1001.nextLine())["error"] as? String == "shutting-down")
    }

    @Test func requestGetsAnAcceptedLineEchoingWhatSensdUnderstood() throws {
        let rig = try Rig()
        let sub = try TestSubscriber(path: rig.sensd.socketPath)
        try sub.send(#"{"classes":["user","background"],"events":["Logoff","Logon"]}"# + "\n")
        let accepted = try object(try sub.nextLine())
        let request = accepted["accepted"] as? [String: Any]
        #expect(request?["classes"] as? [String] == ["background", "user"])
        #expect(request?["events"] as? [String] == ["Logoff", "Logon"])
        #expect(accepted["fromSeq"] as? Int == 1)
    }

    @Test func sensdRestartRepeatsNoLogonAndEndsSessionsThatEndedWhileItWasDown() throws {
        let rig = try Rig(before: {
            try $0.run("add c1 1000 alice")
            try $0.run("add c2 1001 bob")
        })
        let sub = try everything(rig)
        _ = try rig.barrier(sub)
        let firstRunLast = try #require(try object(try TestSubscriber(path: rig.sensd.socketPath).hello)["lastSeq"] as? Int)
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        // While sensd is down: bob logs out, carol logs in.
        try rig.logind.run("close c2")
        try rig.logind.run("open c3 1002 carol")
        rig.sensd = try SensdUnderTest(bus: rig.bus, dir: rig.dir)
        // Start-up published bob's late end and carol's Logon before anyone could connect: a client
        // resuming from the first run's last seq gets them, and no second Logon for alice.
        let after = try rig.sensd.subscribe(#"{"since":\#(firstRunLast)}"#)
        let replayed = try after.events(3)
        #expect(replayed.map(\.seq) == (1...3).map { UInt64(firstRunLast) + $0 }, "seq carries on from the previous run")
        #expect(replayed.map(\.event) == [.logoffInitiated, .logoff, .logon], "\(replayed.map { "\($0.seq) \($0.event) \($0.sessionId)" }) after \(firstRunLast)")
        #expect(replayed[0].sessionId == "c2" && replayed[0].userName == "bob" && replayed[0].observedLate == true)
        #expect(replayed[1].sessionId == "c2" && replayed[1].userName == "bob" && replayed[1].observedLate == true)
        #expect(replayed[2].sessionId == "c3" && replayed[2].userName == "carol" && replayed[2].observedLate == nil)
        try rig.logind.run("close c1")
        let events = try after.events(2)
        #expect(events.map(\.event) == [.logoffInitiated, .logoff])
        #expect(events.allSatisfy { $0.sessionId == "c1" && $0.userName == "alice" && $0.observedLate == nil })
        // A clean stop leaves a snapshot with exactly the open session.
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        let state = try String(contentsOfFile: rig.dir.path + "/state/sessions.json", encoding: .utf8)
        #expect(state.contains("carol") && !state.contains("\"bob\"") && !state.contains("\"alice\""))
        #expect(rig.sensdLog.contains("recovered state from the previous run"))
    }
}
