/// An event as a structured journal entry: `MESSAGE_ID` per event type (explained by the catalog in
/// packaging/sensd.catalog) and the event's fields as `SENS_*`. So `journalctl MESSAGE_ID=<Logoff>` is to a
/// Linux administrator what filtering the Security log on 4634/4647 is on Windows, and any journal shipper
/// forwards logoffs. Pure: the daemon hands the fields to sd-journal.
package enum JournalEntry {
    /// Stable for the life of the project: never change one, only add. Every kind has one (a unit test
    /// walks ``EventKind/allCases``).
    static let messageIDs: [EventKind: String] = [
        .logon: "3364411bede640789d2a74209a7a9462",
        .logoffInitiated: "25cc6645e493436e94acc75e9689db63",
        .logoff: "5055ac5a8fc549bd8d77276386b809a7",
        .sessionDisconnect: "b693f4a9ad3a43f69c08ba0f429346e0",
        .sessionReconnect: "9e6ae68745d643e9bbef521abbec6260",
        .displayLock: "c0544fb641084c479a2567071d4a5348",
        .displayUnlock: "47a53982fefa48d590286cb97df3231e",
        .startScreenSaver: "d96f37ab685e47fba426dc18db3e292a",
        .stopScreenSaver: "90fe187b76d04b4db27a68d2c0448d82",
        .logonFailed: "1a76e8835ab84f6ab383b777609c29d4",
    ]

    public static func messageID(_ kind: EventKind) -> String {
        messageIDs[kind]!
    }

    /// The entry's fields, in a fixed order.
    public static func fields(_ e: SENSEvent) -> [(String, String)] {
        let who = e.userName.map { "\($0) (uid \(e.uid.map(String.init) ?? "?"))" } ?? "an unknown user"
        let message: String
        switch e.event {
        case .logon:
            var how: [String] = []
            if let t = e.logonType { how.append(t.rawValue) }
            if let s = e.service, !s.isEmpty { how.append("via \(s)") }
            if let h = e.remoteHost, !h.isEmpty { how.append("from \(h)") }
            message = "\(who) logged on, session \(e.sessionId)" + (how.isEmpty ? "" : " (" + how.joined(separator: " ") + ")")
        case .logoffInitiated: message = "\(who) initiated the logoff of session \(e.sessionId)"
        case .logoff: message = "\(who) logged off, session \(e.sessionId)"
        case .sessionDisconnect: message = "session \(e.sessionId) of \(who) was disconnected (left the foreground of its seat)"
        case .sessionReconnect: message = "session \(e.sessionId) of \(who) was reconnected (back in the foreground of its seat)"
        case .displayLock: message = "session \(e.sessionId) of \(who) was locked"
        case .displayUnlock: message = "session \(e.sessionId) of \(who) was unlocked"
        case .startScreenSaver: message = "session \(e.sessionId) of \(who) went idle (screen saver started)"
        case .stopScreenSaver: message = "session \(e.sessionId) of \(who) is no longer idle (screen saver stopped)"
        case .logonFailed:
            var how: [String] = [e.failureReason ?? "other"]
            if let s = e.service { how.append("via \(s)") }
            if let h = e.remoteHost { how.append("from \(h)") } else if let t = e.tty { how.append("on \(t)") }
            if let n = e.count, n > 1 { how.append("\(n) times") }
            let name = e.userName.map { "'\($0)'" + (e.targetExists == false ? " (no such user)" : "") } ?? "an unknown user"
            message = "failed logon as \(name): " + how.joined(separator: " ")
        default: message = "\(e.event) of session \(e.sessionId) of \(who)"
        }
        let notable: Set<EventKind> = [.logon, .logoffInitiated, .logoff, .logonFailed]
        var f: [(String, String)] = [
            ("MESSAGE", message + (e.observedLate == true ? " (observed late)" : "")),
            ("MESSAGE_ID", messageID(e.event)),
            ("PRIORITY", notable.contains(e.event) ? "5" : "6"),
            ("SYSLOG_IDENTIFIER", "sensd"),
            ("SENS_EVENT", e.event.rawValue),
            ("SENS_SEQ", String(e.seq)),
            ("SENS_TIME", e.time.rfc3339),
            ("SENS_SESSION_ID", e.sessionId),
        ]
        for field in SessionFields.all {
            if let name = field.journalKey, let value = field.journalText(e) { f.append((name, value)) }
        }
        return f
    }
}
