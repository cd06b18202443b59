import DequeModule
import Logging
import Systemd

/// Asks logind for sessions' details (`GetAll` on each session object): new sessions first, then the start-up
/// listing's backlog, at most ``maxInFlight`` at a time. The system bus allows a connection 128 calls awaiting
/// replies (dbus-daemon's max_replies_per_connection; past it calls fail with LimitsExceeded), and sensd keeps
/// room for its other calls. Also, dbus-daemon looks up each reply in a list of the pending ones: 100,000
/// requests at once cost it O(n^2) (measured: 31 s to READY with 100,000 sessions).
final class DetailFetcher {
    static let maxInFlight = 100

    struct Request {
        var id: String
        /// From the start-up listing (readiness waits for it), rather than a session that just began.
        var backlog: Bool
        /// logind announced the session (`SessionNew`) to this run: it is new, not one a restarted logind
        /// lists as closing for ever, and its `SessionRemoved` will come.
        var announced: Bool = false
    }

    private let bus: Bus
    private let logger: Logger
    private let service: String
    private let interface: String
    private let objectPath: (String) -> String
    private var live = Deque<Request>()
    private var backlog = Deque<Request>()
    private var inFlight = 0

    /// Whether a session still wants its details: false once it was removed while waiting its turn.
    var isWanted: (String) -> Bool = { _ in true }
    /// A session's properties arrived; the handler calls the closure when it is done with them (it may ask
    /// systemd something first), which frees the request's slot.
    var arrived: (Request, [String: BusValue], @escaping () -> Void) -> Void = { _, _, done in done() }
    /// A request is over: answered, failed, or dropped as no longer wanted.
    var completed: (Request) -> Void = { _ in }

    init(bus: Bus, logger: Logger, service: String, interface: String, objectPath: @escaping (String) -> String) {
        self.bus = bus
        self.logger = logger
        self.service = service
        self.interface = interface
        self.objectPath = objectPath
    }

    func request(_ id: String, backlog fromListing: Bool, announced: Bool = false) {
        let request = Request(id: id, backlog: fromListing, announced: announced)
        if fromListing { backlog.append(request) } else { live.append(request) }
        sendNext()
    }

    private func sendNext() {
        while inFlight < Self.maxInFlight, let next = live.popFirst() ?? backlog.popFirst() {
            guard isWanted(next.id) else {
                // Removed while waiting its turn: nothing left to ask.
                completed(next)
                continue
            }
            inFlight += 1
            send(next)
        }
    }

    private func send(_ request: Request) {
        let id = request.id
        func finished() {
            inFlight -= 1
            completed(request)
            sendNext()
        }
        do {
            let call = try bus.methodCall(destination: service, path: objectPath(id), interface: "org.freedesktop.DBus.Properties", member: "GetAll")
            try call.append(.string(interface))
            try bus.callAsync(call) { [weak self] result in
                guard let self else { return }
                switch result {
                case .success(let reply):
                    if let properties = (try? reply.readValue())?.propertyDictionary {
                        self.arrived(request, properties) { finished() }
                        return
                    }
                    self.logger.error("malformed session properties from systemd-logind", metadata: ["session": "\(id)"])
                case .failure(let error):
                    // Usually the session ended before logind answered; its removal is already on its way.
                    self.logger.debug("could not read session details", metadata: ["session": "\(id)", "error": "\(error)"])
                }
                finished()
            }
        } catch {
            logger.error("could not ask logind about a session", metadata: ["session": "\(id)", "error": "\(error)"])
            finished()
        }
    }
}
