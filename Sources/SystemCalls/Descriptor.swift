#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open file descriptor with exactly one owner: a subscriber's socket, the listening socket, the inotify
/// watch, a log segment, a pipe end.
///
/// It cannot be copied, so no two parts of the program can both believe they own it; it is closed exactly
/// once, by ``close()`` (which reports what close(2) said) or, failing that, when its owner lets go of it.
/// The number itself (``rawValue``) is for system calls made while the owner holds it, never to be kept.
/// Like swift-system's `FileDescriptor` for the calls, and swift-subprocess's `IODescriptor` for ownership.
public struct Descriptor: ~Copyable, Sendable {
    public let rawValue: Int32

    /// Takes ownership of an open descriptor.
    public init(taking rawValue: Int32) {
        precondition(rawValue >= 0, "not a descriptor: \(rawValue)")
        self.rawValue = rawValue
    }

    /// Closes it and says whether close(2) failed (EIO from a file system, say); the descriptor is gone
    /// either way: on Linux close is never retried.
    public consuming func close() throws(SystemCallError) {
        let fd = rawValue
        discard self
        let e = Descriptor.close(fd)
        if e != 0 { throw SystemCallError("close", errno: e) }
    }

    /// Hands the descriptor to something that will close it (a child process, an sd-event source that owns
    /// its descriptor); this owner no longer closes it.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    deinit {
        // Sockets and read-only files: close(2) has nothing to report that anyone could act on. Files
        // written are closed with close() by their owners, which report it.
        _ = Descriptor.close(rawValue)
    }

    /// EBADF here means a descriptor was closed twice or closed by something that did not own it: a bug
    /// that closes another part's descriptor when its number has been reused in between. It stops the
    /// program rather than go on with descriptors it can no longer trust.
    private static func close(_ fd: Int32) -> Int32 {
        guard Glibc.close(fd) != 0 else { return 0 }
        let e = errno
        precondition(e != EBADF, "close(\(fd)): not an open descriptor; it was closed twice or never owned")
        return e
    }
}
