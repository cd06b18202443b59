// A scripted systemd-logind for a private dbus-daemon, for tests and benchmarks: it owns
// org.freedesktop.login1, answers ListSessions and Properties.GetAll as logind v252 does, and emits
// SessionNew/SessionRemoved when told to. It also makes the faults a real logind cannot be made to
// produce on demand. It reads one command per line on stdin and answers each with one line on stdout
// ("ok ..." or "error ..."), so a test can wait for a command to have happened instead of sleeping.
//
// Commands:
//   add ID UID NAME [LEADER]     a session that exists, without a signal (it predates the daemon)
//   open ID UID NAME [LEADER]    a new session: SessionNew
//   open-class ID UID NAME CLASS a new session of a logind class (manager, background, ...): SessionNew
//   close ID                     the session ends: SessionRemoved
//   flash ID UID NAME            SessionNew and SessionRemoved back to back: gone before anyone can ask
//   hold ID UID NAME             SessionNew, but detail requests wait unanswered until `close ID`
//   wait-held ID                 answers once a detail request of ID is held
//   release ID                   answers the held detail requests of ID with the session as it is now
//   vanish ID                    the session disappears with no signal
//   spoof-broadcast ID           another bus peer broadcasts a look-alike SessionRemoved
//   spoof-unicast ID             another bus peer sends a look-alike SessionRemoved to every peer
//   restart                      logind leaves the bus and comes back under a new unique name,
//                                re-announcing every session with SessionNew
//   burst N PREFIX UID NAME      N sessions opened and closed, as fast as the bus takes them
//   wait-asked ID                answers once someone has read the details of session ID
//   hold-list                    ListSessions calls wait unanswered until `release-list`
//   wait-listed                  answers once a ListSessions call is waiting
//   release-list                 answers the waiting ListSessions calls with the sessions live now
//   set ID PROPERTY VALUE        changes Active, IdleHint, LockedHint (true/false) or State, with PropertiesChanged
//   sessions                     prints the live session ids
//   storm N PREFIX UID NAME RATE LIFE FILE
//                                load for benchmarks: N sessions PREFIX0... opened at RATE per second (0: as
//                                fast as the bus takes them), each removed LIFE milliseconds after it was opened
//                                (as a real login lives a while); answers "ok storm SECONDS" when the last
//                                is removed, having written "<index> <CLOCK_MONOTONIC ns>" of each SessionRemoved
//                                to FILE
//   populate N PREFIX UID NAME   N sessions that already exist (no signals), for start-up measurements
//   systemd                      also play systemd (PID 1) on the bus: answer Subscribe and GetUnit for
//                                session scopes, and send UnitRemoved for a scope when its session closes
//   job UNIT                     (as systemd) a job for UNIT is queued: JobNew(id, path, UNIT); answers once the
//                                bus daemon has routed it, so that anything sent after it arrives after it
//   spoof-job UNIT               the same JobNew from another peer, broadcast and sent to every other peer
//   run0 ID UID NAME BY_UID BY [empower]
//                                a run0 session (service systemd-run0, class background) that BY (BY_UID) ran, with
//                                --empower if said: as systemd, ListUnitsByPatterns names its service (the
//                                leader is its MainPID; GetUnitByPID names the session's scope, as once logind
//                                has moved the leader), whose LogExtraFields and AmbientCapabilities say so
//   scope-gone ID                the session's processes have all exited: UnitRemoved for its scope, but
//                                logind keeps listing the session (as v252 does after its own restart)
import Systemd
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

let service = "org.freedesktop.login1"
let managerPath = "/org/freedesktop/login1"
let manager = "org.freedesktop.login1.Manager"
let sessionPrefix = "/org/freedesktop/login1/session"
let run0UnitPrefix = "/org/freedesktop/systemd1/unit"

struct Session {
    var id: String
    var uid: UInt32
    var name: String
    var leader: UInt32
    var timestamp: UInt64
    var sessionClass = "user"
    var scopeGone = false
    var remote = false
    var active = true
    var idle = false
    var locked = false
    var state = "online"
    /// For a run0 session: who ran it, and whether with --empower.
    var run0: (byUid: UInt32, by: String, empowered: Bool)?
    var path: String { sessionPrefix + "/" + escape(id) }
}

/// logind's object-path escaping of a session id (bus_label_escape).
func escape(_ id: String) -> String {
    var out = ""
    for (i, b) in id.utf8.enumerated() {
        let alnum = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
        if alnum && !(i == 0 && b >= 48 && b <= 57) {
            out.append(Character(Unicode.Scalar(b)))
        } else {
            out += "_" + (b < 16 ? "0" : "") + String(b, radix: 16)
        }
    }
    return out
}

func realtimeMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

final class StandIn {
    let loop: EventLoop
    var bus: Bus
    var slots: [BusSlot] = []
    var sessions: [String: Session] = [:]
    /// Session ids by object path: a GetAll must not cost a search through every session.
    var idByPath: [String: String] = [:]
    var order: [String] = []
    var held: [String: [BusMessage]] = [:]
    /// ListSessions calls kept unanswered while `hold-list` is in force (nil: answered at once).
    var heldLists: [BusMessage]?
    var waitingForList = 0
    var nextLeader: UInt32 = 10_000
    /// Sessions whose details have been read, and the acknowledgements waiting for that.
    var asked: Set<String> = []
    var waitingForAsk: [String: Int] = [:]
    /// `wait-held` commands waiting for a detail request of the session to be held.
    var waitingForHeld: [String: Int] = [:]
    /// The storm in progress.
    var storm: Storm?

    /// The connection playing systemd, once `systemd` was given.
    var systemd: Bus?
    var systemdSlot: BusSlot?
    var unitSlot: BusSlot?
    /// The last job id given out by `job` and `spoof-job`.
    var jobs: UInt32 = 0

    init(loop: EventLoop) throws {
        self.loop = loop
        bus = try Bus.system(description: "logind-standin")
        try publish()
    }

    func publish() throws {
        try bus.attach(to: loop)
        slots = [
            try bus.addObject(path: managerPath, fallback: false) { [unowned self] in self.managerCall($0) },
            try bus.addObject(path: sessionPrefix, fallback: true) { [unowned self] in self.sessionCall($0) },
        ]
        try bus.requestName(service)
    }

    func managerCall(_ m: BusMessage) -> BusMethodOutcome {
        guard m.interface == manager, m.member == "ListSessions" else { return .notHandled }
        if heldLists != nil {
            heldLists!.append(m)
            if waitingForList > 0 {
                let n = waitingForList
                waitingForList = 0
                DispatchLater.pending.append { for _ in 0..<n { say("ok") } }
            }
            return .later
        }
        guard let reply = try? sessionList(answering: m) else { return .notHandled }
        return .reply(reply)
    }

    /// `ListSessions() -> a(susso)` as logind answers it now.
    func sessionList(answering m: BusMessage) throws -> BusMessage {
        let reply = try m.methodReturn()
        let entries: [BusValue] = order.compactMap { sessions[$0] }.map {
            .structure([.string($0.id), .uint32($0.uid), .string($0.name), .string(""), .objectPath($0.path)])
        }
        try reply.append(.array(elementSignature: "(susso)", entries))
        return reply
    }

    func sessionCall(_ m: BusMessage) -> BusMethodOutcome {
        guard m.interface == "org.freedesktop.DBus.Properties", m.member == "GetAll" || m.member == "Get" else { return .notHandled }
        guard let id = m.path.flatMap({ idByPath[$0] }), let session = sessions[id] else {
            return .error(name: "org.freedesktop.DBus.Error.UnknownObject", message: "Unknown object '\(m.path ?? "")'.")
        }
        if held[session.id] != nil {
            held[session.id]!.append(m)
            if let n = waitingForHeld.removeValue(forKey: session.id) {
                DispatchLater.pending.append { for _ in 0..<n { say("ok") } }
            }
            return .later
        }
        guard let reply = try? m.methodReturn() else { return .notHandled }
        let properties: [(String, BusValue)] = [
            ("Id", .string(session.id)),
            ("User", .structure([.uint32(session.uid), .objectPath("/org/freedesktop/login1/user/_\(session.uid)")])),
            ("Name", .string(session.name)),
            ("Timestamp", .uint64(session.timestamp)),
            ("TimestampMonotonic", .uint64(0)),
            ("Leader", .uint32(session.leader)),
            ("Audit", .uint32(UInt32.max)),
            ("Class", .string(session.sessionClass)),
            ("Type", .string("tty")),
            ("State", .string(session.state)),
            ("Remote", .bool(session.remote)),
            ("RemoteHost", .string(session.remote ? "192.0.2.7" : "")),
            ("Service", .string(session.run0 != nil ? "systemd-run0" : session.remote ? "sshd" : "login")),
            ("TTY", .string("pts/\(session.leader % 100)")),
            ("Seat", .structure([.string(session.remote ? "" : "seat0"), .objectPath(session.remote ? "/" : "/org/freedesktop/login1/seat/seat0")])),
            ("Active", .bool(session.active)),
            ("IdleHint", .bool(session.idle)),
            ("LockedHint", .bool(session.locked)),
        ]
        if m.member == "Get" {
            // Get(interface, name) -> v
            let args = (try? m.readAll()) ?? []
            guard args.count == 2, let name = args[1].stringValue, let value = properties.first(where: { $0.0 == name })?.1 else {
                return .error(name: "org.freedesktop.DBus.Error.UnknownProperty", message: "Unknown property")
            }
            guard (try? reply.append(.variant(value))) != nil else { return .notHandled }
            return .reply(reply)
        }
        guard (try? reply.append(.propertyMap(properties))) != nil else { return .notHandled }
        asked.insert(session.id)
        if let n = waitingForAsk.removeValue(forKey: session.id) {
            // Acknowledge after the reply is queued: the asker has it before it hears "ok".
            DispatchLater.pending.append { for _ in 0..<n { say("ok") } }
        }
        return .reply(reply)
    }

    func systemdCall(_ m: BusMessage) -> BusMethodOutcome {
        guard m.interface == "org.freedesktop.systemd1.Manager", let reply = try? m.methodReturn() else { return .notHandled }
        switch m.member {
        case "Subscribe":
            return .reply(reply)
        case "GetUnitByPID":
            // As systemd answers once logind has moved a session's leader into the session's scope.
            let pid = (try? m.readValue())?.uint32Value ?? 0
            guard let session = sessions.values.first(where: { $0.leader == pid }), !session.scopeGone else {
                return .error(name: "org.freedesktop.systemd1.NoUnitForPID", message: "PID \(pid) does not belong to any loaded unit.")
            }
            guard (try? reply.append(.objectPath(scopePath(session)))) != nil else { return .notHandled }
            return .reply(reply)
        case "ListUnitsByPatterns":
            // run0's services, after a transient service of someone else's (`systemd-run`) that is not one.
            var units: [BusValue] = [unitListEntry(name: "run-u7.service", path: otherServicePath)]
            for session in sessions.values where session.run0 != nil {
                units.append(unitListEntry(name: "run-p\(session.leader)-i1.service", path: run0ServicePath(session)))
            }
            guard (try? reply.append(.array(elementSignature: "(ssssssouso)", units))) != nil else { return .notHandled }
            return .reply(reply)
        case "GetUnit":
            let unit = (try? m.readValue())?.stringValue ?? ""
            guard let session = sessions.values.first(where: { "session-\($0.id).scope" == unit }), !session.scopeGone else {
                return .error(name: "org.freedesktop.systemd1.NoSuchUnit", message: "Unit \(unit) not loaded.")
            }
            guard (try? reply.append(.objectPath(scopePath(session)))) != nil else { return .notHandled }
            return .reply(reply)
        default:
            return .notHandled
        }
    }

    /// Properties.GetAll on a run0 session's service: what run0 records there (v256, --empower v259).
    func unitCall(_ m: BusMessage) -> BusMethodOutcome {
        guard m.interface == "org.freedesktop.DBus.Properties", m.member == "GetAll", let reply = try? m.methodReturn() else { return .notHandled }
        if m.path == otherServicePath {
            let properties: [(String, BusValue)] = [("MainPID", .uint32(7)), ("LogExtraFields", .array(elementSignature: "ay", [])), ("AmbientCapabilities", .uint64(0))]
            guard (try? reply.append(.propertyMap(properties))) != nil else { return .notHandled }
            return .reply(reply)
        }
        guard let session = sessions.values.first(where: { m.path == run0ServicePath($0) }), let run0 = session.run0 else {
            return .error(name: "org.freedesktop.DBus.Error.UnknownObject", message: "Unknown object '\(m.path ?? "")'.")
        }
        let fields = ["ELEVATED_UID=\(run0.byUid)", "ELEVATED_GID=\(run0.byUid)", "ELEVATED_USER=\(run0.by)"].map { field in
            BusValue.array(elementSignature: "y", field.utf8.map { .byte($0) })
        }
        let properties: [(String, BusValue)] = [
            ("MainPID", .uint32(session.leader)),
            ("LogExtraFields", .array(elementSignature: "ay", fields)),
            ("AmbientCapabilities", .uint64(run0.empowered ? 0x1ff_ffff_ffff : 0)),
            ("PAMName", .string("systemd-run0")),
        ]
        guard (try? reply.append(.propertyMap(properties))) != nil else { return .notHandled }
        return .reply(reply)
    }

    func run0ServicePath(_ s: Session) -> String { run0UnitPrefix + "/run_2dp\(s.leader)_2di1_2eservice" }
    let otherServicePath = run0UnitPrefix + "/run_2du7_2eservice"

    /// One row of ListUnitsByPatterns: name, description, load, active and sub state, following, path, job.
    func unitListEntry(name: String, path: String) -> BusValue {
        .structure([.string(name), .string(""), .string("loaded"), .string("active"), .string("running"), .string(""),
                    .objectPath(path), .uint32(0), .string(""), .objectPath("/")])
    }

    func scopePath(_ s: Session) -> String { "/org/freedesktop/systemd1/unit/session_2d" + escape(s.id) + "_2escope" }

    /// systemd's UnitRemoved for the session's scope.
    func scopeRemoved(_ s: Session) throws {
        guard let systemd else { return }
        let m = try systemd.signal(path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager", member: "UnitRemoved")
        try m.append(.string("session-\(s.id).scope"), .objectPath(scopePath(s)))
        try systemd.send(m)
        systemd.flush()
    }

    /// The other connections on the bus (sensd's among them): every unique name but the impostor's and the
    /// stand-in's own, for look-alike signals sent to each.
    func peers(besides impostor: Bus) throws -> [String] {
        let list = try impostor.methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "ListNames")
        let names = try impostor.call(list).readValue()?.arrayElements?.compactMap(\.stringValue) ?? []
        return names.filter { $0.hasPrefix(":") && $0 != impostor.uniqueName && $0 != bus.uniqueName && $0 != systemd?.uniqueName }
    }

    func signal(_ member: String, _ session: Session, on bus: Bus? = nil) throws {
        let m = try (bus ?? self.bus).signal(path: managerPath, interface: manager, member: member)
        try m.append(.string(session.id), .objectPath(session.path))
        try (bus ?? self.bus).send(m)
    }

    func add(_ id: String, _ uid: UInt32, _ name: String, leader: UInt32?) -> Session {
        nextLeader += 1
        let s = Session(id: id, uid: uid, name: name, leader: leader ?? nextLeader, timestamp: realtimeMicroseconds())
        if sessions[id] == nil { order.append(id) }
        sessions[id] = s
        idByPath[s.path] = id
        return s
    }

    func remove(_ id: String) -> Session? {
        guard let s = sessions.removeValue(forKey: id) else { return nil }
        idByPath[s.path] = nil
        if order.first == id { order.removeFirst() } else { order.removeAll { $0 == id } }
        return s
    }

    func run(_ words: [String]) throws -> String {
        func uid(_ i: Int) throws -> UInt32 {
            guard words.count > i, let v = UInt32(words[i]) else { throw DaemonlessError("expected a uid in argument \(i)") }
            return v
        }
        func arg(_ i: Int) throws -> String {
            guard words.count > i else { throw DaemonlessError("missing argument \(i)") }
            return words[i]
        }
        switch words.first {
        case "add":
            _ = add(try arg(1), try uid(2), try arg(3), leader: words.count > 4 ? UInt32(words[4]) : nil)
        case "open":
            try signal("SessionNew", add(try arg(1), try uid(2), try arg(3), leader: words.count > 4 ? UInt32(words[4]) : nil))
        case "open-class":
            var s = add(try arg(1), try uid(2), try arg(3), leader: nil)
            s.sessionClass = try arg(4)
            sessions[s.id] = s
            try signal("SessionNew", s)
        case "run0":
            var s = add(try arg(1), try uid(2), try arg(3), leader: nil)
            s.sessionClass = "background"
            s.run0 = (byUid: try uid(4), by: try arg(5), empowered: words.count > 6 && words[6] == "empower")
            sessions[s.id] = s
            try signal("SessionNew", s)
        case "close":
            guard let s = remove(try arg(1)) else { throw DaemonlessError("no session \(words[1])") }
            // As for real: the scope goes, then logind removes the session.
            if !s.scopeGone { try scopeRemoved(s) }
            try signal("SessionRemoved", s)
            for call in held.removeValue(forKey: s.id) ?? [] {
                try bus.replyError(to: call, name: "org.freedesktop.DBus.Error.UnknownObject", message: "Unknown object '\(s.path)'.")
            }
        case "flash":
            let s = add(try arg(1), try uid(2), try arg(3), leader: nil)
            _ = remove(s.id)
            try signal("SessionNew", s)
            try signal("SessionRemoved", s)
        case "hold":
            let s = add(try arg(1), try uid(2), try arg(3), leader: nil)
            held[s.id] = []
            try signal("SessionNew", s)
        case "release":
            let id = try arg(1)
            guard let calls = held.removeValue(forKey: id) else { throw DaemonlessError("no held requests for \(id)") }
            for call in calls {
                if case .reply(let reply) = sessionCall(call) { try bus.send(reply) }
            }
            // Out before anything said after this command, as logind's own replies are.
            bus.flush()
        case "vanish":
            guard remove(try arg(1)) != nil else { throw DaemonlessError("no session \(words[1])") }
        case "spoof-broadcast", "spoof-unicast":
            let id = try arg(1)
            let fake = Session(id: id, uid: 0, name: "", leader: 0, timestamp: 0)
            let impostor = try Bus.system(description: "impostor")
            if words[0] == "spoof-broadcast" {
                try signal("SessionRemoved", fake, on: impostor)
            } else {
                for name in try peers(besides: impostor) {
                    let m = try impostor.signal(path: managerPath, interface: manager, member: "SessionRemoved")
                    try m.append(.string(fake.id), .objectPath(fake.path))
                    try m.setDestination(name)
                    try impostor.send(m)
                }
            }
            impostor.flush()
        case "restart":
            slots = []
            bus.flush()
            bus.detach()
            bus = try Bus.system(description: "logind-standin")
            try publish()
            for id in order { try signal("SessionNew", sessions[id]!) }
        case "burst":
            guard let n = Int(try arg(1)) else { throw DaemonlessError("expected a count") }
            let prefix = try arg(2)
            let u = try uid(3)
            let name = try arg(4)
            for i in 0..<n {
                let s = add("\(prefix)\(i)", u, name, leader: nil)
                try signal("SessionNew", s)
                _ = remove(s.id)
                try signal("SessionRemoved", s)
            }
        case "wait-held":
            let id = try arg(1)
            if held[id]?.isEmpty ?? true {
                waitingForHeld[id, default: 0] += 1
                return ""
            }
        case "wait-asked":
            let id = try arg(1)
            if !asked.contains(id) {
                waitingForAsk[id, default: 0] += 1
                return ""
            }
        case "hold-list":
            heldLists = heldLists ?? []
        case "wait-listed":
            if heldLists?.isEmpty ?? true {
                waitingForList += 1
                return ""
            }
        case "release-list":
            for call in heldLists ?? [] { try bus.send(try sessionList(answering: call)) }
            heldLists = nil
        case "set":
            let id = try arg(1)
            guard var session = sessions[id] else { throw DaemonlessError("no session \(id)") }
            let property = try arg(2)
            let value = try arg(3)
            let changed: BusValue
            switch property {
            case "Active": session.active = value == "true"; changed = .bool(session.active)
            case "IdleHint": session.idle = value == "true"; changed = .bool(session.idle)
            case "LockedHint": session.locked = value == "true"; changed = .bool(session.locked)
            case "State": session.state = value; changed = .string(value)
            case "Class": session.sessionClass = value; changed = .string(value)
            case "Remote": session.remote = value == "true"; changed = .bool(session.remote)
            default: throw DaemonlessError("cannot set \(property)")
            }
            sessions[id] = session
            if property != "Class" && property != "Remote" {
                let m = try bus.signal(path: session.path, interface: "org.freedesktop.DBus.Properties", member: "PropertiesChanged")
                try m.append(.string("org.freedesktop.login1.Session"), .propertyMap([(property, changed)]), .array(elementSignature: "s", []))
                try bus.send(m)
            }
        case "storm":
            guard storm == nil else { throw DaemonlessError("a storm is already running") }
            guard let n = Int(try arg(1)), let rate = Double(try arg(5)), let life = UInt64(try arg(6)) else {
                throw DaemonlessError("usage: storm N PREFIX UID NAME RATE LIFE FILE")
            }
            storm = Storm(count: n, prefix: try arg(2), uid: try uid(3), name: try arg(4), rate: rate, lifeNanoseconds: life * 1_000_000, file: try arg(7))
            try stormTick()
            return ""
        case "populate":
            guard let n = Int(try arg(1)) else { throw DaemonlessError("expected a count") }
            let prefix = try arg(2), u = try uid(3), name = try arg(4)
            for i in 0..<n { _ = add("\(prefix)\(i)", u, name, leader: nil) }
        case "systemd":
            let systemd = try Bus.system(description: "systemd-standin")
            try systemd.attach(to: loop)
            systemdSlot = try systemd.addObject(path: "/org/freedesktop/systemd1", fallback: false) { [unowned self] in self.systemdCall($0) }
            unitSlot = try systemd.addObject(path: run0UnitPrefix, fallback: true) { [unowned self] in self.unitCall($0) }
            try systemd.requestName("org.freedesktop.systemd1")
            self.systemd = systemd
        case "job", "spoof-job":
            let unit = try arg(1)
            jobs += 1
            let from = words[0] == "job" ? systemd : try Bus.system(description: "impostor")
            guard let from else { throw DaemonlessError("not playing systemd") }
            var destinations: [String?] = [nil]
            if words[0] == "spoof-job" { destinations += try peers(besides: from) }
            for destination in destinations {
                let m = try from.signal(path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager", member: "JobNew")
                try m.append(.uint32(jobs), .objectPath("/org/freedesktop/systemd1/job/\(jobs)"), .string(unit))
                if let destination { try m.setDestination(destination) }
                try from.send(m)
            }
            // A call answered by the bus daemon after it has routed the signals.
            _ = try from.call(try from.methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetId"))
        case "scope-gone":
            let id = try arg(1)
            guard sessions[id] != nil else { throw DaemonlessError("no session \(id)") }
            sessions[id]!.scopeGone = true
            try scopeRemoved(sessions[id]!)
        case "sessions":
            bus.flush()
            return "ok " + order.joined(separator: " ")
        default:
            throw DaemonlessError("unknown command '\(words.first ?? "")'")
        }
        bus.flush()
        return "ok"
    }
}

struct Storm {
    let count: Int
    let prefix: String
    let uid: UInt32
    let name: String
    let rate: Double
    let lifeNanoseconds: UInt64
    let file: String
    var opened = 0
    var removed = 0
    var started: UInt64 = 0
    var openedAt: [UInt64] = []
    var removals: [UInt64] = []
    var timer: EventSource?
}


extension StandIn {
    /// Emits what is due, then comes back: at a rate, on a 1 ms tick; flat out, whenever the bus has taken
    /// what was queued (so that the load is what the bus carries, not what piles up in this process); once
    /// every session is open, when the next one is due to end.
    func stormTick() throws {
        guard var s = storm else { return }
        if s.started == 0 {
            s.started = Syscall.monotonicNanoseconds()
            s.removals = [UInt64](repeating: 0, count: s.count)
            s.openedAt = [UInt64](repeating: 0, count: s.count)
        }
        let due: Int
        if s.rate > 0 {
            let elapsed = Double(Syscall.monotonicNanoseconds() - s.started) / 1e9
            due = min(s.count, Int(elapsed * s.rate) + 1) - s.opened
        } else {
            due = bus.queuedWrites < 64 ? 64 : 0
        }
        var left = due
        while left > 0 && s.opened < s.count {
            try signal("SessionNew", add("\(s.prefix)\(s.opened)", s.uid, s.name, leader: nil))
            s.openedAt[s.opened] = Syscall.monotonicNanoseconds()
            s.opened += 1
            left -= 1
        }
        try stormRemovals(&s)
        bus.flush()
        if s.removed == s.count {
            let seconds = Double(Syscall.monotonicNanoseconds() - s.started) / 1e9
            var text = ""
            text.reserveCapacity(s.count * 24)
            for (i, t) in s.removals.enumerated() { text += "\(i) \(t)\n" }
            try? Syscall.writeFile(s.file, Array(text.utf8))
            storm = nil
            say("ok storm \(seconds)")
            return
        }
        let now = loop.monotonicNow
        let next: UInt64
        if s.opened < s.count {
            next = s.rate > 0 ? now + 1000 : now
        } else {
            next = max(now, (s.openedAt[s.removed] + s.lifeNanoseconds) / 1000)
        }
        s.timer = try loop.addTimer(monotonicDeadline: next, accuracy: 1) { [unowned self] in
            do { try self.stormTick() } catch { say("error storm: \(error)") }
        }
        // Questions first, as logind does: the bus delivers one message per loop iteration, so a tick at the
        // bus's priority would open 64 sessions per query answered.
        s.timer?.setPriority(EventSource.idlePriority)
        storm = s
    }
}

extension StandIn {
    /// Removes, oldest first, the sessions whose life is over.
    func stormRemovals(_ s: inout Storm) throws {
        let now = Syscall.monotonicNanoseconds()
        while s.removed < s.opened && now >= s.openedAt[s.removed] + s.lifeNanoseconds {
            if let gone = remove("\(s.prefix)\(s.removed)") {
                try signal("SessionRemoved", gone)
                s.removals[s.removed] = Syscall.monotonicNanoseconds()
            }
            s.removed += 1
        }
    }
}

/// Work to do after the current bus dispatch (an acknowledgement that must follow a reply).
enum DispatchLater {
    nonisolated(unsafe) static var pending: [() -> Void] = []
    static func run(_ bus: Bus) {
        guard !pending.isEmpty else { return }
        bus.flush()
        let work = pending
        pending = []
        for w in work { w() }
    }
}

struct DaemonlessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func say(_ text: String) {
    try? Syscall.writeAll(1, Array((text + "\n").utf8))
}

do {
    let loop = try EventLoop()
    let standIn = try StandIn(loop: loop)
    var reader = LineReader(limit: 4096)
    let input = try loop.addIO(fd: 0, events: .readable) { _ in
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { (try? Syscall.read(0, into: $0)) ?? nil }
        guard let n else { return }
        if n == 0 {
            loop.exit(code: 0)
            return
        }
        for outcome in buffer.withUnsafeBytes({ reader.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) {
            guard case .line(let line) = outcome else { continue }
            let words = String(decoding: line, as: UTF8.self).split(separator: " ").map(String.init)
            guard !words.isEmpty else { continue }
            do {
                let answer = try standIn.run(words)
                if !answer.isEmpty { say(answer) }
            } catch {
                say("error \(error)")
            }
        }
    }
    let after = try loop.addPost { DispatchLater.run(standIn.bus) }
    say("ready \(standIn.bus.uniqueName ?? "?")")
    _ = try loop.run()
    withExtendedLifetime((input, after)) {}
} catch {
    say("error \(error)")
    exit(1)
}
