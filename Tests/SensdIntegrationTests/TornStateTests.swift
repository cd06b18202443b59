import Foundation
import SENSCore
import Testing
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// `sensd --check-state` on `directory`: its exit status and what it printed.
func checkState(_ directory: String) throws -> (Int32, String) {
    let child = try Child(productsDirectory + "/sensd", ["--check-state", "--state-directory", directory])
    var lines: [String] = []
    while let line = try child.output.next() { lines.append(line) }
    return (try child.waitForExit(), lines.joined(separator: "\n"))
}

@Suite("Torn state: what cannot be read never keeps sensd down", .serialized)
struct TornStateTests {
    /// The issue's recipe: the largest state file truncated with random bytes after it, every other one
    /// 64 random bytes. sensd comes up and serves, sets aside what it cannot read, and starts seqs in a
    /// range no earlier seq can be in; a resuming client is told of the gap.
    @Test func aStateDirectoryOfRandomBytesIsSetAsideAndSensdServesWithSeqsThatCannotRepeat() throws {
        let dir = try ScratchDirectory()
        let bus = try PrivateBus(in: dir)
        let logind = try LogindStandIn(bus: bus, dir: dir)
        var sensd = try SensdUnderTest(bus: bus, dir: dir)
        defer { sensd.child.signal(SIGTERM); _ = try? sensd.child.waitForExit() }
        let first = try sensd.subscribe(#"{"classes":["*"]}"#)
        try logind.run("open k1 1000 alice")
        try logind.run("wait-asked k1")
        try logind.run("burst 20 a 1001 bob")
        let seen = try first.events(61)
        let highest = seen.map(\.seq).max()!
        // A clean stop leaves every kind of state file there is.
        sensd.child.signal(SIGTERM)
        _ = try sensd.child.waitForExit()
        let healthy = try checkState(dir.path + "/state")
        #expect(healthy.0 == 0, "\(healthy.1)")

        let state = dir.path + "/state"
        let files = try FileManager.default.subpathsOfDirectory(atPath: state).filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: state + "/" + $0, isDirectory: &isDir) && !isDir.boolValue
        }
        let sizes = try files.map { ($0, try FileManager.default.attributesOfItem(atPath: state + "/" + $0)[.size] as! Int) }
        let largest = sizes.max { $0.1 < $1.1 }!.0
        #expect(files.contains("format") && files.contains("sequence.json") && files.contains("sessions.json"), "\(files)")
        for file in files {
            let path = state + "/" + file
            if file == largest {
                try shell("truncate -s \(sizes.first { $0.0 == file }!.1 / 2) \(path) && head -c 300 /dev/urandom >> \(path)")
            } else {
                try shell("head -c 64 /dev/urandom > \(path)")
            }
        }
        let (status, report) = try checkState(state)
        #expect(status == 1 && report.contains("DAMAGED  format") && report.contains("DAMAGED  sequence.json"), "\(report)")

        sensd = try SensdUnderTest(bus: bus, dir: dir)
        let log = (try? String(contentsOfFile: dir.path + "/sensd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("the state format file is damaged") && log.contains("the sequence reservation is missing or damaged"), "\(log.suffix(3000))")
        // A client that resumes after what it saw is told what is missing, and gets what comes next.
        let resumed = try sensd.subscribe(#"{"since":\#(highest),"classes":["*"]}"#)
        try logind.run("open k2 1002 carol")
        try logind.run("wait-asked k2")
        try logind.run("close k2")
        var lines: [[String: Any]] = []
        while lines.filter({ $0["sessionId"] as? String == "k2" }).count < 3 { lines.append(try object(try resumed.nextLine())) }
        let gap = lines.first { $0["gap"] != nil }
        let after = lines.compactMap { $0["seq"] as? Int }.map(UInt64.init)
        #expect(after.allSatisfy { $0 > highest + 65_536 }, "seqs after the damage: \(after), before: up to \(highest)")
        #expect((gap?["firstMissing"] as? Int).map(UInt64.init) == highest + 1, "\(lines)")
        // k1 is remembered by nothing that can be read: it ends as a session sensd learns afresh, never silently.
        try logind.run("close k1")
        let k1 = try resumed.events(2)
        #expect(k1.map(\.sessionId) == ["k1", "k1"] && k1.last?.event == .logoff && k1.last?.userName == "alice")
        // The administrator's view: what was set aside, by name.
        let (_, afterStart) = try checkState(state)
        #expect(afterStart.contains("ASIDE    format.damaged") && afterStart.contains("ASIDE    sequence.json.damaged"), "\(afterStart)")
    }
}
