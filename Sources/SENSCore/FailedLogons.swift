import FoundationEssentials

/// Why a logon failed, as far as its record tells: a small fixed vocabulary (docs/protocol.md, "LogonFailed").
package enum FailureReason: String, Sendable, CaseIterable {
    case badPassword = "bad-password"
    case unknownUser = "unknown-user"
    case accountLocked = "account-locked"
    case expired
    case other
}

/// A LogonFailed's own facts, beside the user, service, terminal and origin its draft's session holds.
package struct FailedLogon: Equatable, Sendable {
    package var targetExists: Bool?
    package var remotePort: UInt32?
    package var reason: FailureReason
    /// `pam`, `audit` or `sshd-message`.
    package var source: String
    /// How many failures it stands for: 1, or more for a summary.
    package var count: Int
    package var logonType: LogonType?
}

/// One failed logon as a source reported it, before duplicates are dropped and floods summarised.
package struct FailureReport: Equatable, Sendable {
    /// As typed: it may name no account (`targetExists` false), and may even be a mistyped password.
    package var userName: String
    package var uid: UInt32?
    package var targetExists: Bool?
    /// The PAM service (`sshd`, `su`, `login`), where the record says.
    package var service: String?
    package var tty: String?
    package var remoteHost: String?
    package var remotePort: UInt32?
    package var reason: FailureReason
    package var source: String
    /// When it happened, where the record says (the journal's time); nil: when sensd learned of it.
    package var time: EventTime?

    package init(userName: String, uid: UInt32? = nil, targetExists: Bool? = nil, service: String? = nil, tty: String? = nil,
                 remoteHost: String? = nil, remotePort: UInt32? = nil, reason: FailureReason, source: String, time: EventTime? = nil) {
        self.userName = userName
        self.uid = uid
        self.targetExists = targetExists
        self.service = service.flatMap { $0.isEmpty ? nil : $0 }
        self.tty = tty.flatMap { $0.isEmpty ? nil : $0 }
        self.remoteHost = remoteHost.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 }
        self.remotePort = remotePort
        self.reason = reason
        self.source = source
        self.time = time
    }

    /// Whether it came over the network: a remote host, or a service that only ever serves remote users.
    var isRemote: Bool { remoteHost != nil || service.map(LogonType.remoteServices.contains) == true }

    /// The event's draft: no session was made, so its id is empty; `count` failures it stands for.
    package func draft(count: Int = 1) -> EventDraft {
        var session = LogindSession(id: "")
        session.userName = userName
        session.uid = uid
        session.service = service
        session.tty = tty
        session.remoteHost = remoteHost
        session.remote = isRemote
        let failure = FailedLogon(targetExists: targetExists, remotePort: remotePort, reason: reason, source: source, count: count,
                                  logonType: isRemote ? .remoteInteractive : .interactive)
        return EventDraft(event: .logonFailed, session: session, time: time, failure: failure)
    }

    /// What the PAM hook (sensd-pam-report) sends: one JSON object per datagram, with PAM's items as
    /// `user`, `rhost`, `tty`, `service`. Nil for anything else (a datagram that is not such an object).
    package static func fromPAM(_ datagram: [UInt8]) -> PAMItems? {
        guard datagram.count <= Self.maximumDatagram, let items = try? JSONDecoder().decode(PAMItems.self, from: Data(datagram)),
              !items.user.isEmpty, items.user.utf8.count <= 256
        else { return nil }
        return items
    }

    package struct PAMItems: Decodable, Equatable, Sendable {
        package var user: String
        package var rhost: String?
        package var tty: String?
        package var service: String?

        package init(user: String, rhost: String?, tty: String?, service: String?) {
            (self.user, self.rhost, self.tty, self.service) = (user, rhost, tty, service)
        }

        /// The datagram sensd-pam-report sends: PAM's items, each cut to what sensd reads.
        package var datagram: [UInt8] {
            var w = JSONLineWriter()
            w.field("user", string: String(user.utf8.prefix(256)) ?? "")
            for (key, value) in [("rhost", rhost), ("tty", tty), ("service", service)] {
                if let value, !value.isEmpty { w.field(key, string: String(value.utf8.prefix(1024)) ?? "") }
            }
            return w.finishObject()
        }
    }

    /// The largest datagram the PAM channel takes.
    package static let maximumDatagram = 4096
}

/// Drops a failure another source already reported, and summarises floods, with bounded memory.
///
/// - **Duplicates.** The same failure can reach sensd twice: through the PAM hook and through the audit
///   record PAM writes, or through sshd's own message. A report is dropped when one from another source, of
///   the same user and origin (remote host, else terminal), came within ``duplicateWindow``.
/// - **Floods.** Failures are counted per origin and service in windows of ``window``: the first
///   ``individually`` of a window are reported one by one, the rest counted, and when the window ends one
///   report stands for them (`count`), naming the last user tried. At most ``individuallyPerWindow`` are
///   reported one by one across all origins in a window. At most ``maximumOrigins`` origins are tracked;
///   failures from more are counted together under one summary.
package struct FailureGate: Sendable {
    /// The counting window, µs: a minute unless sensd is told otherwise (`--failed-logon-window`).
    package let window: Int64
    package static let duplicateWindow: Int64 = 10_000_000
    package static let individually = 5
    package static let individuallyPerWindow = 120
    package static let maximumOrigins = 1024
    package static let maximumRecent = 4096

    struct Origin: Hashable, Sendable {
        var host: String
        var service: String
        static let overflow = Origin(host: "*", service: "*")
    }

    struct Window: Sendable {
        var start: Int64
        var reported = 0
        var suppressed = 0
        var last: FailureReport?
    }

    private var windows: [Origin: Window] = [:]
    /// Recent reports by user and origin: when, and from which source.
    private var recent: [String: (time: Int64, source: String)] = [:]
    private var globalStart: Int64?
    private var globalReported = 0

    package init(window: Int64 = 60_000_000) {
        self.window = window
    }

    /// How many origins are counted now (bounded by ``maximumOrigins`` + 1).
    package var originCount: Int { windows.count }
    package var recentCount: Int { recent.count }

    /// What to publish now for `report`, which arrived at `now` (µs since the epoch): nothing (a duplicate,
    /// or counted for a later summary) or the report itself with count 1; first, the summary of its origin's
    /// window if that window ended without ``expire(now:)`` having been called.
    /// `closing`: a report that stands for a failure only if nothing reported one of the same user and
    /// origin within ``duplicateWindow``, whatever its source (sshd's "Connection closed by authenticating
    /// user" after a wrong password).
    package mutating func admit(_ report: FailureReport, now: Int64, closing: Bool = false) -> [EventDraft] {
        let dedupeKey = report.userName + "\u{0}" + (report.remoteHost ?? report.tty ?? "")
        if let seen = recent[dedupeKey], seen.source != report.source || closing, now - seen.time < Self.duplicateWindow {
            return []
        }
        if recent.count >= Self.maximumRecent {
            recent = recent.filter { now - $0.value.time < Self.duplicateWindow }
            if recent.count >= Self.maximumRecent { recent.removeAll(keepingCapacity: true) }
        }
        recent[dedupeKey] = (now, report.source)

        var origin = Origin(host: report.remoteHost ?? "local", service: report.service ?? "")
        if windows[origin] == nil && windows.count >= Self.maximumOrigins { origin = .overflow }
        var published: [EventDraft] = []
        var w = windows[origin] ?? Window(start: now)
        if now - w.start >= window {
            // Ended before its timer came round (a busy loop): its summary first, then a new window.
            if w.suppressed > 0, let last = w.last { published.append(last.draft(count: w.suppressed)) }
            w = Window(start: now)
        }
        if globalStart.map({ now - $0 >= window }) ?? true { (globalStart, globalReported) = (now, 0) }
        if origin != .overflow && w.reported < Self.individually && globalReported < Self.individuallyPerWindow {
            w.reported += 1
            globalReported += 1
            published.append(report.draft())
        } else {
            w.suppressed += 1
            w.last = report
        }
        windows[origin] = w
        return published
    }

    /// The summaries of the windows that ended by `now`; their origins are forgotten.
    package mutating func expire(now: Int64) -> [EventDraft] {
        var out: [EventDraft] = []
        for (origin, w) in windows where now - w.start >= window {
            if w.suppressed > 0, let last = w.last { out.append(last.draft(count: w.suppressed)) }
            windows[origin] = nil
        }
        return out
    }

    /// When the next window ends (µs since the epoch), if any is open.
    package var nextDeadline: Int64? { windows.values.map { $0.start + window }.min() }
}

/// Failed logons in journal records, matched by their fields (audit) or, labelled heuristic, by sshd's
/// own messages. Pure: the daemon's journal follower hands the fields over.
package enum FailureRecords {
    /// The journal fields the matchers read.
    package static let fields = [
        "_TRANSPORT", "_AUDIT_TYPE_NAME", "AUDIT_FIELD_RES", "AUDIT_FIELD_ACCT", "AUDIT_FIELD_ADDR", "AUDIT_FIELD_HOSTNAME",
        "AUDIT_FIELD_TERMINAL", "AUDIT_FIELD_EXE", "AUDIT_FIELD_OP", "SYSLOG_IDENTIFIER", "MESSAGE",
    ]

    /// Journal matches for audit's failed authentications: `USER_AUTH` (PAM's authentication) and
    /// `USER_LOGIN` (sshd's login record) with `res=failed`.
    package static let auditMatches = ["_TRANSPORT=audit", "_AUDIT_TYPE_NAME=USER_AUTH", "_AUDIT_TYPE_NAME=USER_LOGIN", "AUDIT_FIELD_RES=failed"]

    /// sshd's identifiers: `sshd`, and from OpenSSH 9.8 `sshd-session`, from 10.0 `sshd-auth` for what
    /// comes before authentication.
    package static let sshdIdentifiers = ["sshd", "sshd-session", "sshd-auth"]
    package static var sshdMatches: [String] { sshdIdentifiers.map { "SYSLOG_IDENTIFIER=\($0)" } }

    /// An audit record of a failed authentication, from its fields alone.
    package static func audit(_ f: [String: String], time: EventTime) -> FailureReport? {
        guard f["_TRANSPORT"] == "audit", f["AUDIT_FIELD_RES"] == "failed",
              let type = f["_AUDIT_TYPE_NAME"], type == "USER_AUTH" || type == "USER_LOGIN",
              let account = f["AUDIT_FIELD_ACCT"].map(unquoted), !account.isEmpty, account != "?", account != "(unknown)"
        else { return nil }
        // The program's name stands for the PAM service, which audit records do not carry.
        let service = f["AUDIT_FIELD_EXE"].map(unquoted).flatMap { $0.split(separator: "/").last.map(String.init) }
            .map { $0.hasPrefix("sshd") ? "sshd" : $0 }
        let address = f["AUDIT_FIELD_ADDR"].map(unquoted).flatMap { $0 == "?" ? nil : $0 }
            ?? f["AUDIT_FIELD_HOSTNAME"].map(unquoted).flatMap { $0 == "?" ? nil : $0 }
        let terminal = f["AUDIT_FIELD_TERMINAL"].map(unquoted).flatMap { $0 == "?" ? nil : $0 }
        return FailureReport(userName: account, service: service, tty: terminal, remoteHost: address, reason: .badPassword, source: "audit", time: time)
    }

    /// sshd's own message of a failed logon (heuristic: the text of a program's log, which moves between
    /// OpenSSH releases). `closing` marks the messages that follow any failure of a connection ("Connection
    /// closed by authenticating user"): they stand for one only if nothing else reported it.
    package static func sshd(identifier: String?, message: String?, time: EventTime) -> (report: FailureReport, closing: Bool)? {
        guard let identifier, sshdIdentifiers.contains(identifier), let message else { return nil }
        var text = Substring(message)
        func take(_ prefix: String) -> Bool {
            guard text.hasPrefix(prefix) else { return false }
            text = text.dropFirst(prefix.count)
            return true
        }
        /// `USER from ADDR port PORT` or `USER ADDR port PORT`.
        func userHostPort(from: Bool) -> (String, String, UInt32?)? {
            let words = text.split(separator: " ")
            let i = from ? 2 : 1
            guard words.count >= i + 3, !from || words[1] == "from", words[i + 1] == "port" else { return nil }
            return (String(words[0]), String(words[i]), UInt32(words[i + 2]))
        }
        if take("Failed ") {
            let method = text.prefix { $0 != " " }
            guard take(method + " for ") else { return nil }
            let invalid = take("invalid user ")
            guard let (user, host, port) = userHostPort(from: true) else { return nil }
            let reason: FailureReason = invalid ? .unknownUser : method == "password" ? .badPassword : .other
            return (FailureReport(userName: user, targetExists: invalid ? false : nil, service: "sshd", remoteHost: host, remotePort: port,
                                  reason: reason, source: "sshd-message", time: time), false)
        }
        if take("Connection closed by ") || take("Disconnected from ") {
            let invalid = take("invalid user ")
            guard invalid || take("authenticating user "), text.hasSuffix("[preauth]"), let (user, host, port) = userHostPort(from: false) else { return nil }
            return (FailureReport(userName: user, targetExists: invalid ? false : nil, service: "sshd", remoteHost: host, remotePort: port,
                                  reason: invalid ? .unknownUser : .other, source: "sshd-message", time: time), true)
        }
        return nil
    }

    /// Audit quotes some values (`acct="alice"`); journald keeps the quotes.
    static func unquoted(_ s: String) -> String {
        s.count >= 2 && s.hasPrefix("\"") && s.hasSuffix("\"") ? String(s.dropFirst().dropLast()) : s
    }
}
