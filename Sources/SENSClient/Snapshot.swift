import SENSCore

/// The sessions open at one point of the stream (docs/protocol.md, "Snapshot of the open sessions").
public struct Snapshot: Sendable, Equatable {
    /// Every event up to this seq is reflected in ``sessions``, none after it.
    public var seq: UInt64
    public var sessions: [Session]

    public init(seq: UInt64, sessions: [Session]) {
        self.seq = seq
        self.sessions = sessions
    }

    /// An open session: the fields its events carry, and its state now.
    ///
    /// Read by the table sensd writes the line with (SENSCore's `SessionFields`), not by a second list of
    /// keys; ``fields`` has every field an event of the session would carry, a newer one's too.
    public struct Session: Decodable, Sendable, Equatable {
        package var open: OpenSession
        /// The line exactly as sensd sent it, with every key (a newer sensd's too).
        public var line: String = ""

        public init(from decoder: any Decoder) throws {
            open = try OpenSession(from: decoder)
        }

        /// The session's fields as its events carry them: a `Logon` with seq 0 and time 0 (a snapshot line
        /// has neither), whatever else it is.
        public var fields: SENSEvent { open.fields }

        public var sessionId: String {
            get { open.fields.sessionId }
            set { open.fields.sessionId = newValue }
        }
        public var userName: String? {
            get { open.fields.userName }
            set { open.fields.userName = newValue }
        }
        public var uid: UInt32? {
            get { open.fields.uid }
            set { open.fields.uid = newValue }
        }
        public var unresolved: String? {
            get { open.fields.unresolved }
            set { open.fields.unresolved = newValue }
        }
        public var host: String? {
            get { open.fields.host }
            set { open.fields.host = newValue }
        }
        public var sessionClass: String? {
            get { open.fields.sessionClass }
            set { open.fields.sessionClass = newValue }
        }
        public var type: String? {
            get { open.fields.type }
            set { open.fields.type = newValue }
        }
        public var service: String? {
            get { open.fields.service }
            set { open.fields.service = newValue }
        }
        public var tty: String? {
            get { open.fields.tty }
            set { open.fields.tty = newValue }
        }
        public var seat: String? {
            get { open.fields.seat }
            set { open.fields.seat = newValue }
        }
        public var display: String? {
            get { open.fields.display }
            set { open.fields.display = newValue }
        }
        public var remote: Bool? {
            get { open.fields.remote }
            set { open.fields.remote = newValue }
        }
        public var remoteHost: String? {
            get { open.fields.remoteHost }
            set { open.fields.remoteHost = newValue }
        }
        public var remoteUser: String? {
            get { open.fields.remoteUser }
            set { open.fields.remoteUser = newValue }
        }
        public var leader: UInt32? {
            get { open.fields.leader }
            set { open.fields.leader = newValue }
        }
        public var audit: UInt32? {
            get { open.fields.audit }
            set { open.fields.audit = newValue }
        }
        public var sessionStart: EventTime? {
            get { open.fields.sessionStart }
            set { open.fields.sessionStart = newValue }
        }
        public var logonType: LogonType? {
            get { open.fields.logonType }
            set { open.fields.logonType = newValue }
        }
        /// logind's state: `online`, `active` or `closing`.
        public var state: String? {
            get { open.session.state }
            set { open.session.state = newValue }
        }
        public var active: Bool? {
            get { open.session.active }
            set { open.session.active = newValue }
        }
        public var locked: Bool? {
            get { open.session.locked }
            set { open.session.locked = newValue }
        }
        public var idle: Bool? {
            get { open.session.idle }
            set { open.session.idle = newValue }
        }
        /// Whether the session's `LogoffInitiated` has gone out.
        public var logoffInitiated: Bool {
            get { open.logoffInitiated }
            set { open.logoffInitiated = newValue }
        }
    }
}
