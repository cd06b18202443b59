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

    init(bus: Bus, logger: Logger, service: String, interface: String, objectPath: @escaping (String) -> String) {
        self.bus = bus
        self.logger = logger
        self.service = service
        self.interface = interface
        self.objectPath = objectPath
    }

    /// Asks for session `id`'s details on behalf of `consumer`, which is told of every request it made (the
    /// daemon has one, the logind source; it is held weakly while a call is out).
    func request(_ id: String, backlog fromListing: Bool, announced: Bool = false, for consumer: some DetailConsumer) {
        let request = Request(id: id, backlog: fromListing, announced: announced)
        if fromListing { backlog.append(request) } else { live.append(request) }
        sendNext(for: consumer)
    }

    private func sendNext(for consumer: some DetailConsumer) {
        while inFlight < Self.maxInFlight, let next = live.popFirst() ?? backlog.popFirst() {
            guard consumer.wantsDetails(of: next.id) else {
                // Removed while waiting its turn: nothing left to ask.
                consumer.detailRequestEnded(next)
                continue
            }
            inFlight += 1
            send(next, for: consumer)
        }
    }

    private func send(_ request: Request, for consumer: some DetailConsumer) {
        let id = request.id
        func finished(_ consumer: (some DetailConsumer)?) {
            inFlight -= 1
            guard let consumer else { return }
            consumer.detailRequestEnded(request)
            sendNext(for: consumer)
        }
        do {
            let call = try bus.methodCall(destination: service, path: objectPath(id), interface: "org.freedesktop.DBus.Properties", member: "GetAll")
            try call.append(.string(interface))
            try bus.callAsync(call) { [weak self, weak consumer] result in
                guard let self else { return }
                switch result {
                case .success(let reply):
                    if let properties = (try? reply.readValue())?.propertyDictionary, let consumer {
                        consumer.detailsArrived(request, properties) { [weak consumer] in finished(consumer) }
                        return
                    }
                    self.logger.error("malformed session properties from systemd-logind", metadata: ["session": "\(id)"])
                case .failure(let error):
                    // Usually the session ended before logind answered; its removal is already on its way.
                    self.logger.debug("could not read session details", metadata: ["session": "\(id)", "error": "\(error)"])
                }
                finished(consumer)
            }
        } catch {
            logger.error("could not ask logind about a session", metadata: ["session": "\(id)", "error": "\(error)"])
            finished(consumer)
        }
    }
}

/// Whoever asks a ``DetailFetcher`` for sessions' details: told what came of each request.
protocol DetailConsumer: AnyObject {
    /// Whether a session still wants its details: false once it was removed while waiting its turn.
    func wantsDetails(of id: String) -> Bool
    /// A session's properties arrived; `done` is called when the consumer is through with them (it may ask
    /// systemd something first), which frees the request's slot.
    func detailsArrived(_ request: DetailFetcher.Request, _ properties: [String: BusValue], done: @escaping () -> Void)
    /// A request is over: answered, failed, or dropped as no longer wanted.
    func detailRequestEnded(_ request: DetailFetcher.Request)
}
