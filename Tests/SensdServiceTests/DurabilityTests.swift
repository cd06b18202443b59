import Foundation
import Logging
import SENSCore
import Systemd
import Testing
import SystemCalls
@testable import SensdService

/// A Logon line of session `s<seq>`.
func logon(_ seq: UInt64) -> OutgoingLine {
    var event = SENSEvent(event: .logon, seq: seq, time: EventTime(microsecondsSinceEpoch: 1_790_000_000_000_000 + Int64(seq)), sessionId: "s\(seq)", userName: "alice", uid: 1000)
    event.sessionStart = event.time
    return WireFormat.line(event)
}

/// A copy of a state directory as a crash at this instant would leave it.
func crashImage(of directory: String, into image: String) {
    try? FileManager.default.removeItem(atPath: image)
    try! FileManager.default.copyItem(atPath: directory, toPath: image)
}

/// No open sessions.
struct NoSessions: OpenSessions {
    var remembered: [SessionTracker.Remembered] { [] }
    var sessionCount: Int { 0 }
}

/// Sessions s1 ... s<stamped>, whose reading (as a snapshot is made) copies the directory as a crash at
/// that instant would leave it.
final class CrashImages: OpenSessions {
    let directory: String
    var stamped: UInt64 = 0
    private(set) var images: [(path: String, snapshotSeq: UInt64)] = []

    init(directory: String) { self.directory = directory }

    var sessionCount: Int { Int(stamped) }
    var remembered: [SessionTracker.Remembered] {
        let image = directory + "-crash\(images.count)"
        crashImage(of: directory, into: image)
        images.append((image, stamped))
        return (1...stamped).map { SessionTracker.Remembered(session: LogindSession(id: "s\($0)", uid: 1000, userName: "alice"), logoffInitiated: false) }
    }
}

@Suite("Durability: the log, the snapshot and the reservation on a real directory")
struct DurabilityTests {
    /// Retention drops a segment in the middle of a batch that starts a new one: the snapshot it asks for
    /// covers every stamped event, so every one of them must be in the log by then. A crash right after the
    /// snapshot is written is simulated by copying the directory as the snapshot is made (nothing else is
    /// written in between); the copy's log is then read back.
    @Test func aSnapshotTakenForRetentionNeverCoversEventsTheLogDoesNotHave() throws {
        let dir = try TemporaryDirectory()
        let loop = try EventLoop()
        let durability = try Durability(directory: dir.path, retention: LogRetention(maxEvents: 20, maxBytes: 1 << 20), syncIntervalMicroseconds: 0, loop: loop, logger: quiet)
        let sessions = CrashImages(directory: dir.path)
        try durability.start(sessions: NoSessions())
        // Batches of 3 across segments of 2: retention falls due while a batch is half written.
        for first in stride(from: UInt64(1), through: 58, by: 3) {
            let batch = (first..<first + 3).map(logon)
            sessions.stamped = first + 2
            durability.append(batch, lastStamped: first + 2, sessions: sessions)
        }
        let images = sessions.images
        #expect(!images.isEmpty, "retention never asked for a snapshot: the scenario did not happen")
        defer { for image in images { try? FileManager.default.removeItem(atPath: image.path) } }
        for image in images {
            let log = try EventLog(directory: image.path + "/log", retention: LogRetention(maxEvents: 20, maxBytes: 1 << 20), logger: quiet)
            let logged = Set(readAll(log, after: 0).seqs)
            // Every session the snapshot calls reported has its Logon in the log: after a crash now, none
            // would get a Logon again, so one the log lacks is lost for every client.
            let missing = (1...image.snapshotSeq).filter { !logged.contains($0) && $0 > (log.oldestSeq ?? 1) }
            #expect(missing.isEmpty, "a crash right then loses the Logons of \(missing): the snapshot at seq \(image.snapshotSeq) covers them, the log ends at \(log.lastSeq ?? 0)")
        }
    }
}
