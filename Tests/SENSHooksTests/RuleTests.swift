import Foundation
import SENSClient
@testable import SENSHooks
import Testing

#if canImport(Glibc)
import Glibc
#endif

func parse(_ text: String) throws(RuleErrors) -> HookRule {
    try RuleParser.parse(text, name: "test", path: "/etc/sensd/hooks.d/test.hook")
}

func errors(_ text: String) -> [String] {
    do {
        _ = try parse(text)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

func event(_ kind: EventKind = .logoff, user: String? = "alice", uid: UInt32? = 1000, sessionClass: String? = "user",
           service: String? = "sshd", remote: Bool? = true) -> SENSEvent {
    var e = SENSEvent(event: kind, seq: 41, time: EventTime(microsecondsSinceEpoch: 1_764_000_000_123_456), sessionId: "27", userName: user, uid: uid)
    e.sessionClass = sessionClass
    e.service = service
    e.remote = remote
    e.remoteHost = "192.0.2.7"
    e.host = "node1"
    e.tty = "pts/0"
    return e
}

@Suite("rule files")
struct RuleParserTests {
    @Test func theGrammarIsSystemdsCommentsOnTheirOwnLinesContinuationsAndXKeys() throws {
        let rule = try parse("""
            # one or more event types
            [Match]
            Event=Logoff
              ; optional; also UID=, Class=, Service=, Remote=yes|no
            UserName=alice \\
            # a comment line inside a continuation is skipped
                     bob
            X-Owner=the storage team
            [X-Inventory]
            Anything=goes here
            [Run]
            Exec=/usr/local/sbin/cleanup %u %s #2
            User=carol
            TimeoutSec=1min 30s
            """)
        #expect(rule.match.events == [.logoff] && rule.match.userNames == ["alice", "bob"])
        #expect(rule.action == .exec(["/usr/local/sbin/cleanup", "%u", "%s", "#2"]), "no comments after a value: #2 is an argument")
        #expect(rule.user == "carol" && rule.timeout == .seconds(90) && rule.retries == 0)
    }

    @Test func aCommentAfterAValueIsAMistakeThatSaysWhere() {
        let found = errors("[Match]\nEvent=Logoff   # when it ends\n[Run]\nExec=/bin/true\n")
        #expect(found.contains { $0.contains(":2: unknown event '#'") && $0.contains("a comment goes on a line of its own") }, "\(found)")
    }

    @Test(arguments: [
        ("90", Duration.seconds(90)), ("2.5", .milliseconds(2500)), ("2.5s", .milliseconds(2500)), ("5min", .seconds(300)),
        ("1h 30s", .seconds(3630)), ("1h30m", .seconds(5400)), ("500ms", .milliseconds(500)), ("500 ms", .milliseconds(500)),
        ("1d", .seconds(86400)), ("2 weeks", .seconds(1_209_600)), ("100us", .microseconds(100)), ("0", .zero),
        ("infinity", .seconds(Int64.max)),
    ])
    func timeSpansReadAsSystemdReadsThem(_ text: String, _ expected: Duration) {
        #expect(RuleParser.timeSpan(text) == expected)
    }

    @Test(arguments: ["", "soon", "5 lightyears", "1h -5s", "min", "1e3", "11y"])
    func whatIsNoTimeSpanIsRefused(_ text: String) {
        #expect(RuleParser.timeSpan(text) == nil)
    }

    @Test func booleansAreSystemds() throws {
        for (text, value) in [("y", true), ("t", true), ("on", true), ("1", true), ("YES", true), ("n", false), ("f", false), ("off", false), ("0", false), ("False", false)] {
            let rule = try parse("[Match]\nEvent=Logoff\nRemote=\(text)\n[Run]\nExec=/bin/true\n")
            #expect(rule.match.remote == value, "Remote=\(text)")
        }
        #expect(errors("[Match]\nEvent=Logoff\nRemote=maybe\n[Run]\nExec=/bin/true\n").first?.contains(":3: Remote= takes a boolean") == true)
    }

    @Test func defaultsAreAMinuteAndNoRetry() throws {
        let rule = try parse("[Match]\nEvent=Logon Logoff\n[Run]\nUnit=cleanup@%u.service\n")
        #expect(rule.match.events == [.logon, .logoff] && rule.action == .unit("cleanup@%u.service"))
        #expect(rule.timeout == HookRule.defaultTimeout && rule.retries == 0 && rule.retryDelay == HookRule.defaultRetryDelay)
        let other = try parse("[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\nTimeoutSec=infinity\nRetry=3\nRetrySec=2.5\n")
        #expect(other.timeout == nil && other.retries == 3 && other.retryDelay == .milliseconds(2500))
        #expect(rule.inputFormat == .sensd)
        #expect(try parse("[Match]\nEvent=LogonFailed\n[Run]\nExec=/bin/true\nInputFormat=ocsf\n").inputFormat == .ocsf)
        #expect(errors("[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\nInputFormat=cef\n") == ["/etc/sensd/hooks.d/test.hook:5: InputFormat= takes sensd, ecs, ocsf, got 'cef'"])
    }

    @Test func quotingAndEscapesWorkAsInSystemdExecLines() throws {
        let rule = try parse(#"""
            [Match]
            Event=Logoff
            [Run]
            Exec=/bin/echo "two words" 'single # not a comment' a\ b "%u's" \"q\"
            """#)
        #expect(rule.action == .exec(["/bin/echo", "two words", "single # not a comment", "a b", "%u's", "\"q\""]))
    }

    @Test(arguments: [
        ("[Match]\nEvent=Logof\n[Run]\nExec=/bin/true\n", ":2: unknown event 'Logof'"),
        ("[Match]\nEvent=Logoff\n[Run]\nExec=true\n", ":4: Exec= must start with the program's absolute path"),
        ("[Match]\nEvent=Logoff\n[Run]\nExec=/bin/echo %x\n", ":4: Exec=: unknown specifier '%x'"),
        ("[Match]\nEvent=Logoff\n[Run]\nExec=/bin/echo \"open\n", ":4: Exec=: an unclosed \" quote"),
        ("[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\nTimeoutSec=soon\n", ":5: TimeoutSec= takes a time span"),
        ("[Match]\nEvent=Logoff\nColour=blue\n[Run]\nExec=/bin/true\n", ":3: unknown key Colour= in [Match]"),
        ("Event=Logoff\n", ":1: Event= outside a section"),
        ("[Matches]\n", ":1: unknown section [Matches]"),
        ("[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\nUnit=x.service\n", ":5: a rule has Exec= or Unit=, not both"),
        ("[Match]\nEvent=Logoff\n[Run]\nUnit=x@%u.service\nUser=bob\n", ": User= is for Exec="),
        ("[Match]\nEvent=Logoff\nUID=alice\n[Run]\nExec=/bin/true\n", ":3: UID= takes numbers"),
        ("[Match]\nEvent=Logoff\nRemote=maybe\n[Run]\nExec=/bin/true\n", ":3: Remote= takes a boolean"),
        ("[Match]\nEvent=Logoff\n", ": no Exec= or Unit= in [Run]"),
        ("[Run]\nExec=/bin/true\n", ": no Event= in [Match]"),
    ])
    func eachMistakeIsReportedAtItsLine(text: String, expected: String) {
        let found = errors(text)
        #expect(found.contains { $0.hasPrefix("/etc/sensd/hooks.d/test.hook") && $0.contains(expected) }, "\(found)")
    }

    @Test func everyMistakeInAFileIsReportedNotJustTheFirst() {
        let found = errors("[Match]\nEvent=Nope\nUID=x\n[Run]\nExec=relative\n")
        #expect(found.count == 3, "\(found)")
    }

    @Test func anEmptyValueEmptiesAList() throws {
        let rule = try parse("[Match]\nEvent=Logoff\nUserName=alice\nUserName=\n[Run]\nExec=/bin/true\n")
        #expect(rule.match.userNames == nil)
    }
}

@Suite("matching events")
struct MatchTests {
    func rule(_ match: String) throws -> HookRule { try parse("[Match]\n\(match)\n[Run]\nExec=/bin/true\n") }

    @Test func eachKeyMustMatchAndValuesAreAlternatives() throws {
        let r = try rule("Event=Logoff LogoffInitiated\nUserName=alice bob\nService=sshd\nRemote=yes")
        #expect(r.match.matches(event()))
        #expect(r.match.matches(event(.logoffInitiated, user: "bob")))
        #expect(!r.match.matches(event(.logon)))
        #expect(!r.match.matches(event(user: "carol")))
        #expect(!r.match.matches(event(user: nil)), "an unresolved user matches no UserName=")
        #expect(!r.match.matches(event(service: "su")))
        #expect(!r.match.matches(event(remote: false)))
        #expect(try rule("Event=Logoff\nUID=1000").match.matches(event()))
        #expect(try !rule("Event=Logoff\nUID=1001").match.matches(event()))
        #expect(try !rule("Event=Logoff\nUID=1000").match.matches(event(uid: nil)))
        #expect(try rule("Event=Logoff\nRemote=no").match.matches(event(remote: nil)))
    }

    @Test func serviceManagersMatchOnlyWhenTheirClassIsNamed() throws {
        #expect(try !rule("Event=Logoff").match.matches(event(sessionClass: "manager")))
        #expect(try rule("Event=Logoff").match.matches(event(sessionClass: "greeter")))
        #expect(try rule("Event=Logoff\nClass=manager").match.matches(event(sessionClass: "manager")))
        #expect(try rule("Event=Logoff\nClass=*").match.matches(event(sessionClass: "manager-early")))
        #expect(try !rule("Event=Logoff\nClass=user").match.matches(event(sessionClass: "greeter")))
    }

    @Test func theFilterSentToSensdIsTheMatchItCanApply() throws {
        let r = try rule("Event=Logoff\nUserName=alice\nUID=1000\nClass=user\nService=sshd")
        #expect(r.match.filter == Filter(events: [.logoff], users: ["alice"], uids: [1000], classes: ["user"]))
    }
}

@Suite("specifiers and the environment")
struct SpecifierTests {
    @Test func specifiersExpandToTheEventsFields() {
        let e = event()
        #expect(Specifiers.expand("%e %q %s %u %U %c %S %T %h %H 100%%", e) == "Logoff 41 27 alice 1000 user sshd pts/0 192.0.2.7 node1 100%")
        #expect(Specifiers.expand("%t", e) == "2025-11-24T16:00:00.123456Z")
        #expect(Specifiers.expand("[%u][%r]", event(user: nil)) == "[][]", "a missing field is empty")
    }

    @Test(arguments: [("alice", "alice"), ("a-b", "a\\x2db"), ("john.doe", "john.doe"), (".x", "\\x2ex"), ("a b", "a\\x20b"), ("ü", "\\xc3\\xbc"), ("a/b", "a-b")])
    func unitInstancesAreEscapedAsSystemdEscapeDoes(raw: String, escaped: String) {
        #expect(Specifiers.unitEscape(raw) == escaped)
    }

    @Test func everyFieldOfTheLineBecomesAVariable() {
        let line = #"{"event":"Logoff","seq":41,"time":"2026-11-20T10:00:00.123456Z","sessionId":"27","userName":"alice","uid":1000,"class":"user","remote":true,"remoteHost":"192.0.2.7","logonTypeCode":10,"futureField":"x","nested":{"a":1},"gone":null}"#
        let variables = Dictionary(uniqueKeysWithValues: HookEnvironment.variables(forLine: line).map { ($0.name, $0.value) })
        #expect(variables == [
            "SENS_EVENT": "Logoff", "SENS_SEQ": "41", "SENS_TIME": "2026-11-20T10:00:00.123456Z", "SENS_SESSION_ID": "27",
            "SENS_USER_NAME": "alice", "SENS_UID": "1000", "SENS_CLASS": "user", "SENS_REMOTE": "yes",
            "SENS_REMOTE_HOST": "192.0.2.7", "SENS_LOGON_TYPE_CODE": "10", "SENS_FUTURE_FIELD": "x",
        ])
    }
}

@Suite("rule directories")
struct RuleSetTests {
    func scratch() -> String {
        var template = Array("/tmp/sensd-hooks-test-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    func write(_ path: String, _ text: String) {
        let f = fopen(path, "w")!
        fputs(text, f)
        fclose(f)
    }

    @Test func etcOverridesAndMasksVendorRulesAndABadFileStopsOnlyItself() {
        let root = scratch()
        let etc = root + "/etc", vendor = root + "/usr"
        mkdir(etc, 0o755)
        mkdir(vendor, 0o755)
        let good = "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\n"
        write(vendor + "/cleanup.hook", good)
        write(etc + "/cleanup.hook", "[Match]\nEvent=Logon\n[Run]\nExec=/bin/true\n")
        write(vendor + "/masked.hook", good)
        write(etc + "/masked.hook", "")
        write(vendor + "/vendor-only.hook", good)
        write(etc + "/broken.hook", "[Match]\nEvent=Logoff\n[Run]\nExec=relative\n")
        write(etc + "/not-a-rule.conf", "garbage")
        let set = RuleSet.load(from: [etc, root + "/absent", vendor])
        #expect(set.rules.map(\.name) == ["cleanup", "vendor-only"])
        #expect(set.rules.first?.match.events == [.logon], "the /etc file wins")
        #expect(set.masked == [etc + "/masked.hook"])
        #expect(set.errors.map(\.description) == ["\(etc)/broken.hook:4: Exec= must start with the program's absolute path (no shell, no PATH search), got 'relative'"])
    }
}


extension RuleSetTests {
    /// An administrator changes a vendor's rule without copying it: /etc/sensd/hooks.d/NAME.hook.d/*.conf,
    /// read after the rule in file-name order, the /etc one of two with the same name.
    @Test func dropInsAddToAndOverrideARuleAndTheirMistakesNameThemselves() {
        let root = scratch()
        let etc = root + "/etc", vendor = root + "/usr"
        for dir in [etc, vendor, etc + "/cleanup.hook.d", vendor + "/cleanup.hook.d", etc + "/broken.hook.d"] { mkdir(dir, 0o755) }
        write(vendor + "/cleanup.hook", "[Match]\nEvent=Logoff\nUserName=alice\n[Run]\nExec=/bin/true\nTimeoutSec=60\n")
        write(vendor + "/cleanup.hook.d/10-users.conf", "[Match]\nUserName=bob\n")
        write(vendor + "/cleanup.hook.d/20-time.conf", "[Run]\nTimeoutSec=5min\n")
        // Same name in /etc: replaces the vendor's 20-time.conf.
        write(etc + "/cleanup.hook.d/20-time.conf", "[Run]\nTimeoutSec=2min\n")
        write(etc + "/cleanup.hook.d/30-run-as.conf", "[Run]\nUser=carol\n")
        write(etc + "/cleanup.hook.d/notes.txt", "not a drop-in")
        write(vendor + "/broken.hook", "[Match]\nEvent=Logoff\n[Run]\nExec=/bin/true\n")
        write(etc + "/broken.hook.d/typo.conf", "[Run]\nUsr=carol\n")
        let set = RuleSet.load(from: [etc, vendor])
        let rule = set.rules.first { $0.name == "cleanup" }
        #expect(rule?.match.userNames == ["alice", "bob"] && rule?.timeout == .seconds(120) && rule?.user == "carol", "\(String(describing: rule))")
        #expect(!set.rules.contains { $0.name == "broken" }, "a mistake in a drop-in leaves the rule out, like one in the rule")
        #expect(set.errors.map(\.description) == ["\(etc)/broken.hook.d/typo.conf:2: unknown key Usr= in [Run]; known: Exec= Unit= User= TimeoutSec= Retry= RetrySec= InputFormat="])
    }
}

@Suite("the shipped examples")
struct ExampleRuleTests {
    /// The key table and sensd.hook(5) name the same keys, in the same order.
    @Test func everyKeyOfTheTableIsDocumentedAndNoOther() throws {
        let root = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/"))
        let doc = try String(contentsOfFile: "/" + root + "/docs/hooks.md", encoding: .utf8)
        let documented = doc.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `"), let end = line.dropFirst(3).firstIndex(of: "`") else { return nil }
            let key = line[line.index(line.startIndex, offsetBy: 3)..<end]
            return key.hasSuffix("=") ? String(key.dropLast()) : nil
        }
        #expect(documented == RuleParser.keys.map(\.name))
        #expect(RuleParser.known(in: "Match") == "Event= UserName= UID= Class= Service= Remote=")
    }

    @Test func theExampleRulesInDocsAreValid() {
        // Tests/SENSHooksTests/RuleTests.swift -> the package's docs/examples.
        let root = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/"))
        let set = RuleSet.load(from: ["/" + root + "/docs/examples"])
        #expect(set.errors.isEmpty, "\(set.errors)")
        #expect(set.rules.map(\.name) == ["license-release", "scratch-cleanup"])
        #expect(set.rules.last?.user == HookRule.sessionUser)
    }
}
