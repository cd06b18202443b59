import Systemd
import SystemCalls

/// Watches a directory of logind's session files for files written or renamed into it, and reports their
/// names. logind rewrites a session's file (by rename) when the session starts closing, a change it sends no
/// signal for on every systemd version; the file name is the session id.
///
/// Owns its inotify descriptor from the moment it exists: closed exactly once, when the watcher goes, including
/// when adding it to the event loop fails (it used to be kept in a field before that and lost on a retry).
final class SessionFileWatcher {
    let directory: String
    private let fd: Descriptor
    private var source: EventSource?
    /// Where the events are read, kept between wake-ups.
    private var buffer = [UInt8](repeating: 0, count: 16384)

    init(loop: EventLoop, directory: String, changed: @escaping ([String]) -> Void) throws {
        self.directory = directory
        fd = try Syscall.watchDirectory(directory)
        // Every stored property is set: if adding the source throws, deinit runs and closes the descriptor.
        source = try loop.addIO(fd: fd.rawValue, events: .readable) { [unowned self] _ in
            changed(Syscall.readWatchedNames(self.fd.rawValue, buffer: &self.buffer).filter { !$0.hasPrefix(".") })
        }
    }

    deinit {
        // The event source first: epoll must not be left watching a closed (and maybe reused) number.
        source = nil
    }
}
