import SENSCore
import SystemCalls

/// The calls of the Varlink socket (`io.sensd.Events`, `org.varlink.service`). A subscription is served by
/// the same machinery as a JSON-lines request (held, replay, snapshot, live), in Varlink's framing; the other
/// calls are answered at once and the connection waits for the next.
extension SubscriberServer {
    /// Unsent replies past which a Varlink client's further calls wait in its socket until it reads: a
    /// client that calls without reading gets no more memory than this.
    static let varlinkRepliesAhead = 64

    /// One message from a Varlink client.
    func called(_ subscriber: Subscriber, _ message: ArraySlice<UInt8>) {
        let call: Varlink.Call
        do {
            call = try Varlink.parseCall(message)
        } catch {
            return close(subscriber, with: error)
        }
        guard subscriber.isIdle else {
            // A subscription streams here: another call's replies could not be told from its own.
            return close(subscriber, with: ProtocolError(.badRequest, "\(call.method) was called while a subscription streams on this connection; make the call on a connection of its own"))
        }
        switch call.method {
        case "org.varlink.service.GetInfo":
            answer(subscriber, call, Varlink.info())
        case "org.varlink.service.GetInterfaceDescription":
            let name: String?
            do {
                name = try call.string("interface")
            } catch {
                return answer(subscriber, call, Varlink.error(error))
            }
            guard let name else {
                return answer(subscriber, call, Varlink.error(ProtocolError(.badRequest, "\"interface\" is required", parameter: "interface")))
            }
            answer(subscriber, call, Varlink.interfaceDescription(name) ?? Varlink.interfaceNotFound(name))
        case "io.sensd.Events.Subscribe":
            subscribe(subscriber, call)
        case "io.sensd.Events.ListSessions":
            listSessions(subscriber, call)
        case "io.sensd.Events.GetHistory":
            history(subscriber, call)
        case "io.sensd.Events.GetStats":
            if let unknown = call.unknownParameter(known: []) { return answer(subscriber, call, invalid(unknown)) }
            answer(subscriber, call, Varlink.stats(feed.stats()))
        default:
            answer(subscriber, call, Varlink.methodNotFound(call.method))
        }
    }

    private func answer(_ subscriber: Subscriber, _ call: Varlink.Call, _ reply: [UInt8]) {
        guard !call.oneway else { return }
        subscriber.queue.enqueueFinal(OutgoingLine(bytes: reply, seq: nil))
        markDirty(subscriber)
    }

    private func invalid(_ parameter: String) -> [UInt8] {
        Varlink.error(ProtocolError(.badRequest, "unknown parameter \"\(parameter)\"", parameter: parameter))
    }

    /// `Subscribe`: the state, then the events, as a JSON-lines request would have them.
    private func subscribe(_ subscriber: Subscriber, _ call: Varlink.Call) {
        guard call.more else { return answer(subscriber, call, Varlink.expectedMore()) }
        let request: SubscriptionRequest
        do {
            request = try call.subscription()
        } catch {
            return answer(subscriber, call, Varlink.error(error))
        }
        subscriber.input = .requestReceived
        // The stream starts now: the state reply names this seq as a hello line would.
        subscriber.helloSeq = feed.emittedSeq
        subscriber.lastSeqSeen = subscriber.helloSeq
        subscriber.enter(.held(grace: nil))
        subscribe(subscriber, to: request)
    }

    private func listSessions(_ subscriber: Subscriber, _ call: Varlink.Call) {
        if let unknown = call.unknownParameter(known: ["classes"]) { return answer(subscriber, call, invalid(unknown)) }
        let filter: SubscriptionRequest
        do {
            filter = try call.subscription()
        } catch {
            return answer(subscriber, call, Varlink.error(error))
        }
        let (seq, all) = feed.openSessions()
        let sessions = all.filter { filter.matchesSession(EventFacts($0.fields)) }
        guard call.more, !sessions.isEmpty else {
            return answer(subscriber, call, call.more ? Varlink.session(nil, seq: seq, continues: false) : Varlink.sessions(sessions, seq: seq))
        }
        for (i, session) in sessions.enumerated() {
            answer(subscriber, call, Varlink.session(session, seq: seq, continues: i < sessions.count - 1))
        }
    }

    /// `GetHistory`: the last Logoffs the log retains, read from its newest segments.
    private func history(_ subscriber: Subscriber, _ call: Varlink.Call) {
        if let unknown = call.unknownParameter(known: ["limit"]) { return answer(subscriber, call, invalid(unknown)) }
        let limit: UInt64
        do {
            limit = try call.integer("limit", in: 1...1000) ?? 10
        } catch {
            return answer(subscriber, call, Varlink.error(error))
        }
        guard let log else {
            return answer(subscriber, call, Varlink.error(ProtocolError(.logUnavailable, "this sensd keeps no event log (started with --state-directory none)")))
        }
        do {
            answer(subscriber, call, Varlink.history(try log.lastRecords(limit: Int(limit)) { $0.event == .logoff }))
        } catch {
            answer(subscriber, call, Varlink.error(ProtocolError(.logUnavailable, "sensd cannot read its event log: \(error)")))
        }
    }
}
