import CLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: which one, on what, and its errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }

    /// The error the last failed call left in `errno`. EBADF and EFAULT are not errors of the world but of
    /// this program (a descriptor it does not own, memory it does not have): they stop it.
    public static func last(_ call: String) -> SystemCallError {
        let e = Glibc.errno
        precondition(e != EBADF && e != EFAULT, "\(call): \(String(cString: strerror(e))): a descriptor or buffer this process does not own")
        return SystemCallError(call, errno: e)
    }
}

/// Runs `body` until it does not fail with EINTR; the one place that retries.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let r = body()
        if r >= 0 || errno != EINTR { return r }
    }
}

/// Fills a `sockaddr_un` for `path`, or throws ENAMETOOLONG.
func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(SystemCallError) -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    let bytes = Array(path.utf8)
    guard bytes.count < capacity else { throw SystemCallError("socket path \(path) is longer than \(capacity - 1) bytes", errno: ENAMETOOLONG) }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
    }
}

public enum Syscall {
    /// A new non-blocking, close-on-exec Unix stream socket.
    public static func unixStreamSocket(nonBlocking: Bool) throws(SystemCallError) -> Descriptor {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = socket(AF_UNIX, type, 0)
        guard fd >= 0 else { throw SystemCallError.last("socket(AF_UNIX)") }
        return Descriptor(taking: fd)
    }

    /// A new non-blocking, close-on-exec Unix datagram socket.
    public static func unixDatagramSocket() throws(SystemCallError) -> Descriptor {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError.last("socket(AF_UNIX, SOCK_DGRAM)") }
        return Descriptor(taking: fd)
    }

    /// The next datagram on a non-blocking socket, cut at `limit` bytes (`truncated` says so); nil when none
    /// waits.
    public static func receiveDatagram(_ fd: Int32, limit: Int) throws(SystemCallError) -> (bytes: [UInt8], truncated: Bool)? {
        var buffer = [UInt8](repeating: 0, count: limit + 1)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)) }
            if n >= 0 { return (Array(buffer.prefix(min(n, limit))), n > limit) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SystemCallError.last("recv")
        }
    }

    /// Sends one datagram to the socket at `path` without waiting: false when it cannot be sent now (nobody
    /// there, or its queue is full).
    public static func sendDatagram(_ bytes: [UInt8], to path: String) -> Bool {
        guard let fd = try? unixDatagramSocket() else { return false }
        let sent = try? withUnixAddress(path) { address, length in
            bytes.withUnsafeBytes { sendto(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), address, length) }
        }
        try? fd.close()
        return sent == bytes.count
    }

    public static func bind(_ fd: Int32, path: String) throws(SystemCallError) {
        let r = try withUnixAddress(path) { Glibc.bind(fd, $0, $1) }
        guard r == 0 else { throw SystemCallError.last("bind(\(path))") }
    }

    public static func listen(_ fd: Int32, backlog: Int32) throws(SystemCallError) {
        guard Glibc.listen(fd, backlog) == 0 else { throw SystemCallError.last("listen") }
    }

    /// Connects, blocking; EINTR is retried by waiting for the connection to finish.
    public static func connect(_ fd: Int32, path: String) throws(SystemCallError) {
        let r = try withUnixAddress(path) { address, length in retryingEINTR { Glibc.connect(fd, address, length) } }
        guard r == 0 else { throw SystemCallError.last("connect(\(path))") }
    }

    /// A blocking stream socket connected to `path`; nothing is left open if connecting fails.
    public static func connect(path: String) throws(SystemCallError) -> Descriptor {
        let fd = try unixStreamSocket(nonBlocking: false)
        try connect(fd.rawValue, path: path)
        return fd
    }

    /// CLOCK_MONOTONIC in nanoseconds, for timestamps compared across processes on one machine.
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Makes `fd` non-blocking (a socket handed over by the service manager is blocking unless told otherwise).
    public static func setNonBlocking(_ fd: Int32) throws(SystemCallError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw SystemCallError.last("fcntl(O_NONBLOCK)") }
    }

    /// Accepts one connection as a non-blocking, close-on-exec descriptor; nil when none is waiting.
    /// `fd` must be non-blocking, or this waits for a connection.
    public static func accept(_ fd: Int32) throws(SystemCallError) -> Descriptor? {
        let client = retryingEINTR { clinux_accept4(fd, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)) }
        if client >= 0 { return Descriptor(taking: client) }
        switch errno {
        case EAGAIN, ECONNABORTED: return nil
        default: throw SystemCallError.last("accept")
        }
    }

    /// Reads into `buffer`; nil when a non-blocking read would block, 0 at end of input.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int? {
        let n = retryingEINTR { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        if n >= 0 { return n }
        if errno == EAGAIN { return nil }
        throw SystemCallError.last("read")
    }

    /// Writes the chunks in order without raising SIGPIPE; nil when a non-blocking write would block.
    public static func send(_ fd: Int32, _ chunks: [UnsafeRawBufferPointer]) throws(SystemCallError) -> Int? {
        var iov = chunks.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        let n = iov.withUnsafeMutableBufferPointer { buffer in
            var header = msghdr()
            header.msg_iov = buffer.baseAddress
            header.msg_iovlen = buffer.count
            return retryingEINTR { sendmsg(fd, &header, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
        if n >= 0 { return n }
        if errno == EAGAIN { return nil }
        throw SystemCallError.last("sendmsg")
    }

    /// A pipe's two ends.
    @frozen public struct Pipe: ~Copyable {
        public var read: Descriptor
        public var write: Descriptor
    }

    /// A pipe whose ends are close-on-exec from the start.
    public static func pipe() throws(SystemCallError) -> Pipe {
        var ends: [Int32] = [-1, -1]
        guard clinux_pipe2(&ends, O_CLOEXEC) == 0 else { throw SystemCallError.last("pipe2") }
        return Pipe(read: Descriptor(taking: ends[0]), write: Descriptor(taking: ends[1]))
    }

    /// Writes all of `bytes` to a blocking descriptor.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in retryingEINTR { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) } }
            guard n > 0 else { throw SystemCallError.last("write") }
            offset += n
        }
    }

    /// Who is at the other end of a Unix socket, as the kernel recorded it at connect: uid, gid and the
    /// supplementary groups (SO_PEERCRED, SO_PEERGROUPS; no user database look-up, which could block).
    public static func peerCredentials(_ fd: Int32) throws(SystemCallError) -> (uid: UInt32, gid: UInt32, groups: [UInt32]) {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (not in Glibc's Swift module without _GNU_SOURCE).
        var cred: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0 else { throw SystemCallError.last("getsockopt(SO_PEERCRED)") }
        var groups = [gid_t](repeating: 0, count: 64)
        var size = socklen_t(groups.count * MemoryLayout<gid_t>.size)
        // ERANGE means more groups than asked for.
        var r = getsockopt(fd, SOL_SOCKET, clinux_so_peergroups, &groups, &size)
        if r != 0 && errno == ERANGE {
            groups = [gid_t](repeating: 0, count: Int(size) / MemoryLayout<gid_t>.size)
            r = getsockopt(fd, SOL_SOCKET, clinux_so_peergroups, &groups, &size)
        }
        let supplementary = r == 0 ? Array(groups.prefix(Int(size) / MemoryLayout<gid_t>.size)).map { UInt32($0) } : []
        return (cred.1, cred.2, supplementary)
    }

    /// Raises the soft limit on open descriptors to the hard limit; returns the soft limit now in force.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > UInt64(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// A descriptor held in reserve (on /dev/null), given up for a moment to accept and refuse a connection
    /// when the process has no other descriptor left.
    public static func openSpareDescriptor() -> Descriptor? {
        try? openFile("/dev/null", O_RDONLY)
    }

    public static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// What a path is, without following a final symlink: nil if nothing is there.
    public static func linkStatus(_ path: String) throws(SystemCallError) -> (mode: UInt32, uid: UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return nil }
            throw SystemCallError.last("lstat(\(path))")
        }
        return (UInt32(st.st_mode), UInt32(st.st_uid))
    }

    /// Binds a Unix socket at `path` with permission bits `mode` from the start (the umask, not a chmod of the
    /// path afterwards, which would follow a symlink put there meanwhile).
    public static func bind(_ fd: Int32, path: String, mode: UInt32) throws(SystemCallError) {
        let previous = umask(mode_t(0o777 & ~mode))
        defer { umask(previous) }
        try bind(fd, path: path)
    }

    /// Sets the group of `path` itself, never of what a symlink there points to.
    public static func setGroupNoFollow(_ path: String, group: UInt32) throws(SystemCallError) {
        guard lchown(path, uid_t.max, gid_t(group)) == 0 else { throw SystemCallError.last("lchown(\(path))") }
    }

    /// Removes a file; a missing one is fine.
    public static func unlinkIfPresent(_ path: String) throws(SystemCallError) {
        guard Glibc.unlink(path) == 0 || errno == ENOENT else { throw SystemCallError.last("unlink(\(path))") }
    }

    /// Creates a directory with `mode` if it does not exist.
    public static func makeDirectoryIfMissing(_ path: String, mode: UInt32) throws(SystemCallError) {
        guard mkdir(path, mode_t(mode)) == 0 || errno == EEXIST else { throw SystemCallError.last("mkdir(\(path))") }
    }

    /// Whether something accepts connections at `path` right now.
    public static func isListening(path: String) -> Bool {
        (try? connect(path: path)) != nil
    }

    /// The group id for a group name.
    /// The uid of the user `name`, by the system's user database. The corresponding C function is `getpwnam_r`.
    public static func userID(named name: String) -> UInt32? {
        var user = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &user, &buffer, buffer.count, &result) == 0, let result else { return nil }
        return UInt32(result.pointee.pw_uid)
    }

    public static func groupID(named name: String) -> UInt32? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &group, &buffer, buffer.count, &result) == 0, let result else { return nil }
        return UInt32(result.pointee.gr_gid)
    }
}

extension Syscall {
    /// A non-blocking inotify descriptor watching `directory` for files renamed into it (IN_MOVED_TO): how
    /// logind replaces a session's file, complete, every time it saves it. Files closed after writing
    /// (IN_CLOSE_WRITE) are not watched: logind closes its file after the rename, so each save would wake
    /// the watcher twice for the same content.
    public static func watchDirectory(_ directory: String) throws(SystemCallError) -> Descriptor {
        let raw = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard raw >= 0 else { throw SystemCallError.last("inotify_init1") }
        let fd = Descriptor(taking: raw)
        guard inotify_add_watch(fd.rawValue, directory, UInt32(IN_MOVED_TO)) >= 0 else {
            throw SystemCallError.last("inotify_add_watch(\(directory))")
        }
        return fd
    }

    /// Drains an inotify descriptor and returns the names of the files it reported.
    /// `buffer` is the caller's, kept from one call to the next: allocating and zeroing 16 KiB on every
    /// wake-up was 3% of sensd's CPU on a real host. The inotify(7) minimum is 16 bytes plus NAME_MAX + 1.
    public static func readWatchedNames(_ fd: Int32, buffer: inout [UInt8]) -> [String] {
        precondition(buffer.count >= 16 + 256, "an inotify read needs room for one event with the longest name")
        var names: [String] = []
        var done = false
        while !done {
            let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { Glibc.read(fd, raw.baseAddress, raw.count) } }
            guard n > 0 else { return names }
            // The kernel hands over as many whole events as fit: a read that left room for another (16 bytes
            // and a name of up to 255) got everything there was, and another read would only say EAGAIN.
            defer { if n < buffer.count - 272 { done = true } }
            var offset = 0
            // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[]; }
            while offset + 16 <= n {
                let length = buffer.withUnsafeBytes { Int($0.load(fromByteOffset: offset + 12, as: UInt32.self)) }
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + length)].prefix { $0 != 0 }
                if !nameBytes.isEmpty { names.append(String(decoding: nameBytes, as: UTF8.self)) }
                offset += 16 + length
            }
        }
        return names
    }
}

extension Syscall {
    /// The whole content of a file, or nil if it does not exist.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws(SystemCallError) -> [UInt8]? {
        guard let file = try openForReading(path) else { return nil }
        let fd = file.rawValue
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { Glibc.read(fd, raw.baseAddress, raw.count) } }
            guard n >= 0 else { throw SystemCallError.last("read(\(path))") }
            if n == 0 { return out }
            out += buffer[0..<n]
            guard out.count <= limit else { throw SystemCallError("\(path) is larger than \(limit) bytes", errno: EFBIG) }
        }
    }

    /// Replaces a file's content all at once: a crash leaves the old file or the new one, never a mix.
    /// With `durable`, the new content is on stable storage (file and directory synced) when this returns.
    public static func replaceFile(_ path: String, with bytes: [UInt8], mode: UInt32 = 0o644, durable: Bool = false) throws(SystemCallError) {
        let temporary = path + ".tmp"
        do throws(SystemCallError) {
            let fd = try openFile(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
            try writeAll(fd.rawValue, bytes)
            if durable { try syncData(fd.rawValue) }
            // A written file's close can report a write that failed after all (NFS, EIO): then it is not renamed.
            try fd.close()
            guard rename(temporary, path) == 0 else { throw SystemCallError.last("rename(\(temporary), \(path))") }
        } catch {
            // A half-written temporary on a full disk would keep the space the next write needs.
            unlink(temporary)
            throw error
        }
        if durable {
            let slash = path.lastIndex(of: "/")
            try syncDirectory(slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? ".")
        }
    }

    /// This machine's host name.
    public static func hostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
