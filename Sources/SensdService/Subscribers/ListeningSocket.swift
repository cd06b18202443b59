import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// The sockets subscribers connect to: the ones systemd passed (socket activation), told apart by the path
/// each is bound to, or ones sensd creates itself where no other user could replace them.
enum ListeningSocket {
    /// The JSON-lines socket systemd passed, or one sensd creates at the configured path.
    static func open(_ configuration: DaemonConfiguration, logger: Logger, created: inout Bool) throws -> Descriptor {
        let passed = ServiceManager.listenFDs().filter { ServiceManager.isListeningUnixStream($0) }
        let varlink = configuration.varlinkSocketPath.flatMap { path in passed.first { ServiceManager.isListeningUnixStream($0, path: path) } }
        // By its path; else, as before there were two, the one that is not the Varlink socket.
        if let chosen = passed.first(where: { ServiceManager.isListeningUnixStream($0, path: configuration.socketPath) }) ?? passed.first(where: { $0 != varlink }) {
            logger.info("using the socket passed by the service manager")
            return try take(chosen)
        }
        return try create(at: configuration.socketPath, configuration, created: &created)
    }

    /// The Varlink socket: the one systemd passed bound to its path, or one sensd creates; nil when there is
    /// to be none, or when systemd passed sockets but not this one (a sensd.socket from before the Varlink socket, until it
    /// is restarted: sensd does not make a socket beside systemd's own).
    static func openVarlink(_ configuration: DaemonConfiguration, logger: Logger, created: inout Bool) throws -> Descriptor? {
        guard let path = configuration.varlinkSocketPath else { return nil }
        let passed = ServiceManager.listenFDs().filter { ServiceManager.isListeningUnixStream($0) }
        if let fd = passed.first(where: { ServiceManager.isListeningUnixStream($0, path: path) }) {
            return try take(fd)
        }
        if !passed.isEmpty {
            logger.notice("the service manager passed no socket at \(path): no Varlink interface until sensd.socket is restarted with this release's unit")
            return nil
        }
        return try create(at: path, configuration, created: &created)
    }

    private static func take(_ passed: Int32) throws -> Descriptor {
        let fd = Descriptor(taking: passed)
        // Accepting drains the backlog until it would block: it must not block.
        try Syscall.setNonBlocking(fd.rawValue)
        return fd
    }

    private static func create(at path: String, _ configuration: DaemonConfiguration, created: inout Bool) throws -> Descriptor {
        try Self.checkSocketPlace(path)
        let fd = try Syscall.unixStreamSocket(nonBlocking: true)
        // Created with its mode (umask), its group set on the path itself: nothing follows a symlink.
        try Syscall.bind(fd.rawValue, path: path, mode: configuration.socketMode)
        created = true
        if let group = configuration.socketGroup {
            guard let gid = Syscall.groupID(named: group) else { throw DaemonError("no such group: \(group)") }
            try Syscall.setGroupNoFollow(path, group: gid)
        }
        try Syscall.listen(fd.rawValue, backlog: 128)
        return fd
    }

    /// Where sensd creates its socket by hand (`--socket`): the directory must be one that no other user can
    /// write to, or a sticky one (like /tmp) where they cannot remove or replace what sensd made; whatever is
    /// at the path already is removed only if it is sensd's user's own and not a live socket.
    static func checkSocketPlace(_ path: String) throws {
        let me = UInt32(geteuid())
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        if slash != nil && directory != "/" {
            try Syscall.makeDirectoryIfMissing(directory, mode: 0o755)
        }
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw DaemonError("\(directory) is not a directory") }
        let othersMayWrite = st.st_mode & 0o022 != 0
        let sticky = st.st_mode & mode_t(S_ISVTX) != 0
        if othersMayWrite && !sticky {
            throw DaemonError("refusing to create the socket in \(directory): other users can write there (mode \(String(st.st_mode & 0o7777, radix: 8))), so they could replace it; use a directory only sensd's user can write to")
        }
        if UInt32(st.st_uid) != me && UInt32(st.st_uid) != 0 && !sticky {
            throw DaemonError("refusing to create the socket in \(directory): it belongs to uid \(st.st_uid), not to sensd's user")
        }
        guard let existing = try Syscall.linkStatus(path) else { return }
        if existing.uid != me {
            throw DaemonError("\(path) exists and belongs to uid \(existing.uid); refusing to touch it")
        }
        let type = existing.mode & UInt32(S_IFMT)
        if type == UInt32(S_IFSOCK) && Syscall.isListening(path: path) {
            throw DaemonError("another process is already serving \(path); refusing to take its socket")
        }
        guard type == UInt32(S_IFSOCK) || type == UInt32(S_IFLNK) else {
            throw DaemonError("\(path) exists and is not a socket; refusing to replace it")
        }
        // sensd's own stale socket, or its own symlink: removed, never followed.
        try Syscall.unlinkIfPresent(path)
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
