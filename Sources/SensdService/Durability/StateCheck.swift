import FoundationEssentials
import SENSCore
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// `sensd --check-state`: what the state directory holds and what of it is damaged or was set aside, read
/// without changing anything (a running sensd may own it).
public enum StateCheck {
    public struct Report {
        /// One line per file or finding, for an administrator.
        public var lines: [String] = []
        /// Files that cannot be read as they are now.
        public var problems = 0
        /// Copies a start-up kept of what it could not read (`*.damaged`).
        public var setAside = 0
    }

    public static func report(directory: String) -> Report {
        var r = Report()
        func problem(_ line: String) {
            r.lines.append("DAMAGED  " + line)
            r.problems += 1
        }
        guard access(directory, F_OK) == 0 else {
            r.lines.append("\(directory): no state directory (sensd starts afresh there)")
            return r
        }
        let format = (try? Syscall.readFile(directory + "/format")) ?? nil
        switch format.map({ String(decoding: $0, as: UTF8.self).filter { !$0.isWhitespace } }) {
        case nil: r.lines.append("ok       format: none recorded (0.1.0's layout, format 1)")
        case let text? where Int(text).map({ $0 > 0 }) == true:
            let n = Int(text)!
            if n > SessionStateStore.stateFormat {
                problem("format: \(n), written by a newer sensd; this one reads \(SessionStateStore.stateFormat) and refuses to start on it")
            } else {
                r.lines.append("ok       format: \(n)")
            }
        case let text?: problem("format: holds no format number ('\(text.prefix(16))'); a start sets it aside")
        }
        for finding in [
            check(directory + "/sequence.json", as: SequenceReservation.self, what: "sequence reservation") {
                "reserved through seq \($0.reservedThrough)\($0.clean ? ", clean stop" : "")\($0.logBehindFrom.map { ", log behind from seq \($0)" } ?? "")"
            },
            check(directory + "/sessions.json", as: SessionState.self, what: "session snapshot") {
                "\($0.sessions.count) open sessions as of seq \($0.lastSeq)"
            },
        ] {
            switch finding {
            case .success(let line): r.lines.append(line)
            case .failure(let damage): problem(damage.description)
            }
        }
        if let bytes = (try? Syscall.readFile(directory + "/unlogged.jsonl")) ?? nil {
            let lines = bytes.split(separator: 0x0A).filter { $0.contains { $0 != 0x20 } }
            let decoder = JSONDecoder()
            let bad = lines.filter { (try? decoder.decode(SENSEvent.self, from: Data($0))) == nil }.count
            if bad > 0 {
                problem("unlogged.jsonl: \(bad) of \(lines.count) records unreadable")
            } else {
                r.lines.append("ok       unlogged.jsonl: \(lines.count) events handed out while the log could not take them")
            }
        }
        let logDirectory = directory + "/log"
        let names = ((try? Syscall.listDirectory(logDirectory)) ?? []).sorted()
        var previous: UInt64 = 0
        var events = 0
        var segments = 0
        for name in names where name.hasSuffix(".log") && name.count == 24 {
            guard let first = UInt64(name.dropLast(4)) else { continue }
            segments += 1
            do {
                let c = try EventLog.check(path: logDirectory + "/" + name, namedSeq: first, after: previous)
                events += c.count
                if let issue = c.problem {
                    problem("log/\(name): \(issue); \(c.count) intact events before it (a start keeps those and sets the rest aside)")
                }
                if c.count > 0 { previous = c.lastSeq }
            } catch {
                problem("log/\(name): cannot be read: \(error)")
            }
        }
        r.lines.append("\(r.problems == 0 ? "ok       " : "         ")log: \(segments) segments, \(events) intact events, last seq \(previous)")
        for (folder, prefix) in [(directory, ""), (logDirectory, "log/")] {
            for name in ((try? Syscall.listDirectory(folder)) ?? []).sorted() where name.hasSuffix(".damaged") {
                r.setAside += 1
                r.lines.append("ASIDE    \(prefix)\(name): kept by a start that could not read it; sensd no longer reads it (remove it once looked at)")
            }
        }
        return r
    }

    /// A state file's line, or what is wrong with it.
    private static func check<T: Decodable>(_ path: String, as type: T.Type, what: String, describe: (T) -> String) -> Result<String, DaemonError> {
        let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
        guard let bytes = (try? Syscall.readFile(path)) ?? nil else { return .success("         \(name): none") }
        do {
            return .success("ok       \(name): " + describe(try JSONDecoder().decode(T.self, from: Data(bytes))))
        } catch {
            return .failure(DaemonError("\(name): the \(what) cannot be read (\(bytes.count) bytes); a start sets it aside"))
        }
    }
}
