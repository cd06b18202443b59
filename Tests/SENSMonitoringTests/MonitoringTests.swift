import FoundationEssentials
import SENSClient
import SENSMonitoring
import Testing

/// A snapshot session as sensd sends it.
func session(_ id: String, _ user: String, uid: UInt32, class sessionClass: String = "user", remote: Bool = false,
             locked: Bool = false, logonType: String = "Interactive") throws -> Snapshot.Session {
    let line = #"{"snapshot":"session","sessionId":"\#(id)","userName":"\#(user)","uid":\#(uid),"class":"\#(sessionClass)","type":"tty","remote":\#(remote),"logonType":"\#(logonType)","state":"active","locked":\#(locked),"idle":false,"logoffInitiated":false}"#
    return try JSONDecoder().decode(Snapshot.Session.self, from: Data(line.utf8))
}

@Suite("Threshold ranges as the Monitoring Plugins guidelines define them")
struct ThresholdRangeTests {
    @Test(arguments: [
        // (range, value, alerts)
        ("10", 11.0, true), ("10", 10.0, false), ("10", 0.0, false), ("10", -1.0, true),
        ("10:", 9.0, true), ("10:", 10.0, false), ("10:", 1e9, false),
        ("~:10", 11.0, true), ("~:10", -50.0, false),
        ("10:20", 9.0, true), ("10:20", 15.0, false), ("10:20", 21.0, true),
        ("@10:20", 15.0, true), ("@10:20", 10.0, true), ("@10:20", 21.0, false),
    ])
    func aRangeAlertsExactlyWhereTheGuidelinesSay(range: String, value: Double, alerts: Bool) throws {
        #expect(try ThresholdRange(parsing: range).alerts(value) == alerts)
    }

    @Test(arguments: ["", "@", "abc", "5:x", "20:10", "1:2:3", "inf", "nan"])
    func aRangeThatDoesNotParseSaysWhatIsExpected(text: String) {
        #expect(throws: ThresholdError.self) { try ThresholdRange(parsing: text) }
        do {
            _ = try ThresholdRange(parsing: text)
        } catch {
            #expect(error.description.contains("N:M"), "\(error)")
        }
    }
}

@Suite("The users check: status line, perfdata, exit status")
struct UsersCheckTests {
    @Test func threeSessionsOfTwoUsersAboveTheWarningRangeAreAWarningWithPerfdata() throws {
        let sessions = [try session("1", "alice", uid: 1000), try session("2", "alice", uid: 1000), try session("c3", "bob", uid: 1001)]
        let check = UsersCheck(warning: try ThresholdRange(parsing: "1"), critical: try ThresholdRange(parsing: "5"))
        let (status, line) = check.evaluate(sessions)
        #expect(status == .warning)
        #expect(line == "USERS WARNING - 2 users logged in, 3 sessions (alice, bob) | users=2;1;5;0; sessions=3;;;0;")
    }

    @Test func thresholdsOnSessionsApplyToSessionsAndShowInTheirPerfdata() throws {
        let sessions = [try session("1", "alice", uid: 1000), try session("2", "alice", uid: 1000)]
        let check = UsersCheck(measure: .sessions, warning: try ThresholdRange(parsing: "1"), critical: try ThresholdRange(parsing: "1"))
        let (status, line) = check.evaluate(sessions)
        #expect(status == .critical)
        #expect(line.hasSuffix("| users=1;;;0; sessions=2;1;1;0;"), "\(line)")
    }

    @Test func nobodyLoggedInIsOkWithoutThresholds() {
        let (status, line) = UsersCheck().evaluate([])
        #expect(status == .ok)
        #expect(line == "USERS OK - 0 users logged in, 0 sessions | users=0;;;0; sessions=0;;;0;")
    }

    @Test func aLowerBoundAlertsWhenTooFewAreLoggedIn() throws {
        let check = UsersCheck(critical: try ThresholdRange(parsing: "1:"))
        #expect(check.evaluate([]).status == .critical)
        #expect(check.evaluate([try session("1", "alice", uid: 1000)]).status == .ok)
    }
}

// SessionMetrics is there only where swift-prometheus is (Package.swift).
#if canImport(Prometheus)
@Suite("Prometheus metrics from a snapshot, sensd's counters and the event stream")
struct SessionMetricsTests {
    func stats() throws -> SensdStats {
        let line = #"{"stats":"sensd","version":"0.2.0","startedAt":"2026-12-05T10:00:00.000000Z","sessions":4,"subscribers":2,"eventsSinceStart":9,"lastSeq":41,"oldestSeq":1,"overflowed":1,"refused":3,"forgedSignals":5,"log":"failing","stateDamaged":0}"#
        return try JSONDecoder().decode(SensdStats.self, from: Data(line.utf8))
    }

    /// The value of the one sample named `series` (name and labels as in the exposition).
    func sample(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
    }

    @Test func sessionsAreCountedByTheirLabelsAndServiceManagersAreLeftOut() throws {
        let snapshot = Snapshot(seq: 41, sessions: [
            try session("1", "alice", uid: 1000, remote: true, logonType: "RemoteInteractive"),
            try session("2", "bob", uid: 1001, remote: true, locked: true, logonType: "RemoteInteractive"),
            try session("c3", "bob", uid: 1001, class: "background", logonType: "Batch"),
            try session("4", "bob", uid: 1001, class: "manager", logonType: "Service"),
        ])
        let text = SessionMetrics().render(snapshot: snapshot, stats: try stats())
        #expect(sample(text, "sensd_up") == 1)
        #expect(sample(text, "sensd_users") == 2)
        #expect(sample(text, #"sensd_sessions{class="user",type="tty",logon_type="RemoteInteractive",remote="true",seat="",locked="false",idle="false"}"#) == 1, "\(text)")
        #expect(sample(text, #"sensd_sessions{class="user",type="tty",logon_type="RemoteInteractive",remote="true",seat="",locked="true",idle="false"}"#) == 1)
        #expect(sample(text, #"sensd_sessions{class="background",type="tty",logon_type="Batch",remote="false",seat="",locked="false",idle="false"}"#) == 1)
        #expect(!text.contains(#"class="manager""#))
        #expect(sample(text, #"sensd_log_written{state="failing"}"#) == 0)
        #expect(sample(text, "sensd_connections_refused_total") == 3)
        #expect(sample(text, "sensd_forged_signals_total") == 5)
        #expect(sample(text, "sensd_last_seq") == 41)
        #expect(text.contains("# TYPE sensd_sessions gauge"))
        #expect(text.contains("# TYPE sensd_events_total counter"))
    }

    @Test func eventsAreCountedByTypeAndALogoffAddsItsSessionsDuration() throws {
        let metrics = SessionMetrics()
        let logoff = #"{"event":"Logoff","seq":7,"time":"2026-12-05T10:10:00.000000Z","sessionId":"3","userName":"alice","uid":1000,"sessionStart":"2026-12-05T10:00:00.000000Z","logonType":"RemoteInteractive"}"#
        metrics.observe(try JSONDecoder().decode(SENSEvent.self, from: Data(logoff.utf8)))
        let text = metrics.render(snapshot: nil, stats: nil)
        #expect(sample(text, "sensd_up") == 0)
        #expect(sample(text, #"sensd_events_total{event="Logoff"}"#) == 1)
        #expect(sample(text, #"sensd_events_total{event="Logon"}"#) == 0, "every type is there from the start")
        #expect(sample(text, #"sensd_session_duration_seconds_bucket{logon_type="RemoteInteractive",le="300.0"}"#) == 0, "\(text)")
        #expect(sample(text, #"sensd_session_duration_seconds_bucket{logon_type="RemoteInteractive",le="900.0"}"#) == 1)
        #expect(sample(text, #"sensd_session_duration_seconds_sum{logon_type="RemoteInteractive"}"#) == 600.0)
        #expect(!text.contains("sensd_users"), "no session gauges without a snapshot")
    }

    @Test func aGapIsCountedAsMissedEvents() {
        let metrics = SessionMetrics()
        metrics.observe(Gap(reason: "not-retained", message: "m", firstMissing: 5, lastMissing: 9))
        #expect(sample(metrics.render(snapshot: nil, stats: nil), "sensd_exporter_events_missed_total") == 5)
    }
}
#endif
