import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One `sd_event` loop: the single place where the daemon waits.
///
/// Not thread-safe by design: every source, the bus and every handler run on the thread that calls ``run()``.
public final class EventLoop {
    let handle: OpaquePointer

    /// The corresponding C function is `sd_event_new`.
    public init() throws(SystemdError) {
        var loop: OpaquePointer?
        try check(sd_event_new(&loop), "sd_event_new")
        handle = loop!
    }

    deinit {
        sd_event_unref(handle)
    }

    /// Runs until ``exit(code:)``; returns the exit code. The corresponding C function is `sd_event_loop`.
    public func run() throws(SystemdError) -> Int32 {
        try check(sd_event_loop(handle), "sd_event_loop")
    }

    /// Like ``run()``, calling `afterEachIteration` after every iteration (each dispatches one source): a
    /// check that costs no system call, where a timer would be set again and again.
    /// The corresponding C functions are `sd_event_run` and `sd_event_get_exit_code`.
    public func run(afterEachIteration: () -> Void) throws(SystemdError) -> Int32 {
        while sd_event_get_state(handle) != Int32(SD_EVENT_FINISHED) {
            try check(sd_event_run(handle, UInt64.max), "sd_event_run")
            afterEachIteration()
        }
        var code: Int32 = 0
        try check(sd_event_get_exit_code(handle, &code), "sd_event_get_exit_code")
        return code
    }

    /// Dispatches at most one iteration, waiting up to `timeoutMicroseconds`. Returns false once the loop has exited.
    public func runOnce(timeoutMicroseconds: UInt64) throws(SystemdError) -> Bool {
        let r = try check(sd_event_run(handle, timeoutMicroseconds), "sd_event_run")
        return r > 0 || sd_event_get_state(handle) != Int32(SD_EVENT_FINISHED)
    }

    /// Asks the loop to return from ``run()`` with `code` after the current dispatch.
    public func exit(code: Int32) {
        _ = sd_event_exit(handle, code)
    }

    /// Sends `WATCHDOG=1` from the loop itself when the service manager asked for a watchdog.
    /// Returns whether a watchdog is in force. The corresponding C function is `sd_event_set_watchdog`.
    @discardableResult
    public func enableWatchdog() throws(SystemdError) -> Bool {
        try check(sd_event_set_watchdog(handle, 1), "sd_event_set_watchdog") > 0
    }

    /// The loop's cached CLOCK_REALTIME reading for the current iteration, in microseconds.
    public var now: UInt64 {
        var usec: UInt64 = 0
        if sd_event_now(handle, CLOCK_REALTIME, &usec) < 0 {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        }
        return usec
    }

    // MARK: Sources

    /// Calls `handler` with the ready `EPOLL*` mask whenever `fd` is ready for `events`.
    /// The descriptor stays the caller's. The corresponding C function is `sd_event_add_io`.
    public func addIO(
        fd: Int32, events: IOEvents, handler: @escaping (IOEvents) -> Void
    ) throws(SystemdError) -> EventSource {
        let box = CallbackBox<(UInt32) -> Void> { handler(IOEvents(rawValue: $0)) }
        let userdata = box.opaque
        var source: OpaquePointer?
        let r = sd_event_add_io(handle, &source, fd, events.rawValue, { _, _, revents, userdata in
            let box = CallbackBox<(UInt32) -> Void>.from(userdata)
            withExtendedLifetime(box) { box.handler(revents) }
            return 0
        }, userdata)
        return try EventSource.adopt(source, result: r, userdata: userdata, release: releaseCallbackBox, "sd_event_add_io")
    }

    /// Calls `handler` when `signal` arrives; blocks the signal for the process so the loop sees it.
    /// The corresponding C function is `sd_event_add_signal`.
    public func addSignal(_ signal: Int32, handler: @escaping () -> Void) throws(SystemdError) -> EventSource {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, signal)
        // sd-event requires the signal to be blocked before the source is added (v252 has no PROCMASK flag).
        sigprocmask(SIG_BLOCK, &mask, nil)
        let box = CallbackBox(handler)
        let userdata = box.opaque
        var source: OpaquePointer?
        let r = sd_event_add_signal(handle, &source, signal, { _, _, userdata in
            let box = CallbackBox<() -> Void>.from(userdata)
            withExtendedLifetime(box) { box.handler() }
            return 0
        }, userdata)
        return try EventSource.adopt(source, result: r, userdata: userdata, release: releaseCallbackBox, "sd_event_add_signal")
    }

    /// Calls `handler` once, at `deadline` (CLOCK_MONOTONIC microseconds). The corresponding C function is `sd_event_add_time`.
    public func addTimer(
        monotonicDeadline deadline: UInt64, accuracy: UInt64 = 1000, handler: @escaping () -> Void
    ) throws(SystemdError) -> EventSource {
        let box = CallbackBox(handler)
        let userdata = box.opaque
        var source: OpaquePointer?
        let r = sd_event_add_time(handle, &source, CLOCK_MONOTONIC, deadline, accuracy, { _, _, userdata in
            let box = CallbackBox<() -> Void>.from(userdata)
            withExtendedLifetime(box) { box.handler() }
            return 0
        }, userdata)
        return try EventSource.adopt(source, result: r, userdata: userdata, release: releaseCallbackBox, "sd_event_add_time")
    }

    /// Calls `handler` after every iteration in which some other source was dispatched.
    /// Used to save the session snapshot once per batch of events. The corresponding C function is `sd_event_add_post`.
    public func addPost(handler: @escaping () -> Void) throws(SystemdError) -> EventSource {
        try addPlain(sd_event_add_post, "sd_event_add_post", handler)
    }

    /// Calls `handler` whenever the loop has nothing more urgent to dispatch, while the source is enabled.
    /// Created disabled; enable it (usually ``EventSource/setEnabled(_:oneshot:)`` with `oneshot`) when there
    /// is work. The corresponding C function is `sd_event_add_defer`.
    public func addDefer(handler: @escaping () -> Void) throws(SystemdError) -> EventSource {
        let source = try addPlain(sd_event_add_defer, "sd_event_add_defer", handler)
        source.setEnabled(false)
        return source
    }

    /// The sources whose handler takes nothing but the source (`sd_event_handler_t`): post and defer.
    private func addPlain(
        _ add: (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, sd_event_handler_t?, UnsafeMutableRawPointer?) -> Int32,
        _ operation: String, _ handler: @escaping () -> Void
    ) throws(SystemdError) -> EventSource {
        let box = CallbackBox(handler)
        let userdata = box.opaque
        var source: OpaquePointer?
        let r = add(handle, &source, { _, userdata in
            let box = CallbackBox<() -> Void>.from(userdata)
            withExtendedLifetime(box) { box.handler() }
            return 0
        }, userdata)
        return try EventSource.adopt(source, result: r, userdata: userdata, release: releaseCallbackBox, operation)
    }

    /// The monotonic clock, in microseconds, as the loop sees it.
    public var monotonicNow: UInt64 {
        var usec: UInt64 = 0
        _ = sd_event_now(handle, CLOCK_MONOTONIC, &usec)
        return usec
    }
}

/// The `EPOLL*` bits an I/O source waits for and reports (from sys/epoll.h, through CSystemd).
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = IOEvents(rawValue: EPOLLIN.rawValue)
    public static let writable = IOEvents(rawValue: EPOLLOUT.rawValue)
    public static let error = IOEvents(rawValue: EPOLLERR.rawValue)
    public static let hangUp = IOEvents(rawValue: EPOLLHUP.rawValue)
}

/// Owns one `sd_event_source`; releasing the value disables and frees the source.
public final class EventSource {
    let handle: OpaquePointer

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    static func adopt(
        _ source: OpaquePointer?, result: Int32, userdata: UnsafeMutableRawPointer,
        release: @escaping @convention(c) (UnsafeMutableRawPointer?) -> Void, _ operation: String
    ) throws(SystemdError) -> EventSource {
        if result < 0 {
            release(userdata)
            throw SystemdError(operation: operation, errno: -result)
        }
        // From here on the box lives exactly as long as the source, even if the source is freed mid-dispatch.
        sd_event_source_set_destroy_callback(source, release)
        return EventSource(handle: source!)
    }

    deinit {
        sd_event_source_disable_unref(handle)
    }

    /// Changes the `EPOLL*` mask an I/O source waits for. The corresponding C function is `sd_event_source_set_io_events`.
    public func setIOEvents(_ events: IOEvents) {
        _ = sd_event_source_set_io_events(handle, events.rawValue)
    }

    /// Turns the source on or off (`SD_EVENT_ON` / `SD_EVENT_OFF`); a oneshot timer is re-armed with `oneshot`.
    public func setEnabled(_ enabled: Bool, oneshot: Bool = false) {
        let mode: Int32 = enabled ? (oneshot ? Int32(SD_EVENT_ONESHOT) : Int32(SD_EVENT_ON)) : Int32(SD_EVENT_OFF)
        _ = sd_event_source_set_enabled(handle, mode)
    }

    /// Moves a timer to a new monotonic deadline. The corresponding C function is `sd_event_source_set_time`.
    public func setTime(monotonicDeadline: UInt64) {
        _ = sd_event_source_set_time(handle, monotonicDeadline)
    }

    /// Runs only when no source of a lower number is ready (`SD_EVENT_PRIORITY_IDLE`).
    public static let idlePriority: Int64 = 100
    /// Runs before the sources of the default priority 0 (the bus, the sockets).
    public static let importantPriority: Int64 = -100

    /// Lower numbers run first when several sources are ready. The corresponding C function is `sd_event_source_set_priority`.
    public func setPriority(_ priority: Int64) {
        _ = sd_event_source_set_priority(handle, priority)
    }
}
