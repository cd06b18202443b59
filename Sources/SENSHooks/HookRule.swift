import SENSClient

/// One rule file, `NAME.hook` (sensd.hook(5)): which events it matches, and what it runs for each.
public struct HookRule: Sendable, Equatable {
    /// The file name without `.hook`: the rule's name in logs, the journal and its state file.
    public var name: String
    /// The file it came from.
    public var path: String
    public var match: Match
    public var action: Action
    /// Run as this user (name or uid, or ``sessionUser``); nil: root.
    public var user: String?
    /// `User=%u`: run as the user whose session it is.
    public static let sessionUser = "%u"
    /// A run still going after this long is stopped (SIGTERM to its process group, SIGKILL 5 s later); nil: no limit.
    public var timeout: Duration?
    /// How many times a failed run is tried again before the rule moves on.
    public var retries: Int
    /// The wait before each retry.
    public var retryDelay: Duration
    /// How the event is written on the command's standard input: sensd's line, ECS or OCSF (`InputFormat=`).
    public var inputFormat: EventFormat = .sensd

    public static let defaultTimeout: Duration = .seconds(60)
    public static let defaultRetryDelay: Duration = .seconds(10)

    public enum Action: Sendable, Equatable {
        /// A command line, no shell: the program's absolute path and its arguments, each with specifiers.
        case exec([String])
        /// A unit to start through systemd (e.g. a template instance `cleanup@%u.service`), with specifiers.
        case unit(String)
    }

    /// `[Match]`: every key given must match (values within a key are alternatives).
    public struct Match: Sendable, Equatable {
        public var events: Set<EventKind> = []
        public var userNames: Set<String>?
        public var uids: Set<UInt32>?
        /// logind classes; without `Class=`, service-manager sessions (`manager`, `manager-early`) never match,
        /// as in sensd's own subscriptions.
        public var classes: Set<String>?
        public var services: Set<String>?
        public var remote: Bool?

        public init() {}

        static let hiddenUnlessNamed: Set<String> = ["manager", "manager-early"]

        public func matches(_ e: SENSEvent) -> Bool {
            guard events.contains(e.event) else { return false }
            if let userNames, !userNames.contains(e.userName ?? "\u{0}") { return false }
            if let uids, !uids.contains(e.uid ?? .max) || e.uid == nil { return false }
            if let classes {
                if !classes.contains("*") && !classes.contains(e.sessionClass ?? "\u{0}") { return false }
            } else if let c = e.sessionClass, Self.hiddenUnlessNamed.contains(c) {
                return false
            }
            if let services, !services.contains(e.service ?? "\u{0}") { return false }
            if let remote, (e.remote ?? false) != remote { return false }
            return true
        }

        /// The part sensd filters itself, so that only candidate events cross the socket.
        public var filter: Filter {
            Filter(events: events, users: userNames, uids: uids, classes: classes)
        }
    }
}
