import Dispatch
import Synchronization
import SystemCalls

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One connection to sensd's socket, with blocking system calls made on a queue of its own.
///
/// A read waits in the kernel, not in a loop: the thread that makes it is idle until sensd writes or the
/// task is cancelled. Cancelling shuts the socket down, which ends a waiting read at once; the descriptor
/// itself is closed only by ``close()``, after the last call on it has returned, so that a cancellation can
/// never reach a descriptor number the process has since reused.
final class Connection: Sendable {
    let socketPath: String
    private let queue: DispatchQueue
    /// The descriptor while open; nil once closed. Shutting down and closing both hold the lock.
    private let descriptor: Mutex<Descriptor?>

    private init(socketPath: String, fd: consuming Descriptor) {
        self.socketPath = socketPath
        self.queue = DispatchQueue(label: "sensd-client \(socketPath)")
        self.descriptor = Mutex(fd)
    }

    /// Connects to `path`.
    static func open(_ path: String) async throws(SystemCallError) -> Connection {
        // A descriptor cannot cross the continuation (it is not copyable): the connection is made there.
        let result: Result<Connection, SystemCallError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(SystemCallError) in
                    Connection(socketPath: path, fd: try Syscall.connect(path: path))
                })
            }
        }
        return try result.get()
    }

    /// Sends `bytes` (a request line: far less than a socket buffer) without raising SIGPIPE in the
    /// program when sensd has closed the connection.
    func write(_ bytes: [UInt8]) async throws(SystemCallError) {
        try await blocking { fd throws(SystemCallError) in
            var offset = 0
            while offset < bytes.count {
                let result = bytes.withUnsafeBytes { raw in
                    Result { () throws(SystemCallError) in try Syscall.send(fd, [UnsafeRawBufferPointer(rebasing: raw[offset...])]) }
                }
                guard let n = try result.get() else { throw SystemCallError("send (the socket buffer is full)", errno: EAGAIN) }
                offset += n
            }
        }
    }

    /// The next bytes sensd sent: empty at the end of the stream (or when the task was cancelled).
    func read(maximum: Int = 65536) async throws(SystemCallError) -> [UInt8] {
        try await blocking { fd throws(SystemCallError) in
            // Not zeroed first: a read of one event line used to clear 64 KiB.
            var failure: SystemCallError?
            let bytes = [UInt8](unsafeUninitializedCapacity: maximum) { raw, count in
                do throws(SystemCallError) {
                    count = try Syscall.read(fd, into: UnsafeMutableRawBufferPointer(raw)) ?? 0
                } catch {
                    failure = error
                    count = 0
                }
            }
            if let failure { throw failure }
            return bytes
        }
    }

    /// Closes the descriptor once every call already queued on it has returned. Idempotent.
    func close() {
        queue.async {
            self.descriptor.withLock { fd in fd = nil }
        }
    }

    // No deinit: every call on the queue holds a reference to self, so all have returned when the
    // descriptor goes with the connection.

    /// Runs `body` on the queue with the descriptor; cancelling the task shuts the socket down so that a
    /// waiting read or write returns.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable (Int32) throws(SystemCallError) -> T) async throws(SystemCallError) -> T {
        let result: Result<T, SystemCallError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                queue.async {
                    guard let fd = self.descriptor.withLock({ $0?.rawValue }) else {
                        continuation.resume(returning: .failure(SystemCallError("the connection to sensd is closed", errno: EBADF)))
                        return
                    }
                    continuation.resume(returning: Result { () throws(SystemCallError) in try body(fd) })
                }
            }
        } onCancel: {
            self.descriptor.withLock { fd in
                if let open = fd?.rawValue { _ = shutdown(open, Int32(SHUT_RDWR)) }
            }
        }
        return try result.get()
    }
}
