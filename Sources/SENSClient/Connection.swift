import Dispatch
import Synchronization
import SystemCalls

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One connection to sensd's socket, non-blocking: a read that would block suspends the task in
/// ``Readiness`` (one thread waits for every connection of the process), so a program with fifty streams
/// (sensd-hooks with fifty rules) has no thread per stream. Cancelling the task ends a waiting read at once,
/// with no bytes. The descriptor is closed only by ``close()``; calls on it hold the lock, so that none can
/// reach a descriptor number the process has since reused.
final class Connection: Sendable {
    let socketPath: String
    /// The descriptor while open; nil once closed.
    private let descriptor: Mutex<Descriptor?>

    private init(socketPath: String, fd: consuming Descriptor) {
        self.socketPath = socketPath
        self.descriptor = Mutex(fd)
    }

    /// Connects to `path`. Connecting to a Unix socket waits only while its backlog is full, so it is made
    /// on a thread of Dispatch's, not on the caller's.
    static func open(_ path: String) async throws(SystemCallError) -> Connection {
        // A descriptor cannot cross the continuation (it is not copyable): the connection is made there.
        let result: Result<Connection, SystemCallError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(SystemCallError) in
                    let fd = try Syscall.connect(path: path)
                    try Syscall.setNonBlocking(fd.rawValue)
                    return Connection(socketPath: path, fd: fd)
                })
            }
        }
        return try result.get()
    }

    /// Sends `bytes` (a request line: far less than a socket buffer) without raising SIGPIPE in the
    /// program when sensd has closed the connection.
    func write(_ bytes: [UInt8]) async throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            let sent = try withDescriptor { fd throws(SystemCallError) in
                let result = bytes.withUnsafeBytes { raw in
                    Result { () throws(SystemCallError) in try Syscall.send(fd, [UnsafeRawBufferPointer(rebasing: raw[offset...])]) }
                }
                return try result.get()
            }
            if let sent {
                offset += sent
                continue
            }
            guard let fd = rawDescriptor, await Readiness.shared.wait(for: fd, writable: true) else {
                throw SystemCallError("send (cancelled, or the connection is closed)", errno: ECANCELED)
            }
        }
    }

    /// The next bytes sensd sent: empty at the end of the stream (or when the task was cancelled).
    func read(maximum: Int = 65536) async throws(SystemCallError) -> [UInt8] {
        while true {
            let bytes = try withDescriptor { fd throws(SystemCallError) -> [UInt8]? in
                // Not zeroed first: a read of one event line used to clear 64 KiB.
                var failure: SystemCallError?
                var wouldBlock = false
                let bytes = [UInt8](unsafeUninitializedCapacity: maximum) { raw, count in
                    do throws(SystemCallError) {
                        if let n = try Syscall.read(fd, into: UnsafeMutableRawBufferPointer(raw)) {
                            count = n
                        } else {
                            wouldBlock = true
                            count = 0
                        }
                    } catch {
                        failure = error
                        count = 0
                    }
                }
                if let failure { throw failure }
                return wouldBlock ? nil : bytes
            }
            if let bytes { return bytes }
            guard let fd = rawDescriptor, await Readiness.shared.wait(for: fd) else { return [] }
        }
    }

    /// Closes the descriptor (a task waiting on it is resumed first). Idempotent.
    func close() {
        descriptor.withLock { fd in
            if let open = fd?.rawValue { Readiness.shared.forget(open) }
            fd = nil
        }
    }

    private var rawDescriptor: Int32? { descriptor.withLock { $0?.rawValue } }

    /// Runs `body` with the descriptor, holding the lock: a close waits for it.
    private func withDescriptor<T>(_ body: (Int32) throws(SystemCallError) -> T) throws(SystemCallError) -> T {
        var result: Result<T, SystemCallError> = .failure(SystemCallError("the connection to sensd is closed", errno: EBADF))
        descriptor.withLock { fd in
            guard let open = fd?.rawValue else { return }
            result = Result { () throws(SystemCallError) in try body(open) }
        }
        return try result.get()
    }
}
