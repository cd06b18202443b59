/// sensd's start-up, from subscribing to readiness, as one small state: no bus here, so each rule is
/// checked in-process (StartupGateTests).
///
/// Signals matched before the start-up replies name their senders (logind's and systemd's unique names)
/// cannot be checked yet: they wait, in arrival order, and are handled before the listing is, in the order
/// logind and systemd sent them. Readiness waits until the listing is in and every detail request it made
/// has ended, answered or not; it is announced once.
struct StartupGate<Signal> {
    /// Signals waiting for the owners; nil once they are known.
    private var held: [Signal]? = []
    /// Detail requests from the first listing still out.
    private var outstanding = 0
    private var listed = false
    private var announced = false

    init() {}

    /// Whether signals still wait for the owners.
    var isHolding: Bool { held != nil }

    /// Takes `signal` if the owners are not known yet (true); false: handle it now.
    mutating func hold(_ signal: Signal) -> Bool {
        guard held != nil else { return false }
        held!.append(signal)
        return true
    }

    /// The owners are known (or known to be away): the signals held, in arrival order, to be handled now.
    /// From here on nothing is held.
    mutating func open() -> [Signal] {
        defer { held = nil }
        return held ?? []
    }

    /// The first listing asked for one session's details.
    mutating func detailsRequested() {
        outstanding += 1
    }

    /// One of the first listing's detail requests is over.
    mutating func detailsEnded() {
        outstanding -= 1
    }

    /// The first listing was read (or could not be): no more detail requests will be counted.
    mutating func listingDone() {
        listed = true
    }

    /// True exactly once: the first time it is asked after the listing was read and its last detail
    /// request ended.
    mutating func readyNow() -> Bool {
        guard listed, outstanding == 0, !announced else { return false }
        announced = true
        return true
    }
}
