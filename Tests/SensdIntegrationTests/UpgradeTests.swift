import Foundation
import SENSCore
import Testing
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// State directories written by released versions (Tests/Fixtures/README.md says how each was made).
func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
}

@Suite("Upgrades: state written by earlier releases", .serialized)
struct UpgradeTests {
    @Test func theStateThatVersion010LeftIsReadWithItsSeqsItsEventLinesAndItsOpenSessions() throws {
        let dir = try ScratchDirectory()
        try shell("cp -a \(fixture("state-0.1.0")) \(dir.path)/state")
        let logged = try String(contentsOfFile: try #require(try Syscall.listDirectory(dir.path + "/state/log").filter { $0.hasSuffix(".log") }.sorted().first.map { dir.path + "/state/log/" + $0 }), encoding: .utf8)
            .split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
        #expect(logged.count == 68)
        let bus = try PrivateBus(in: dir)
        let logind = try LogindStandIn(bus: bus, dir: dir)
        _ = logind
        let sensd = try SensdUnderTest(bus: bus, dir: dir)
        defer { sensd.child.signal(SIGTERM); _ = try? sensd.child.waitForExit() }
        // Every event 0.1.0 logged, line for line, then the ends of the three sessions it left open (they are
        // gone from this logind): late, with their users, numbered right after 0.1.0's last seq.
        let replay = try sensd.subscribe(#"{"since":0,"classes":["*"],"live":false}"#)
        var lines: [String] = []
        while let line = try replay.nextLine(), !line.hasPrefix(#"{"end""#) { lines.append(line) }
        #expect(Array(lines.prefix(68)) == logged, "the old lines, unchanged")
        let ends = try lines.dropFirst(68).map { try JSONDecoder().decode(SENSEvent.self, from: Data($0.utf8)) }
        #expect(ends.map(\.seq) == (69...74).map(UInt64.init))
        #expect(Set(ends.filter { $0.event == .logoff }.map { "\($0.sessionId) \($0.userName ?? "?")" }) == ["c2 carol", "c3 alice", "c4 dave"])
        #expect(ends.allSatisfy { $0.observedLate == true && $0.reason == "sensd-down" })
        #expect(!lines.dropFirst(68).contains { $0.contains(#""event":"Logon""#) }, "no second Logon")
        #expect(try String(contentsOfFile: dir.path + "/state/format", encoding: .utf8) == "1\n")
    }

    @Test func stateInALayoutFromANewerVersionIsRefusedByNameAndLeftAlone() throws {
        let dir = try ScratchDirectory()
        try shell("cp -a \(fixture("state-0.1.0")) \(dir.path)/state && echo 2 > \(dir.path)/state/format")
        let before = try shell("cd \(dir.path)/state && find . -type f | sort | xargs md5sum > \(dir.path)/before.sum")
        #expect(before == 0)
        let bus = try PrivateBus(in: dir)
        let child = try Child(productsDirectory + "/sensd", ["--socket", dir.path + "/s.sock", "--state-directory", dir.path + "/state", "--session-files", "no"],
                              environment: ["DBUS_SYSTEM_BUS_ADDRESS": bus.address], stderrPath: dir.path + "/sensd.log")
        #expect(try child.waitForExit() == 1)
        let said = try String(contentsOfFile: dir.path + "/sensd.log", encoding: .utf8)
        #expect(said.contains("written by a newer sensd (state format 2") && said.contains("refusing to start"), "\(said)")
        #expect(try shell("cd \(dir.path)/state && find . -type f | sort | xargs md5sum | cmp - \(dir.path)/before.sum") == 0, "nothing was changed")
    }
}
