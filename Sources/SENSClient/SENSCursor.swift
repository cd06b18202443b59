import SystemCalls

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where a program stands in sensd's stream, kept in a file across restarts: the seq of the last event it
/// finished handling.
///
/// Save after handling an event, and resume with ``SensdClient/events(_:resumingFrom:reconnect:)``: a
/// restarted program continues exactly after what it finished. That is at-least-once delivery: an event
/// being handled when the program died comes again, with the same `seq`, by which it can tell.
///
/// ``save(_:)`` replaces the file atomically and syncs it (and its directory) before returning, so that after
/// a crash or a power loss the file holds one of the seqs saved, never a torn one.
public struct SENSCursor: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The seq saved last; nil when nothing was saved yet (the file does not exist).
    public func load() throws(CursorError) -> UInt64? {
        let bytes: [UInt8]?
        do {
            bytes = try Syscall.readFile(path, limit: 4096)
        } catch {
            throw CursorError(path: path, problem: "cannot be read: \(error)")
        }
        guard let bytes else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
        guard let seq = UInt64(text) else {
            throw CursorError(path: path, problem: "does not hold a seq (a whole number), but \"\(text.prefix(40))\"")
        }
        return seq
    }

    /// Saves `seq`, durably: on the disk when this returns.
    public func save(_ seq: UInt64) throws(CursorError) {
        do {
            try Syscall.replaceFile(path, with: Array("\(seq)\n".utf8), mode: 0o644, durable: true)
        } catch {
            throw CursorError(path: path, problem: "cannot be written: \(error)")
        }
    }
}

/// A cursor file that cannot be read, written or understood.
public struct CursorError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String { "cursor file \(path) \(problem)" }
}

extension String {
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        return String(self.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
