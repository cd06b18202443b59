#if canImport(Glibc)
import Glibc
#endif

/// A user a rule's commands run as: what `User=` names, from the user database.
struct Account: Sendable, Equatable {
    var name: String
    var uid: uid_t
    var gid: gid_t
    var groups: [gid_t]
    var home: String
    var shell: String

    static let root = Account(name: "root", uid: 0, gid: 0, groups: [0], home: "/root", shell: "/bin/sh")

    /// `User=`'s value: a name, or a uid that has an entry. Nil when there is no such user.
    static func lookUp(_ user: String) -> Account? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        if let uid = UInt32(user) {
            guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        } else {
            guard getpwnam_r(user, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        }
        let name = String(cString: entry.pw_name)
        var groups = [gid_t](repeating: 0, count: 256)
        var count = Int32(groups.count)
        if getgrouplist(entry.pw_name, entry.pw_gid, &groups, &count) < 0 {
            groups = [entry.pw_gid]
        } else {
            groups = Array(groups.prefix(Int(count)))
        }
        return Account(name: name, uid: entry.pw_uid, gid: entry.pw_gid, groups: groups,
                       home: String(cString: entry.pw_dir), shell: String(cString: entry.pw_shell))
    }
}
