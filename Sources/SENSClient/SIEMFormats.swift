import FoundationEssentials
import SENSCore

/// How an event is written for a program downstream: sensd's own JSON line, or the shape a SIEM ingests
/// as it is: the Elastic Common Schema (Elasticsearch, Wazuh 5) or OCSF's Authentication class (Amazon
/// Security Lake, Chronicle and the other OCSF consumers). docs/siem.md has the mapping, field by field.
///
/// A struct with a static member per format, as ``EventKind`` is: a later release may add one.
public struct EventFormat: RawRepresentable, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) {
        guard let known = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = known
    }

    private init(known name: String) {
        rawValue = name
    }

    /// sensd's own line, as it came.
    public static let sensd = EventFormat(known: "sensd")
    /// Elastic Common Schema 8.11.
    public static let ecs = EventFormat(known: "ecs")
    /// OCSF 1.5.0, class Authentication (3002).
    public static let ocsf = EventFormat(known: "ocsf")

    public static let allCases: [EventFormat] = [.sensd, .ecs, .ocsf]

    public var description: String { rawValue }

    /// The ECS version the projection follows.
    public static let ecsVersion = "8.11.0"
    /// The OCSF schema version the projection follows.
    public static let ocsfVersion = "1.5.0"
}

extension SENSEvent {
    /// The event as one JSON object, without a newline, in `format`. `line` is the line sensd sent, if at
    /// hand: the `sensd` format is that line exactly, and the other formats carry it whole (ECS under
    /// `sensd`, OCSF under `unmapped`), with every field a newer sensd may add.
    public func formatted(_ format: EventFormat, line: String? = nil) -> String {
        let own = line.flatMap { try? JSONDecoder().decode(AnyJSON.self, from: Data($0.utf8)) } ?? ownObject
        let object: [String: Any]
        switch format {
        case .ecs: object = ecsObject(own)
        case .ocsf: object = ocsfObject(own)
        default: return line ?? Self.text(own)
        }
        return Self.text(AnyJSON(object))
    }

    private var ownObject: AnyJSON {
        (try? JSONEncoder().encode(self)).flatMap { try? JSONDecoder().decode(AnyJSON.self, from: $0) } ?? .object([:])
    }

    private static func text(_ value: AnyJSON) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The Windows security event a SENS event corresponds to.
    var windowsEventCode: String? {
        switch event {
        case .logon: "4624"
        case .logoffInitiated: "4647"
        case .logoff: "4634"
        case .logonFailed: "4625"
        case .sessionDisconnect: "4779"
        case .sessionReconnect: "4778"
        case .displayLock: "4800"
        case .displayUnlock: "4801"
        case .startScreenSaver: "4802"
        case .stopScreenSaver: "4803"
        default: nil
        }
    }

    /// `remoteHost` as an IP address when it is one (it may be a host name).
    var remoteIP: String? {
        guard let host = remoteHost else { return nil }
        let isV4 = host.split(separator: ".", omittingEmptySubsequences: false).count == 4
            && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { UInt8($0) != nil }
        let isV6 = host.contains(":") && host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." || $0 == "%" }
        return isV4 || isV6 ? host : nil
    }

    private var microseconds: Int64 { time.microsecondsSinceEpoch }

    // MARK: ECS

    private func ecsObject(_ own: AnyJSON) -> [String: Any] {
        var e: [String: Any] = [
            "kind": "event",
            "sequence": Int(clamping: seq),
            "provider": "sensd",
            "module": "sensd",
            "dataset": "sensd.events",
        ]
        switch event {
        case .logon:
            e["category"] = ["authentication", "session"]; e["type"] = ["start"]; e["action"] = "logged-in"; e["outcome"] = "success"
        case .logonFailed:
            e["category"] = ["authentication"]; e["type"] = ["start"]; e["action"] = "logon-failed"; e["outcome"] = "failure"
        case .logoffInitiated:
            e["category"] = ["authentication", "session"]; e["type"] = ["end"]; e["action"] = "logoff-initiated"; e["outcome"] = "success"
        case .logoff:
            e["category"] = ["authentication", "session"]; e["type"] = ["end"]; e["action"] = "logged-out"; e["outcome"] = "success"
        default:
            e["category"] = ["session"]; e["type"] = ["info"]; e["action"] = Self.kebab(event.rawValue); e["outcome"] = "unknown"
        }
        if let code = windowsEventCode { e["code"] = code }
        if let why = failureReason ?? reason { e["reason"] = why }
        var ecs: [String: Any] = [
            "@timestamp": time.rfc3339,
            "ecs": ["version": EventFormat.ecsVersion],
            "event": e,
            "message": JournalEntry.fields(self).first { $0.0 == "MESSAGE" }?.1 ?? event.rawValue,
            "sensd": own,
        ]
        var user: [String: Any] = [:]
        if let userName { user["name"] = userName }
        if let uid { user["id"] = String(uid) }
        if !user.isEmpty { ecs["user"] = user }
        var source: [String: Any] = [:]
        if let ip = remoteIP { source["ip"] = ip; source["address"] = ip } else if let host = remoteHost { source["domain"] = host; source["address"] = host }
        if let remotePort { source["port"] = Int(remotePort) }
        if !source.isEmpty { ecs["source"] = source }
        if let host { ecs["host"] = ["name": host] }
        var related: [String: Any] = [:]
        if let userName { related["user"] = [userName] }
        if let ip = remoteIP { related["ip"] = [ip] }
        if !related.isEmpty { ecs["related"] = related }
        return ecs
    }

    private static func kebab(_ name: String) -> String {
        var out = ""
        for c in name {
            if c.isUppercase && !out.isEmpty { out += "-" }
            out += c.lowercased()
        }
        return out
    }

    // MARK: OCSF

    private func ocsfObject(_ own: AnyJSON) -> [String: Any] {
        let activity: (id: Int, name: String) = switch event {
        case .logon, .logonFailed: (1, "Logon")
        case .logoff, .logoffInitiated: (2, "Logoff")
        default: (99, event.rawValue)
        }
        var o: [String: Any] = [
            "class_uid": 3002,
            "class_name": "Authentication",
            "category_uid": 3,
            "category_name": "Identity & Access Management",
            "activity_id": activity.id,
            "activity_name": activity.name,
            "type_uid": 300_200 + activity.id,
            "time": Int(microseconds / 1000),
            "severity_id": event == .logonFailed ? 3 : 1,
            "severity": event == .logonFailed ? "Medium" : "Informational",
            "message": JournalEntry.fields(self).first { $0.0 == "MESSAGE" }?.1 ?? event.rawValue,
            "metadata": [
                "version": EventFormat.ocsfVersion,
                "product": ["name": "sensd", "vendor_name": "sensd", "version": Release.version] as [String: Any],
                "sequence": Int(clamping: seq),
                "uid": String(seq),
                "original_time": time.rfc3339,
                "event_code": windowsEventCode ?? event.rawValue,
            ] as [String: Any],
            "unmapped": own,
        ]
        var user: [String: Any] = [:]
        if let userName { user["name"] = userName }
        if let uid { user["uid"] = String(uid) }
        // OCSF requires a user with a name, uid or account; one sensd could not learn is named "-", as
        // Windows names an unknown account in its security events.
        o["user"] = user.isEmpty ? ["name": "-"] : user
        switch event {
        case .logonFailed:
            o["status_id"] = 2; o["status"] = "Failure"
            o["status_detail"] = failureReason ?? "other"
        case .logon, .logoff, .logoffInitiated:
            o["status_id"] = 1; o["status"] = "Success"
            if event == .logoffInitiated || (event == .logoff && reason == nil) {
                o["status_detail"] = "LOGOFF_USER_INITIATED"
            } else if event == .logoff {
                o["status_detail"] = "LOGOFF_OTHER"
            }
        default:
            o["status_id"] = 99; o["status"] = "Other"
        }
        if let code = logonTypeCode, let type = logonType {
            o["logon_type_id"] = code
            o["logon_type"] = type.rawValue
        }
        if let remote { o["is_remote"] = remote }
        if !sessionId.isEmpty {
            var session: [String: Any] = ["uid": sessionId]
            if let start = sessionStart { session["created_time"] = Int(start.microsecondsSinceEpoch / 1000) }
            if let remote { session["is_remote"] = remote }
            if let terminal = tty { session["terminal"] = terminal }
            o["session"] = session
        }
        var source: [String: Any] = [:]
        if let ip = remoteIP { source["ip"] = ip } else if let host = remoteHost { source["hostname"] = host }
        if let remotePort { source["port"] = Int(remotePort) }
        if !source.isEmpty { o["src_endpoint"] = source }
        if let host { o["dst_endpoint"] = ["hostname": host] }
        if let service {
            o["service"] = ["name": service]
        } else if host == nil {
            // OCSF wants the service or the machine; a session's events come from logind.
            o["service"] = ["name": "systemd-logind"]
        }
        if let count, count > 1 { o["count"] = count }
        return o
    }
}

/// Any JSON value: what the projections are built of, and sensd's line read back whole (with the fields a
/// newer sensd adds).
enum AnyJSON: Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([AnyJSON])
    case object([String: AnyJSON])

    /// From the dictionaries and arrays the projections are written with.
    init(_ value: Any) {
        switch value {
        case let v as AnyJSON: self = v
        case let v as Bool: self = .bool(v)
        case let v as Int: self = .integer(Int64(v))
        case let v as Int64: self = .integer(v)
        case let v as Double: self = .number(v)
        case let v as String: self = .string(v)
        case let v as [Any]: self = .array(v.map(AnyJSON.init))
        case let v as [String: Any]: self = .object(v.mapValues(AnyJSON.init))
        default: self = .null
        }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int64.self) { self = .integer(v) }
        else if let v = try? c.decode(Double.self) { self = .number(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([AnyJSON].self) { self = .array(v) }
        else { self = .object(try c.decode([String: AnyJSON].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let v): try c.encode(v)
        case .integer(let v): try c.encode(v)
        case .number(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        }
    }
}
