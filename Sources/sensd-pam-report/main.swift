// sensd-pam-report: pam_exec's program for the failed-logon hook (packaging/pam-configs/sensd-failed-logons).
//
// pam-auth-update places it after every module that can authenticate, where only a failure reaches it, and
// with `[default=ignore]`: whatever it does, the login's outcome is PAM's alone. It sends PAM's items
// (PAM_USER as typed, PAM_RHOST, PAM_TTY, PAM_SERVICE; never the password) as one datagram to sensd's
// root-only socket and exits 0 at once. It never waits: with sensd away, or its queue full, the send fails
// and nothing more happens; an alarm ends it after 2 s in any case.
//
// usage: sensd-pam-report [--socket PATH]   (default /run/sensd/failures.sock)

import SENSCore
import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

alarm(2)
func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

var path = "/run/sensd/failures.sock"
let arguments = CommandLine.arguments
if let i = arguments.firstIndex(of: "--socket"), i + 1 < arguments.count { path = arguments[i + 1] }

// pam_exec in the auth stack sets PAM_TYPE=auth; in any other stack there is no failed logon to report.
if environment("PAM_TYPE") == "auth", let user = environment("PAM_USER"), !user.isEmpty {
    let items = FailureReport.PAMItems(user: user, rhost: environment("PAM_RHOST"), tty: environment("PAM_TTY"), service: environment("PAM_SERVICE"))
    _ = Syscall.sendDatagram(items.datagram, to: path)
}
exit(0)
