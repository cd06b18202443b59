import SENSCore

/// A resuming subscriber's way through the event log: what goes into its queue, read as the client takes
/// it. The lines and the gaps are decided here; what becomes of the connection (live, finished, cut off)
/// is the server's.
enum Replay {
    enum Outcome: Equatable {
        /// Filled up to the room given; more is retained.
        case more
        /// Varlink: events are missing, and the `EventsMissing` error that ends the call is queued.
        case missing
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
        // JSON-lines says a gap with a line and goes on; Varlink ends the call with an error.
        var missing = false
        func gap(through last: UInt64) {
            let first = subscriber.lastSeqSeen + 1
            switch subscriber.dialect {
            case .jsonLines:
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: WireFormat.gap(firstMissing: first, lastMissing: last, oldestSeq: oldestSeq), seq: nil))
            case .varlink:
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: Varlink.eventsMissing(firstMissing: first, lastMissing: last, oldestSeq: oldestSeq), seq: nil))
                missing = true
            }
        }
        let step = cursor.read(maxLines: room) { line, seq in
            guard !missing else { return }
            if seq != subscriber.lastSeqSeen + 1 {
                gap(through: seq - 1)
                if missing { return }
            }
            subscriber.lastSeqSeen = seq
            if let facts = EventRecord.facts(of: line), !subscriber.wants(facts) { return }
            switch subscriber.dialect {
            case .jsonLines:
                var bytes = [UInt8](line)
                bytes.append(0x0A)
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: bytes, seq: seq))
            case .varlink:
                subscriber.queue.enqueueFinal(OutgoingLine(bytes: Varlink.eventReply(ArraySlice(line)), seq: seq))
            }
        }
        if missing { return .missing }
        switch step {
        case .more:
            return .more
        case .caughtUp:
            // Events given out but not in the log (it could not be written) are missing too: say so.
            if subscriber.lastSeqSeen < emittedSeq {
                gap(through: emittedSeq)
                if missing { return .missing }
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
