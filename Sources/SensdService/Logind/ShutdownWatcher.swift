/// Whether the machine is going down, and how: what sensd learns from logind's `PrepareForShutdown` (and
/// `PrepareForShutdownWithMetadata`, v257) and from the shutdown targets systemd queues, as the `reason`
/// the ends of sessions get while it lasts (`reboot`, `shutdown`). No bus here: the logind source reads
/// the signals and checks their senders; the rules are checked in-process (ShutdownWatcherTests).
struct ShutdownWatcher {
    /// The targets that end every session, and the `reason` their sessions' ends get.
    static let targets = [
        "reboot.target": "reboot", "kexec.target": "reboot", "soft-reboot.target": "reboot",
        "poweroff.target": "shutdown", "halt.target": "shutdown", "power-off.target": "shutdown",
    ]

    /// The reason for unit `unit` if it is a shutdown target.
    static func reason(ofTarget unit: String) -> String? {
        targets[unit]
    }

    /// Why sessions are ending now, while the machine is going down; nil otherwise.
    private(set) var reason: String?

    init() {}

    /// logind says the machine is about to go down (`going`) or no longer is; `type` is v257's metadata
    /// ("reboot", "poweroff", "kexec", ...). Answers true when this is the first word of a going down.
    mutating func prepareForShutdown(going: Bool, type: String?) -> Bool {
        guard going else {
            reason = nil
            return false
        }
        let first = reason == nil
        var why = reason ?? "shutdown"
        if let type { why = Self.reason(ofTarget: type + ".target") ?? why }
        reason = why
        return first
    }

    /// systemd queued a job for `unit`: a reboot or power-off target says which kind of going down this is.
    mutating func jobQueued(unit: String) {
        guard let why = Self.reason(ofTarget: unit) else { return }
        reason = why
    }
}
