import Testing
@testable import SENSCore

/// Every transition rule of the tracker, one scenario each.
@Suite("Session tracker: logind's changes become the SENS logon family")
struct SessionTrackerTests {
    let alice = LogindSession(
        id: "c1", uid: 1000, userName: "alice", leader: 4242, startedAt: 1_700_000_000_000_000,
        sessionClass: "user", type: "tty", active: true, idle: false, locked: false, state: "online")

    func kinds(_ drafts: [EventDraft]) -> [EventKind] { drafts.map(\.event) }

    /// A tracker that has reported alice's Logon.
    func withAlice() -> SessionTracker {
        var t = SessionTracker()
        t.announced(id: "c1")
        _ = t.detailsArrived(alice)
        return t
    }

    @Test func newSessionGivesOneLogonWhenItsDetailsArrive() {
        var t = SessionTracker()
        t.announced(id: "c1")
        let drafts = t.detailsArrived(alice)
        #expect(kinds(drafts) == [.logon])
        #expect(drafts[0].session == alice && drafts[0].unresolved == nil)
    }

    @Test func aRemovalWhileTheDetailsWaitOnAnotherAnswerNamesTheUser() {
        var t = SessionTracker()
        t.announced(id: "c1")
        var closing = alice
        closing.state = "closing"
        t.detailsPending(closing)
        #expect(!t.isReported("c1"), "pending details report nothing")
        let drafts = t.removed(id: "c1")
        #expect(kinds(drafts) == [.logon, .logoffInitiated, .logoff])
        #expect(drafts.allSatisfy { $0.session.userName == "alice" && $0.session.uid == 1000 && $0.unresolved == nil })
    }

    @Test func aStateReadFromTheSessionFileIsKeptForTheSnapshotWithoutAnEvent() {
        var t = SessionTracker()
        t.announced(id: "c1")
        var opening = alice
        opening.state = "opening"
        _ = t.detailsArrived(opening)
        t.stateRead(id: "c1", state: "active")
        #expect(t.session("c1")?.state == "active")
        #expect(t.remembered.first?.session.state == "active")
        #expect(kinds(t.closing(id: "c1")) == [.logoffInitiated] && t.session("c1")?.state == "closing")
    }

    @Test func aStateReadBeforeTheDetailsArrivedIsNotTakenBackToOpeningByThem() {
        // The reply to GetAll was made while the session was opening; its file said "online" before the
        // reply arrived: the snapshot must say online, and a session already closing must get its LogoffInitiated.
        var opening = alice
        opening.state = "opening"
        var t = SessionTracker()
        t.announced(id: "c1")
        t.stateRead(id: "c1", state: "online")
        #expect(kinds(t.detailsArrived(opening)) == [.logon])
        #expect(t.session("c1")?.state == "online")
        var u = SessionTracker()
        u.announced(id: "c1")
        #expect(u.closing(id: "c1").isEmpty)
        #expect(kinds(u.detailsArrived(opening)) == [.logon, .logoffInitiated])
        #expect(u.session("c1")?.state == "closing")
        // Without anything read meanwhile, the reply's state stands.
        var v = SessionTracker()
        v.announced(id: "c1")
        _ = v.detailsArrived(opening)
        #expect(v.session("c1")?.state == "opening")
    }

    @Test func sessionThatEndsWithoutLingeringGetsLogoffInitiatedThenLogoff() {
        var t = withAlice()
        let drafts = t.removed(id: "c1")
        #expect(kinds(drafts) == [.logoffInitiated, .logoff])
        #expect(drafts.allSatisfy { $0.session.userName == "alice" && !$0.observedLate })
        #expect(t.count == 0)
    }

    @Test func lingeringSessionGetsLogoffInitiatedWhenClosingAndOnlyLogoffWhenGone() {
        var t = withAlice()
        #expect(kinds(t.closing(id: "c1")) == [.logoffInitiated])
        #expect(t.closing(id: "c1").isEmpty, "at most once")
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", state: "closing"))).isEmpty)
        #expect(kinds(t.removed(id: "c1")) == [.logoff])
    }

    @Test func closingSeenOnTheBusCountsToo() {
        var t = withAlice()
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", state: "closing"))) == [.logoffInitiated])
        #expect(kinds(t.removed(id: "c1")) == [.logoff])
    }

    @Test func closingBeforeTheDetailsArriveComesRightAfterTheLogon() {
        var t = SessionTracker()
        t.announced(id: "c1")
        #expect(t.closing(id: "c1").isEmpty)
        #expect(kinds(t.detailsArrived(alice)) == [.logon, .logoffInitiated])
        #expect(kinds(t.removed(id: "c1")) == [.logoff])
    }

    @Test func sessionRemovedBeforeItsDetailsArrivedStillGetsLogonAndLogoffSayingTheUserIsUnknown() {
        var t = SessionTracker()
        t.announced(id: "c7")
        let drafts = t.removed(id: "c7")
        #expect(kinds(drafts) == [.logon, .logoffInitiated, .logoff])
        #expect(drafts.allSatisfy { $0.session.userName == nil && $0.session.uid == nil && $0.unresolved == SessionTracker.unresolvedReason })
    }

    @Test func detailsArrivingAfterRemovalProduceNothing() {
        var t = SessionTracker()
        t.announced(id: "c1")
        _ = t.removed(id: "c1")
        #expect(t.detailsArrived(alice).isEmpty)
        #expect(t.count == 0)
    }

    @Test func removalOfASessionNeverAnnouncedGivesItsLogoffAfterALateLogon() {
        var t = SessionTracker()
        let drafts = t.removed(id: "c9")
        #expect(kinds(drafts) == [.logon, .logoffInitiated, .logoff])
        #expect(drafts.map(\.observedLate) == [true, false, false])
        #expect(drafts.allSatisfy { $0.unresolved != nil })
    }

    @Test func activeChangesAreDisconnectAndReconnect() {
        var t = withAlice()
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", active: false))) == [.sessionDisconnect])
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", active: true))) == [.sessionReconnect])
    }

    @Test func lockedHintChangesAreDisplayLockAndUnlock() {
        var t = withAlice()
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", locked: true))) == [.displayLock])
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", locked: false))) == [.displayUnlock])
    }

    @Test func idleHintChangesAreTheScreenSaverPair() {
        var t = withAlice()
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", idle: true))) == [.startScreenSaver])
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", idle: false))) == [.stopScreenSaver])
    }

    @Test func aValueReannouncedUnchangedGivesNoEvent() {
        var t = withAlice()
        #expect(t.propertiesChanged(changes: LogindSession(id: "c1", active: true, idle: false, locked: false)).isEmpty)
        #expect(t.detailsArrived(alice).isEmpty)
    }

    @Test func valuesLearnedBeforeTheLogonAreABaselineNotATransition() {
        var t = SessionTracker()
        t.announced(id: "c1")
        #expect(t.propertiesChanged(changes: LogindSession(id: "c1", locked: true)).isEmpty)
        var locked = alice
        locked.locked = true
        #expect(kinds(t.detailsArrived(locked)) == [.logon])
        #expect(kinds(t.propertiesChanged(changes: LogindSession(id: "c1", locked: false))) == [.displayUnlock])
    }

    @Test func propertiesOfAnUnknownPathAreIgnored() {
        var t = withAlice()
        #expect(t.propertiesChanged(changes: LogindSession(id: "c404", locked: true)).isEmpty)
    }

    @Test func logindRestartReannouncingTheSameSessionGivesNoSecondLogon() {
        var t = withAlice()
        #expect(t.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")]).isEmpty)
        t.announced(id: "c1")
        #expect(t.detailsArrived(alice).isEmpty)
        #expect(t.count == 1)
    }

    @Test func changesMissedWhileLogindWasAwayShowUpWhenItComesBack() {
        var t = withAlice()
        var locked = alice
        locked.locked = true
        t.announced(id: "c1")
        #expect(kinds(t.detailsArrived(locked)) == [.displayLock])
    }

    @Test func idReusedByADifferentSessionEndsTheOldOneAndLogsOnTheNew() {
        var t = withAlice()
        let bob = LogindSession(id: "c1", uid: 1001, userName: "bob", leader: 5000, startedAt: 1_700_000_100_000_000, sessionClass: "user")
        t.announced(id: "c1")
        let drafts = t.detailsArrived(bob)
        #expect(kinds(drafts) == [.logoffInitiated, .logoff, .logon])
        #expect(drafts.map(\.session.userName) == ["alice", "alice", "bob"])
        #expect(drafts[0].observedLate && drafts[1].observedLate && !drafts[2].observedLate)
        #expect(kinds(t.removed(id: "c1")) == [.logoffInitiated, .logoff])
    }

    @Test func sameUserNewLeaderIsANewSession() {
        var t = withAlice()
        var again = alice
        again.leader = 9999
        #expect(kinds(t.detailsArrived(again)) == [.logoffInitiated, .logoff, .logon])
    }

    @Test func resynchronisationEndsSessionsThatVanishedWhileLogindWasAwayMarkedLate() {
        var t = withAlice()
        t.announced(id: "c2")
        _ = t.detailsArrived(LogindSession(id: "c2", uid: 1001, userName: "bob", leader: 7, startedAt: 9))
        // c2 was closing when logind restarted: the new logind never mentions it again.
        let drafts = t.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")])
        #expect(kinds(drafts) == [.logoffInitiated, .logoff])
        #expect(drafts.allSatisfy { $0.session.userName == "bob" && $0.observedLate })
        #expect(t.ids == ["c1"])
    }

    @Test func startupEnumerationLogsOnSessionsNeverReported() {
        var t = SessionTracker()
        #expect(t.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")]).isEmpty)
        #expect(kinds(t.detailsArrived(alice)) == [.logon])
    }

    @Test func startupEnumerationDoesNotRepeatTheLogonOfARememberedSession() {
        var t = SessionTracker()
        t.remember([SessionTracker.Remembered(session: alice, logoffInitiated: false)])
        #expect(t.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")]).isEmpty)
        #expect(t.detailsArrived(alice).isEmpty)
        #expect(kinds(t.removed(id: "c1")) == [.logoffInitiated, .logoff])
    }

    @Test func rememberedSessionThatEndedWhileSensdWasDownGetsItsLogoffMarkedLate() {
        var t = SessionTracker()
        t.remember([SessionTracker.Remembered(session: alice, logoffInitiated: true)])
        let drafts = t.resynchronised(live: [])
        #expect(kinds(drafts) == [.logoff], "LogoffInitiated went out in the previous run")
        #expect(drafts[0].observedLate && drafts[0].session.userName == "alice")
    }

    @Test func rememberedIdNowHoldingAnotherSessionAfterAReboot() {
        var t = SessionTracker()
        t.remember([SessionTracker.Remembered(session: alice, logoffInitiated: false)])
        let drafts = t.resynchronised(live: [LogindSession(id: "c1", uid: 1001, userName: "bob")])
        #expect(kinds(drafts) == [.logoffInitiated, .logoff])
        #expect(kinds(t.detailsArrived(LogindSession(id: "c1", uid: 1001, userName: "bob", leader: 1, startedAt: 2))) == [.logon])
    }

    @Test func rememberedListHoldsOnlyReportedSessions() {
        var t = withAlice()
        t.announced(id: "c2")
        #expect(t.remembered.map(\.session.id) == ["c1"])
    }

    @Test(arguments: [
        ("user", false, LogonType.interactive), ("user", true, .remoteInteractive), ("greeter", false, .interactive),
        ("lock-screen", false, .interactive), ("background", false, .batch), ("background", true, .remoteInteractive), ("manager", false, .service),
        ("manager", true, .service),
    ])
    func logonTypeFollowsClassAndRemote(_ c: String, _ remote: Bool, _ expected: LogonType) {
        #expect(LogindSession(id: "x", sessionClass: c, remote: remote).logonType == expected)
    }

    @Test func logonTypeIsUnknownWithoutAClass() {
        #expect(LogindSession(id: "x").logonType == nil)
        #expect(LogindSession(id: "x", sessionClass: "something-new").logonType == nil)
    }

    @Test func sequencerNumbersEventsOneByOneFromWhereItWasLeft() {
        var sequencer = EventSequencer(lastSeq: 40)
        let t = EventTime(microsecondsSinceEpoch: 0)
        let a = sequencer.stamp(EventDraft(event: .logoff, session: alice), at: t, host: "h")
        let b = sequencer.stamp(EventDraft(event: .logoff, session: alice), at: t)
        #expect(a.seq == 41 && b.seq == 42)
        #expect(a.userName == "alice" && a.uid == 1000 && a.sessionId == "c1" && a.host == "h" && a.logonType == .interactive)
    }

    @Test func aSessionWhoseProcessesEndedIsEndedOnceAndStaysDeadWhenLogindListsItAgain() {
        var t = withAlice()
        var closing = alice
        closing.state = "closing"
        #expect(kinds(t.propertiesChanged(changes: closing)) == [.logoffInitiated])
        let ended = t.processesEnded(id: "c1")
        #expect(kinds(ended) == [.logoff] && ended[0].session.userName == "alice" && !ended[0].observedLate)
        #expect(t.processesEnded(id: "c1").isEmpty)
        // A restarted logind lists it again, still closing: the same session, nothing to say.
        #expect(t.resynchronised(live: [LogindSession(id: "c1", uid: 1000, userName: "alice")]).isEmpty)
        #expect(t.detailsArrived(closing).isEmpty)
        #expect(t.session("c1") == nil && t.deadCount == 1)
        // If logind does remove it after all, that is not a second Logoff.
        #expect(t.removed(id: "c1").isEmpty)
        #expect(t.deadCount == 0)
        // A new session reusing the id is news again.
        t.announced(id: "c1")
        var reused = alice
        reused.leader = 5000
        #expect(kinds(t.detailsArrived(reused)) == [.logon])
    }

    @Test func aDeadSessionNeverReportedIsForgottenWithoutEvents() {
        var t = SessionTracker()
        t.announced(id: "c7")
        t.forgetDead(id: "c7")
        #expect(t.count == 0)
        #expect(t.removed(id: "c7").isEmpty, "its removal is not an unknown session's Logoff")
        // Unknown otherwise: a removal of a session never seen is reported.
        #expect(kinds(t.removed(id: "c8")) == [.logon, .logoffInitiated, .logoff])
    }

    @Test func aSessionWhoseProcessesEndedWhileSensdWasDownIsLate() {
        var t = SessionTracker()
        t.remember([SessionTracker.Remembered(session: alice, logoffInitiated: true)])
        let ended = t.processesEnded(id: "c1", late: true)
        #expect(kinds(ended) == [.logoff] && ended.allSatisfy(\.observedLate))
    }
}
