import SENSCore
import Systemd
import SystemCalls

/// One connected client: its socket, its queue, and where it is in its life.
final class Subscriber {
    /// What the connection is doing; each phase holds what only it needs.
    enum Phase {
        /// Connected: events queue up until a request arrives or `grace` fires (then the default
        /// subscription applies from the hello line on).
        case held(grace: EventSource?)
        /// A Varlink connection between calls: it gets replies to its calls and no events.
        case idle
        /// Resuming from the log: live events are read from the log too, until the cursor is caught up.
        case replaying(LogCursor)
        /// Receiving events as they are published.
        case live
        /// Ending: the queued lines end with a final one; dropped once it is read, or when `deadline` fires.
        case closing(deadline: EventSource?)
        /// Disconnected: its descriptor and event sources are released.
        case gone
    }

    /// The client's side of the conversation.
    enum Input {
        /// Its request may still come.
        case awaitingRequest
        /// It sent its one request line; another is an error.
        case requestReceived
        /// No more input is read: the client shut its writing side, or the connection is closing.
        case ended
    }

    /// Who connected (SO_PEERCRED).
    let uid: UInt32
    /// Which socket it came through, so which protocol it speaks.
    let dialect: Dialect
    private(set) var phase: Phase = .held(grace: nil)
    var input = Input.awaitingRequest
    private(set) var fd: Descriptor?
    var source: EventSource?
    var queue: SubscriberQueue
    var reader: LineReader
    /// What it subscribed to; nil while held, until the request or the end of the grace period decides.
    var request: SubscriptionRequest?
    /// The seq of the last event considered for this subscriber (sent or filtered out).
    var lastSeqSeen: UInt64 = 0
    /// The last seq published before this client connected, as its hello line said.
    var helloSeq: UInt64 = 0
    /// The readiness it is watched for now.
    var events: IOEvents = .readable
    /// In the server's list of subscribers to write at the next flush.
    var awaitingFlush = false

    /// Whether it may see the events of ``SENSCore/EventFacts/isRestricted`` (LogonFailed): root and the
    /// administrators' groups, as the Security log is theirs on Windows. A user name typed at a failed
    /// logon can be another user's password.
    let administrator: Bool

    init(fd: consuming Descriptor, uid: UInt32, queueLimit: Int, dialect: Dialect = .jsonLines, administrator: Bool = false) {
        self.fd = .some(fd)
        self.uid = uid
        self.administrator = administrator
        self.dialect = dialect
        queue = SubscriberQueue(limit: queueLimit)
        reader = switch dialect {
        case .jsonLines: LineReader(limit: WireFormat.maxRequestBytes)
        case .varlink: LineReader(limit: Varlink.maxMessageBytes, separator: 0)
        }
    }

    /// Whether an event with these facts is for it: its subscription matches, and a restricted event is
    /// only for an administrator. Held (no request yet), every event that is not restricted waits.
    func wants(_ facts: EventFacts) -> Bool {
        if facts.isRestricted && !administrator { return false }
        return request?.matches(facts) != false
    }

    /// The descriptor's number, for a system call; only while connected.
    var rawFD: Int32 {
        guard let raw = fd?.rawValue else { preconditionFailure("a subscriber that is gone has no descriptor") }
        return raw
    }

    var isAttached: Bool {
        if case .gone = phase { false } else { true }
    }

    var isHeld: Bool {
        if case .held = phase { true } else { false }
    }

    var isLive: Bool {
        if case .live = phase { true } else { false }
    }

    var isIdle: Bool {
        if case .idle = phase { true } else { false }
    }

    var isReplaying: Bool {
        if case .replaying = phase { true } else { false }
    }

    var isClosing: Bool {
        if case .closing = phase { true } else { false }
    }

    /// Moves to `next`; what the phase left behind (a timer, a log cursor) is released with it.
    func enter(_ next: Phase) {
        precondition(isAttached, "a subscriber that is gone stays gone")
        phase = next
        if case .closing = next { input = .ended }
    }

    /// Releases the event sources, the replay position and the descriptor (the source first: epoll must not
    /// watch a closed number); safe to call from the subscriber's own handler, and more than once.
    func detach() {
        guard isAttached else { return }
        phase = .gone
        input = .ended
        source = nil
        fd = nil
    }
}

/// The two protocols of the subscriber sockets: the same events, the same limits.
enum Dialect: Equatable {
    /// `/run/sensd/events.sock`: a hello line, one optional request line, then event lines (the canonical one).
    case jsonLines
    /// `/run/sensd/io.sensd.Events`: Varlink calls and replies, NUL-terminated.
    case varlink
}
