import FoundationEssentials
import SENSCore

/// A client of sensd: the SENS logon events of this machine's sessions, as Swift values.
///
/// ```swift
/// for try await event in SensdClient().events(Filter(events: [.logoff])) {
///     print(event.userName ?? "?", "left session", event.sessionId)
/// }
/// ```
///
/// A stream reconnects by itself after sensd restarts, cuts it off for falling behind, or before sensd's
/// socket exists, and resumes after the last event it handed out: nothing the log retains is lost or
/// repeated. Missing events are never skipped silently: ``events(_:after:reconnect:)`` throws
/// ``SENSClientError`` with code ``SENSClientError/Code/eventsMissing``, ``messages(_:after:live:reconnect:)`` yields a ``Gap``.
public struct SensdClient: Sendable {
    /// sensd's socket unless it was started with `--socket`.
    public static let defaultSocketPath = "/run/sensd/events.sock"
    /// This library's version (the sensd release it comes with).
    public static let version = Release.version

    public let socketPath: String

    public init(socketPath: String = SensdClient.defaultSocketPath) {
        self.socketPath = socketPath
    }

    /// The events that pass `filter`, from now on, or after `seq` when given (a replay from sensd's log first).
    ///
    /// - Parameters:
    ///   - filter: which events; everything (but service managers') by default.
    ///   - seq: resume after this seq: the last one the caller handled, as a ``SENSCursor`` keeps it.
    ///   - reconnect: ``ReconnectPolicy/standard`` by default: the stream never ends by itself.
    public func events(_ filter: Filter = .everything, after seq: UInt64? = nil, reconnect: ReconnectPolicy = .standard) -> Events {
        Events(messages: messages(filter, after: seq, live: true, reconnect: reconnect))
    }

    /// The events after the seq `cursor` holds (from now on when it holds none yet).
    public func events(_ filter: Filter = .everything, resumingFrom cursor: SENSCursor, reconnect: ReconnectPolicy = .standard) throws -> Events {
        events(filter, after: try cursor.load(), reconnect: reconnect)
    }

    /// Every line of the stream, typed: events, gaps, hellos, errors and reconnections.
    ///
    /// With `live: false` (and `seq`) the stream replays the log after `seq` and ends at ``Message/Kind/end(lastSeq:)``.
    public func messages(_ filter: Filter = .everything, after seq: UInt64? = nil, live: Bool = true, reconnect: ReconnectPolicy = .standard) -> Messages {
        Messages(socketPath: socketPath, filter: filter, after: seq, live: live, reconnect: reconnect)
    }

    /// sensd's hello: its version and the seqs of the newest and the oldest event it holds.
    public func hello() async throws -> Hello {
        let engine = StreamEngine(socketPath: socketPath, filter: .everything, after: nil, live: true, policy: .never)
        switch try await engine.next()?.kind {
        case .hello(let hello): return hello
        case .serverError(let error): throw SENSClientError.server(error)
        default: throw SENSClientError.protocolViolation("sensd's first line was not a hello line")
        }
    }

    /// sensd's counters since it started: sessions, subscribers, events, refusals, the log's state.
    public func stats() async throws -> SensdStats {
        let engine = StreamEngine(socketPath: socketPath, filter: .everything, after: nil, live: true, stats: true, policy: .never)
        while let message = try await engine.next() {
            if case .serverError(let error) = message.kind { throw SENSClientError.server(error) }
            guard case .other = message.kind, let line = message.line, line.hasPrefix(#"{"stats":"#) else { continue }
            do {
                return try JSONDecoder().decode(SensdStats.self, from: Data(line.utf8))
            } catch {
                throw SENSClientError.protocolViolation("a stats line that does not decode (\(error)): \(line)")
            }
        }
        throw SENSClientError.protocolViolation("sensd closed the connection without its stats line (a sensd before the stats request answers it with a bad-request error instead)")
    }

    /// The sessions open now that pass `filter`, as of one seq; `events(filter, after: snapshot.seq)` then
    /// continues with every change after it, nothing missed and nothing twice.
    public func snapshot(_ filter: Filter = .everything) async throws -> Snapshot {
        let engine = StreamEngine(socketPath: socketPath, filter: filter, after: nil, live: true, snapshot: true, policy: .never)
        var snapshot: Snapshot?
        let decoder = JSONDecoder()
        while let message = try await engine.next() {
            if case .serverError(let error) = message.kind { throw SENSClientError.server(error) }
            guard case .other = message.kind, let line = message.line, LineDecoder.firstKey(Array(line.utf8.prefix(16))[...]) == "snapshot" else { continue }
            // Each line decoded once: a session line as a session, a begin or end line as a control line.
            if line.hasPrefix(#"{"snapshot":"session""#) {
                do {
                    var session = try decoder.decode(Snapshot.Session.self, from: Data(line.utf8))
                    session.line = line
                    snapshot?.sessions.append(session)
                } catch {
                    throw SENSClientError.protocolViolation("a snapshot session line that does not decode (\(error)): \(line)")
                }
                continue
            }
            guard let control = try? decoder.decode(ControlLine.self, from: Data(line.utf8)) else { continue }
            switch control.snapshot {
            case "begin":
                snapshot = Snapshot(seq: control.seq ?? 0, sessions: [])
            case "end":
                if let snapshot { return snapshot }
                throw SENSClientError.protocolViolation("a snapshot end line without its begin line")
            default:
                continue
            }
        }
        throw SENSClientError.protocolViolation("sensd closed the connection before the snapshot ended")
    }
}

extension SensdClient {
    /// The events of a stream (``SensdClient/events(_:after:reconnect:)``).
    public struct Events: AsyncSequence, Sendable {
        public typealias Element = SENSEvent
        let messages: Messages

        public func makeAsyncIterator() -> Iterator {
            Iterator(messages: messages.makeAsyncIterator())
        }

        public struct Iterator: AsyncIteratorProtocol {
            var messages: Messages.Iterator

            /// The seq through which this stream has handed out everything it asked for (nil before sensd's
            /// hello when it started from now): where a new stream would resume.
            public var position: UInt64? { messages.position }

            /// The next event; nil once the stream has ended, and after it has thrown (a stream that threw is
            /// over: make a new one to go on).
            public mutating func next() async throws -> SENSEvent? {
                while let message = try await messages.next() {
                    switch message.kind {
                    case .event(let event): return event
                    case .gap(let gap):
                        messages.finish()
                        throw SENSClientError.eventsMissing(gap)
                    default: continue
                    }
                }
                return nil
            }
        }
    }

    /// Every message of a stream (``SensdClient/messages(_:after:live:reconnect:)``).
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = Message
        let socketPath: String
        let filter: Filter
        let after: UInt64?
        let live: Bool
        let reconnect: ReconnectPolicy

        init(socketPath: String, filter: Filter, after: UInt64?, live: Bool, reconnect: ReconnectPolicy) {
            self.socketPath = socketPath
            self.filter = filter
            self.after = after
            self.live = live
            self.reconnect = reconnect
        }

        public func makeAsyncIterator() -> Iterator {
            Iterator(engine: StreamEngine(socketPath: socketPath, filter: filter, after: after, live: live, policy: reconnect))
        }

        public struct Iterator: AsyncIteratorProtocol {
            let engine: StreamEngine
            private var finished = false

            init(engine: StreamEngine) {
                self.engine = engine
            }

            /// The seq through which this stream has handed out everything it asked for (nil before sensd's hello
            /// when it started from now): where a new stream would resume.
            public var position: UInt64? { engine.position }

            /// The next message; nil once the stream has ended, and after it has thrown.
            public mutating func next() async throws -> Message? {
                guard !finished else { return nil }
                do {
                    guard let message = try await engine.next() else {
                        finished = true
                        return nil
                    }
                    return message
                } catch {
                    finish()
                    throw error
                }
            }

            /// Ends the stream: its connection is closed, and `next()` answers nil from now on.
            mutating func finish() {
                finished = true
                engine.end()
            }
        }
    }
}
