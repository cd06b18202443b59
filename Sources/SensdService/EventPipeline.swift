import Logging
import SENSCore
import Systemd

/// Where events go once the tracker has decided on them. ``publish(_:at:startingUp:)`` gives each its seq and
/// time and holds it; ``flush()``, the one place events leave, then takes every held event through the same
/// three steps in the same order: the event log, the journal, the subscribers. A subscriber or the journal
/// never sees an event the log does not have (a crash in between must not leave either naming a seq that the
/// next run gives to another event).
final class EventPipeline {
    private let logger: Logger
    private let durability: Durability?
    /// The open sessions as of the last seq stamped, for the snapshots durability takes.
    private let sessions: any OpenSessions
    /// Whether every event is also a structured journal entry.
    let journalEvents: Bool
    /// This machine's name, in every event.
    let host: String?
    /// nil unless sensd follows this machine's own logind (whose journal can date what it missed).
    private let lateEnds: LateEndFinder?
    private var sequencer: EventSequencer
    /// Events stamped but not yet logged and sent: they go out together at the next flush, one log write
    /// and one write per subscriber for the whole burst.
    private var pendingLines: [OutgoingLine] = []
    private var pendingJournal: [[(String, String)]] = []
    /// The last seq logged and handed to the subscribers: what a new subscriber's hello line says.
    private(set) var emittedSeq: UInt64
    private(set) var eventsSinceStart = 0

    init(lastSeq: UInt64, durability: Durability?, sessions: any OpenSessions, journalEvents: Bool, host: String?, localLogind: Bool, logger: Logger) {
        self.logger = logger
        self.durability = durability
        self.sessions = sessions
        self.journalEvents = journalEvents
        self.host = host
        lateEnds = localLogind ? LateEndFinder(logger: logger) : nil
        sequencer = EventSequencer(lastSeq: lastSeq)
        emittedSeq = lastSeq
    }

    /// The last seq given out (stamped), logged or not yet.
    var lastSeq: UInt64 { sequencer.lastSeq }

    /// Stamps the events and holds them for the next flush, which the caller asks the server for (so that
    /// one write per subscriber carries a burst).
    func publish(_ drafts: [EventDraft], at now: EventTime, startingUp: Bool) {
        guard !drafts.isEmpty else { return }
        durability?.reserve(covering: sequencer.lastSeq + UInt64(drafts.count))
        pendingLines.reserveCapacity(pendingLines.count + drafts.count)
        var journal = LateEndFinder.Journal.notOpened
        var bestEnds: [String: UInt64?] = [:]
        var owners: [String: (name: String, uid: UInt32?, startedAt: UInt64)?] = [:]
        for draft in drafts {
            var event = sequencer.stamp(draft, at: now, host: host)
            if let time = draft.time {
                // Known from a record of it (sessions that began and ended while sensd was down).
                event.observedAt = now
                event.time = time
            } else if draft.observedLate, let lateEnds, draft.isEnding, let start = draft.session.startedAt {
                // Looked up once per session, for its LogoffInitiated and its Logoff alike.
                let id = draft.session.id
                if bestEnds[id] == nil { bestEnds[id] = lateEnds.end(of: draft.session, startedAt: start, journal: &journal, startingUp: startingUp) }
                if let end = bestEnds[id] ?? nil {
                    event.observedAt = now
                    event.time = EventTime(microsecondsSinceEpoch: Int64(end))
                }
            }
            if event.unresolved != nil, let lateEnds {
                // Looked up once per session, for each of its events.
                let id = draft.session.id
                if owners[id] == nil { owners[id] = lateEnds.user(ofSession: id, now: UInt64(now.microsecondsSinceEpoch), journal: &journal) }
                if let owner = owners[id] ?? nil {
                    event.userName = owner.name
                    event.uid = owner.uid
                    let start = EventTime(microsecondsSinceEpoch: Int64(owner.startedAt))
                    event.sessionStart = event.sessionStart ?? start
                    event.unresolved = nil
                    if event.event == .logon, draft.observedLate {
                        // A Logon sensd could not see: when the journal says the session began.
                        event.observedAt = now
                        event.time = start
                    }
                }
            }
            if event.unresolved != nil {
                logger.warning("session ended before its user could be learned", metadata: ["session": "\(event.sessionId)", "seq": "\(event.seq)"])
            }
            logger.debug("event", metadata: ["event": "\(event.event.rawValue)", "session": "\(event.sessionId)", "user": "\(event.userName ?? "?")", "seq": "\(event.seq)", "late": "\(event.observedLate == true)"])
            pendingLines.append(WireFormat.line(event))
            if journalEvents { pendingJournal.append(JournalEntry.fields(event)) }
        }
        eventsSinceStart += drafts.count
    }

    /// Logs, then journals, then hands `subscribers` every event stamped since the last flush.
    func flush(to subscribers: (any EventSubscribers)?) {
        guard let last = pendingLines.last?.seq else { return }
        let lines = pendingLines
        let entries = pendingJournal
        pendingLines.removeAll(keepingCapacity: pendingLines.capacity <= 4096)
        pendingJournal.removeAll(keepingCapacity: pendingJournal.capacity <= 4096)
        // 1. The log (or, if it cannot take them, the record of what went out without it).
        durability?.append(lines, lastStamped: sequencer.lastSeq, sessions: sessions)
        // 2. The journal.
        for entry in entries { JournalWriter.send(entry) }
        // 3. The subscribers.
        emittedSeq = last
        for line in lines { subscribers?.broadcast(line) }
        // Every stamped event is in the log now: the moment for a snapshot that is due.
        if let durability, durability.snapshotDue { durability.saveSnapshot(lastStamped: sequencer.lastSeq, sessions: sessions) }
    }

    /// Logs what is pending (the subscribers are gone), then puts everything on the disk with a note that the
    /// log's last seq is exact.
    func stopCleanly() {
        flush(to: nil)
        durability?.stopCleanly(lastStamped: sequencer.lastSeq, sessions: sessions)
    }
}

/// Where the pipeline hands its lines once they are logged: the subscriber server.
protocol EventSubscribers: AnyObject {
    func broadcast(_ line: OutgoingLine)
}
