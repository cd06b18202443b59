import Foundation
import SENSCore
import Testing
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command to its end; its exit status.
@discardableResult
func shell(_ command: String) throws -> Int32 {
    let child = try Child("/bin/sh", ["-c", command])
    while try child.output.next() != nil {}
    return try child.waitForExit()
}

/// A small tmpfs at `path` (the tests run as root, as CI does), unmounted when the value goes away.
final class SmallFileSystem {
    let path: String
    init(at path: String, kib: Int) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard try shell("mount -t tmpfs -o size=\(kib)k,mode=0755 sensd-test \(path)") == 0 else {
            throw HarnessError("cannot mount a tmpfs at \(path): the disk-full scenarios need root")
        }
    }

    /// Takes every free byte with a filler file.
    func fill() throws {
        try shell("dd if=/dev/zero of=\(path)/filler bs=4k 2>/dev/null; sync")
    }

    func free() throws {
        try shell("rm -f \(path)/filler")
    }

    deinit { _ = try? shell("umount -l \(path)") }
}

@Suite("Hostile conditions: a full disk, half-closed requests", .serialized)
struct HostileConditionsTests {
    @Test func aFullStateFileSystemNeverMakesSeqsRepeatAndSensdStartsOnItAndLogsAgainWhenThereIsRoom() throws {
        let dir = try ScratchDirectory()
        let disk = try SmallFileSystem(at: dir.path + "/state", kib: 1024)
        let bus = try PrivateBus(in: dir)
        let logind = try LogindStandIn(bus: bus, dir: dir)
        var sensd = try SensdUnderTest(bus: bus, dir: dir)
        defer { sensd.child.signal(SIGTERM); _ = try? sensd.child.waitForExit() }
        let first = try sensd.subscribe(nil)
        try logind.run("burst 10 a 1000 alice")
        try logind.run("open k1 1000 alice")
        try logind.run("wait-asked k1")
        var seen = try first.events(31)
        try disk.fill()
        // The log cannot take these; subscribers get them all the same: k1 ends, k2 begins, a burst.
        try logind.run("close k1")
        try logind.run("open k2 1001 bob")
        try logind.run("wait-asked k2")
        try logind.run("burst 50 b 1001 bob")
        seen += try first.events(153)
        #expect(seen.map(\.seq) == (1...184).map(UInt64.init))
        // A crash while the disk is full, and a start on the full disk.
        sensd.child.signal(SIGKILL)
        _ = try sensd.child.waitForExit()
        sensd = try SensdUnderTest(bus: bus, dir: dir)
        let log = (try? String(contentsOfFile: dir.path + "/sensd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("handed out events it could not log"), "\(log.suffix(3000))")
        #expect(!log.contains("cannot record the events handed out"), "\(log.suffix(3000))")
        let second = try sensd.subscribe(nil)
        try logind.run("burst 5 c 1002 carol")
        let after = try second.events(15)
        #expect(after.allSatisfy { $0.seq > 184 }, "no seq given out before is given out again: \(after.map(\.seq))")
        #expect(log.contains("sensd knows them from its record of them"))
        // Another crash, and room again before the next start: what that start reports is logged now, so the
        // log shows whether anything handed out before was handed out again (k1's end, k2's beginning).
        sensd.child.signal(SIGKILL)
        _ = try sensd.child.waitForExit()
        try disk.free()
        sensd = try SensdUnderTest(bus: bus, dir: dir)
        let third = try sensd.subscribe(nil)
        try logind.run("close k2")
        let k2 = try third.events(2)
        #expect(k2.map(\.event) == [.logoffInitiated, .logoff] && k2.allSatisfy { $0.sessionId == "k2" && $0.userName == "bob" && $0.observedLate == nil })
        let history = try sensd.subscribe(#"{"since":184,"classes":["*"],"live":false}"#)
        var since: [SENSEvent] = []
        while let line = try history.nextLine(), !line.hasPrefix(#"{"end""#) {
            if let e = try? JSONDecoder().decode(SENSEvent.self, from: Data(line.utf8)) { since.append(e) }
        }
        #expect(since.filter { $0.sessionId == "k1" }.isEmpty, "k1 ended again: \(since.map { "\($0.seq) \($0.event) \($0.sessionId)" })")
        #expect(since.filter { $0.sessionId == "k2" }.map(\.event) == [.logoffInitiated, .logoff], "k2 began again")
        // (What the second run could log in the few bytes a crash frees may be there; it is not a repeat.)
        #expect(Set(since.map(\.seq)).count == since.count, "a seq twice")
        // Logged and replayable.
        try logind.run("burst 5 d 1003 dave")
        let logged = try third.events(15)
        let replay = try sensd.subscribe(#"{"since":\#(logged[0].seq - 1)}"#)
        #expect(try replay.events(15) == logged)
    }

    /// A 256 KiB state file system (smaller than the record of events handed out without the log), full,
    /// sensd killed and restarted on it, then freed: a resuming client gets what ends afterwards, live and
    /// from the log (issue 25: it got nothing).
    @Test func afterAFullDiskIsFreedAResumingClientGetsEveryLaterEventLiveAndFromTheLog() throws {
        let dir = try ScratchDirectory()
        let disk = try SmallFileSystem(at: dir.path + "/state", kib: 256)
        let bus = try PrivateBus(in: dir)
        let logind = try LogindStandIn(bus: bus, dir: dir)
        var sensd = try SensdUnderTest(bus: bus, dir: dir)
        defer { sensd.child.signal(SIGTERM); _ = try? sensd.child.waitForExit() }
        let first = try sensd.subscribe(#"{"events":["Logoff"],"since":0}"#)
        let log = { (try? String(contentsOfFile: dir.path + "/sensd.log", encoding: .utf8)) ?? "" }
        try logind.run("burst 3 a 1000 alice")
        var last = try first.events(3).last!.seq
        try disk.fill()
        try logind.run("burst 3 b 1001 bob")
        last = try first.events(3).last!.seq
        sensd.child.signal(SIGKILL)
        _ = try sensd.child.waitForExit()
        sensd = try SensdUnderTest(bus: bus, dir: dir)
        let resumed = try sensd.subscribe(#"{"events":["Logoff"],"since":\#(last)}"#)
        try logind.run("burst 2 c 1002 carol")
        let whileFull = try resumed.events(2)
        #expect(whileFull.map(\.sessionId) == ["c0", "c1"] && whileFull.allSatisfy { $0.seq > last }, "\(whileFull)")
        try disk.free()
        try logind.run("burst 3 d 1003 dave")
        let afterFree = try resumed.events(3)
        #expect(afterFree.map(\.sessionId) == ["d0", "d1", "d2"], "\(afterFree)\n\(log().suffix(4000))")
        // And from the log, for a client that resumes now.
        let replay = try sensd.subscribe(#"{"events":["Logoff"],"since":\#(whileFull.last!.seq)}"#)
        #expect(try replay.events(3) == afterFree)
    }

    @Test func aRequestEndedByTheEndOfInputWithoutANewlineCounts() throws {
        let rig = try Rig()
        let sub = try TestSubscriber(path: rig.sensd.socketPath)
        try sub.send(#"{"events":["Logoff"],"users":["bob"]}"#)
        Syscall.shutdownWrite(sub.fd)
        let accepted = try object(try sub.nextLine())
        #expect((accepted["accepted"] as? [String: Any])?["users"] as? [String] == ["bob"])
        for (id, uid, name) in [("c1", 1000, "alice"), ("c2", 1001, "bob")] {
            try rig.logind.run("open \(id) \(uid) \(name)")
            try rig.logind.run("wait-asked \(id)")
            try rig.logind.run("close \(id)")
        }
        let e = try sub.nextEvent()
        #expect(e.sessionId == "c2" && e.event == .logoff)
    }

    @Test func aSecondRequestEndedByTheEndOfInputIsRefusedLikeAnyOther() throws {
        let rig = try Rig()
        let sub = try TestSubscriber(path: rig.sensd.socketPath)
        try sub.send("{}\n{}")
        Syscall.shutdownWrite(sub.fd)
        var lines: [[String: Any]] = []
        while let line = try sub.nextLine() { lines.append(try object(line)) }
        // Its accepted line may or may not have gone out before the second request was read; the error is last.
        #expect(lines.last?["error"] as? String == "bad-request")
        #expect((lines.last?["message"] as? String)?.contains("only one request line") == true, "\(lines)")
    }

    /// sensd run by hand with `--socket PATH`: its exit status and what it said.
    func runByHand(_ dir: ScratchDirectory, bus: PrivateBus, socket: String) throws -> (Int32, String) {
        let log = dir.path + "/by-hand.log"
        let child = try Child(productsDirectory + "/sensd", ["--socket", socket, "--state-directory", "none", "--session-files", "no"],
                              environment: ["DBUS_SYSTEM_BUS_ADDRESS": bus.address], stderrPath: log)
        let status = try child.waitForExit()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    @Test func aSocketIsNeverCreatedWhereOthersCouldReplaceItNorThroughASymlink() throws {
        let dir = try ScratchDirectory()
        let bus = try PrivateBus(in: dir)
        // A directory anyone may write to, without the sticky bit.
        try shell("mkdir -m 0777 \(dir.path)/open && chmod 0777 \(dir.path)/open")
        let (status, said) = try runByHand(dir, bus: bus, socket: dir.path + "/open/s.sock")
        #expect(status == 1 && said.contains("other users can write there"), "\(said)")
        // A sticky directory (like /tmp): another user's symlink at the path is refused and left alone...
        try shell("mkdir -m 1777 \(dir.path)/sticky && chmod 1777 \(dir.path)/sticky && echo secret > \(dir.path)/victim && chmod 0600 \(dir.path)/victim")
        try shell("ln -s \(dir.path)/victim \(dir.path)/sticky/s.sock && chown -h nobody \(dir.path)/sticky/s.sock")
        let (refused, why) = try runByHand(dir, bus: bus, socket: dir.path + "/sticky/s.sock")
        #expect(refused == 1 && why.contains("belongs to uid"), "\(why)")
        // ...and sensd's own stale symlink is removed, never followed: the victim keeps its mode.
        try shell("chown -h root \(dir.path)/sticky/s.sock")
        let sensd = try SensdUnderTest(bus: bus, dir: dir, arguments: ["--socket", dir.path + "/sticky/s.sock", "--socket-mode", "0660"])
        defer { sensd.child.signal(SIGTERM); _ = try? sensd.child.waitForExit() }
        var st = stat()
        #expect(lstat(dir.path + "/sticky/s.sock", &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK && st.st_mode & 0o777 == 0o660)
        #expect(stat(dir.path + "/victim", &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test func anOrdinaryUserGetsAtMostItsShareAndRootStillGetsIn() throws {
        let rig = try Rig(sensdArguments: ["--max-subscribers", "8", "--max-per-user", "3", "--reserved-for-administrators", "2"])
        chmod(rig.dir.path, 0o755)
        // nobody, with no groups, opens 5 connections and reports the first line of each.
        let script = """
            import socket,sys,json
            out=[]
            held=[]
            for i in range(5):
                s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
                out.append(json.loads(s.makefile().readline()))
            print(json.dumps(out), flush=True)
            sys.stdin.readline()
            """
        let nobody = try Child("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c", script, rig.sensd.socketPath])
        let lines = try JSONSerialization.jsonObject(with: Data(try #require(try nobody.output.next()).utf8)) as! [[String: Any]]
        #expect(lines.filter { $0["hello"] != nil }.count == 3)
        let refused = lines.filter { $0["error"] as? String == "too-many-subscribers" }
        #expect(refused.count == 2 && refused.allSatisfy { $0["limit"] as? Int == 3 && ($0["message"] as? String)?.contains("uid 65534") == true })
        // Root takes the rest, the reserved slots included.
        var root: [TestSubscriber] = []
        for _ in 0..<5 { root.append(try TestSubscriber(path: rig.sensd.socketPath)) }
        #expect(root.allSatisfy { $0.hello.contains("\"hello\"") })
        let full = try TestSubscriber(path: rig.sensd.socketPath, expectHello: false)
        #expect(try object(try full.nextLine())["limit"] as? Int == 8)
        try nobody.send("")
        _ = try nobody.waitForExit()
    }

    /// Every way a connection can end gives its descriptor back: served and closed by the client, refused at
    /// the limit, a bad request, a stats request, a resume, and a reader cut off for falling behind.
    @Test func descriptorsComeBackAfterEveryKindOfConnectionHasGone() throws {
        let rig = try Rig(sensdArguments: ["--max-subscribers", "20", "--queue-limit", "16"])
        func open() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(rig.sensd.child.pid)/fd").count
        }
        let watcher = try rig.sensd.subscribe()
        _ = try rig.barrier(watcher)
        let baseline = try open()
        for _ in 0..<3 {
            var held: [TestSubscriber] = []
            // sensd has seen the last round's closes (the watcher and the stats connection remain); then,
            // with the watcher, every place there is: each has its hello, so sensd holds each.
            try eventually("sensd to see the closes") { try counters(rig)["subscribers"] as? Int == 2 }
            for _ in 0..<19 { held.append(try TestSubscriber(path: rig.sensd.socketPath)) }
            #expect(held.allSatisfy { $0.hello.contains("\"hello\"") })
            #expect(try open() >= baseline + 19, "the connections are held")
            for s in held.prefix(4) { try s.send("not json\n") }
            for s in held.dropFirst(4).prefix(4) { try s.send(#"{"stats":true}"# + "\n") }
            for s in held.dropFirst(8).prefix(4) { try s.send(#"{"since":0}"# + "\n") }
            // The stalled: they never read while a burst larger than their queue goes by.
            for s in held.dropFirst(12).prefix(4) { try s.send(#"{"events":["Logon","Logoff","LogoffInitiated"]}"# + "\n") }
            try rig.logind.run("burst 400 d 1000 alice")
            _ = try watcher.events(400)
            held.removeAll()
        }
        // One past the limit while the last are still held: refused, and its descriptor closed at once. First
        // sensd must have seen the closes above (the watcher and the stats connection are what remain).
        try eventually("sensd to see the closes") { try counters(rig)["subscribers"] as? Int == 2 }
        var last: [TestSubscriber] = []
        for _ in 0..<19 { last.append(try TestSubscriber(path: rig.sensd.socketPath)) }
        #expect(last.allSatisfy { $0.hello.contains("\"hello\"") })
        let refused = try TestSubscriber(path: rig.sensd.socketPath, expectHello: false)
        #expect(try refused.nextLine()?.contains("too-many-subscribers") == true)
        refused.closeNow()
        last.removeAll()
        try eventually("sensd's descriptors to come back to \(baseline)") { try open() == baseline }
        let overflowed = try counters(rig)["overflowed"] as? Int
        // The four stalled readers of each round at least; those that sent no request and never read are cut
        // off too, and so may be a replay that caught up before the burst.
        #expect((overflowed ?? 0) >= 12, "each round's stalled readers were cut off: \(String(describing: overflowed))")
    }
}
