import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// The exporter's HTTP side: `GET /metrics` on a listening TCP socket, one thread, one poll(2) loop.
///
/// Small on purpose: the exporter answers one scraper, never sensd's subscribers, so what it needs is a bound
/// on everything a peer can hold: at most ``maxConnections`` connections (more are answered 503 and closed), a
/// request head of at most ``maxRequestBytes`` (431 past it), and ``deadlineSeconds`` for a connection's whole
/// life. A flood of connections costs the exporter a descriptor each, for seconds; sensd sees one client.
/// Every socket system call of the exporter is in this file. Unchecked Sendable: made on the main task, then
/// used by the one thread that runs it and by nothing else.
final class HTTPListener: @unchecked Sendable {
    static let maxConnections = 64
    static let maxRequestBytes = 8192
    static let deadlineSeconds: Int64 = 10

    private struct Connection {
        var fd: Int32
        var deadline: Int64
        var request: [UInt8] = []
        var response: [UInt8] = []
        var sent = 0
        /// The response is out and our side shut down: what the peer still sends is read and dropped until
        /// it closes, so that closing with unread input does not reset the connection before it read the answer.
        var draining = false
        var writing: Bool { !response.isEmpty && !draining }
    }

    private let listeners: [Int32]
    private let body: @Sendable () -> (status: Int, text: String)
    private var connections: [Connection] = []

    /// Serves on `listeners` (listening stream sockets); `body` makes the metrics page, blocking.
    init(listeners: [Int32], body: @escaping @Sendable () -> (status: Int, text: String)) {
        self.listeners = listeners
        self.body = body
    }

    /// The sockets systemd passed (socket activation, one per `ListenStream=` of `sensd-exporter.socket`):
    /// sd_listen_fds(3)'s protocol, read here rather than by linking libsystemd into a client program.
    static func inherited() -> [Int32] {
        guard let pid = getenv("LISTEN_PID").map({ String(cString: $0) }), pid == String(getpid()),
              let count = getenv("LISTEN_FDS").map({ String(cString: $0) }).flatMap(Int32.init), count >= 1 else { return [] }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        let fds = Array(3..<(3 + count))
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fds
    }

    /// A listening socket on `address` (`127.0.0.1:9848`, `[::1]:9848`, `:9848` for every address).
    static func listen(on address: String) throws(ExporterError) -> Int32 {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw ExporterError("--listen \(address): expected HOST:PORT, such as 127.0.0.1:9848 or [::1]:9848")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
        guard status == 0, let info = result else {
            throw ExporterError("--listen \(address): \(String(cString: gai_strerror(status))) (a numeric address is expected)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ExporterError("socket: \(String(cString: strerror(errno)))") }
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, Glibc.listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ExporterError("--listen \(address): \(reason)")
        }
        return fd
    }

    /// The port `fd` is bound to (the one the kernel chose for `--listen HOST:0`).
    static func port(of fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { raw in
            switch family {
            case AF_INET: raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            case AF_INET6: raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            default: nil
            }
        }
    }

    /// Serves until the process ends.
    func run() -> Never {
        for listener in listeners { _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK) }
        while true {
            var fds = listeners.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            fds += connections.map { pollfd(fd: $0.fd, events: Int16($0.writing ? POLLOUT : POLLIN), revents: 0) }
            // fds[listeners.count + i] is connections[i]: handled from the last, so that dropping one leaves the
            // others' indices as they were.
            let now = Self.now()
            let nearest = connections.map(\.deadline).min().map { max(0, ($0 - now) * 1000) } ?? -1
            let ready = poll(&fds, nfds_t(fds.count), Int32(clamping: nearest))
            if ready < 0 && errno != EINTR { fatalError("poll: \(String(cString: strerror(errno)))") }
            for (i, entry) in fds.enumerated().dropFirst(listeners.count).reversed() where entry.revents != 0 {
                handle(at: i - listeners.count, events: entry.revents)
            }
            let late = Self.now()
            for i in connections.indices.reversed() where connections[i].deadline <= late {
                drop(at: i)
            }
            for (i, listener) in listeners.enumerated() where fds[i].revents & Int16(POLLIN) != 0 { acceptAll(listener) }
        }
    }

    private func acceptAll(_ listener: Int32) {
        while true {
            let fd = clinux_accept4(listener, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
            guard fd >= 0 else { return }
            guard connections.count < Self.maxConnections else {
                // Best effort, never waiting: the peer learns why rather than seeing a reset.
                let text = Self.response(503, "too many connections to the exporter (limit \(Self.maxConnections)); try again\n")
                _ = text.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
                continue
            }
            connections.append(Connection(fd: fd, deadline: Self.now() + Self.deadlineSeconds))
        }
    }

    private func handle(at index: Int, events: Int16) {
        if connections[index].writing {
            flush(at: index)
            return
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(connections[index].fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard n > 0 else { return drop(at: index) }
        if connections[index].draining { return }
        connections[index].request += buffer[0..<n]
        if let head = Self.head(of: connections[index].request) {
            connections[index].response = answer(head)
            flush(at: index)
        } else if connections[index].request.count > Self.maxRequestBytes {
            connections[index].response = Self.response(431, "request head longer than \(Self.maxRequestBytes) bytes\n")
            flush(at: index)
        }
    }

    /// The request line and headers, once they are complete.
    static func head(of request: [UInt8]) -> String? {
        let bytes = request.prefix(maxRequestBytes + 4)
        for i in bytes.indices where bytes[i] == 0x0A {
            if i >= 1 && bytes[i - 1] == 0x0A { return String(decoding: bytes[..<i], as: UTF8.self) }
            if i >= 3 && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A { return String(decoding: bytes[..<i], as: UTF8.self) }
        }
        return nil
    }

    private func answer(_ head: String) -> [UInt8] {
        // "\r\n" is one Character in Swift: split on either line end.
        let requestLine = head.split(maxSplits: 1, whereSeparator: \.isNewline).first ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return Self.response(400, "not an HTTP/1.x request line\n") }
        let method = parts[0], path = parts[1].split(separator: "?", maxSplits: 1).first ?? ""
        guard method == "GET" || method == "HEAD" else { return Self.response(405, "only GET and HEAD\n", extra: "Allow: GET, HEAD\r\n") }
        switch path {
        case "/metrics":
            let (status, text) = body()
            let response = Self.response(status, text, contentType: "text/plain; version=0.0.4; charset=utf-8")
            return method == "HEAD" ? Array(response.prefix(upTo: Self.headEnd(response))) : response
        case "/":
            return Self.response(200, "sensd-exporter: the metrics are at /metrics\n")
        default:
            return Self.response(404, "no such page: the metrics are at /metrics\n")
        }
    }

    private func flush(at index: Int) {
        while connections[index].sent < connections[index].response.count {
            let sent = connections[index].sent
            let n = connections[index].response.withUnsafeBytes { raw in
                send(connections[index].fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            guard n > 0 else { return drop(at: index) }
            connections[index].sent += n
        }
        connections[index].draining = true
        connections[index].request = []
        shutdown(connections[index].fd, Int32(SHUT_WR))
    }

    private func drop(at index: Int) {
        close(connections[index].fd)
        connections.remove(at: index)
    }

    static func response(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8", extra: String = "") -> [UInt8] {
        let reasons = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large", 503: "Service Unavailable"]
        let body = Array(text.utf8)
        let head = "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\(extra)\r\n"
        return Array(head.utf8) + body
    }

    private static func headEnd(_ response: [UInt8]) -> Int {
        for i in 3..<response.count where response[i - 3] == 0x0D && response[i - 2] == 0x0A && response[i - 1] == 0x0D && response[i] == 0x0A {
            return i + 1
        }
        return response.count
    }

    private static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec)
    }
}

struct ExporterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
