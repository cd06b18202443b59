import SystemCalls

#if canImport(Glibc)
import Glibc
#endif

/// The rules of the rule directories, read together.
public struct RuleSet: Sendable {
    /// Where rules are looked for, the first winning: a file in `/etc/sensd/hooks.d` overrides (or, empty or a
    /// link to /dev/null, masks) the vendor's file of the same name in `/usr/lib/sensd/hooks.d`.
    public static let defaultDirectories = ["/etc/sensd/hooks.d", "/run/sensd/hooks.d", "/usr/lib/sensd/hooks.d"]

    public var rules: [HookRule]
    /// Every mistake found; the files they are in are left out of ``rules``, and no other rule is.
    public var errors: [RuleError]
    /// Files that mask a rule of the same name in a later directory.
    public var masked: [String]

    public static func load(from directories: [String]) -> RuleSet {
        var chosen: [String: String] = [:]
        var errors: [RuleError] = []
        for directory in directories.reversed() {
            let names: [String]
            do {
                names = try Syscall.listDirectory(directory)
            } catch {
                if error.errno != ENOENT { errors.append(RuleError(path: directory, line: 0, message: "cannot be read: \(error)")) }
                continue
            }
            for file in names where file.hasSuffix(".hook") {
                chosen[String(file.dropLast(5))] = directory + "/" + file
            }
        }
        var rules: [HookRule] = []
        var masked: [String] = []
        for (name, path) in chosen.sorted(by: { $0.key < $1.key }) {
            guard isValidName(name) else {
                errors.append(RuleError(path: path, line: 0, message: "a rule's name may hold letters, digits and - _ . @ only"))
                continue
            }
            let bytes: [UInt8]?
            do {
                bytes = try Syscall.readFile(path, limit: 1 << 20)
            } catch {
                errors.append(RuleError(path: path, line: 0, message: "cannot be read: \(error)"))
                continue
            }
            guard let bytes, !bytes.isEmpty else {
                masked.append(path)
                continue
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                errors.append(RuleError(path: path, line: 0, message: "is not UTF-8 text"))
                continue
            }
            var pieces = [(path: path, text: text)]
            var unreadable = false
            for dropIn in dropIns(of: name, in: directories) {
                guard let bytes = try? Syscall.readFile(dropIn, limit: 1 << 20), let text = String(validating: bytes, as: UTF8.self) else {
                    errors.append(RuleError(path: dropIn, line: 0, message: "cannot be read as UTF-8 text"))
                    unreadable = true
                    continue
                }
                pieces.append((dropIn, text))
            }
            if unreadable { continue }
            do {
                rules.append(try RuleParser.parse(pieces, name: name))
            } catch {
                errors += error.errors
            }
        }
        return RuleSet(rules: rules, errors: errors, masked: masked)
    }

    /// A rule's drop-ins, `NAME.hook.d/*.conf` in any of the directories, in the order they apply: by file
    /// name; of two with the same name, the one in the earlier directory (as for systemd's units, where
    /// `/etc` wins over `/usr/lib`).
    static func dropIns(of name: String, in directories: [String]) -> [String] {
        var chosen: [String: String] = [:]
        for directory in directories.reversed() {
            let folder = "\(directory)/\(name).hook.d"
            for file in (try? Syscall.listDirectory(folder)) ?? [] where file.hasSuffix(".conf") && !file.hasPrefix(".") {
                chosen[file] = folder + "/" + file
            }
        }
        return chosen.sorted { $0.key < $1.key }.map(\.value)
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(".") && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E || b == 0x40
        }
    }
}
