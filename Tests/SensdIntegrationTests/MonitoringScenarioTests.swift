import Foundation
import SENSClient
import Testing
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to its end; returns its exit status and standard output.
func runToEnd(_ program: String, _ arguments: [String], dir: ScratchDirectory) throws -> (status: Int32, output: String) {
    let child = try Child(productsDirectory + "/" + program, arguments, stderrPath: dir.path + "/\(program).err")
    var lines: [String] = []
    while let line = try child.output.next() { lines.append(line) }
    return (try child.waitForExit(), lines.joined(separator: "\n"))
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; the whole response, head and body.
func httpGet(port: UInt16, path: String = "/metrics", method: String = "GET") throws -> String {
    let fd = try tcpConnect(port: port)
    defer { close(fd) }
    try Syscall.writeAll(fd, Array("\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
    let channel = LineChannel(fd: fd)
    var lines: [String] = []
    while let line = try channel.next() { lines.append(line.hasSuffix("\r") ? String(line.dropLast()) : line) }
    return lines.joined(separator: "\n")
}

func tcpConnect(port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let r = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard r == 0 else {
        close(fd)
        throw HarnessError("connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
    }
    return fd
}

/// The value of the one sample named `series` in a Prometheus exposition.
func metric(_ text: String, _ series: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
}

/// Waits for `condition`, checked again whenever it is false; the deadline only guards against a hang.
func eventually(_ what: String, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(patience)
    while try !condition() {
        guard Date() < deadline else { throw HarnessError("timed out waiting for \(what)") }
        usleep(20_000)
    }
}

@Suite("Who is logged in, for monitoring: stats, sensctl users, the check plugin, the exporter", .serialized, .timeLimit(.minutes(2)))
struct MonitoringScenarioTests {
    @Test func sensctlUsersNamesEachSessionsUserOnOneLine() throws {
        let rig = try Rig()
        try rig.logind.run("open 1 1001 bob")
        try rig.logind.run("open 2 1000 alice")
        try rig.logind.run("open 3 1000 alice")
        try rig.logind.run("open-class 4 1000 alice manager")
        try rig.logind.run("wait-asked 4")
        try eventually("sensd to know four sessions") {
            let stats = try runToEnd("sensctl", ["position", "--json", "--socket", rig.sensd.socketPath], dir: rig.dir)
            return stats.output.contains(#""lastSeq":4"#)
        }
        let all = try runToEnd("sensctl", ["users", "--socket", rig.sensd.socketPath], dir: rig.dir)
        #expect(all.status == 0)
        #expect(all.output == "alice alice bob", "service managers are not logons")
        #expect(try runToEnd("sensctl", ["users", "--unique", "--socket", rig.sensd.socketPath], dir: rig.dir).output == "alice bob")
    }

    @Test func theCheckPluginFollowsTheGuidelinesAndIsUnknownWithoutSensd() throws {
        let rig = try Rig()
        let watcher = try rig.sensd.subscribe()
        try rig.logind.run("open 1 1001 bob")
        try rig.logind.run("open 2 1000 alice")
        try rig.logind.run("open 3 1000 alice")
        try rig.logind.run("set 3 Remote true")
        _ = try rig.barrier(watcher)
        let socket = ["--socket", rig.sensd.socketPath]
        let warning = try runToEnd("sensctl", ["check", "users", "-w", "1", "-c", "5"] + socket, dir: rig.dir)
        #expect(warning.status == 1)
        #expect(warning.output == "USERS WARNING - 2 users logged in, 3 sessions (alice, bob) | users=2;1;5;0; sessions=3;;;0;")
        let critical = try runToEnd("sensctl", ["check", "users", "--count", "sessions", "-c", "2"] + socket, dir: rig.dir)
        #expect(critical.status == 2)
        #expect(critical.output.hasPrefix("USERS CRITICAL - 2 users logged in, 3 sessions"), "\(critical.output)")
        let ok = try runToEnd("sensctl", ["check", "users", "--user", "bob", "-w", "1"] + socket, dir: rig.dir)
        #expect(ok.status == 0)
        #expect(ok.output.hasPrefix("USERS OK - 1 user logged in, 1 session (bob)"), "\(ok.output)")
        let bad = try runToEnd("sensctl", ["check", "users", "-w", "ten"] + socket, dir: rig.dir)
        #expect(bad.status == 3)
        #expect(bad.output.hasPrefix("USERS UNKNOWN - threshold 'ten' is not a range"), "\(bad.output)")
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        let away = try runToEnd("sensctl", ["check", "users"] + socket, dir: rig.dir)
        #expect(away.status == 3)
        #expect(away.output.hasPrefix("USERS UNKNOWN - cannot ask sensd: cannot connect to \(rig.sensd.socketPath)"), "\(away.output)")
    }

    /// Starts the exporter on a port the kernel picks; returns it with that port.
    func exporter(_ rig: Rig, _ arguments: [String] = []) throws -> (Child, UInt16) {
        let log = rig.dir.path + "/exporter.log"
        let child = try Child(productsDirectory + "/sensd-exporter", ["--socket", rig.sensd.socketPath, "--listen", "127.0.0.1:0"] + arguments, stderrPath: log)
        var port: UInt16?
        try eventually("the exporter to listen") {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            port = text.split(separator: "\n").compactMap { line in
                line.range(of: "on port ").flatMap { UInt16(line[$0.upperBound...].prefix { $0.isNumber }) }
            }.first
            return port != nil
        }
        return (child, port!)
    }

    @Test func theExporterServesTheSessionsAndCountsTheEventsItSaw() throws {
        let rig = try Rig()
        try rig.logind.run("open 1 1000 alice")
        let (exporter, port) = try exporter(rig)
        _ = exporter
        // From here on, every event reaches the exporter's stream.
        try eventually("the exporter's stream") { metric(try httpGet(port: port), "sensd_exporter_stream_connected") == 1 }
        try rig.logind.run("open 2 1001 bob")
        try rig.logind.run("wait-asked 2")
        try rig.logind.run("set 2 LockedHint true")
        try rig.logind.run("open c3 1002 carol")
        try rig.logind.run("wait-asked c3")
        try rig.logind.run("close c3")
        var page = ""
        // A scrape asks sensd for its snapshot before it reads the counters the stream keeps: the one that
        // first counts the Logoff may have a snapshot from just before it. The next one has both.
        try eventually("the Logoff to be counted and gone from the sessions") {
            page = try httpGet(port: port)
            return metric(page, #"sensd_events_total{event="Logoff"}"#) == 1 && metric(page, "sensd_users") == 2
        }
        #expect(page.hasPrefix("HTTP/1.1 200 OK"))
        #expect(page.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(metric(page, "sensd_up") == 1)
        #expect(metric(page, "sensd_users") == 2)
        #expect(metric(page, #"sensd_events_total{event="Logon"}"#) == 2, "only what happened after the exporter started")
        #expect(metric(page, #"sensd_events_total{event="DisplayLock"}"#) == 1)
        let locked = page.split(separator: "\n").filter { $0.hasPrefix("sensd_sessions{") && $0.contains(#"locked="true""#) }
        #expect(locked.count == 1 && locked.first?.hasSuffix(" 1.0") == true, "\(locked)")
        #expect(metric(page, "sensd_log_written{state=\"written\"}") == 1)
        #expect(page.contains("sensd_session_duration_seconds_count"))
        // HEAD, another path, another method.
        let head = try httpGet(port: port, method: "HEAD")
        #expect(head.hasPrefix("HTTP/1.1 200 OK") && !head.contains("sensd_up"), "\(head)")
        #expect(try httpGet(port: port, path: "/other").hasPrefix("HTTP/1.1 404"))
        #expect(try httpGet(port: port, method: "POST").hasPrefix("HTTP/1.1 405"))
        // sensd gone: still an answer, sensd_up 0.
        rig.sensd.child.signal(SIGTERM)
        _ = try rig.sensd.child.waitForExit()
        let down = try httpGet(port: port)
        #expect(down.hasPrefix("HTTP/1.1 200"))
        #expect(metric(down, "sensd_up") == 0)
    }

    @Test func aFloodOfConnectionsToTheExporterIsBoundedAndSensdDoesNotNotice() throws {
        let rig = try Rig()
        let watcher = try rig.sensd.subscribe()
        let (exporter, port) = try exporter(rig)
        _ = exporter
        // Connections that never send a request, past the exporter's limit of 64.
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<64 { held.append(try tcpConnect(port: port)) }
        try eventually("a connection past the limit to be refused by name") {
            let answer = try httpGet(port: port)
            return answer.hasPrefix("HTTP/1.1 503") && answer.contains("limit 64")
        }
        // sensd goes on: its subscriber gets the next Logoff.
        try rig.logind.run("open 1 1000 alice")
        try rig.logind.run("close 1")
        #expect(try watcher.nextEvent().sessionId == "1")
        held.forEach { close($0) }
        held = []
        try eventually("the exporter to serve again") { try httpGet(port: port).hasPrefix("HTTP/1.1 200") }
        // A request head that never ends is cut at its limit, and told so.
        let big = try tcpConnect(port: port)
        defer { close(big) }
        try Syscall.writeAll(big, Array(("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000)).utf8))
        let answer = LineChannel(fd: big)
        #expect(try answer.next()?.hasPrefix("HTTP/1.1 431") == true)
    }

    @Test func theTextfileModeWritesAWholeFileForNodeExporter() throws {
        let rig = try Rig()
        try rig.logind.run("open 1 1000 alice")
        let path = rig.dir.path + "/sensd.prom"
        let once = try runToEnd("sensd-exporter", ["--socket", rig.sensd.socketPath, "--textfile", path, "--once"], dir: rig.dir)
        #expect(once.status == 0)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(metric(text, "sensd_users") == 1)
        #expect(metric(text, "sensd_up") == 1)
        // Following: rewritten after each event.
        let follower = try Child(productsDirectory + "/sensd-exporter", ["--socket", rig.sensd.socketPath, "--textfile", path], stderrPath: rig.dir.path + "/follow.err")
        _ = follower
        func written() -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        try eventually("the follower's stream") { metric(written(), "sensd_exporter_stream_connected") == 1 }
        try rig.logind.run("open 2 1001 bob")
        try eventually("the follower to write bob's Logon") {
            metric(written(), #"sensd_events_total{event="Logon"}"#) == 1 && metric(written(), "sensd_users") == 2
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: rig.dir.path).filter { $0.hasPrefix("sensd.prom.") }
        #expect(files.isEmpty, "no temporary file left: \(files)")
    }
}
