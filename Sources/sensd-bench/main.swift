// Measuring clients for the benchmark (bench/run.py drives them; not installed).
//
//   sensd-bench floor PREFIX COUNT OUT
//       a bare sd-bus client subscribed to logind's SessionNew/SessionRemoved, doing nothing but
//       timestamping each SessionRemoved of PREFIX<index> (CLOCK_MONOTONIC ns): what the bus itself delivers
//   sensd-bench subscribe SOCKET N PREFIX COUNT NAME OUT
//       N subscribers of sensd on one event loop, timestamping every line as it is read; for each Logoff of
//       PREFIX<index>, the first and the last receipt across the N, and whether its user was NAME
//
//   sensd-bench floor-ids COUNT OUT
//   sensd-bench subscriber-ids SOCKET COUNT OUT
//       for a real logind, whose session ids are its own: a bare sd-bus client timestamping every
//       SessionRemoved, and one sensd subscriber timestamping every Logoff; "done" after COUNT, OUT holds
//       "<session id> <CLOCK_MONOTONIC ns>" lines (bench/real_logind.py matches the two)
//
// All print "ready" once subscribed and "done" once every session's Logoff has arrived (at every
// subscriber), and write OUT on SIGTERM: for floor and subscribe, a JSON summary line, then "<index>
// <first> <last>" per session received (floor: first = last).
import CLinux
import SENSCore
import Systemd
import SystemCalls

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
        try? Syscall.writeFile(path, Array(text.utf8))
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
    let socket: Descriptor
    var fd: Int32 { socket.rawValue }
    /// The start of a line whose end has not been read yet.
    var carry: [UInt8] = []
    var logoffs = 0
    init(fd: consuming Descriptor) { socket = fd }
}

/// Whether `line` holds `needle` at `offset`.
func has(_ needle: [UInt8], in line: UnsafeRawBufferPointer, at offset: Int) -> Bool {
    guard offset >= 0, offset + needle.count <= line.count else { return false }
    return needle.withUnsafeBytes { memcmp(line.baseAddress! + offset, $0.baseAddress!, needle.count) == 0 }
}

/// Where `needle` starts in `line` at or after `from`.
func find(_ needle: [UInt8], in line: UnsafeRawBufferPointer, from: Int) -> Int? {
    guard needle.count <= line.count else { return nil }
    var i = from
    while i + needle.count <= line.count {
        guard let hit = memchr(line.baseAddress! + i, Int32(needle[0]), line.count - needle.count + 1 - i) else { return nil }
        let at = line.baseAddress!.distance(to: UnsafeRawPointer(hit))
        if has(needle, in: line, at: at) { return at }
        i = at + 1
    }
    return nil
}

let logoffPrefix = Array(#"{"event":"Logoff","#.utf8)
let sessionIdKey = Array(#""sessionId":""#.utf8)

/// For a `Logoff` line, where its `sessionId` value lies (without the quotes); nil for any other line.
func logoffSessionID(in line: UnsafeRawBufferPointer) -> Range<Int>? {
    guard has(logoffPrefix, in: line, at: 0), let key = find(sessionIdKey, in: line, from: logoffPrefix.count) else { return nil }
    let start = key + sessionIdKey.count
    guard start < line.count, let quote = memchr(line.baseAddress! + start, 0x22, line.count - start) else { return nil }
    return start..<line.baseAddress!.distance(to: UnsafeRawPointer(quote))
}

func runSubscribers(socket path: String, n: Int, prefix: String, count: Int, name: String, out: String) throws {
    // The instrument must cost as little as it can, or it measures itself: one buffer for every read, lines
    // found with memchr, only the fields the figures need looked at, nothing allocated per line.
    var receipts = Receipts(count: count)
    var wrong = 0, errors = 0, lines = 0, subscribed = 0, complete = 0
    let indexPrefix = Array(prefix.utf8)
    let userField = Array((#","userName":""# + name + "\"").utf8)
    let acceptedPrefix = Array(#"{"accepted""#.utf8)
    let errorPrefix = Array(#"{"error""#.utf8)
    var buffer = [UInt8](repeating: 0, count: 65536)
    var readAt: UInt64 = 0

    func handle(_ line: UnsafeRawBufferPointer, _ c: Connection) {
        lines += 1
        guard let id = logoffSessionID(in: line) else {
            if has(acceptedPrefix, in: line, at: 0) {
                subscribed += 1
                if subscribed == n { say("ready") }
            } else if has(errorPrefix, in: line, at: 0) {
                errors += 1
            }
            return
        }
        guard has(indexPrefix, in: line, at: id.lowerBound) else { return }
        let digits = (id.lowerBound + indexPrefix.count)..<id.upperBound
        guard !digits.isEmpty, digits.allSatisfy({ line[$0] >= 0x30 && line[$0] <= 0x39 }) else { return }
        let index = digits.reduce(0) { $0 * 10 + Int(line[$1] - 0x30) }
        c.logoffs += 1
        if c.logoffs == count {
            complete += 1
            if complete == n { say("done") }
        }
        if !has(userField, in: line, at: id.upperBound + 1) { wrong += 1 }
        receipts.record(index, readAt)
    }

    // A plain epoll loop rather than sd-event: sd-event dispatches one source per iteration, which with
    // hundreds of sockets costs this process more than sensd spends sending to them.
    let created = epoll_create1(Int32(EPOLL_CLOEXEC))
    guard created >= 0 else { throw SystemCallError.last("epoll_create1") }
    let epollDescriptor = Descriptor(taking: created)
    let epoll = epollDescriptor.rawValue
    var connections: [Connection] = []
    for k in 0..<n {
        let connection = Connection(fd: try Syscall.connect(path: path))
        let fd = connection.fd
        try Syscall.writeAll(fd, Array("{}\n".utf8))
        try Syscall.setNonBlocking(fd)
        connections.append(connection)
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(k)))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw SystemCallError.last("epoll_ctl") }
    }
    func readable(_ c: Connection) {
        let got = buffer.withUnsafeMutableBytes { read(c.fd, $0.baseAddress, $0.count) }
        guard got != 0, !(got < 0 && errno != EAGAIN && errno != EINTR) else {
            epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nil)
            return
        }
        guard got > 0 else { return }
        readAt = Syscall.monotonicNanoseconds()
        buffer.withUnsafeBytes { raw in
            var start = 0
            while start < got, let nl = memchr(raw.baseAddress! + start, 0x0A, got - start) {
                let end = raw.baseAddress!.distance(to: UnsafeRawPointer(nl))
                if c.carry.isEmpty {
                    handle(UnsafeRawBufferPointer(rebasing: raw[start..<end]), c)
                } else {
                    c.carry += raw[start..<end]
                    c.carry.withUnsafeBytes { handle($0, c) }
                    c.carry.removeAll(keepingCapacity: true)
                }
                start = end + 1
            }
            if start < got { c.carry += raw[start..<got] }
        }
    }
    // SIGTERM ends the run: blocked, and polled through a signalfd-less check after each wait.
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, SIGTERM)
    sigprocmask(SIG_BLOCK, &mask, nil)
    var events = [epoll_event](repeating: epoll_event(), count: 256)
    while true {
        let ready = epoll_wait(epoll, &events, Int32(events.count), 100)
        for e in events.prefix(max(0, Int(ready))) { readable(connections[Int(e.data.u64)]) }
        var pending = sigset_t()
        sigpending(&pending)
        if sigismember(&pending, SIGTERM) == 1 { break }
    }
    let counts = connections.map(\.logoffs)
    receipts.write(out, summary: #"{"subscribers":\#(n),"received":\#(receipts.received),"minPerSubscriber":\#(counts.min() ?? 0),"maxPerSubscriber":\#(counts.max() ?? 0),"wrong":\#(wrong),"errors":\#(errors),"lines":\#(lines)}"#)
}


/// Receipt times by session id, in arrival order.
struct IDReceipts {
    var lines = ""
    var count = 0
    mutating func record(_ id: String, _ t: UInt64) {
        lines += "\(id) \(t)\n"
        count += 1
    }
    func write(_ path: String) {
        try? Syscall.writeFile(path, Array(lines.utf8))
    }
}

func runFloorIDs(count: Int, out: String) throws {
    let loop = try EventLoop()
    let bus = try Bus.system(description: "floor")
    try bus.attach(to: loop)
    var receipts = IDReceipts()
    let slot = try bus.addMatch("type='signal',sender='org.freedesktop.login1',path='/org/freedesktop/login1',interface='org.freedesktop.login1.Manager',member='SessionRemoved'") { m in
        let t = now()
        guard let id = (try? m.readValue())?.stringValue else { return }
        receipts.record(id, t)
        if receipts.count == count { say("done") }
    }
    let stop = try loop.addSignal(SIGTERM) {
        receipts.write(out)
        loop.exit(code: 0)
    }
    say("ready")
    _ = try loop.run()
    withExtendedLifetime((slot, stop)) {}
}

func runSubscriberIDs(socket path: String, count: Int, out: String) throws {
    let loop = try EventLoop()
    // Open for the life of the process.
    let fd = try Syscall.connect(path: path).release()
    try Syscall.writeAll(fd, Array(#"{"events":["Logoff"]}"#.utf8) + [0x0A])
    try Syscall.setNonBlocking(fd)
    var reader = LineReader(limit: 1 << 16)
    var receipts = IDReceipts()
    var buffer = [UInt8](repeating: 0, count: 65536)
    let accepted = Array(#"{"accepted""#.utf8)
    let source = try loop.addIO(fd: fd, events: .readable) { _ in
        let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard got > 0 else {
            if got == 0 { loop.exit(code: 1) }
            return
        }
        let t = now()
        for outcome in buffer.withUnsafeBytes({ reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }) {
            guard case .line(let line) = outcome else { continue }
            if line.starts(with: accepted) { say("ready"); continue }
            let bytes = Array(line)
            guard let id = bytes.withUnsafeBytes({ raw in logoffSessionID(in: raw).map { String(decoding: raw[$0], as: UTF8.self) } }) else { continue }
            receipts.record(id, t)
            if receipts.count == count { say("done") }
        }
    }
    let stop = try loop.addSignal(SIGTERM) {
        receipts.write(out)
        loop.exit(code: 0)
    }
    _ = try loop.run()
    withExtendedLifetime((source, stop)) {}
}

let args = CommandLine.arguments
do {
    switch args.count > 1 ? args[1] : "" {
    case "floor" where args.count == 5:
        try runFloor(prefix: args[2], count: Int(args[3])!, out: args[4])
    case "subscribe" where args.count == 8:
        try runSubscribers(socket: args[2], n: Int(args[3])!, prefix: args[4], count: Int(args[5])!, name: args[6], out: args[7])
    case "floor-ids" where args.count == 4:
        try runFloorIDs(count: Int(args[2])!, out: args[3])
    case "subscriber-ids" where args.count == 5:
        try runSubscriberIDs(socket: args[2], count: Int(args[3])!, out: args[4])
    default:
        say("usage: sensd-bench floor PREFIX COUNT OUT | subscribe SOCKET N PREFIX COUNT NAME OUT | floor-ids COUNT OUT | subscriber-ids SOCKET COUNT OUT")
        exit(2)
    }
} catch {
    say("error \(error)")
    exit(1)
}
