import SENSCore

/// A resuming subscriber's way through the event log: what goes into its queue, read as the client takes
/// it. The lines and the gaps are decided here; what becomes of the connection (live, finished, cut off)
/// is the server's.
enum Replay {
    enum Outcome: Equatable {
        /// Filled up to the room given; more is retained.
        case more
        /// Everything logged is in the queue, and a gap line for whatever was given out but not logged:
        /// the subscriber may join the live stream (or, without `live`, be finished).
        case caughtUp
        /// Retention deleted what this replay had not read yet.
        case overtaken
        /// The log could not be read (the reason says why).
        case failed(String)
    }

    /// Appends to `subscriber`'s queue up to `room` lines after its ``Subscriber/lastSeqSeen`` from
    /// `cursor`: each retained event its request matches, and a gap line for each run of seqs the log
    /// lacks. Caught up, it accounts for every seq up to `emittedSeq`, the last one given out.
    static func refill(_ subscriber: Subscriber, from cursor: LogCursor, room: Int, emittedSeq: UInt64, oldestSeq: UInt64?) -> Outcome {
        let request = subscriber.request
        let step = cursor.read(maxLines: room) { line, seq in
            if seq != subscriber.lastSeqSeen + 1 {
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: WireFormat.gap(firstMissing: subscriber.lastSeqSeen + 1, lastMissing: seq - 1, oldestSeq: oldestSeq), seq: nil))
            }
            subscriber.lastSeqSeen = seq
            if let request, let facts = EventRecord.facts(of: line), !request.matches(facts) { return }
            var bytes = [UInt8](line)
            bytes.append(0x0A)
            subscriber.queue.enqueueFinal(OutgoingLine(bytes: bytes, seq: seq))
        }
        switch step {
        case .more:
            return .more
        case .caughtUp:
            // Events given out but not in the log (it could not be written) are missing too: say so.
            if subscriber.lastSeqSeen < emittedSeq {
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: WireFormat.gap(firstMissing: subscriber.lastSeqSeen + 1, lastMissing: emittedSeq, oldestSeq: oldestSeq), seq: nil))
                subscriber.lastSeqSeen = emittedSeq
            }
            return .caughtUp
        case .overtaken:
            return .overtaken
        case .failed(let reason):
            return .failed(reason)
        }
    }
}
