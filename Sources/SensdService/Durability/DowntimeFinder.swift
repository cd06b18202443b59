import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// The sessions that began and ended while sensd was not running (stopped, crashed, being upgraded): read from
/// the journal, where systemd and logind record every session (``DowntimeLedger``), from a margin before the
/// moment until which sensd had reported everything to the moment it was ready. Reading is done in steps with a
/// deadline each, so that a long downtime (a long journal to read) delays neither readiness nor the live
/// events by more than a step.
final class DowntimeFinder {
    private let reader: JournalReader
    private let logger: Logger
    private let from: UInt64
    private let until: UInt64
    private var ledger = DowntimeLedger()
    private(set) var finished = false

    /// Nil when the journal cannot be read (sensd then reports what logind still lists, as before).
    init?(from: UInt64, until: UInt64, logger: Logger) {
        self.logger = logger
        self.from = from
        self.until = until
        do {
            reader = try JournalReader()
        } catch {
            logger.warning("cannot read the journal, so sessions that began and ended while sensd was down cannot be found; see the systemd-journal group", metadata: ["error": "\(error)"])
            return nil
        }
        guard reader.scan(from: from - min(from, DowntimeLedger.tolerance), matching: DowntimeLedger.matchGroups) else {
            logger.warning("cannot search the journal for sessions that began and ended while sensd was down")
            return nil
        }
    }

    /// Reads records for up to `budget` microseconds or to the end of the window; true once the window is read.
    func step(budget: UInt64) -> Bool {
        let deadline = Self.monotonicNow() + budget
        var n = 0
        while !finished {
            guard let entry = reader.next(fields: DowntimeLedger.fields), entry.realtime <= until else {
                finished = true
                break
            }
            ledger.add(JournalRecord(realtime: entry.realtime, fields: entry.fields))
            n += 1
            // The clock is read every so many records: a record takes microseconds.
            if n % 256 == 0, Self.monotonicNow() >= deadline { break }
        }
        return finished
    }

    /// The clock itself, not the loop's time of its current iteration (which a long step does not move).
    private static func monotonicNow() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000 + UInt64(t.tv_nsec) / 1000
    }

    /// The events of every session the window holds that `known` does not.
    func drafts(known: [KnownSession]) -> [EventDraft] {
        // From a margin before the watermark: a session logind announced just before it, whose details were
        // still on their way when sensd went down, was never reported.
        let missed = ledger.missed(from: from - min(from, DowntimeLedger.tolerance), known: known)
        for s in missed {
            logger.notice("a session began and ended while sensd was down; reporting it from the journal", metadata: [
                "session": "\(s.id)", "user": "\(s.userName ?? "?")", "from": "\(s.sources.map(\.rawValue).sorted().joined(separator: "+"))",
                "start": "\(EventTime(microsecondsSinceEpoch: Int64(s.startedAt)))", "end": "\(EventTime(microsecondsSinceEpoch: Int64(s.endedAt)))",
            ])
        }
        logger.info("searched the journal for sessions sensd missed while it was down", metadata: [
            "since": "\(EventTime(microsecondsSinceEpoch: Int64(from)))", "records": "\(ledger.records)", "missed": "\(missed.count)",
        ])
        return missed.flatMap { $0.drafts(uid: $0.userName.flatMap(Syscall.userID(named:))) }
    }
}
