import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed libsystemd call: the operation, its errno and, for bus calls, the D-Bus error.
public struct SystemdError: Error, CustomStringConvertible, Sendable {
    /// What was being done, e.g. `sd_bus_open_system`.
    public var operation: String
    /// The positive errno libsystemd returned (negated).
    public var errno: Int32
    /// The D-Bus error name, e.g. `org.freedesktop.DBus.Error.UnknownObject`, for bus calls.
    public var busErrorName: String?
    /// The D-Bus error message, for bus calls.
    public var busErrorMessage: String?

    public init(operation: String, errno: Int32, busErrorName: String? = nil, busErrorMessage: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.busErrorName = busErrorName
        self.busErrorMessage = busErrorMessage
    }

    public var description: String {
        // A D-Bus error says more than the errno sd-bus maps it to ("Invalid request descriptor").
        if let busErrorName {
            if let busErrorMessage, !busErrorMessage.isEmpty { return "\(operation): \(busErrorName): \(busErrorMessage)" }
            return "\(operation): \(busErrorName)"
        }
        return "\(operation): \(String(cString: strerror(errno)))"
    }
}

/// Turns libsystemd's negative-errno convention into a thrown ``SystemdError``; the one place that does so.
@discardableResult
func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(SystemdError) -> Int32 {
    if result < 0 {
        throw SystemdError(operation: operation(), errno: -result)
    }
    return result
}

/// A retained Swift value handed to C as `userdata` and released by libsystemd's destroy callback.
final class CallbackBox<Handler> {
    let handler: Handler
    init(_ handler: Handler) { self.handler = handler }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passRetained(self).toOpaque() }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> CallbackBox<Handler> {
        Unmanaged<CallbackBox<Handler>>.fromOpaque(pointer!).takeUnretainedValue()
    }

}

/// Matches `CallbackBox.opaque`: the destroy callback of the source or slot that owned the pointer.
/// Non-generic so that C can hold it as a function pointer.
func releaseCallbackBox(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    Unmanaged<AnyObject>.fromOpaque(pointer).release()
}
