import Logging
import SENSCore
import Systemd

/// systemd-logind as seen over the bus: announcements and removals of sessions, fed to a ``SessionTracker``.
///
/// Only signals whose sender is the current owner of `org.freedesktop.login1` count; anyone on the system bus
/// can emit a look-alike. The owner is learned at start and followed through `NameOwnerChanged`, and every
/// time logind comes back the session list is read again, because a restarted logind never announces the
/// removal of sessions that were closing when it went away.
public final class LogindSource {
    static let service = "org.freedesktop.login1"
    static let managerPath = "/org/freedesktop/login1"
    static let managerInterface = "org.freedesktop.login1.Manager"
    static let sessionInterface = "org.freedesktop.login1.Session"

    private let bus: Bus
    private let logger: Logger
    private var tracker = SessionTracker()
    private var slots: [BusSlot] = []
    /// The unique name that owns `org.freedesktop.login1` now, or nil while logind is away.
    private(set) var owner: String?
    /// Detail fetches in flight from the last enumeration; readiness waits for them.
    private var enumerationFetches = 0
    private var enumerationDone: (() -> Void)?

    /// Receives the events each change produces, in order.
    public var publish: ([EventDraft]) -> Void = { _ in }

    /// Signals dropped because their sender was not logind.
    public private(set) var ignoredSignals = 0

    public var sessionCount: Int { tracker.count }

    public init(bus: Bus, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    /// Subscribes, learns the owner and enumerates the live sessions; `ready` runs once every enumerated
    /// session's details are in. Subscribing comes first so that nothing happening during the listing is missed.
    public func start(ready: @escaping () -> Void) throws(SystemdError) {
        slots.append(try bus.addMatch(Self.rule(member: "SessionNew")) { [unowned self] in self.sessionNew($0) })
        slots.append(try bus.addMatch(Self.rule(member: "SessionRemoved")) { [unowned self] in self.sessionRemoved($0) })
        slots.append(try bus.addMatch(
            "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(Self.service)'"
        ) { [unowned self] in self.nameOwnerChanged($0) })

        enumerationDone = ready
        let call = try bus.methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetNameOwner")
        try call.append(.string(Self.service))
        do {
            owner = try bus.call(call).readValue()?.stringValue
        } catch where error.busErrorName == "org.freedesktop.DBus.Error.NameHasNoOwner" {
            logger.warning("systemd-logind is not on the bus; waiting for it to appear")
        }
        if let owner {
            logger.info("following systemd-logind", metadata: ["owner": "\(owner)"])
            let reply = try bus.call(try listSessionsCall())
            enumerate(try Self.parseSessionList(reply))
        }
        finishEnumerationIfDone()
    }

    private static func rule(member: String) -> String {
        "type='signal',sender='\(service)',path='\(managerPath)',interface='\(managerInterface)',member='\(member)'"
    }

    private func listSessionsCall() throws(SystemdError) -> BusMessage {
        try bus.methodCall(destination: Self.service, path: Self.managerPath, interface: Self.managerInterface, member: "ListSessions")
    }

    /// `ListSessions() -> a(susso)`: id, uid, user name, seat, object path.
    static func parseSessionList(_ reply: BusMessage) throws(SystemdError) -> [(LogindSession, String)] {
        guard let entries = try reply.readValue()?.arrayElements else {
            throw SystemdError(operation: "ListSessions reply", errno: 74 /* EBADMSG */)
        }
        return entries.compactMap { entry in
            guard let f = entry.structFields, f.count == 5, let id = f[0].stringValue, let path = f[4].stringValue else { return nil }
            return (LogindSession(id: id, uid: f[1].uint32Value, userName: f[2].stringValue), path)
        }
    }

    /// `Properties.GetAll(org.freedesktop.login1.Session)` as what the tracker keeps.
    static func session(id: String, properties p: [String: BusValue]) -> LogindSession {
        LogindSession(
            id: p["Id"]?.stringValue ?? id,
            uid: p["User"]?.structFields?.first?.uint32Value,
            userName: p["Name"]?.stringValue,
            leader: p["Leader"]?.uint32Value,
            startedAt: p["Timestamp"]?.uint64Value)
    }

    // MARK: Signals

    private func isFromLogind(_ m: BusMessage) -> Bool {
        if let owner, m.sender == owner { return true }
        ignoredSignals += 1
        logger.warning("ignored a \(m.member ?? "?") signal not sent by systemd-logind", metadata: ["sender": "\(m.sender ?? "?")", "owner": "\(owner ?? "none")"])
        return false
    }

    private func sessionNew(_ m: BusMessage) {
        guard isFromLogind(m) else { return }
        guard let args = try? m.readAll(), args.count == 2, let id = args[0].stringValue, let path = args[1].stringValue else {
            logger.error("malformed SessionNew signal from systemd-logind, ignoring")
            return
        }
        tracker.announced(id: id)
        fetchDetails(id: id, path: path, forEnumeration: false)
    }

    private func sessionRemoved(_ m: BusMessage) {
        guard isFromLogind(m) else { return }
        guard let args = try? m.readAll(), args.count == 2, let id = args[0].stringValue else {
            logger.error("malformed SessionRemoved signal from systemd-logind, ignoring")
            return
        }
        publish(tracker.removed(id: id))
    }

    private func nameOwnerChanged(_ m: BusMessage) {
        // Only the bus daemon itself may say who owns a name.
        guard m.sender == "org.freedesktop.DBus" else {
            ignoredSignals += 1
            return
        }
        guard let args = try? m.readAll(), args.count == 3, args[0].stringValue == Self.service else { return }
        let newOwner = args[2].stringValue ?? ""
        if newOwner.isEmpty {
            logger.warning("systemd-logind left the bus; sessions are kept until it returns", metadata: ["tracked": "\(tracker.count)"])
            owner = nil
            return
        }
        logger.notice("systemd-logind is back on the bus; resynchronising", metadata: ["owner": "\(newOwner)"])
        owner = newOwner
        resynchronise()
    }

    // MARK: Enumeration and details

    /// Reads the session list again and settles the difference with what is tracked.
    private func resynchronise() {
        do {
            try bus.callAsync(try listSessionsCall()) { [weak self] result in
                guard let self else { return }
                switch result {
                case .success(let reply):
                    do {
                        self.enumerate(try Self.parseSessionList(reply))
                    } catch {
                        self.logger.error("could not read logind's session list: \(error)")
                    }
                case .failure(let error):
                    self.logger.error("could not list logind's sessions: \(error)")
                }
            }
        } catch {
            logger.error("could not ask logind for its sessions: \(error)")
        }
    }

    private func enumerate(_ listed: [(LogindSession, String)]) {
        let drafts = tracker.resynchronised(live: listed.map(\.0))
        if !drafts.isEmpty {
            logger.notice("sessions ended while logind was away", metadata: ["count": "\(drafts.count)"])
            publish(drafts)
        }
        for (session, path) in listed {
            fetchDetails(id: session.id, path: path, forEnumeration: true)
        }
    }

    private func fetchDetails(id: String, path: String, forEnumeration: Bool) {
        do {
            let call = try bus.methodCall(destination: Self.service, path: path, interface: "org.freedesktop.DBus.Properties", member: "GetAll")
            try call.append(.string(Self.sessionInterface))
            if forEnumeration { enumerationFetches += 1 }
            try bus.callAsync(call) { [weak self] result in
                guard let self else { return }
                switch result {
                case .success(let reply):
                    if let properties = (try? reply.readValue())?.propertyDictionary {
                        self.publish(self.tracker.detailsArrived(Self.session(id: id, properties: properties)))
                    } else {
                        self.logger.error("malformed session properties from systemd-logind", metadata: ["session": "\(id)"])
                        self.tracker.detailsUnavailable(id: id)
                    }
                case .failure(let error):
                    // Usually the session ended before logind answered; its removal is already on its way.
                    self.logger.debug("could not read session details", metadata: ["session": "\(id)", "error": "\(error)"])
                    self.tracker.detailsUnavailable(id: id)
                }
                if forEnumeration {
                    self.enumerationFetches -= 1
                    self.finishEnumerationIfDone()
                }
            }
        } catch {
            logger.error("could not ask logind about a session", metadata: ["session": "\(id)", "error": "\(error)"])
            tracker.detailsUnavailable(id: id)
        }
    }

    private func finishEnumerationIfDone() {
        guard enumerationFetches == 0, let done = enumerationDone else { return }
        enumerationDone = nil
        done()
    }
}
