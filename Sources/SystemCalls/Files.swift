import CLinux
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// File calls for the event log and the state files: append, positioned reads, syncing, listing.
extension Syscall {
    /// Opens `path` with `flags` (close-on-exec is added), creating it with `mode` if `flags` say so.
    public static func openFile(_ path: String, _ flags: Int32, mode: UInt32 = 0o644) throws(SystemCallError) -> Descriptor {
        let fd = retryingEINTR { open(path, flags | O_CLOEXEC, mode_t(mode)) }
        guard fd >= 0 else { throw SystemCallError.last("open(\(path))") }
        return Descriptor(taking: fd)
    }

    /// Opens `path` for appending (created with `mode` if missing).
    public static func openForAppend(_ path: String, mode: UInt32 = 0o640) throws(SystemCallError) -> Descriptor {
        try openFile(path, O_WRONLY | O_APPEND | O_CREAT, mode: mode)
    }

    /// Opens `path` for reading; nil if it does not exist.
    public static func openForReading(_ path: String) throws(SystemCallError) -> Descriptor? {
        do {
            return try openFile(path, O_RDONLY)
        } catch where error.errno == ENOENT {
            return nil
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; 0 at the end of the file.
    public static func read(_ fd: Int32, at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        let n = retryingEINTR { pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
        guard n >= 0 else { throw SystemCallError.last("pread") }
        return n
    }

    /// Writes `bytes` to `path` in place, created or truncated: for output files and devices (`/dev/null`),
    /// where ``replaceFile(_:with:mode:durable:)`` would put a regular file in the device's place.
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) throws(SystemCallError) {
        let file = try openFile(path, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        try writeAll(file.rawValue, bytes)
        try file.close()
    }

    /// Rewrites the start of an existing file in place and syncs it: no new file, no rename, so it works on a
    /// full file system (the blocks are the file's already). `bytes` must not be shorter than what it
    /// replaces unless the reader ignores what follows; ENOENT if the file does not exist.
    public static func overwriteInPlace(_ path: String, with bytes: [UInt8]) throws(SystemCallError) {
        let file = try openFile(path, O_WRONLY)
        let n = bytes.withUnsafeBytes { raw in retryingEINTR { pwrite(file.rawValue, raw.baseAddress, raw.count, 0) } }
        guard n == bytes.count else { throw n < 0 ? SystemCallError.last("pwrite(\(path))") : SystemCallError("pwrite(\(path))", errno: EIO) }
        try syncData(file.rawValue)
        try file.close()
    }

    /// The bytes an unprivileged writer may still use on the file system holding `path`.
    /// The corresponding C function is `statvfs`.
    public static func freeBytes(in path: String) throws(SystemCallError) -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { throw SystemCallError.last("statvfs(\(path))") }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// Flushes a file's data to stable storage.
    public static func syncData(_ fd: Int32) throws(SystemCallError) {
        guard retryingEINTR({ fdatasync(fd) }) == 0 else { throw SystemCallError.last("fdatasync") }
    }

    /// Flushes a directory, so that names created, renamed or removed in it are durable.
    public static func syncDirectory(_ path: String) throws(SystemCallError) {
        let directory = try openFile(path, O_RDONLY | O_DIRECTORY)
        // A failed fsync of the directory means the names in it may not be on the disk: the caller decides.
        guard fsync(directory.rawValue) == 0 else { throw SystemCallError.last("fsync(\(path))") }
    }

    public static func truncate(_ path: String, to length: Int) throws(SystemCallError) {
        guard Glibc.truncate(path, off_t(length)) == 0 else { throw SystemCallError.last("truncate(\(path))") }
    }

    /// The names in a directory (without `.` and `..`).
    public static func listDirectory(_ path: String) throws(SystemCallError) -> [String] {
        guard let dir = opendir(path) else { throw SystemCallError.last("opendir(\(path))") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// This boot's id (`/proc/sys/kernel/random/boot_id`): tells "sensd crashed" from "the machine went down".
    public static func bootID() -> String? {
        guard let bytes = try? readFile("/proc/sys/kernel/random/boot_id") else { return nil }
        return String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
    }
}

extension Syscall {
    /// Gives the heap's free memory back to the system (glibc keeps freed memory below the heap's top).
    public static func trimHeap() {
        _ = clinux_malloc_trim(0)
    }
}
