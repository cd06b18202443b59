import SENSClient
import Testing

/// `{"stats": true}`: sensd's counters for monitoring, through the client library and on the wire.
@Suite("The stats request", .timeLimit(.minutes(1)))
struct StatsRequestTests {
    @Test func statsCountSessionsSubscribersForgedSignalsAndTheLog() async throws {
        let rig = try Rig()
        let watcher = try rig.sensd.subscribe()
        try rig.logind.run("open 1 1000 alice")
        try rig.logind.run("open 2 1001 bob")
        try rig.logind.run("spoof-unicast 2")
        _ = try rig.barrier(watcher)
        let stats = try await SensdClient(socketPath: rig.sensd.socketPath).stats()
        #expect(stats.sessions == 2)
        #expect(stats.subscribers == 2, "the watcher and this connection")
        #expect(stats.lastSeq == 5, "two Logons and the barrier's three events")
        #expect(stats.eventsSinceStart == 5)
        #expect(stats.log == "written")
        #expect(stats.forgedSignals == 1, "\(rig.sensdLog)")
        #expect(stats.refused == 0 && stats.overflowed == 0 && stats.stateDamaged == 0)
    }

    @Test func statsSayWhenThereIsNoLog() async throws {
        let rig = try Rig(sensdArguments: ["--state-directory", "none"])
        let stats = try await SensdClient(socketPath: rig.sensd.socketPath).stats()
        #expect(stats.log == "none")
        #expect(stats.oldestSeq == nil)
    }

    @Test func statsStandAloneAndEndTheConnection() throws {
        let rig = try Rig()
        let mixed = try TestSubscriber(path: rig.sensd.socketPath)
        try mixed.send(#"{"stats":true,"since":1}"# + "\n")
        let refusal = try object(try mixed.nextLine())
        #expect(refusal["error"] as? String == "bad-request")
        #expect((refusal["message"] as? String)?.contains("stands alone") == true, "\(refusal)")
        let plain = try TestSubscriber(path: rig.sensd.socketPath)
        try plain.send(#"{"stats":true}"# + "\n")
        #expect(try object(try plain.nextLine())["accepted"] != nil)
        #expect(try object(try plain.nextLine())["stats"] as? String == "sensd")
        #expect(try plain.nextLine() == nil, "the connection ends after the stats line")
    }
}
