/// When the subscriber server writes what is waiting: the rule, without the event sources that carry it
/// out, so that it is checked in-process (FlushTimingTests).
///
/// Output goes out when the loop has nothing more urgent (no bus message waiting), so that one write per
/// subscriber carries every event of a burst; a deadline bounds the wait when the bus never pauses (checked
/// after every iteration of the loop). Until as long after the last flush as that flush took, a request
/// waits for that moment instead: flushing then takes at most half the loop's time however many
/// subscribers there are, so the bus is always read, while an event after a quiet spell, or with few
/// subscribers, goes out at once.
struct FlushTiming: Equatable {
    /// The longest output waits for the bus to pause while events keep coming.
    static let backstopMicroseconds: UInt64 = 1_000
    /// The longest a flush's own duration holds the next one back.
    static let longestHoldMicroseconds: UInt64 = 10 * backstopMicroseconds

    /// What a request for a flush asks of the event loop.
    enum Wake: Equatable {
        /// Already asked for: nothing to do.
        case alreadyRequested
        /// At the loop's next idle moment, or at ``idleDeadline`` (``overdue(now:)``), whichever comes first.
        case whenIdle
        /// Not before this moment (CLOCK_MONOTONIC microseconds): the last flush's duration is not yet over.
        case at(UInt64)
    }

    private var requested = false
    /// While waiting for an idle moment: when to flush regardless.
    private(set) var idleDeadline: UInt64?
    /// When the last flush ended and how long it took (capped).
    private var lastEnd: UInt64 = 0
    private var lastDuration: UInt64 = 0

    init() {}

    /// A flush is wanted at `now`.
    mutating func request(now: UInt64) -> Wake {
        guard !requested else { return .alreadyRequested }
        requested = true
        if now < lastEnd + lastDuration { return .at(lastEnd + lastDuration) }
        idleDeadline = now + Self.backstopMicroseconds
        return .whenIdle
    }

    /// Whether a flush waiting for an idle moment is past its deadline at `now`.
    func overdue(now: UInt64) -> Bool {
        guard let idleDeadline else { return false }
        return now >= idleDeadline
    }

    /// A flush ran from `start` to `end`: the next request starts afresh.
    mutating func flushed(start: UInt64, end: UInt64) {
        lastEnd = end
        lastDuration = min(end - min(start, end), Self.longestHoldMicroseconds)
        requested = false
        idleDeadline = nil
    }
}
