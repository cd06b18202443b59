import CLinux
import Foundation
import SENSCore
import Testing
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// How long any wait may last before the test fails. A guard against hangs, not a timing assertion.
let patience: Double = 20

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The directory holding the built products (sensd, sensctl, logind-standin): beside this test binary.
let productsDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["SENSD_PRODUCTS"] { return dir }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // swift test runs <products>/sensdPackageTests.xctest; step out of a bundle directory if there is one.
    while url.pathExtension == "xctest" { url.deleteLastPathComponent() }
    return url.path
}()

/// A scratch directory removed when the value goes away.
final class ScratchDirectory {
    let path: String
    init() throws {
        var template = Array("/tmp/sensd-test-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
        path = String(cString: p)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Reads lines from a descriptor with a deadline.
final class LineChannel {
    let fd: Int32
    private var reader = LineReader(limit: 1 << 20)
    private var lines: [String] = []
    private(set) var atEnd = false

    init(fd: Int32) { self.fd = fd }

    /// The next line, or nil at end of stream. Throws if nothing arrives within `timeout` seconds.
    func next(timeout: Double = patience) throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while lines.isEmpty {
            if atEnd { return nil }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw HarnessError("no line within \(timeout) s") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left, 1) * 1000))
            if r <= 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 {
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                atEnd = true
                continue
            }
            for outcome in buffer.withUnsafeBytes({ reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) {
                if case .line(let l) = outcome { lines.append(String(decoding: l, as: UTF8.self)) }
            }
        }
        return lines.removeFirst()
    }

}

/// O_CLOEXEC at creation matters here because tests spawn children from several threads at once, and a pipe
/// end leaked into another test's child would keep it open.
func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 { clinux_pipe2(fds, flags) }

/// A child process with its stdin and stdout as pipes; killed when the value goes away.
///
/// Spawned and reaped here with posix_spawn and waitpid rather than Foundation's Process, whose monitor thread
/// blocks in wait4 on one child and deadlocks tests that run processes in parallel (seen in CI).
final class Child {
    let pid: pid_t
    let output: LineChannel
    private let stdinFD: Int32
    private let stdoutFD: Int32
    private(set) var exitStatus: Int32?
    let name: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stderrPath: String? = nil) throws {
        name = (executable as NSString).lastPathComponent
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe2(&toChild, O_CLOEXEC) == 0, pipe2(&fromChild, O_CLOEXEC) == 0 else { throw HarnessError("pipe2 failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        if let stderrPath {
            posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        close(toChild[0])
        close(fromChild[1])
        guard r == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw HarnessError("cannot start \(executable): \(String(cString: strerror(r)))")
        }
        self.pid = pid
        stdinFD = toChild[1]
        stdoutFD = fromChild[0]
        output = LineChannel(fd: stdoutFD)
    }

    func send(_ line: String) throws {
        try Syscall.writeAll(stdinFD, Array((line + "\n").utf8))
    }

    func signal(_ sig: Int32) {
        if exitStatus == nil { kill(pid, sig) }
    }

    var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit code (or 128 + the signal), once the child has exited.
    @discardableResult
    private func reap(blocking: Bool) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let r = waitpid(pid, &status, blocking ? 0 : WNOHANG)
        guard r == pid else { return nil }
        let exited = status & 0x7f == 0
        exitStatus = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return exitStatus
    }

    /// Waits for the process to exit and returns its status.
    func waitForExit(timeout: Double = patience) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = reap(blocking: false) { return status }
            guard Date() < deadline else { throw HarnessError("\(name) did not exit within \(timeout) s") }
            usleep(10_000)  // waitpid has no timeout; this polls a child's state, it synchronises nothing
        }
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            reap(blocking: true)
        }
        close(stdinFD)
        close(stdoutFD)
    }
}

/// A private dbus-daemon whose policy lets anyone own any name: the stand-in plays logind on it.
final class PrivateBus {
    let address: String
    private let child: Child

    init(in dir: ScratchDirectory) throws {
        let config = """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <listen>unix:path=\(dir.path)/bus</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_type="method_call"/><allow send_type="signal"/>
                <allow send_type="method_return"/><allow send_type="error"/>
                <allow receive_type="method_call"/><allow receive_type="signal"/>
                <allow receive_type="method_return"/><allow receive_type="error"/>
              </policy>
            </busconfig>
            """
        try config.write(toFile: dir.path + "/bus.conf", atomically: true, encoding: .utf8)
        child = try Child("/usr/bin/dbus-daemon", ["--config-file=\(dir.path)/bus.conf", "--nofork", "--print-address=1"], stderrPath: dir.path + "/dbus.log")
        // dbus-daemon prints its address once it is listening.
        guard let line = try child.output.next(), line.hasPrefix("unix:") else { throw HarnessError("dbus-daemon did not start") }
        address = line
    }

    /// Kills the bus daemon outright (it ignores SIGTERM), as a crash would.
    func kill() throws {
        child.signal(SIGKILL)
        _ = try child.waitForExit()
    }
}

/// The scripted logind (Sources/logind-standin), driven line by line.
final class LogindStandIn {
    private let child: Child
    let uniqueName: String

    init(bus: PrivateBus, dir: ScratchDirectory) throws {
        child = try Child(productsDirectory + "/logind-standin", [], environment: ["DBUS_SYSTEM_BUS_ADDRESS": bus.address], stderrPath: dir.path + "/standin.log")
        guard let ready = try child.output.next(), ready.hasPrefix("ready ") else { throw HarnessError("stand-in did not start") }
        uniqueName = String(ready.dropFirst(6))
    }

    /// Runs a command and returns once the stand-in has done it.
    @discardableResult
    func run(_ command: String) throws -> String {
        try start(command)
        return try finish(command)
    }

    /// Sends a command without waiting, so the test can read subscribers while it runs; then ``finish(_:)``.
    func start(_ command: String) throws {
        try child.send(command)
    }

    @discardableResult
    func finish(_ command: String) throws -> String {
        guard let answer = try child.output.next() else { throw HarnessError("stand-in exited during '\(command)'") }
        guard answer.hasPrefix("ok") else { throw HarnessError("stand-in: '\(command)': \(answer)") }
        return answer
    }
}

/// The real sensd binary on the private bus, with a notify socket to learn when it is ready.
final class SensdUnderTest {
    let child: Child
    let socketPath: String
    private let notifyFD: Int32

    init(bus: PrivateBus, dir: ScratchDirectory, arguments: [String] = [], waitForReady: Bool = true) throws {
        socketPath = dir.path + "/events.sock"
        let notifyPath = dir.path + "/notify"
        unlink(notifyPath)
        let notifyFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.notifyFD = notifyFD
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(notifyPath.utf8) + [0])
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(notifyFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw HarnessError("cannot bind notify socket") }
        child = try Child(
            productsDirectory + "/sensd",
            ["--socket", socketPath, "--state-directory", dir.path + "/state", "--session-files", "no", "--log-level", "debug"] + arguments,
            environment: ["DBUS_SYSTEM_BUS_ADDRESS": bus.address, "NOTIFY_SOCKET": notifyPath], stderrPath: dir.path + "/sensd.log")
        if waitForReady { try waitFor("READY=1") }
    }

    /// Waits for a notification containing `state` (e.g. READY=1, STOPPING=1).
    func waitFor(_ state: String) throws {
        let deadline = Date().addingTimeInterval(patience)
        while Date() < deadline {
            var p = pollfd(fd: notifyFD, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else {
                guard child.isRunning else { throw HarnessError("sensd exited with \(try child.waitForExit()) before \(state)") }
                continue
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(notifyFD, $0.baseAddress, $0.count, 0) }
            if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").contains(where: { $0 == state }) { return }
        }
        throw HarnessError("sensd did not send \(state)")
    }

    /// A subscriber; by default it asks for Logoff events only and returns once sensd accepted that.
    func subscribe(_ request: String? = #"{"events":["Logoff"]}"#) throws -> TestSubscriber {
        let s = try TestSubscriber(path: socketPath)
        if let request {
            try s.send(request + "\n")
            let answer = try object(try s.nextLine())
            guard answer["accepted"] != nil else { throw HarnessError("request refused: \(answer)") }
        }
        return s
    }

    deinit { close(notifyFD) }
}

/// A plain socket client, as `socat` would be: no project client code.
final class TestSubscriber {
    private var socket: Descriptor?
    let channel: LineChannel
    let hello: String

    var fd: Int32 {
        guard let raw = socket?.rawValue else { preconditionFailure("closed") }
        return raw
    }

    init(path: String, expectHello: Bool = true) throws {
        socket = try Syscall.connect(path: path)
        channel = LineChannel(fd: socket?.rawValue ?? -1)
        hello = expectHello ? (try channel.next() ?? "") : ""
    }

    func send(_ text: String) throws { try Syscall.writeAll(fd, Array(text.utf8)) }

    func nextLine() throws -> String? { try channel.next() }

    /// The next line, which must be an event.
    func nextEvent() throws -> SENSEvent {
        guard let line = try channel.next() else { throw HarnessError("stream ended while an event was expected") }
        do {
            return try JSONDecoder().decode(SENSEvent.self, from: Data(line.utf8))
        } catch {
            throw HarnessError("not an event: \(line)")
        }
    }

    func events(_ n: Int) throws -> [SENSEvent] { try (0..<n).map { _ in try nextEvent() } }

    /// Closes the connection now. The descriptor is owned once and closed once: closing it again in deinit,
    /// as this once did, closed whatever descriptor another test running in parallel had been given that
    /// number (its stream "ended" at once).
    func closeNow() {
        socket = nil
    }
}

/// sensd's counters now (`{"stats":true}`), read as a plain client would.
func counters(_ rig: Rig) throws -> [String: Any] {
    let s = try TestSubscriber(path: rig.sensd.socketPath)
    try s.send(#"{"stats":true}"# + "\n")
    while let line = try s.nextLine() {
        let o = try object(line)
        if o["stats"] as? String == "sensd" { return o }
    }
    throw HarnessError("the stats request ended without its line")
}

/// The JSON object of a control line.
func object(_ line: String?) throws -> [String: Any] {
    guard let line, let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw HarnessError("not a JSON object: \(line ?? "<end of stream>")")
    }
    return o
}

/// Everything one scenario needs, torn down in reverse order.
final class Rig {
    let dir: ScratchDirectory
    let bus: PrivateBus
    let logind: LogindStandIn
    var sensd: SensdUnderTest!

    init(before: (LogindStandIn) throws -> Void = { _ in }, sensdArguments: [String] = []) throws {
        dir = try ScratchDirectory()
        bus = try PrivateBus(in: dir)
        logind = try LogindStandIn(bus: bus, dir: dir)
        try before(logind)
        sensd = try SensdUnderTest(bus: bus, dir: dir, arguments: sensdArguments)
    }

    /// sensd's log so far, for failure messages.
    var sensdLog: String { (try? String(contentsOfFile: dir.path + "/sensd.log", encoding: .utf8)) ?? "" }

    deinit {
        // sensd first, so that it does not log the bus going away under it.
        sensd?.child.signal(SIGTERM)
        _ = try? sensd?.child.waitForExit()
    }

    /// Opens and closes a session and returns once `subscriber` has its Logoff (so the subscriber must
    /// receive root's Logoffs): everything sensd sent before it has been read, so a missing event can be asserted without waiting on a clock.
    func barrier(_ subscriber: TestSubscriber, id: String = "barrier") throws -> [SENSEvent] {
        try logind.run("open \(id) 0 root")
        try logind.run("wait-asked \(id)")
        try logind.run("close \(id)")
        var before: [SENSEvent] = []
        while true {
            let e = try subscriber.nextEvent()
            if e.sessionId == id {
                // The barrier's own events are not returned; its Logoff ends the wait.
                if e.event == .logoff { return before }
                continue
            }
            before.append(e)
        }
    }
}
