// Measuring clients for the benchmark (bench/run.py drives them; not installed).
//
//   sensd-bench floor PREFIX COUNT OUT
//       a bare sd-bus client subscribed to logind's SessionNew/SessionRemoved, doing nothing but
//       timestamping each SessionRemoved of PREFIX<index> (CLOCK_MONOTONIC ns): what the bus itself delivers
//   sensd-bench subscribe SOCKET N PREFIX COUNT NAME OUT
//       N subscribers of sensd on one event loop, timestamping every line as it is read; for each Logoff of
//       PREFIX<index>, the first and the last receipt across the N, and whether its user was NAME
//
// Both print "ready" once subscribed and "done" once every session's Logoff has arrived (at every
// subscriber), and write OUT on SIGTERM: a JSON summary line, then "<index> <first>
// <last>" per session received (floor: first = last).
import SENSCore
import Systemd
import UnixSocket

#if canImport(Glibc)
import Glibc
#endif

func now() -> UInt64 { Syscall.monotonicNanoseconds() }

func say(_ text: String) {
    try? Syscall.writeAll(1, Array((text + "\n").utf8))
}

/// Per-session receipt times.
struct Receipts {
    var first: [UInt64]
    var last: [UInt64]
    var received = 0

    init(count: Int) {
        first = [UInt64](repeating: 0, count: count)
        last = [UInt64](repeating: 0, count: count)
    }

    mutating func record(_ index: Int, _ t: UInt64) {
        guard index >= 0 && index < first.count else { return }
        if first[index] == 0 {
            first[index] = t
            received += 1
        }
        last[index] = max(last[index], t)
    }

    func write(_ path: String, summary: String) {
        var text = summary + "\n"
        text.reserveCapacity(first.count * 32)
        for i in first.indices where first[i] != 0 { text += "\(i) \(first[i]) \(last[i])\n" }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        try? Syscall.writeAll(fd, Array(text.utf8))
        close(fd)
    }
}

func index(of id: Substring, prefix: String) -> Int? {
    guard id.hasPrefix(prefix) else { return nil }
    return Int(id.dropFirst(prefix.count))
}

func runFloor(prefix: String, count: Int, out: String) throws {
    let loop = try EventLoop()
    let bus = try Bus.system(description: "floor")
    try bus.attach(to: loop)
    var receipts = Receipts(count: count)
    var news = 0
    let rule = { (member: String) in
        "type='signal',sender='org.freedesktop.login1',path='/org/freedesktop/login1',interface='org.freedesktop.login1.Manager',member='\(member)'"
    }
    let a = try bus.addMatch(rule("SessionNew")) { _ in news += 1 }
    let b = try bus.addMatch(rule("SessionRemoved")) { m in
        let t = now()
        guard let id = (try? m.readValue())?.stringValue, let i = index(of: Substring(id), prefix: prefix) else { return }
        receipts.record(i, t)
        if receipts.received == count { say("done") }
    }
    let stop = try loop.addSignal(SIGTERM) {
        receipts.write(out, summary: #"{"received":\#(receipts.received),"sessionNew":\#(news)}"#)
        loop.exit(code: 0)
    }
    say("ready")
    _ = try loop.run()
    withExtendedLifetime((a, b, stop)) {}
}

final class Connection {
    let fd: Int32
    var reader = LineReader(limit: 1 << 16)
    var source: EventSource?
    var logoffs = 0
    var subscribed = false
    init(fd: Int32) { self.fd = fd }
}

func runSubscribers(socket path: String, n: Int, prefix: String, count: Int, name: String, out: String) throws {
    let loop = try EventLoop()
    var receipts = Receipts(count: count)
    var wrong = 0, errors = 0, lines = 0, subscribed = 0, complete = 0
    let logoff = Array(#""event":"Logoff""#.utf8)
    let sessionKey = Array(#""sessionId":""#.utf8)
    let userKey = Array(#""userName":""#.utf8)
    let expected = Array(name.utf8)
    func find(_ needle: [UInt8], in line: ArraySlice<UInt8>) -> Int? {
        guard line.count >= needle.count else { return nil }
        var i = line.startIndex
        while i + needle.count <= line.endIndex {
            if line[i] == needle[0] && line[i..<(i + needle.count)].elementsEqual(needle) { return i + needle.count }
            i += 1
        }
        return nil
    }
    var connections: [Connection] = []
    for _ in 0..<n {
        let fd = try Syscall.connect(path: path)
        try Syscall.writeAll(fd, Array("{}\n".utf8))
        try Syscall.setNonBlocking(fd)
        let c = Connection(fd: fd)
        c.source = try loop.addIO(fd: fd, events: .readable) { _ in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let result: Int?
                do {
                    result = try buffer.withUnsafeMutableBytes { raw throws(SystemCallError) in try Syscall.read(c.fd, into: raw) }
                } catch {
                    result = 0
                }
                guard let got = result else { return }  // would block
                guard got > 0 else {
                    c.source = nil
                    return
                }
                let t = now()
                for outcome in buffer.withUnsafeBytes({ c.reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }) {
                    guard case .line(let line) = outcome else { errors += 1; continue }
                    lines += 1
                    if line.starts(with: Array(#"{"accepted""#.utf8)) {
                        c.subscribed = true
                        subscribed += 1
                        if subscribed == n { say("ready") }
                        continue
                    }
                    if line.starts(with: Array(#"{"error""#.utf8)) { errors += 1; continue }
                    guard find(logoff, in: line) != nil, let s = find(sessionKey, in: line),
                          let end = line[s...].firstIndex(of: UInt8(ascii: "\"")) else { continue }
                    let id = Substring(String(decoding: line[s..<end], as: UTF8.self))
                    guard let i = index(of: id, prefix: prefix) else { continue }
                    c.logoffs += 1
                    if c.logoffs == count {
                        complete += 1
                        if complete == n { say("done") }
                    }
                    if let u = find(userKey, in: line), !line[u...].starts(with: expected + [UInt8(ascii: "\"")]) { wrong += 1 }
                    receipts.record(i, t)
                }
            }
        }
        connections.append(c)
    }
    let stop = try loop.addSignal(SIGTERM) {
        let counts = connections.map(\.logoffs)
        receipts.write(out, summary: #"{"subscribers":\#(n),"received":\#(receipts.received),"minPerSubscriber":\#(counts.min() ?? 0),"maxPerSubscriber":\#(counts.max() ?? 0),"wrong":\#(wrong),"errors":\#(errors),"lines":\#(lines)}"#)
        loop.exit(code: 0)
    }
    _ = try loop.run()
    withExtendedLifetime((stop, connections)) {}
}

let args = CommandLine.arguments
do {
    switch args.count > 1 ? args[1] : "" {
    case "floor" where args.count == 5:
        try runFloor(prefix: args[2], count: Int(args[3])!, out: args[4])
    case "subscribe" where args.count == 8:
        try runSubscribers(socket: args[2], n: Int(args[3])!, prefix: args[4], count: Int(args[5])!, name: args[6], out: args[7])
    default:
        say("usage: sensd-bench floor PREFIX COUNT OUT | subscribe SOCKET N PREFIX COUNT NAME OUT")
        exit(2)
    }
} catch {
    say("error \(error)")
    exit(1)
}
