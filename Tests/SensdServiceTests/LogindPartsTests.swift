import SENSCore
import Systemd
import Testing
@testable import SensdService

#if canImport(Glibc)
import Glibc
#endif

@Suite("Start-up gate: signals wait for the owners, readiness for the listing")
struct StartupGateTests {
    @Test func signalsBeforeTheOwnersAreKnownWaitAndComeOutInArrivalOrderThenNothingIsHeld() {
        var gate = StartupGate<String>()
        let held = ["SessionRemoved c1", "SessionNew c2", "PropertiesChanged c2"].map { gate.hold($0) }
        #expect(held == [true, true, true])
        let released = gate.open()
        #expect(released == ["SessionRemoved c1", "SessionNew c2", "PropertiesChanged c2"])
        // Open for good: later signals are handled at once, and a second opening hands out nothing again.
        let heldLater = gate.hold("SessionRemoved c2")
        let releasedAgain = gate.open()
        #expect(!heldLater)
        #expect(releasedAgain.isEmpty)
        #expect(!gate.isHolding)
    }

    @Test func readinessWaitsForTheListingAndEveryDetailRequestItMadeAndIsSaidOnce() {
        var gate = StartupGate<Int>()
        var answers: [Bool] = []
        answers.append(gate.readyNow())  // nothing listed yet
        gate.detailsRequested()
        gate.detailsRequested()
        gate.detailsEnded()
        // Both requests ended while the listing was still being read: more may come.
        gate.detailsEnded()
        answers.append(gate.readyNow())
        gate.detailsRequested()
        gate.listingDone()
        answers.append(gate.readyNow())  // one request still out
        gate.detailsEnded()
        answers.append(gate.readyNow())
        answers.append(gate.readyNow())  // said once
        #expect(answers == [false, false, false, true, false])
    }

    @Test func anEmptyOrFailedListingIsReadyAtOnce() {
        var gate = StartupGate<Int>()
        gate.listingDone()
        let ready = gate.readyNow()
        #expect(ready)
    }
}

@Suite("Shutdown watcher: the reason sessions' ends get while the machine goes down")
struct ShutdownWatcherTests {
    @Test func prepareForShutdownWithoutMetadataIsAShutdownUntilATargetSaysReboot() {
        var watcher = ShutdownWatcher()
        #expect(watcher.reason == nil)
        let first = watcher.prepareForShutdown(going: true, type: nil)
        #expect(first, "the first word is the one logged")
        #expect(watcher.reason == "shutdown")
        watcher.jobQueued(unit: "session-3.scope")
        #expect(watcher.reason == "shutdown", "an ordinary job says nothing")
        watcher.jobQueued(unit: "reboot.target")
        #expect(watcher.reason == "reboot")
        let again = watcher.prepareForShutdown(going: true, type: nil)
        #expect(!again, "said again, not the first word")
        #expect(watcher.reason == "reboot", "a later word without metadata keeps what is known")
    }

    @Test(arguments: [("reboot", "reboot"), ("kexec", "reboot"), ("soft-reboot", "reboot"), ("poweroff", "shutdown"), ("halt", "shutdown"), ("suspend", "shutdown")])
    func metadataTypeNamesTheReason(type: String, reason: String) {
        var watcher = ShutdownWatcher()
        _ = watcher.prepareForShutdown(going: true, type: type)
        #expect(watcher.reason == reason)
    }

    @Test func aCancelledShutdownEndsTheReason() {
        var watcher = ShutdownWatcher()
        _ = watcher.prepareForShutdown(going: true, type: "reboot")
        let first = watcher.prepareForShutdown(going: false, type: nil)
        #expect(!first)
        #expect(watcher.reason == nil)
        watcher.jobQueued(unit: "poweroff.target")
        #expect(watcher.reason == "shutdown", "systemd's target alone is enough")
    }
}

@Suite("logind's session list, as ListSessions answers it")
struct SessionListTests {
    static func entry(_ id: String, _ uid: UInt32, _ user: String, seat: String = "") -> BusValue {
        .structure([.string(id), .uint32(uid), .string(user), .string(seat), .objectPath(LogindSource.objectPath(of: id))])
    }

    @Test func eachEntryGivesIdUidAndUserAndAnEntryOfAnotherShapeIsPassedOver() throws {
        let reply = BusValue.array(elementSignature: "(susso)", [
            Self.entry("3", 1000, "alice", seat: "seat0"),
            .structure([.string("4"), .uint32(1001)]),
            Self.entry("c12", 0, "root"),
        ])
        let sessions = try LogindSource.parseSessionList(reply)
        #expect(sessions.map(\.id) == ["3", "c12"])
        #expect(sessions.map(\.uid) == [1000, 0])
        #expect(sessions.map(\.userName) == ["alice", "root"])
    }

    @Test func anEmptyListIsNoSessionsAndAReplyThatIsNoListIsAnError() throws {
        #expect(try LogindSource.parseSessionList(.array(elementSignature: "(susso)", [])).isEmpty)
        #expect(throws: SystemdError.self) { try LogindSource.parseSessionList(.string("nonsense")) }
        #expect(throws: SystemdError.self) { try LogindSource.parseSessionList(nil) }
    }
}
