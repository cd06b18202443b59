import SENSClient

#if canImport(Glibc)
import Glibc
#endif

/// Sessions paired from their Logon and Logoff events, in the order the log holds them.
struct SessionHistory {
    struct Entry {
        /// The first of its events in the log (its Logon, or its Logoff when the log no longer reaches back):
        /// the session's fields as its events carry them.
        var session: SENSEvent
        var logonTime: EventTime?
        var logonFromLog: Bool
        var logoffTime: EventTime?
        var logonSeq: UInt64?
        var logoffSeq: UInt64?

        var firstSeq: UInt64 { session.seq }

        var json: [UInt8] {
            let e = session
            var o: [String: Any] = ["sessionId": e.sessionId, "stillLoggedIn": logoffSeq == nil, "logonFromLog": logonFromLog]
            o["userName"] = e.userName ?? NSNullValue.null
            o["uid"] = e.uid.map { Int($0) } ?? NSNullValue.null
            o["logonTime"] = logonTime?.rfc3339 ?? NSNullValue.null
            o["logoffTime"] = logoffTime?.rfc3339 ?? NSNullValue.null
            if let logonTime, let logoffTime { o["durationSeconds"] = Double(logoffTime.microsecondsSinceEpoch - logonTime.microsecondsSinceEpoch) / 1e6 }
            for (k, v) in [("class", e.sessionClass), ("service", e.service), ("tty", e.tty), ("seat", e.seat), ("remoteHost", e.remoteHost)] {
                if let v { o[k] = v }
            }
            if let logonSeq { o["logonSeq"] = Int(logonSeq) }
            if let logoffSeq { o["logoffSeq"] = Int(logoffSeq) }
            return JSONText.object(o)
        }

        var row: [String] {
            let logon = logonTime.map { Table.localTime($0) + (logonFromLog ? "" : "*") } ?? "?"
            let logoff = logoffTime.map(Table.localTime) ?? "still logged in"
            var duration = "-"
            if let logonTime, let logoffTime {
                let seconds = max(0, (logoffTime.microsecondsSinceEpoch - logonTime.microsecondsSinceEpoch) / 1_000_000)
                duration = seconds >= 86_400 ? "\(seconds / 86_400)+" : ""
                duration += format2(seconds % 86_400 / 3600) + ":" + format2(seconds % 3600 / 60) + ":" + format2(seconds % 60)
            }
            return [session.userName ?? "?", session.sessionId, session.remoteHost ?? session.tty ?? session.seat ?? "-", logon, logoff, duration]
        }
    }

    private(set) var sessions: [Entry] = []
    /// Open entries by session id and session start: ids are reused (a logind restart counts from c1 again).
    private var open: [String: Int] = [:]

    private static func key(_ e: SENSEvent) -> String { e.sessionId + " " + (e.sessionStart?.rfc3339 ?? "") }

    mutating func take(_ e: SENSEvent) {
        switch e.event {
        case .logon:
            open[Self.key(e)] = sessions.count
            sessions.append(Entry(session: e, logonTime: e.time, logonFromLog: true, logonSeq: e.seq))
        case .logoff:
            if let i = open.removeValue(forKey: Self.key(e)) {
                sessions[i].logoffTime = e.time
                sessions[i].logoffSeq = e.seq
                if sessions[i].session.userName == nil { (sessions[i].session.userName, sessions[i].session.uid) = (e.userName, e.uid) }
            } else {
                // The log no longer reaches back to its Logon (or it began before sensd's first start).
                sessions.append(Entry(session: e, logonTime: e.sessionStart, logonFromLog: false, logoffTime: e.time, logoffSeq: e.seq))
            }
        default:
            break
        }
    }
}

func format2(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// JSON null for ``JSONText``.
enum NSNullValue { case null }

/// A flat JSON object with sorted keys, for --json output.
enum JSONText {
    static func object(_ o: [String: Any]) -> [UInt8] {
        var parts: [String] = []
        for key in o.keys.sorted() {
            let value: String
            switch o[key] {
            case let s as String: value = quote(s)
            case let b as Bool: value = b ? "true" : "false"
            case let i as Int: value = String(i)
            case let d as Double: value = String(d)
            default: value = "null"
            }
            parts.append(quote(key) + ":" + value)
        }
        return Array(("{" + parts.joined(separator: ",") + "}").utf8)
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20: out += "\\u00" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Columns padded to their widest cell.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(widths[i]) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Local time as last(1) shows it, to the minute.
    static func localTime(_ t: EventTime) -> String {
        var seconds = time_t(t.microsecondsSinceEpoch / 1_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%a %b %e %H:%M", &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
