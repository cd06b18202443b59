import CLinux
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A command started by the hook runner: forked and executed by `clinux_spawn` (CLinux), waited for through
/// its pidfd on a dispatch source, so that no thread is parked per running command.
///
/// The runner used swift-subprocess for this; its 1.0 declares swift-tools-version 6.2, which kept the runner
/// from building with Swift 6.0 (Debian 13's own compiler), and what it did for the runner is these few calls.
final class ChildProcess: Sendable {
    let pid: pid_t
    private let pidfd: Int32
    /// Set once the child has been reaped: from then on its pid (and process group id) may belong to another
    /// process, and no signal may go to it.
    private let reaped = Atomic<Bool>(false)

    enum Termination: Equatable, Sendable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// Why a command could not be started: the step that failed and its errno.
    struct SpawnError: Error, CustomStringConvertible {
        var step: String
        var errno: Int32
        var description: String { "\(step): \(String(cString: strerror(errno)))" }
    }

    /// What the child becomes before it runs the command.
    struct Identity {
        var uid: uid_t
        var gid: gid_t
        var groups: [gid_t]
    }

    private init(pid: pid_t, pidfd: Int32) {
        self.pid = pid
        self.pidfd = pidfd
    }

    deinit {
        close(pidfd)
    }

    /// Starts `argv[0]` (a path) with `argv` and exactly `environment`, its standard input, output and error
    /// from the three descriptors (which stay the caller's), in `directory`, as `identity` (nil: as we are),
    /// in a session of its own when `newSession`.
    static func spawn(
        _ argv: [String], environment: [String: String], input: Int32, output: Int32, error: Int32,
        identity: Identity?, newSession: Bool, directory: String = "/"
    ) throws(SpawnError) -> ChildProcess {
        guard let path = argv.first else { throw SpawnError(step: "execve", errno: ENOENT) }
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArguments { free(p) }
            for p in cEnvironment { free(p) }
        }
        let groups = identity?.groups ?? []
        var pidfd: Int32 = -1
        var failedStep: UnsafePointer<CChar>?
        let pid = groups.withUnsafeBufferPointer { groupBuffer in
            directory.withCString { directoryPointer in
                var options = clinux_spawn_options(
                    stdin_fd: input, stdout_fd: output, stderr_fd: error,
                    change_identity: identity == nil ? 0 : 1, uid: identity?.uid ?? 0, gid: identity?.gid ?? 0,
                    groups: groupBuffer.baseAddress, group_count: groupBuffer.count,
                    new_session: newSession ? 1 : 0, directory: directoryPointer)
                return clinux_spawn(path, cArguments, cEnvironment, &options, &pidfd, &failedStep)
            }
        }
        guard pid > 0 else {
            throw SpawnError(step: failedStep.map { String(cString: $0) } ?? "fork", errno: errno)
        }
        return ChildProcess(pid: pid, pidfd: pidfd)
    }

    /// Waits until the child has exited, reaps it and says how it ended. Not cancellable: a child is always
    /// reaped; to end it sooner, signal it (``signalGroup(_:)``).
    func exit() async -> Termination {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // The pidfd becomes readable when the child exits (and stays so): one event is all it takes.
            let source = DispatchSource.makeReadSource(fileDescriptor: pidfd, queue: .global())
            source.setEventHandler {
                source.cancel()
                continuation.resume()
            }
            source.resume()
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped.store(true, ordering: .sequentiallyConsistent)
        // wait(2)'s status word: the low seven bits are the terminating signal, 0 for a normal exit, whose
        // status is the next eight bits.
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    /// Sends `signal` to the child's process group (its session, when it has one of its own), unless the child
    /// has been reaped.
    func signalGroup(_ signal: Int32) {
        guard !reaped.load(ordering: .sequentiallyConsistent) else { return }
        _ = kill(-pid, signal)
    }
}
