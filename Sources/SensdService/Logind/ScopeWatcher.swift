import Logging
import Systemd

/// systemd's side of a session: its scope unit, `session-<id>.scope`, which systemd removes once every
/// process of the session has exited; logind then removes the session. A logind that restarted while a
/// session was closing lists it as closing for ever and never removes it (seen with v252), so sensd follows
/// the scopes of those sessions itself: the ones whose details say "closing" when sensd reads them, which
/// takes in every session found closing when logind's list is read (at start-up, and when logind comes
/// back), and any other found closing that early. Only while there are such sessions does sensd match
/// systemd's `UnitRemoved`: systemd sends it for every unit it unloads, four or five times per ordinary su
/// session (the scope is loaded and unloaded again as logind looks at it), which was a third of the bus
/// messages sensd read per session. Asynchronous throughout: no call here waits for systemd.
final class ScopeWatcher {
    static let service = "org.freedesktop.systemd1"
    static let path = "/org/freedesktop/systemd1"
    static let manager = "org.freedesktop.systemd1.Manager"
    /// How long logind gets to remove a session after systemd removed its scope.
    static let graceMicroseconds: UInt64 = 2_000_000

    private let bus: Bus
    private let loop: EventLoop
    private let logger: Logger
    /// systemd's unique name on this bus, once it answered `Subscribe`; nil when it is not there.
    private(set) var owner: String?
    /// Sessions whose scope is gone, waiting for logind to remove them too.
    private var timers: [String: EventSource] = [:]
    /// The sessions whose scopes are followed.
    private(set) var watched: Set<String> = []
    /// The `UnitRemoved` match, while anything is watched.
    private var match: BusSlot?

    init(bus: Bus, loop: EventLoop, logger: Logger) {
        self.bus = bus
        self.loop = loop
        self.logger = logger
    }

    /// Follows session `id`'s scope from now on, handing systemd's `UnitRemoved` signals to `removals`. The
    /// match is in place at the bus daemon before any call sent after this (``scopeExists(of:_:)``) reaches
    /// systemd: no removal falls between the two.
    func watch(_ id: String, for removals: some ScopeRemovals) {
        watched.insert(id)
        guard match == nil else { return }
        do {
            match = try bus.addMatchAsync(Self.unitRemovedRule, handler: { [weak removals] in removals?.unitRemoved($0) }) { [weak self] error in
                self?.logger.error("the bus daemon refused to send systemd's UnitRemoved; a session logind loses track of will not get its Logoff", metadata: ["error": "\(error)"])
            }
        } catch {
            logger.error("cannot follow systemd's session scopes: \(error)")
        }
    }

    /// Session `id` ended (or was never live): its scope no longer matters.
    func unwatch(_ id: String) {
        timers[id] = nil
        guard watched.remove(id) != nil, watched.isEmpty else { return }
        match = nil
    }

    /// The match rule for systemd's `UnitRemoved`.
    static var unitRemovedRule: String { rule(member: "UnitRemoved") }

    /// A match rule for one of systemd's manager signals.
    static func rule(member: String) -> String {
        "type='signal',sender='\(service)',path='\(path)',interface='\(manager)',member='\(member)'"
    }

    /// Asks systemd to send its unit signals (it sends them only to clients that subscribed); the reply's
    /// sender is systemd. `then` runs once the answer is in, whatever it is.
    func subscribe(then: @escaping () -> Void) {
        do {
            let call = try bus.methodCall(destination: Self.service, path: Self.path, interface: Self.manager, member: "Subscribe")
            try bus.callAsync(call) { [unowned self] result in
                switch result {
                case .success(let reply):
                    self.owner = reply.sender
                case .failure(let error):
                    self.owner = nil
                    self.logger.info("systemd is not on this bus; a session that logind loses track of while it is closing will not get its Logoff", metadata: ["error": "\(error)"])
                }
                then()
            }
        } catch {
            logger.warning("cannot follow systemd's units: \(error)")
            then()
        }
    }

    /// systemd's name changed hands (`daemon-reexec`): a new connection must subscribe again.
    func ownerChanged(to newOwner: String?) {
        owner = newOwner
        if newOwner != nil { subscribe {} }
    }

    enum Removal {
        /// Sent by someone other than systemd: ignored.
        case notFromSystemd
        /// A unit that is not a session scope, or a malformed signal.
        case other
        case sessionScope(id: String)
    }

    /// What a `UnitRemoved` signal says.
    func removal(_ m: BusMessage) -> Removal {
        guard owner != nil, m.sender == owner else { return .notFromSystemd }
        guard let args = try? m.readAll(), let name = args.first?.stringValue, let id = Self.sessionID(ofScope: name), watched.contains(id) else { return .other }
        return .sessionScope(id: id)
    }

    /// `session-<id>.scope` -> `<id>`.
    static func sessionID(ofScope unit: String) -> String? {
        guard unit.hasPrefix("session-"), unit.hasSuffix(".scope") else { return nil }
        let id = unit.dropFirst("session-".count).dropLast(".scope".count)
        return id.isEmpty ? nil : String(id)
    }

    /// Runs `expired` after logind's usual moment to remove session `id`, unless ``unwatch(_:)`` comes first.
    /// A loose deadline (2 to 2.25 s): the timers of a burst of such sessions ending (all those closing when
    /// logind restarted) share one wake-up and one setting of the kernel timer, instead of one each.
    func afterGrace(of id: String, _ expired: @escaping () -> Void) {
        guard timers[id] == nil else { return }
        timers[id] = try? loop.addTimer(monotonicDeadline: loop.monotonicNow + Self.graceMicroseconds, accuracy: 250_000) { [unowned self] in
            self.timers[id] = nil
            expired()
        }
    }

    /// Whether session `id`'s scope still exists: false only when systemd says there is no such unit.
    func scopeExists(of id: String, _ answer: @escaping (Bool) -> Void) {
        do {
            let call = try bus.methodCall(destination: Self.service, path: Self.path, interface: Self.manager, member: "GetUnit")
            try call.append(.string("session-\(id).scope"))
            try bus.callAsync(call) { result in
                guard case .failure(let error) = result, error.busErrorName == "org.freedesktop.systemd1.NoSuchUnit" else { return answer(true) }
                answer(false)
            }
        } catch {
            answer(true)
        }
    }
}

/// Whoever follows session scopes through a ``ScopeWatcher``: given each matched `UnitRemoved`, to classify
/// with ``ScopeWatcher/removal(_:)``.
protocol ScopeRemovals: AnyObject {
    func unitRemoved(_ m: BusMessage)
}

// MARK: run0's sessions

/// What systemd recorded about who ran run0 (v256 and later) on the transient service holding a run0
/// session's leader: `LogExtraFields` `ELEVATED_USER=`, `ELEVATED_UID=` (the invoking user), and, for
/// `run0 --empower` (v259), the capabilities the user's own uid was given (`AmbientCapabilities`).
struct Elevation: Equatable {
    var user: String?
    var uid: UInt32?
    var empowered: Bool

    /// Read from the service's properties (`org.freedesktop.systemd1.Service`); nil when run0 left no mark.
    init?(serviceProperties p: [String: BusValue]) {
        var fields: [String: String] = [:]
        for element in p["LogExtraFields"]?.arrayElements ?? [] {
            guard let bytes = element.arrayElements?.compactMap({ v -> UInt8? in if case .byte(let b) = v { b } else { nil } }) else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            fields[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        user = fields["ELEVATED_USER"].flatMap { $0.isEmpty ? nil : $0 }
        uid = fields["ELEVATED_UID"].flatMap { UInt32($0) }
        empowered = (p["AmbientCapabilities"]?.uint64Value ?? 0) != 0
        if user == nil && uid == nil && !empowered { return nil }
    }
}

extension ScopeWatcher {
    /// Finds run0's transient service (`run-*.service`, the names run0 gives) whose main process is `leader`,
    /// and reads what run0 recorded on it. Not `GetUnitByPID`: logind moves the leader into the session's
    /// scope as it registers the session, so systemd names the scope by the time sensd asks (systemd 257 and
    /// 262 both, all but a lucky few times); the service keeps the leader as its `MainPID`. Answers nil when
    /// no such service is found (the leader already exited, `run0 --unit=` gave it another name, systemd is
    /// away): the session is then reported without it.
    func elevation(ofLeader leader: UInt32, _ answer: @escaping (Elevation?) -> Void) {
        do {
            let list = try bus.methodCall(destination: Self.service, path: Self.path, interface: Self.manager, member: "ListUnitsByPatterns")
            try list.append(.array(elementSignature: "s", []))
            try list.append(.array(elementSignature: "s", [.string("run-*.service")]))
            try bus.callAsync(list) { [weak self] result in
                guard let self else { return answer(nil) }
                guard case .success(let reply) = result, let units = (try? reply.readValue())?.arrayElements else {
                    self.logger.debug("cannot list run0's services", metadata: ["leader": "\(leader)", "error": "\(result)"])
                    return answer(nil)
                }
                // Each row is (name, description, load, active, sub, following, object path, job...): the path.
                let paths = units.compactMap { $0.structFields.flatMap { $0.count > 6 ? $0[6].stringValue : nil } }
                self.serviceWithMainPID(leader, among: paths[...], answer)
            }
        } catch {
            answer(nil)
        }
    }

    /// Asks each service in turn for its properties until one's `MainPID` is `leader`.
    private func serviceWithMainPID(_ leader: UInt32, among paths: ArraySlice<String>, _ answer: @escaping (Elevation?) -> Void) {
        guard let path = paths.first else {
            logger.debug("no run0 service has the session's leader as its main process", metadata: ["leader": "\(leader)"])
            return answer(nil)
        }
        do {
            let get = try bus.methodCall(destination: Self.service, path: path, interface: "org.freedesktop.DBus.Properties", member: "GetAll")
            try get.append(.string("org.freedesktop.systemd1.Service"))
            try bus.callAsync(get) { [weak self] result in
                guard let self else { return answer(nil) }
                if case .success(let reply) = result, let properties = (try? reply.readValue())?.propertyDictionary,
                   properties["MainPID"]?.uint32Value == leader {
                    return answer(Elevation(serviceProperties: properties))
                }
                self.serviceWithMainPID(leader, among: paths.dropFirst(), answer)
            }
        } catch {
            answer(nil)
        }
    }
}
