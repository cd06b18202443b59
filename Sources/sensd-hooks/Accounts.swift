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
        // getgrouplist(3) says how many there are when the buffer is too small: ask again with that many
        // (a user in more than 256 groups ran with the primary group alone before).
        var groups = [gid_t](repeating: 0, count: 256)
        var count = Int32(groups.count)
        while getgrouplist(entry.pw_name, entry.pw_gid, &groups, &count) < 0 {
            guard Int(count) > groups.count else { count = 1; groups = [entry.pw_gid]; break }
            groups = [gid_t](repeating: 0, count: Int(count))
        }
        groups = Array(groups.prefix(Int(count)))
        return Account(name: name, uid: entry.pw_uid, gid: entry.pw_gid, groups: groups,
                       home: String(cString: entry.pw_dir), shell: String(cString: entry.pw_shell))
    }
}
