import CLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Waits for descriptors to become readable or writable on behalf of any number of tasks, with one thread
/// for all of them: a task whose non-blocking read would block suspends here, and the thread, sleeping in
/// `epoll_wait`, resumes it when the kernel says the descriptor is ready. No thread waits per connection.
///
/// Each descriptor has at most one waiter at a time (its reader); registrations are one-shot, so a
/// descriptor that stays ready wakes nobody until it is waited for again.
public final class Readiness: Sendable {
    /// The process's one instance and its thread, made on first use.
    public static let shared = Readiness()

    private let epoll: Int32
    private let waiters = Mutex<[Int32: CheckedContinuation<Bool, Never>]>([:])

    private init() {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epoll >= 0, "epoll_create1: \(String(cString: strerror(errno)))")
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { _ in
            Readiness.shared.run()
            return nil
        }, nil)
        precondition(created == 0, "pthread_create: \(created)")
        pthread_detach(thread)
    }

    /// Suspends until `fd` is readable (or, with `writable`, writable), or hung up. Answers false if the
    /// task was cancelled instead, or `fd` cannot be watched.
    public func wait(for fd: Int32, writable: Bool = false) async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let cancelled = waiters.withLock { waiters -> Bool in
                    // Cancelled before this registration: the handler below found nothing to resume.
                    if Task.isCancelled { return true }
                    waiters[fd] = continuation
                    return false
                }
                if cancelled { return continuation.resume(returning: false) }
                var event = epoll_event()
                event.events = (writable ? EPOLLOUT.rawValue : EPOLLIN.rawValue) | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
                event.data.fd = fd
                // Re-armed if the descriptor was watched before, added if not.
                if epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) != 0 && (errno != ENOENT || epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) {
                    // Cannot be watched (a closed descriptor): the caller's next call says why.
                    if let waiting = waiters.withLock({ $0.removeValue(forKey: fd) }) { waiting.resume(returning: false) }
                }
            }
        } onCancel: {
            if let waiting = waiters.withLock({ $0.removeValue(forKey: fd) }) { waiting.resume(returning: false) }
        }
    }

    /// Tasks waiting now, for every descriptor together.
    public var waiting: Int { waiters.withLock { $0.count } }

    /// `fd` is about to be closed: it is no longer watched, and a task waiting on it is resumed (false).
    public func forget(_ fd: Int32) {
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
        if let waiting = waiters.withLock({ $0.removeValue(forKey: fd) }) { waiting.resume(returning: false) }
    }

    /// Runs for the life of the process.
    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress!, Int32($0.count), -1) }
            if n < 0 {
                precondition(errno == EINTR, "epoll_wait: \(String(cString: strerror(errno)))")
                continue
            }
            for event in events[0..<Int(n)] {
                let fd = event.data.fd
                if let waiting = waiters.withLock({ $0.removeValue(forKey: fd) }) { waiting.resume(returning: true) }
            }
        }
    }
}
