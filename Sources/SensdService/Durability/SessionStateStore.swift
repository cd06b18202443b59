import FoundationEssentials
import Logging
import SENSCore
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// A snapshot of the sessions sensd has reported, current as of event `lastSeq`. With the event log after
/// it, it is everything sensd needs about open sessions across its restarts.
struct SessionState: Codable {
    static let currentVersion = 1
    var version = SessionState.currentVersion
    /// The last event the snapshot includes.
    var lastSeq: UInt64
    var sessions: [SessionTracker.Remembered]
    /// Every session that ended before this moment (CLOCK_REALTIME microseconds) is reported by `lastSeq`:
    /// where a start searches the journal for sessions sensd missed. 0.2.0 and earlier neither write nor
    /// read it.
    var watchedUntil: UInt64?
}

/// The highest seq sensd may have given out, made durable before it is given out, so that seqs never
/// repeat even when the machine loses power before the log reached the disk.
struct SequenceReservation: Codable, Equatable {
    /// Seqs up to here may have been used.
    var reservedThrough: UInt64
    /// The boot the reservation was made in.
    var bootID: String?
    /// sensd stopped cleanly after syncing its log: the log's last seq is exact.
    var clean: Bool
    /// Events from this seq on were handed out but could not be logged (a full or failing disk): the log's
    /// last seq is not the last one given out, so the next start continues after `reservedThrough`.
    var logBehindFrom: UInt64?
}

/// The small state files in the state directory, each replaced as a whole (write, sync, rename).
final class SessionStateStore {
    let path: String
    let reservationPath: String
    private let logger: Logger

    init(directory: String, logger: Logger) {
        path = directory + "/sessions.json"
        reservationPath = directory + "/sequence.json"
        formatPath = directory + "/format"
        unloggedPath = directory + "/unlogged.jsonl"
        self.logger = logger
    }

    let formatPath: String
    /// Logon, LogoffInitiated and Logoff lines handed out while the log could not take them, so that a start
    /// after a crash knows which sessions began and ended then. Made at full size while there is room and
    /// rewritten in place, like the reservation, so a full disk takes it.
    let unloggedPath: String
    static let unloggedCapacity = 256 << 10
    /// The record's size on this disk: ``unloggedCapacity``, or an eighth of the free space where that is
    /// less (a small state file system must keep room for the log and the reservation); at least 4 KiB.
    private(set) var unloggedSize = SessionStateStore.unloggedCapacity
    private var unlogged: [UInt8] = []
    private var unloggedReady = false
    /// The layout of the state directory this version writes and reads. 0.1.0 wrote no `format` file (its
    /// state is format 1). A version that changes the layout in a way older versions cannot read raises it,
    /// converts, and older versions then refuse to start instead of misreading it (docs/upgrades.md).
    static let stateFormat = 1

    /// The events a previous run recorded as handed out but not logged (the file is all blanks otherwise).
    func loadUnlogged() -> [SENSEvent] {
        guard let bytes = try? Syscall.readFile(unloggedPath) else { return [] }
        let decoder = JSONDecoder()
        var events: [SENSEvent] = []
        unlogged = []
        for line in bytes.split(separator: 0x0A) where line.contains(where: { $0 != 0x20 }) {
            guard let e = try? decoder.decode(SENSEvent.self, from: Data(line)) else { continue }
            events.append(e)
            unlogged += line
            unlogged.append(0x0A)
        }
        return events
    }

    /// Makes the record full size while there is room, keeping what it holds.
    func prepareUnlogged() {
        do {
            if let size = try Syscall.readFile(unloggedPath).map(\.count), size >= 4096, size >= unlogged.count {
                // Made by an earlier run, at the size that disk allowed then.
                unloggedSize = size
                unloggedReady = true
                return
            }
            let free = (try? Syscall.freeBytes(in: String(unloggedPath[..<unloggedPath.lastIndex(of: "/")!]))) ?? Self.unloggedCapacity * 8
            unloggedSize = max(4096, min(Self.unloggedCapacity, free / 8 / 4096 * 4096), unlogged.count)
            try Syscall.replaceFile(unloggedPath, with: padded(unlogged), mode: 0o640, durable: true)
            unloggedReady = true
        } catch {
            logger.warning("cannot make room for the record of events handed out while the log is failing; if the disk fills up, a crash then may repeat some of them", metadata: ["file": "\(unloggedPath)", "error": "\(error)"])
        }
    }

    /// Adds lines to the record, synced, before anyone sees them.
    func recordUnlogged(_ lines: [[UInt8]]) throws {
        guard unloggedReady else { throw DaemonError("no room was made for \(unloggedPath)") }
        let grown = unlogged + lines.joined()
        guard grown.count <= unloggedSize else {
            throw DaemonError("\(unloggedPath) is full (\(unloggedSize >> 10) KiB of events handed out without the log)")
        }
        try Syscall.overwriteInPlace(unloggedPath, with: padded(grown))
        unlogged = grown
    }

    /// Empties the record once a snapshot holds what it said.
    func clearUnlogged() {
        guard !unlogged.isEmpty else { return }
        do {
            try Syscall.overwriteInPlace(unloggedPath, with: padded([]))
            unlogged = []
        } catch {
            logger.error("cannot empty \(unloggedPath)", metadata: ["error": "\(error)"])
        }
    }

    var hasUnlogged: Bool { !unlogged.isEmpty }

    private func padded(_ bytes: [UInt8]) -> [UInt8] {
        bytes + [UInt8](repeating: 0x20, count: max(0, unloggedSize - bytes.count))
    }

    /// What start-up found unreadable and set aside (each kept beside the original as `.damaged`), one
    /// sentence each: the status line and the journal say so, `sensd --check-state` lists them.
    private(set) var setAside: [String] = []

    /// Refuses state written in a newer layout; records this layout where none is recorded yet. A format file
    /// that says no number at all is damage, not a newer layout: it is set aside and the files are read as
    /// this layout, each checked as it is read.
    func checkFormat() throws {
        guard let bytes = try Syscall.readFile(formatPath) else {
            recordFormat()
            return
        }
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
        guard let format = Int(text), format > 0 else {
            reportDamage(formatPath, bytes: bytes, what: "state format file", error: "it holds no format number")
            recordFormat()
            return
        }
        if format > Self.stateFormat {
            throw DaemonError("the state in \(formatPath.dropLast("/format".count)) was written by a newer sensd (state format \(format); this sensd \(Release.version) reads format \(Self.stateFormat)); refusing to start rather than misread or damage it: install that newer sensd again, or move the directory aside to start afresh (its history is then lost)")
        }
    }

    private func recordFormat() {
        do {
            try Syscall.replaceFile(formatPath, with: Array("\(Self.stateFormat)\n".utf8), mode: 0o640, durable: true)
        } catch {
            logger.warning("cannot record the state format", metadata: ["file": "\(formatPath)", "error": "\(error)"])
        }
    }

    /// The last snapshot. A damaged file is copied aside (the next save replaces it) and reported, never fatal.
    func load() -> SessionState? {
        guard let state = load(SessionState.self, from: path, what: "session snapshot") else { return nil }
        guard state.version == SessionState.currentVersion else {
            reportDamage(path, bytes: nil, what: "session snapshot", error: "unknown version \(state.version)")
            return nil
        }
        return state
    }

    func save(_ state: SessionState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try Syscall.replaceFile(path, with: Array(try encoder.encode(state)), mode: 0o640, durable: true)
    }

    func loadReservation() -> SequenceReservation? {
        load(SequenceReservation.self, from: reservationPath, what: "sequence reservation")
    }

    /// The reservation is rewritten in place, padded to a fixed size, so that it can still be written when the
    /// state file system is full (it is what keeps seqs from repeating then); a new file otherwise.
    func save(_ reservation: SequenceReservation) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var bytes = Array(try encoder.encode(reservation))
        if bytes.count < Self.reservationRecordSize {
            // Trailing white space is valid JSON: every version reads the object and ignores the padding.
            bytes += [UInt8](repeating: 0x20, count: Self.reservationRecordSize - 1 - bytes.count) + [0x0A]
        }
        if access(reservationPath, F_OK) == 0 {
            try Syscall.overwriteInPlace(reservationPath, with: bytes)
        } else {
            try Syscall.replaceFile(reservationPath, with: bytes, mode: 0o640, durable: true)
        }
    }

    static let reservationRecordSize = 256

    private func load<T: Decodable>(_ type: T.Type, from path: String, what: String) -> T? {
        let bytes: [UInt8]
        do {
            guard let b = try Syscall.readFile(path) else { return nil }
            bytes = b
        } catch {
            logger.error("cannot read the \(what); starting without it", metadata: ["file": "\(path)", "error": "\(error)"])
            return nil
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            reportDamage(path, bytes: bytes, what: what, error: "\(error)")
            return nil
        }
    }

    private func reportDamage(_ path: String, bytes: [UInt8]?, what: String, error: String) {
        let aside = path + ".damaged"
        if let bytes { _ = try? Syscall.replaceFile(aside, with: bytes, mode: 0o640) }
        setAside.append("\(path): the \(what) is damaged (\(error)); kept as \(aside)")
        logger.error("the \(what) is damaged; a copy was kept and sensd starts without it", metadata: ["file": "\(path)", "copy": "\(aside)", "error": "\(error)"])
    }

    /// Adds what start-up decided about damaged state to ``setAside``.
    func noteSetAside(_ sentence: String) { setAside.append(sentence) }

    /// Where the event log's segments are.
    var logDirectory: String { String(path.dropLast("/sessions.json".count)) + "/log" }

    /// Whether a reservation file is there (readable or not).
    var hasReservationFile: Bool { access(reservationPath, F_OK) == 0 }

    /// Whether a snapshot file is there (readable or not).
    var hasSnapshotFile: Bool { access(path, F_OK) == 0 }
}
