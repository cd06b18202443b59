import Testing
@testable import SensdService

@Suite("Flush timing: one write per burst, never more than half the loop")
struct FlushTimingTests {
    @Test func aRequestAfterAQuietSpellWaitsForTheIdleMomentOrTheBackstopDeadline() {
        var timing = FlushTiming()
        let wakes = [timing.request(now: 5_000), timing.request(now: 5_100)]
        #expect(wakes == [.whenIdle, .alreadyRequested], "a burst asks once")
        #expect(!timing.overdue(now: 5_999))
        #expect(timing.overdue(now: 5_000 + FlushTiming.backstopMicroseconds))
    }

    @Test func afterAnExpensiveFlushTheNextWaitsAsLongAgainThenNoLonger() {
        var timing = FlushTiming()
        _ = timing.request(now: 0)
        timing.flushed(start: 10_000, end: 13_000)
        let held = timing.request(now: 14_000)
        #expect(held == .at(16_000), "3 ms of flushing hold the next flush 3 ms")
        #expect(!timing.overdue(now: 20_000), "a timed flush is not the idle one's to hurry")
        timing.flushed(start: 16_000, end: 16_100)
        let next = timing.request(now: 16_300)
        #expect(next == .whenIdle, "past the hold: at once")
    }

    @Test func theHoldIsCappedSoAnEventWaitsAtMostTenMilliseconds() {
        var timing = FlushTiming()
        timing.flushed(start: 0, end: 500_000)
        let wake = timing.request(now: 500_001)
        #expect(wake == .at(500_000 + FlushTiming.longestHoldMicroseconds))
    }
}
