import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// sd-login: this machine's logind state as logind writes it under /run/systemd. Only meaningful when the
/// bus sensd follows is this machine's own system bus.
public enum Login {
    /// The session's state (`online`, `active`, `closing`), or nil if the session is gone.
    /// The corresponding C function is `sd_session_get_state`.
    public static func sessionState(_ id: String) -> String? {
        var state: UnsafeMutablePointer<CChar>?
        guard sd_session_get_state(id, &state) >= 0, let state else { return nil }
        defer { free(state) }
        return String(cString: state)
    }

    /// Where logind keeps one file per session; a file is replaced (renamed over) whenever the session's
    /// state changes, including on entering "closing", which logind v252 does not announce on the bus.
    public static let sessionDirectory = "/run/systemd/sessions"
}
