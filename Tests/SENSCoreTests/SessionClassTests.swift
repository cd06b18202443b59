import Testing
@testable import SENSCore

/// Every class systemd 258 knows, the Windows logon type it maps to, and which ones a default subscriber gets.
@Suite("Session classes: logon types, and service managers kept out unless asked for")
struct SessionClassTests {
    @Test(arguments: [
        ("user", false, LogonType?.some(.interactive)), ("user", true, .remoteInteractive),
        ("user-early", false, .interactive), ("user-incomplete", false, .interactive),
        ("user-light", false, .interactive), ("user-light", true, .remoteInteractive),
        ("greeter", false, .interactive), ("lock-screen", false, .interactive),
        ("background", false, .batch), ("background-light", false, .batch),
        ("manager", false, .service), ("manager-early", false, .service),
        ("a-class-from-the-future", false, nil),
    ])
    func everyClassHasTheLogonTypeTheDocsGive(_ sessionClass: String, _ remote: Bool, _ expected: LogonType?) {
        #expect(LogonType(sessionClass: sessionClass, remote: remote) == expected)
    }

    func facts(_ sessionClass: String?) -> EventFacts {
        EventFacts(event: .logon, userName: "alice", sessionClass: sessionClass)
    }

    @Test func serviceManagersPassOnlyARequestThatNamesTheirClassOrEveryClass() throws {
        for hidden in ["manager", "manager-early"] {
            #expect(!SubscriptionRequest().matches(facts(hidden)), "a request without classes keeps \(hidden) out")
            #expect(!SubscriptionRequest(users: ["alice"]).matches(facts(hidden)))
            #expect(SubscriptionRequest(classes: [hidden]).matches(facts(hidden)))
            #expect(SubscriptionRequest(classes: ["*"]).matches(facts(hidden)))
            #expect(!SubscriptionRequest(classes: ["user"]).matches(facts(hidden)))
        }
        for shown in ["user", "background", "user-light", "background-light", "a-class-from-the-future"] {
            #expect(SubscriptionRequest().matches(facts(shown)))
        }
        #expect(SubscriptionRequest().matches(facts(nil)), "a session whose class is unknown is not hidden")
        #expect(SubscriptionRequest(classes: ["*"]).matches(facts(nil)))
    }

    @Test func snapshotAndLiveAreParsedAndEchoedAndRefusedWhereTheyMakeNoSense() throws {
        let snapshot = try SubscriptionRequest.parse(Array(#"{"snapshot":true,"users":["bob"]}"#.utf8)[...])
        #expect(snapshot.snapshot && snapshot.users == ["bob"])
        #expect(String(decoding: snapshot.json, as: UTF8.self) == #"{"users":["bob"],"snapshot":true}"#)
        let replay = try SubscriptionRequest.parse(Array(#"{"since":3,"live":false,"classes":["*"]}"#.utf8)[...])
        #expect(!replay.live && replay.since == 3 && replay.classes == ["*"])
        #expect(String(decoding: replay.json, as: UTF8.self) == #"{"classes":["*"],"since":3,"live":false}"#)
        for (bad, words) in [(#"{"live":false}"#, "needs \"since\""), (#"{"snapshot":true,"since":1}"#, "cannot be combined"), (#"{"live":"no"}"#, "true or false")] {
            #expect(throws: ProtocolError.self) { try SubscriptionRequest.parse(Array(bad.utf8)[...]) }
            do {
                _ = try SubscriptionRequest.parse(Array(bad.utf8)[...])
            } catch {
                #expect(error.message.contains(words), "\(error.message)")
            }
        }
    }
}
