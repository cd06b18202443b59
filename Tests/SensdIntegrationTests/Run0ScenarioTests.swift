import Testing
import SENSCore

/// run0's sessions (systemd v256 and later): who ran run0 is not on the session but on the service holding
/// its leader, where systemd keeps it for the journal (LogExtraFields ELEVATED_USER/ELEVATED_UID), and
/// `run0 --empower` (v259) gives the user's own uid capabilities (AmbientCapabilities). The stand-in plays
/// both logind and systemd here; the end-to-end tier checks the same against systemd 262.
@Suite("run0 sessions: the invoking user and --empower, from the session's service")
struct Run0ScenarioTests {
    @Test func aRun0SessionCarriesWhoRanItAndAnEmpoweredOneSaysElevated() throws {
        let rig = try Rig(before: { try $0.run("systemd") })
        let sub = try rig.sensd.subscribe(#"{"events":["Logon","Logoff"]}"#)
        // Each closed once its Logon is out: the details, systemd's answers included, are in by then.
        var events: [SENSEvent] = []
        for (id, command) in [("r1", "run0 r1 1000 alice 0 root"), ("r2", "run0 r2 1001 bob 1001 bob empower")] {
            try rig.logind.run(command)
            events.append(try sub.nextEvent())
            try rig.logind.run("close \(id)")
            events.append(try sub.nextEvent())
        }
        #expect(events.map { "\($0.event.rawValue) \($0.sessionId)" } == ["Logon r1", "Logoff r1", "Logon r2", "Logoff r2"], "\(rig.sensdLog)")
        for e in events where e.sessionId == "r1" {
            #expect(e.userName == "alice" && e.service == "systemd-run0" && e.invokedBy == "root" && e.invokedByUid == 0 && e.elevated == nil, "\(e)")
            #expect(e.logonType == .batch, "run0 without a terminal is class background")
        }
        for e in events where e.sessionId == "r2" {
            #expect(e.userName == "bob" && e.invokedBy == "bob" && e.invokedByUid == 1001 && e.elevated == true, "\(e)")
        }
    }

    @Test func withoutSystemdToAskARun0SessionIsReportedAsLogindDescribesIt() throws {
        let rig = try Rig()
        let sub = try rig.sensd.subscribe(#"{"events":["Logon","Logoff"]}"#)
        try rig.logind.run("run0 r3 1000 alice 0 root")
        let logon = try sub.nextEvent()
        try rig.logind.run("close r3")
        let events = [logon, try sub.nextEvent()]
        #expect(events.map(\.event) == [.logon, .logoff])
        #expect(events.allSatisfy { $0.userName == "alice" && $0.service == "systemd-run0" && $0.invokedBy == nil && $0.elevated == nil }, "\(events.map { String(decoding: WireFormat.encode($0), as: UTF8.self) })")
    }
}
