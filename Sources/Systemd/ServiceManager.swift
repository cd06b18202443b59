import CSystemd

/// The service manager's side of the daemon: readiness, status and socket activation.
public enum ServiceManager {
    /// Sends a state string such as `READY=1` or `STATUS=...`; a no-op outside systemd.
    /// The corresponding C function is `sd_notify`.
    public static func notify(_ state: String) {
        _ = sd_notify(0, state)
    }

    /// The descriptors systemd passed by socket activation, starting at 3. The corresponding C function is `sd_listen_fds`.
    public static func listenFDs() -> [Int32] {
        passedFDs
    }

    /// Read once (sd-daemon unsets the environment as it reads it), so that each socket can be looked for.
    private static let passedFDs: [Int32] = {
        let n = sd_listen_fds(1)
        guard n > 0 else { return [] }
        return (0..<n).map { Int32(SD_LISTEN_FDS_START) + $0 }
    }()

    /// Whether `fd` is a listening Unix stream socket, as socket activation should hand over; with `path`,
    /// one bound to that path.
    public static func isListeningUnixStream(_ fd: Int32, path: String? = nil) -> Bool {
        guard let path else { return sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0 }
        return sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, path, 0) > 0
    }

    /// Whether `fd` is a Unix datagram socket bound to `path`.
    public static func isUnixDatagram(_ fd: Int32, path: String) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_DGRAM.rawValue), -1, path, 0) > 0
    }

}
