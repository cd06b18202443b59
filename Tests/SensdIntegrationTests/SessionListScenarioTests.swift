import Foundation
import SENSCore
import Testing
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// The lines of a `snapshot` answer, after the hello and accepted lines.
struct Snapshot {
    var seq: UInt64
    var sessions: [[String: Any]]

    init(_ sub: TestSubscriber) throws {
        #expect(try object(try sub.nextLine())["accepted"] != nil)
        let begin = try object(try sub.nextLine())
        #expect(begin["snapshot"] as? String == "begin")
        seq = UInt64(try #require(begin["seq"] as? Int))
        sessions = []
        while true {
            let o = try object(try sub.nextLine())
            if o["snapshot"] as? String == "end" {
                #expect(o["seq"] as? Int == Int(seq) && o["sessions"] as? Int == sessions.count)
                return
            }
            #expect(o["snapshot"] as? String == "session")
            sessions.append(o)
        }
    }

    var ids: Set<String> { Set(sessions.compactMap { $0["sessionId"] as? String }) }
}

@Suite("Today's systemd: service managers kept out, the open sessions, the history", .serialized)
struct SessionListScenarioTests {
    @Test func serviceManagerSessionsReachOnlySubscribersThatNameTheirClassAndStayInTheLog() throws {
        let rig = try Rig()
        let plain = try TestSubscriber(path: rig.sensd.socketPath)  // no request at all
        let filtered = try rig.sensd.subscribe(#"{"events":["Logon","Logoff"]}"#)
        let managers = try rig.sensd.subscribe(#"{"classes":["manager","user"]}"#)
        try rig.logind.run("open u1 1000 alice")
        try rig.logind.run("open-class m1 1000 alice manager")
        try rig.logind.run("open-class m2 1001 bob manager-early")
        for id in ["u1", "m1", "m2"] { try rig.logind.run("wait-asked \(id)") }
        for id in ["u1", "m1", "m2"] { try rig.logind.run("close \(id)") }
        let toPlain = try rig.barrier(plain)
        #expect(Set(toPlain.map(\.sessionId)) == ["u1"], "\(toPlain.map { "\($0.event) \($0.sessionId)" })")
        #expect(toPlain.map(\.event) == [.logon, .logoffInitiated, .logoff])
        #expect(Set(try rig.barrier(filtered).map(\.sessionId)) == ["u1"])
        let toManagers = try rig.barrier(managers)
        #expect(toManagers.filter { $0.sessionId == "m1" }.map(\.event) == [.logon, .logoffInitiated, .logoff])
        #expect(toManagers.filter { $0.sessionId == "m1" }.allSatisfy { $0.logonType == .service && $0.sessionClass == "manager" })
        #expect(toManagers.filter { $0.sessionId == "m2" }.isEmpty, "manager-early was not named")
        // Nothing is lost: the log holds them, and a replay that names the class gets them.
        let replay = try rig.sensd.subscribe(#"{"since":0,"classes":["manager-early"]}"#)
        #expect(try replay.events(3).map(\.sessionId) == ["m2", "m2", "m2"])
    }

    @Test func aSnapshotTakenDuringABurstIsTheStateAtItsSeqAndTheStreamGoesOnFromThereWithNothingMissedOrTwice() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let reference = try rig.sensd.subscribe(#"{"since":0}"#)
        for i in 0..<20 { try rig.logind.run("open k\(i) \(1000 + i % 3) user\(i % 3)") }
        for i in 0..<20 { try rig.logind.run("wait-asked k\(i)") }
        try rig.logind.run("open-class m1 1000 alice manager")
        try rig.logind.run("wait-asked m1")
        try rig.logind.run("set k3 LockedHint true")
        try rig.logind.start("burst 400 b 1001 bob")
        let snapshotter = try TestSubscriber(path: rig.sensd.socketPath)
        try snapshotter.send(#"{"snapshot":true}"# + "\n")
        let snapshot = try Snapshot(snapshotter)
        try rig.logind.finish("burst")
        for i in 0..<5 { try rig.logind.run("close k\(i)") }
        let all = try rig.barrier(reference)
        let after = try rig.barrier(snapshotter)
        // The state at the snapshot's seq, computed from the reference stream.
        var open: [String: SENSEvent] = [:]
        for e in all where e.seq <= snapshot.seq {
            if e.event == .logon { open[e.sessionId] = e }
            if e.event == .logoff { open[e.sessionId] = nil }
        }
        let expectedOpen = Set(open.values.filter { $0.sessionClass != "manager" }.map(\.sessionId))
        #expect(snapshot.ids == expectedOpen, "snapshot at \(snapshot.seq)")
        #expect(snapshot.ids.isSuperset(of: ["c1", "k0", "k19"]) && !snapshot.ids.contains("m1"))
        let k3 = try #require(snapshot.sessions.first { $0["sessionId"] as? String == "k3" })
        // Locked in the snapshot exactly when its DisplayLock came before the snapshot's seq.
        let lockedAt = try #require(all.first { $0.sessionId == "k3" && $0.event == .displayLock }).seq
        #expect(k3["locked"] as? Bool == (lockedAt <= snapshot.seq))
        #expect(k3["userName"] as? String == "user0" && k3["uid"] as? Int == 1000)
        #expect(k3["logonType"] as? String == "Interactive" && k3["state"] as? String == "online" && k3["logoffInitiated"] as? Bool == false)
        // Then exactly the events after its seq, as a default subscriber gets them.
        let expectedAfter = all.filter { $0.seq > snapshot.seq && $0.sessionClass != "manager" }
        #expect(after == expectedAfter)
        #expect(after.filter { $0.event == .logoff && $0.sessionId.hasPrefix("k") }.count == 5)
    }

    @Test func aSnapshotWithSinceOrOfTheWrongTypeIsRefusedByName() throws {
        let rig = try Rig()
        for (request, words) in [(#"{"snapshot":true,"since":0}"#, "cannot be combined"), (#"{"snapshot":1}"#, "must be true or false")] {
            let sub = try TestSubscriber(path: rig.sensd.socketPath)
            try sub.send(request + "\n")
            let error = try object(try sub.nextLine())
            #expect(error["error"] as? String == "bad-request")
            #expect((error["message"] as? String)?.contains(words) == true, "\(error)")
        }
    }

    @Test func sensctlWhoListsTheOpenSessionsAndLastTheHistoryNewestFirst() throws {
        let rig = try Rig(before: { try $0.run("add c1 1000 alice") })
        let watcher = try rig.sensd.subscribe(nil)
        try rig.logind.run("open k1 1001 bob")
        try rig.logind.run("open-class m1 1001 bob manager")
        try rig.logind.run("wait-asked k1")
        try rig.logind.run("wait-asked m1")
        try rig.logind.run("close k1")
        try rig.logind.run("open k2 1002 carol")
        try rig.logind.run("wait-asked k2")
        _ = try rig.barrier(watcher)

        let who = try Child(productsDirectory + "/sensctl", ["who", "--json", "--socket", rig.sensd.socketPath])
        var lines: [[String: Any]] = []
        while let line = try who.output.next() { lines.append(try object(line)) }
        #expect(try who.waitForExit() == 0)
        #expect(lines.first?["snapshot"] as? String == "begin" && lines.last?["snapshot"] as? String == "end")
        let open = lines.filter { $0["snapshot"] as? String == "session" }
        #expect(Set(open.compactMap { $0["sessionId"] as? String }) == ["c1", "k2"])
        let whoAll = try Child(productsDirectory + "/sensctl", ["who", "--all", "--socket", rig.sensd.socketPath])
        var table: [String] = []
        while let line = try whoAll.output.next() { table.append(line) }
        #expect(try whoAll.waitForExit() == 0)
        #expect(table.first?.hasPrefix("SESSION") == true && table.contains { $0.hasPrefix("m1 ") && $0.contains("manager") } && table.last == "3 sessions", "\(table)")

        let last = try Child(productsDirectory + "/sensctl", ["last", "--json", "--socket", rig.sensd.socketPath])
        var history: [[String: Any]] = []
        while let line = try last.output.next() { history.append(try object(line)) }
        #expect(try last.waitForExit() == 0)
        history.removeAll { $0["sessionId"] as? String == "barrier" }
        let ids = history.compactMap { $0["sessionId"] as? String }
        #expect(ids == ["k2", "k1", "c1"], "newest first, the service manager left out: \(ids)")
        let k1 = history[1]
        #expect(k1["userName"] as? String == "bob" && k1["uid"] as? Int == 1001 && k1["stillLoggedIn"] as? Bool == false)
        #expect((k1["logonTime"] as? String) != nil && (k1["logoffTime"] as? String) != nil && k1["logonFromLog"] as? Bool == true)
        #expect(history[0]["stillLoggedIn"] as? Bool == true && history[0]["logoffTime"] is NSNull)
        let onlyBob = try Child(productsDirectory + "/sensctl", ["last", "--user", "bob", "--all", "--json", "--socket", rig.sensd.socketPath])
        var bob: [String] = []
        while let line = try onlyBob.output.next() { bob.append(line) }
        #expect(try onlyBob.waitForExit() == 0)
        #expect(bob.count == 2 && bob.allSatisfy { $0.contains(#""userName":"bob""#) }, "\(bob)")
    }
}
