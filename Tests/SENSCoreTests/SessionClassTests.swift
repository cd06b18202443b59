import Foundation
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

    /// Remoteness and the PAM service decide before the class: a session opened over the network is someone
    /// at work from afar, whatever class it asked for; a service manager stays a service.
    @Test(arguments: [
        // Teleport's ssh sessions ask for class background (teleport#69773).
        ("background", true, String?.some("teleport"), LogonType?.some(.remoteInteractive)),
        ("background-light", true, nil, .remoteInteractive),
        // ssh to localhost: logind's Remote is false, the service still says where the user came from.
        ("user", false, "sshd", .remoteInteractive), ("background", false, "sshd", .remoteInteractive),
        ("background", false, "su-l", .batch), ("background", false, "systemd-run0", .batch),
        ("user-light", false, "systemd-run0", .interactive),
        ("manager", true, "systemd-user", .service), ("manager", false, "sshd", .service),
        ("a-class-from-the-future", true, "sshd", nil),
    ])
    func remotenessAndServiceComeBeforeTheClass(_ sessionClass: String, _ remote: Bool, _ service: String?, _ expected: LogonType?) {
        #expect(LogonType(sessionClass: sessionClass, remote: remote, service: service) == expected)
    }

    /// Property sets as systemd 262 (Debian testing) gave them, read with `loginctl show-session` in the
    /// end-to-end container, and the one systemd 258.1 gave the service manager (systemd#39334).
    @Test func recordedSessionsOfNewerLogindsGetTheirLogonTypeAndOnlyRealTerminals() {
        let run0AsAlice = LogindSession(id: "c2", properties: [
            "Name": TestValue.text("alice"), "Class": .text("background"), "Type": .text("unspecified"),
            "Service": .text("systemd-run0"), "TTY": .text(""), "Remote": .flag(false), "RemoteUser": .text(""),
        ])
        #expect(run0AsAlice.logonType == .batch && run0AsAlice.terminal == nil)
        let run0AsRoot = LogindSession(id: "c1", properties: [
            "Name": TestValue.text("root"), "Class": .text("background-light"), "Type": .text("unspecified"),
            "Service": .text("systemd-run0"), "Remote": .flag(false),
        ])
        #expect(run0AsRoot.logonType == .batch)
        let manager262 = LogindSession(id: "c7", properties: [
            "Name": TestValue.text("alice"), "Class": .text("manager"), "Type": .text("unspecified"),
            "Service": .text("systemd-user"), "TTY": .text(""), "Remote": .flag(false),
        ])
        #expect(manager262.logonType == .service && manager262.terminal == nil)
        for invented in ["tty1", "/dev/tty1", "console"] {
            let manager258 = LogindSession(id: "c3", properties: [
                "Name": TestValue.text("alice"), "Class": .text("manager"), "Service": .text("systemd-user"), "TTY": .text(invented),
            ])
            #expect(manager258.terminal == nil, "the service manager's \(invented) is not alice's terminal")
            let logon = SENSEvent(EventDraft(event: .logon, session: manager258), seq: 1, time: EventTime(microsecondsSinceEpoch: 0), host: nil)
            #expect(logon.tty == nil && logon.logonType == .service)
        }
        let backgroundOnConsole = LogindSession(id: "c4", properties: [
            "Class": TestValue.text("background"), "Service": .text("cron"), "TTY": .text("/dev/console"),
        ])
        #expect(backgroundOnConsole.terminal == nil)
        let getty = LogindSession(id: "c5", properties: [
            "Class": TestValue.text("user"), "Service": .text("login"), "TTY": .text("console"),
        ])
        #expect(getty.terminal == "console" && getty.logonType == .interactive)
        let sshWithDevPrefix = LogindSession(id: "c6", properties: [
            "Class": TestValue.text("user"), "Service": .text("sshd"), "TTY": .text("/dev/pts/3"), "Remote": .flag(true),
        ])
        #expect(sshWithDevPrefix.terminal == "pts/3" && sshWithDevPrefix.logonType == .remoteInteractive)
    }

    @Test func aLogonTypeThisVersionDoesNotKnowIsReadAsUnknownNotAsABrokenLine() throws {
        let line = #"{"event":"Logon","seq":7,"time":"2026-12-05T10:00:00.000000Z","sessionId":"c1","userName":"alice","uid":1000,"logonType":"NetworkCleartext","logonTypeCode":8}"#
        let event = try JSONDecoder().decode(SENSEvent.self, from: Data(line.utf8))
        #expect(event.logonType == nil && event.logonTypeCode == 8 && event.userName == "alice")
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
