import Testing
@testable import SENSCore

@Suite("Session tracker: logind's announcements and removals become Logoff events")
struct SessionTrackerTests {
    let alice = LogindSession(id: "c1", uid: 1000, userName: "alice", leader: 4242, startedAt: 1_700_000_000_000_000)

    @Test func logoffOfASessionThatBeganBeforeTheDaemonStartedCarriesItsUser() {
        var tracker = SessionTracker()
        // Start-up enumeration: ListSessions names the user even before details arrive.
        #expect(tracker.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")]).isEmpty)
        let drafts = tracker.removed(id: "c1")
        #expect(drafts == [EventDraft(event: .logoff, session: LogindSession(id: "c1", uid: 1000, userName: "alice"))])
        #expect(tracker.count == 0)
    }

    @Test func sessionAnnouncedThenDetailedThenRemovedGivesOneLogoffWithItsUser() {
        var tracker = SessionTracker()
        tracker.announced(id: "c1")
        #expect(tracker.detailsArrived(alice).isEmpty)
        #expect(tracker.removed(id: "c1") == [EventDraft(event: .logoff, session: alice)])
    }

    @Test func sessionRemovedBeforeItsDetailsArrivedSaysItsUserIsUnknown() {
        var tracker = SessionTracker()
        tracker.announced(id: "c7")
        let drafts = tracker.removed(id: "c7")
        #expect(drafts.count == 1)
        #expect(drafts[0].session.userName == nil)
        #expect(drafts[0].session.uid == nil)
        #expect(drafts[0].unresolved == SessionTracker.unresolvedReason)
    }

    @Test func detailsArrivingAfterRemovalProduceNothingAndTrackNothing() {
        var tracker = SessionTracker()
        tracker.announced(id: "c1")
        _ = tracker.removed(id: "c1")
        #expect(tracker.detailsArrived(alice).isEmpty)
        #expect(tracker.count == 0)
    }

    @Test func removalOfASessionNeverAnnouncedStillGivesItsLogoff() {
        // It ended between subscribing and listing: the removal is the only trace, and it is reported.
        var tracker = SessionTracker()
        let drafts = tracker.removed(id: "c9")
        #expect(drafts.map(\.session.id) == ["c9"])
        #expect(drafts[0].unresolved != nil)
    }

    @Test func reannouncementOfTheSameSessionAfterALogindRestartGivesNoEvent() {
        var tracker = SessionTracker()
        tracker.announced(id: "c1")
        _ = tracker.detailsArrived(alice)
        tracker.announced(id: "c1")
        #expect(tracker.detailsArrived(alice).isEmpty)
        #expect(tracker.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")]).isEmpty)
        #expect(tracker.count == 1)
    }

    @Test func idReusedByADifferentSessionEndsTheOldOne() {
        // Without audit, logind counts c1, c2, ... from 1 again after a restart.
        var tracker = SessionTracker()
        tracker.announced(id: "c1")
        _ = tracker.detailsArrived(alice)
        let bob = LogindSession(id: "c1", uid: 1001, userName: "bob", leader: 5000, startedAt: 1_700_000_100_000_000)
        tracker.announced(id: "c1")
        #expect(tracker.detailsArrived(bob) == [EventDraft(event: .logoff, session: alice)])
        #expect(tracker.removed(id: "c1") == [EventDraft(event: .logoff, session: bob)])
    }

    @Test func sameUserNewLeaderIsANewSession() {
        var tracker = SessionTracker()
        tracker.announced(id: "c1")
        _ = tracker.detailsArrived(alice)
        var again = alice
        again.leader = 9999
        #expect(tracker.detailsArrived(again) == [EventDraft(event: .logoff, session: alice)])
    }

    @Test func resynchronisationEndsSessionsThatVanishedWhileLogindWasAway() {
        var tracker = SessionTracker()
        _ = tracker.resynchronised(live: [
            LogindSession(id: "c1", uid: 1000, userName: "alice"),
            LogindSession(id: "c2", uid: 1001, userName: "bob"),
        ])
        // c2 was closing when logind restarted: the new logind never mentions it again.
        let drafts = tracker.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")])
        #expect(drafts == [EventDraft(event: .logoff, session: LogindSession(id: "c2", uid: 1001, userName: "bob"))])
        #expect(tracker.ids == ["c1"])
    }

    @Test func resynchronisationWithAnotherUserUnderAKnownIdEndsTheOldSession() {
        var tracker = SessionTracker()
        _ = tracker.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")])
        let drafts = tracker.resynchronised(live: [LogindSession(id: "c1", uid: 1001, userName: "bob")])
        #expect(drafts.map(\.session.userName) == ["alice"])
        #expect(tracker.session("c1")?.userName == "bob")
    }

    @Test func sequencerNumbersEventsOneByOneFromWhereItWasLeft() {
        var sequencer = EventSequencer(lastSeq: 40)
        let t = EventTime(microsecondsSinceEpoch: 0)
        let a = sequencer.stamp(EventDraft(event: .logoff, session: alice), at: t)
        let b = sequencer.stamp(EventDraft(event: .logoff, session: alice), at: t)
        #expect(a.seq == 41)
        #expect(b.seq == 42)
        #expect(a.userName == "alice" && a.uid == 1000 && a.sessionId == "c1")
    }
}
