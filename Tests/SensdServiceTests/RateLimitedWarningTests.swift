import Testing
@testable import SensdService

@Suite("Warnings a client can provoke: once per interval, with a count of the rest")
struct RateLimitedWarningTests {
    @Test func aFloodOfRefusalsIsOneLinePerIntervalThatCountsTheOnesNotSaid() {
        var w = RateLimitedWarning(intervalMicroseconds: 10_000_000)
        #expect(w.due(now: 1_000_000) == 0, "the first is said")
        for t in stride(from: UInt64(1_000_001), to: 11_000_000, by: 10_000) {
            #expect(w.due(now: t) == nil, "quiet within the interval")
        }
        #expect(w.due(now: 11_000_000) == 1000, "the next one says how many were not")
        #expect(w.due(now: 11_000_001) == nil)
        #expect(w.due(now: 30_000_000) == 1)
    }
}
