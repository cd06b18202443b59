import Logging
import SENSCore
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// The true end of a session that ended while sensd was not watching (docs/protocol.md, "Observed late"):
/// when logind logged its removal, or else, if the boot it began in is over (a power loss), that boot's last
/// journal entry. Only for this machine's own logind, whose journal this is.
final class LateEndFinder {
    private let logger: Logger
    /// Whether start-up has used its one second of asking the journal again (see ``end(of:startedAt:journal:startingUp:)``).
    private var bootEndRetriesSpent = false

    /// The journal, opened at most once per batch of events and only if one of them needs it.
    enum Journal {
        case notOpened
        case open(JournalReader)
        /// It could not be opened: the time sensd noticed is the best there is.
        case unavailable

        mutating func reader() -> JournalReader? {
            if case .notOpened = self { self = (try? JournalReader()).map { .open($0) } ?? .unavailable }
            if case .open(let reader) = self { return reader }
            return nil
        }

        /// A fresh reader, for a journal that may have changed under the last one.
        mutating func reopen() -> JournalReader? {
            self = .notOpened
            return reader()
        }
    }

    init(logger: Logger) {
        self.logger = logger
    }

    /// Whose session `id` was, for one that ended before sensd could ask logind (it was removed before its
    /// details came, or between sensd's subscribing and listing at start-up): logind's record of its start,
    /// or else systemd's record of its scope's start, "Session ID of User NAME". Only a record of the session
    /// that just ended counts: the newest start of that id, whose scope did not end more than a tolerance
    /// before `now` (an older one is another session that had the same id). Nil if the journal does not say
    /// (journald may not have written the record yet on a busy host).
    func user(ofSession id: String, now: UInt64, journal: inout Journal) -> (name: String, uid: UInt32?, startedAt: UInt64)? {
        guard let reader = journal.reader() else { return nil }
        let oldest = now - min(now, DowntimeLedger.tolerance)
        if let start = reader.newestEntry(matching: ["MESSAGE_ID=\(DowntimeLedger.unitStarted)", "UNIT=session-\(id).scope", "_PID=1"], fields: ["MESSAGE", "INVOCATION_ID"]),
           let name = start.fields["MESSAGE"].flatMap({ DowntimeLedger.userName(inScopeMessage: $0, id: id) }),
           let invocation = start.fields["INVOCATION_ID"] {
            let end = reader.newestEntry(matching: ["MESSAGE_ID=\(DowntimeLedger.unitDeactivated)", "MESSAGE_ID=\(DowntimeLedger.unitFailed)", "INVOCATION_ID=\(invocation)", "_PID=1"], fields: [])
            if end.map({ $0.realtime >= oldest }) ?? true {
                return (name, Syscall.userID(named: name), start.realtime)
            }
        }
        if let start = reader.newestEntry(matching: ["MESSAGE_ID=\(DowntimeLedger.sessionStarted)", "SESSION_ID=\(id)", "_COMM=systemd-logind", "_UID=0"], fields: ["USER_ID"]),
           let name = start.fields["USER_ID"] {
            let stop = reader.newestEntry(matching: ["MESSAGE_ID=\(DowntimeLedger.sessionStopped)", "SESSION_ID=\(id)", "_COMM=systemd-logind", "_UID=0"], fields: [])
            if stop.map({ $0.realtime < start.realtime || $0.realtime >= oldest }) ?? true {
                return (name, Syscall.userID(named: name), start.realtime)
            }
        }
        return nil
    }

    /// The session's end (CLOCK_REALTIME microseconds), or nil: the time sensd noticed is the best known.
    func end(of session: LogindSession, startedAt start: UInt64, journal: inout Journal, startingUp: Bool) -> UInt64? {
        if let removed = journal.reader()?.sessionRemoval(id: session.id, notBefore: start) { return removed }
        // At start-up journald may still be moving the previous boot's journal file aside (a power loss leaves
        // it open) just as sensd asks: "unknown" is asked again with a fresh reader, for up to a second; once a
        // whole second of that found nothing, start-up asks no more.
        var answer = journal.reader()?.bootEnd(containing: start) ?? .unknown
        var attempts = 1
        while answer == .unknown && startingUp && !bootEndRetriesSpent && attempts < 10 {
            usleep(100_000)
            attempts += 1
            answer = journal.reopen()?.bootEnd(containing: start) ?? .unknown
        }
        if answer == .unknown && attempts > 1 { bootEndRetriesSpent = true }
        guard case .ended(let end) = answer else { return nil }
        logger.info("a session sensd remembered began in a boot that has ended; it ended by that boot's last journal entry", metadata: ["session": "\(session.id)", "lastEntry": "\(EventTime(microsecondsSinceEpoch: Int64(end)))", "attempts": "\(attempts)"])
        return end
    }
}
