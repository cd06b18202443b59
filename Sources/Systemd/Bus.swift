import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One sd-bus connection, attached to an ``EventLoop``.
public final class Bus {
    let handle: OpaquePointer

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        // flush_close_unref: pending outgoing messages are written before the connection goes.
        sd_bus_flush_close_unref(handle)
    }

    /// The system bus; honours `DBUS_SYSTEM_BUS_ADDRESS`. The corresponding C function is `sd_bus_open_system`.
    public static func system(description: String) throws(SystemdError) -> Bus {
        var bus: OpaquePointer?
        try check(sd_bus_open_system_with_description(&bus, description), "sd_bus_open_system")
        return Bus(handle: bus!)
    }

    /// A bus at an explicit D-Bus address, as a client. The corresponding C function is `sd_bus_set_address`.
    public static func connect(address: String, description: String) throws(SystemdError) -> Bus {
        var bus: OpaquePointer?
        try check(sd_bus_new(&bus), "sd_bus_new")
        let b = Bus(handle: bus!)
        _ = sd_bus_set_description(b.handle, description)
        try check(sd_bus_set_address(b.handle, address), "sd_bus_set_address(\(address))")
        try check(sd_bus_set_bus_client(b.handle, 1), "sd_bus_set_bus_client")
        try check(sd_bus_start(b.handle), "sd_bus_start(\(address))")
        return b
    }

    /// Lets the loop drive the connection. The corresponding C function is `sd_bus_attach_event`.
    public func attach(to loop: EventLoop, priority: Int32 = 0) throws(SystemdError) {
        try check(sd_bus_attach_event(handle, loop.handle, priority), "sd_bus_attach_event")
    }

    /// Detaches from the loop, e.g. before the loop is freed. The corresponding C function is `sd_bus_detach_event`.
    public func detach() {
        _ = sd_bus_detach_event(handle)
    }

    /// Makes the attached event loop exit with a failure code when the connection drops, so the daemon
    /// stops and the service manager restarts it. The corresponding C function is `sd_bus_set_exit_on_disconnect`.
    public func exitLoopOnDisconnect() throws(SystemdError) {
        try check(sd_bus_set_exit_on_disconnect(handle, 1), "sd_bus_set_exit_on_disconnect")
    }

    /// This connection's unique name, e.g. `:1.42`.
    public var uniqueName: String? {
        var name: UnsafePointer<CChar>?
        guard sd_bus_get_unique_name(handle, &name) >= 0, let name else { return nil }
        return String(cString: name)
    }

    /// Whether the connection is still open.
    public var isOpen: Bool { sd_bus_is_open(handle) > 0 }

    /// Outgoing messages not yet written to the socket. The corresponding C function is `sd_bus_get_n_queued_write`.
    public var queuedWrites: Int {
        var n: UInt64 = 0
        _ = sd_bus_get_n_queued_write(handle, &n)
        return Int(n)
    }

    /// Writes every queued outgoing message. The corresponding C function is `sd_bus_flush`.
    public func flush() {
        _ = sd_bus_flush(handle)
    }

    // MARK: Matches and objects

    /// Calls `handler` for each message matching the D-Bus match `rule`, for as long as the slot lives.
    /// Synchronous: the rule is installed at the bus daemon when this returns. The corresponding C function is `sd_bus_add_match`.
    public func addMatch(_ rule: String, handler: @escaping (BusMessage) -> Void) throws(SystemdError) -> BusSlot {
        let box = CallbackBox(handler)
        let userdata = box.opaque
        var slot: OpaquePointer?
        let r = sd_bus_add_match(handle, &slot, rule, { message, userdata, _ in
            let box = CallbackBox<(BusMessage) -> Void>.from(userdata)
            withExtendedLifetime(box) { box.handler(BusMessage(borrowing: message!)) }
            return 0
        }, userdata)
        return try BusSlot.adopt(slot, result: r, userdata: userdata, release: releaseCallbackBox, "sd_bus_add_match(\(rule))")
    }

    /// Calls `handler` for each signal `interface.member` the connection receives, whatever routed it here,
    /// for as long as the slot lives; the other messages pass by untouched. For signals the bus daemon is
    /// asked for with ``addDaemonMatch(_:)``: sd-bus's own matching gives up at a signal's first argument
    /// that is not a string, so `arg2='reboot.target'` never matches systemd's `JobNew(u, o, s)` in an
    /// ``addMatch(_:handler:)`` rule, although the bus daemon honours it. The corresponding C function is
    /// `sd_bus_add_filter`.
    public func addSignalFilter(interface: String, member: String, handler: @escaping (BusMessage) -> Void) throws(SystemdError) -> BusSlot {
        typealias Filter = (interface: String, member: String, handler: (BusMessage) -> Void)
        let box = CallbackBox<Filter>((interface, member, handler))
        let userdata = box.opaque
        var slot: OpaquePointer?
        let r = sd_bus_add_filter(handle, &slot, { message, userdata, _ in
            let box = CallbackBox<Filter>.from(userdata)
            withExtendedLifetime(box) {
                if sd_bus_message_is_signal(message, box.handler.interface, box.handler.member) > 0 {
                    box.handler.handler(BusMessage(borrowing: message!))
                }
            }
            return 0
        }, userdata)
        return try BusSlot.adopt(slot, result: r, userdata: userdata, release: releaseCallbackBox, "sd_bus_add_filter(\(interface).\(member))")
    }

    /// Asks the bus daemon to route the messages matching `rule` to this connection, for the connection's
    /// life, without a handler of sd-bus's own: they reach filters (``addSignalFilter(interface:member:handler:)``).
    /// Synchronous, like ``addMatch(_:handler:)``. The D-Bus method is `org.freedesktop.DBus.AddMatch`.
    public func addDaemonMatch(_ rule: String) throws(SystemdError) {
        let call = try methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "AddMatch")
        try call.append(.string(rule))
        _ = try self.call(call)
    }

    /// Like ``addMatch(_:handler:)`` without waiting: the `AddMatch` call is queued before whatever is sent
    /// after it, so the bus daemon applies the rule before it routes any later call (and so before any
    /// signal sent in answer to one). If the bus daemon refuses the rule, `refused` is told why; the slot
    /// stays, matching nothing. The corresponding C function is `sd_bus_add_match_async`.
    public func addMatchAsync(_ rule: String, handler: @escaping (BusMessage) -> Void, refused: @escaping (SystemdError) -> Void) throws(SystemdError) -> BusSlot {
        typealias Handlers = (message: (BusMessage) -> Void, refused: (SystemdError) -> Void)
        let box = CallbackBox<Handlers>((handler, refused))
        let userdata = box.opaque
        var slot: OpaquePointer?
        let r = sd_bus_add_match_async(handle, &slot, rule, { message, userdata, _ in
            let box = CallbackBox<Handlers>.from(userdata)
            withExtendedLifetime(box) { box.handler.message(BusMessage(borrowing: message!)) }
            return 0
        }, { reply, userdata, _ in
            let box = CallbackBox<Handlers>.from(userdata)
            if let error = BusMessage(borrowing: reply!).error { withExtendedLifetime(box) { box.handler.refused(error) } }
            return 0
        }, userdata)
        return try BusSlot.adopt(slot, result: r, userdata: userdata, release: releaseCallbackBox, "sd_bus_add_match_async(\(rule))")
    }

    /// Handles every method call to `path` and, with `fallback`, to every path below it.
    /// The corresponding C functions are `sd_bus_add_object` and `sd_bus_add_fallback`.
    public func addObject(
        path: String, fallback: Bool, handler: @escaping (BusMessage) -> BusMethodOutcome
    ) throws(SystemdError) -> BusSlot {
        typealias Handler = (BusMessage) -> BusMethodOutcome
        let box = CallbackBox<Handler>(handler)
        let userdata = box.opaque
        var slot: OpaquePointer?
        let callback: sd_bus_message_handler_t = { message, userdata, _ in
            let box = CallbackBox<Handler>.from(userdata)
            let call = BusMessage(borrowing: message!)
            switch withExtendedLifetime(box, { box.handler(call) }) {
            case .notHandled:
                return 0
            case .later:
                return 1
            case .reply(let reply):
                return sd_bus_send(nil, reply.handle, nil) < 0 ? -EIO : 1
            case .error(let name, let text):
                var e = sd_bus_error()
                sd_bus_error_set(&e, name, text)
                let r = sd_bus_reply_method_error(message, &e)
                sd_bus_error_free(&e)
                return r < 0 ? r : 1
            }
        }
        let r = fallback
            ? sd_bus_add_fallback(handle, &slot, path, callback, userdata)
            : sd_bus_add_object(handle, &slot, path, callback, userdata)
        return try BusSlot.adopt(slot, result: r, userdata: userdata, release: releaseCallbackBox, "sd_bus_add_object(\(path))")
    }

    /// Answers a call that an object handler kept with ``BusMethodOutcome/later``.
    /// The corresponding C function is `sd_bus_reply_method_error`.
    public func replyError(to call: BusMessage, name: String, message: String) throws(SystemdError) {
        var e = sd_bus_error()
        sd_bus_error_set(&e, name, message)
        defer { sd_bus_error_free(&e) }
        try check(sd_bus_reply_method_error(call.handle, &e), "sd_bus_reply_method_error")
    }

    /// Takes a well-known name. The corresponding C function is `sd_bus_request_name`.
    public func requestName(_ name: String) throws(SystemdError) {
        try check(sd_bus_request_name(handle, name, 0), "sd_bus_request_name(\(name))")
    }

    /// Gives a well-known name back. The corresponding C function is `sd_bus_release_name`.
    public func releaseName(_ name: String) throws(SystemdError) {
        try check(sd_bus_release_name(handle, name), "sd_bus_release_name(\(name))")
    }

    // MARK: Messages

    /// A new method call. The corresponding C function is `sd_bus_message_new_method_call`.
    public func methodCall(destination: String?, path: String, interface: String?, member: String) throws(SystemdError) -> BusMessage {
        var m: OpaquePointer?
        try check(sd_bus_message_new_method_call(handle, &m, destination, path, interface, member), "sd_bus_message_new_method_call(\(member))")
        return BusMessage(owning: m!)
    }

    /// A new signal. The corresponding C function is `sd_bus_message_new_signal`.
    public func signal(path: String, interface: String, member: String) throws(SystemdError) -> BusMessage {
        var m: OpaquePointer?
        try check(sd_bus_message_new_signal(handle, &m, path, interface, member), "sd_bus_message_new_signal(\(member))")
        return BusMessage(owning: m!)
    }

    /// Queues a message (a signal, or a call whose reply is not wanted). The corresponding C function is `sd_bus_send`.
    public func send(_ message: BusMessage) throws(SystemdError) {
        try check(sd_bus_send(handle, message.handle, nil), "sd_bus_send")
    }

    /// Sends a call and waits for its reply, dispatching nothing else meanwhile: messages that arrive before
    /// the reply are handed over after it, out of the order they were sent in. For tools and tests only; a
    /// daemon that follows signals uses ``callAsync(_:timeoutMicroseconds:reply:)``. The corresponding C
    /// function is `sd_bus_call`.
    public func call(_ message: BusMessage, timeoutMicroseconds: UInt64 = 0) throws(SystemdError) -> BusMessage {
        var error = sd_bus_error()
        defer { sd_bus_error_free(&error) }
        var reply: OpaquePointer?
        let r = sd_bus_call(handle, message.handle, timeoutMicroseconds, &error, &reply)
        if r < 0 {
            throw SystemdError(
                operation: "call \(message.member ?? "?")", errno: -r,
                busErrorName: error.name.map { String(cString: $0) },
                busErrorMessage: error.message.map { String(cString: $0) })
        }
        return BusMessage(owning: reply!)
    }

    /// Sends a call and delivers its reply, or its error, to `reply` exactly once from the loop.
    /// The corresponding C function is `sd_bus_call_async`.
    public func callAsync(
        _ message: BusMessage, timeoutMicroseconds: UInt64 = 0,
        reply: @escaping (Result<BusMessage, SystemdError>) -> Void
    ) throws(SystemdError) {
        typealias Handler = (Result<BusMessage, SystemdError>) -> Void
        let box = CallbackBox<Handler>(reply)
        let userdata = box.opaque
        var slot: OpaquePointer?
        let member = message.member ?? "?"
        let r = sd_bus_call_async(handle, &slot, message.handle, { message, userdata, _ in
            let box = CallbackBox<Handler>.from(userdata)
            let m = BusMessage(borrowing: message!)
            withExtendedLifetime(box) {
                if let error = m.error {
                    box.handler(.failure(error))
                } else {
                    box.handler(.success(m))
                }
            }
            return 0
        }, userdata, timeoutMicroseconds)
        if r < 0 {
            releaseCallbackBox(userdata)
            throw SystemdError(operation: "call \(member)", errno: -r)
        }
        // Floating: the bus owns the slot until the reply arrives; the destroy callback then frees the box.
        // Making it floating gives the bus a reference of its own, so ours must go, or every call's slot and
        // closure would outlive its reply (it did: about 150 bytes per session ever asked about).
        sd_bus_slot_set_destroy_callback(slot, releaseCallbackBox)
        sd_bus_slot_set_floating(slot, 1)
        sd_bus_slot_unref(slot)
    }
}

/// What an object handler does with a method call.
public enum BusMethodOutcome {
    /// Not this handler's: sd-bus answers "unknown method" if nobody else takes it.
    case notHandled
    /// Send this method return.
    case reply(BusMessage)
    /// Answer with a D-Bus error.
    case error(name: String, message: String)
    /// The handler kept the call and answers it later.
    case later
}

/// Owns one `sd_bus_slot` (a match or an object); releasing the value removes it.
public final class BusSlot {
    let handle: OpaquePointer

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    static func adopt(
        _ slot: OpaquePointer?, result: Int32, userdata: UnsafeMutableRawPointer,
        release: @escaping @convention(c) (UnsafeMutableRawPointer?) -> Void, _ operation: String
    ) throws(SystemdError) -> BusSlot {
        if result < 0 {
            release(userdata)
            throw SystemdError(operation: operation, errno: -result)
        }
        sd_bus_slot_set_destroy_callback(slot, release)
        return BusSlot(handle: slot!)
    }

    deinit {
        sd_bus_slot_unref(handle)
    }
}

/// One `sd_bus_message`, referenced for as long as the value lives.
public final class BusMessage {
    let handle: OpaquePointer

    init(owning handle: OpaquePointer) {
        self.handle = handle
    }

    init(borrowing handle: OpaquePointer) {
        self.handle = sd_bus_message_ref(handle)
    }

    deinit {
        sd_bus_message_unref(handle)
    }

    /// The unique name of the connection that sent it.
    public var sender: String? { sd_bus_message_get_sender(handle).map { String(cString: $0) } }
    public var path: String? { sd_bus_message_get_path(handle).map { String(cString: $0) } }
    public var interface: String? { sd_bus_message_get_interface(handle).map { String(cString: $0) } }
    public var member: String? { sd_bus_message_get_member(handle).map { String(cString: $0) } }
    public var destination: String? { sd_bus_message_get_destination(handle).map { String(cString: $0) } }

    /// Sends a message to one connection instead of broadcasting it. The corresponding C function is `sd_bus_message_set_destination`.
    public func setDestination(_ name: String) throws(SystemdError) {
        try check(sd_bus_message_set_destination(handle, name), "sd_bus_message_set_destination")
    }

    /// The error carried by a method-error reply, or nil.
    public var error: SystemdError? {
        guard let e = sd_bus_message_get_error(handle), sd_bus_error_is_set(e) != 0 else { return nil }
        return SystemdError(
            operation: "call", errno: sd_bus_message_get_errno(handle),
            busErrorName: e.pointee.name.map { String(cString: $0) },
            busErrorMessage: e.pointee.message.map { String(cString: $0) })
    }

    /// A method-return for this call. The corresponding C function is `sd_bus_message_new_method_return`.
    public func methodReturn() throws(SystemdError) -> BusMessage {
        var m: OpaquePointer?
        try check(sd_bus_message_new_method_return(handle, &m), "sd_bus_message_new_method_return")
        return BusMessage(owning: m!)
    }

    // MARK: Reading

    /// Reads every remaining argument of the message.
    public func readAll() throws(SystemdError) -> [BusValue] {
        var values: [BusValue] = []
        while let value = try readValue() {
            values.append(value)
        }
        return values
    }

    /// Reads the next value, or nil at the end of the current container.
    public func readValue() throws(SystemdError) -> BusValue? {
        var type: CChar = 0
        var contents: UnsafePointer<CChar>?
        let r = try check(sd_bus_message_peek_type(handle, &type, &contents), "sd_bus_message_peek_type")
        if r == 0 { return nil }
        let t = UInt8(bitPattern: type)
        switch t {
        case UInt8(ascii: "a"), UInt8(ascii: "r"), UInt8(ascii: "e"), UInt8(ascii: "v"):
            let inner = contents.map { String(cString: $0) } ?? ""
            try check(sd_bus_message_enter_container(handle, type, contents), "sd_bus_message_enter_container")
            var elements: [BusValue] = []
            while let element = try readValue() { elements.append(element) }
            try check(sd_bus_message_exit_container(handle), "sd_bus_message_exit_container")
            switch t {
            case UInt8(ascii: "a"): return .array(elementSignature: inner, elements)
            case UInt8(ascii: "r"): return .structure(elements)
            case UInt8(ascii: "e"):
                guard elements.count == 2 else { throw SystemdError(operation: "read dict entry", errno: EBADMSG) }
                return .dictEntry(elements[0], elements[1])
            default:
                guard elements.count == 1 else { throw SystemdError(operation: "read variant", errno: EBADMSG) }
                return .variant(elements[0])
            }
        default:
            return try readBasic(type: type)
        }
    }

    private func readBasic(type: CChar) throws(SystemdError) -> BusValue {
        func read<T: BitwiseCopyable>(_ initial: T) throws(SystemdError) -> T {
            var value = initial
            let r = withUnsafeMutableBytes(of: &value) { sd_bus_message_read_basic(handle, type, $0.baseAddress) }
            try check(r, "sd_bus_message_read_basic")
            return value
        }
        switch UInt8(bitPattern: type) {
        case UInt8(ascii: "y"): return .byte(try read(UInt8(0)))
        case UInt8(ascii: "b"): return .bool(try read(Int32(0)) != 0)
        case UInt8(ascii: "n"): return .int16(try read(Int16(0)))
        case UInt8(ascii: "q"): return .uint16(try read(UInt16(0)))
        case UInt8(ascii: "i"): return .int32(try read(Int32(0)))
        case UInt8(ascii: "u"): return .uint32(try read(UInt32(0)))
        case UInt8(ascii: "x"): return .int64(try read(Int64(0)))
        case UInt8(ascii: "t"): return .uint64(try read(UInt64(0)))
        case UInt8(ascii: "d"): return .double(try read(Double(0)))
        case UInt8(ascii: "h"): return .int32(try read(Int32(0)))
        case UInt8(ascii: "s"), UInt8(ascii: "o"), UInt8(ascii: "g"):
            let pointer = try read(UnsafePointer<CChar>?.none)
            let s = pointer.map { String(cString: $0) } ?? ""
            switch UInt8(bitPattern: type) {
            case UInt8(ascii: "s"): return .string(s)
            case UInt8(ascii: "o"): return .objectPath(s)
            default: return .signature(s)
            }
        default:
            throw SystemdError(operation: "read D-Bus type '\(Character(Unicode.Scalar(UInt8(bitPattern: type))))'", errno: EBADMSG)
        }
    }

    // MARK: Writing

    /// Appends values in order. The corresponding C functions are `sd_bus_message_append_basic` and `..._open_container`.
    public func append(_ values: BusValue...) throws(SystemdError) {
        for value in values { try append(value) }
    }

    public func append(_ value: BusValue) throws(SystemdError) {
        func basic<T: BitwiseCopyable>(_ type: UInt8, _ v: T) throws(SystemdError) {
            var v = v
            let r = withUnsafeBytes(of: &v) { sd_bus_message_append_basic(handle, CChar(bitPattern: type), $0.baseAddress) }
            try check(r, "sd_bus_message_append_basic")
        }
        func container(_ type: UInt8, _ contents: String, _ body: () throws(SystemdError) -> Void) throws(SystemdError) {
            try check(sd_bus_message_open_container(handle, CChar(bitPattern: type), contents), "sd_bus_message_open_container")
            try body()
            try check(sd_bus_message_close_container(handle), "sd_bus_message_close_container")
        }
        switch value {
        case .byte(let v): try basic(UInt8(ascii: "y"), v)
        case .bool(let v): try basic(UInt8(ascii: "b"), Int32(v ? 1 : 0))
        case .int16(let v): try basic(UInt8(ascii: "n"), v)
        case .uint16(let v): try basic(UInt8(ascii: "q"), v)
        case .int32(let v): try basic(UInt8(ascii: "i"), v)
        case .uint32(let v): try basic(UInt8(ascii: "u"), v)
        case .int64(let v): try basic(UInt8(ascii: "x"), v)
        case .uint64(let v): try basic(UInt8(ascii: "t"), v)
        case .double(let v): try basic(UInt8(ascii: "d"), v)
        case .string(let s), .objectPath(let s), .signature(let s):
            let type: UInt8 = switch value {
            case .string: UInt8(ascii: "s")
            case .objectPath: UInt8(ascii: "o")
            default: UInt8(ascii: "g")
            }
            let r = s.withCString { sd_bus_message_append_basic(handle, CChar(bitPattern: type), $0) }
            try check(r, "sd_bus_message_append_basic")
        case .array(let element, let elements):
            try container(UInt8(ascii: "a"), element) { () throws(SystemdError) in
                for e in elements { try append(e) }
            }
        case .structure(let fields):
            let sig = value.signature
            try container(UInt8(ascii: "r"), String(sig.dropFirst().dropLast())) { () throws(SystemdError) in
                for f in fields { try append(f) }
            }
        case .dictEntry(let k, let v):
            try container(UInt8(ascii: "e"), k.signature + v.signature) { () throws(SystemdError) in
                try append(k)
                try append(v)
            }
        case .variant(let inner):
            try container(UInt8(ascii: "v"), inner.signature) { () throws(SystemdError) in
                try append(inner)
            }
        }
    }
}

extension Bus {
    /// `prefix/escaped-id`, escaped as sd-bus and logind do ("c1" stays, "12" becomes "_312").
    /// The corresponding C function is `sd_bus_path_encode`.
    public static func objectPath(prefix: String, id: String) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        guard sd_bus_path_encode(prefix, id, &out) >= 0, let out else { return nil }
        defer { free(out) }
        return String(cString: out)
    }

    /// The id a path under `prefix` names, or nil for a path that is not directly under it.
    /// The corresponding C function is `sd_bus_path_decode`.
    public static func id(ofObjectPath path: String, prefix: String) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        guard sd_bus_path_decode(path, prefix, &out) > 0, let out else { return nil }
        defer { free(out) }
        return String(cString: out)
    }
}
