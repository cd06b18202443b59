/// A D-Bus value, as read from or appended to a ``BusMessage``.
public indirect enum BusValue: Equatable, Sendable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// An array; `elementSignature` is needed so that an empty array still has a type.
    case array(elementSignature: String, [BusValue])
    case structure([BusValue])
    case dictEntry(BusValue, BusValue)
    case variant(BusValue)

    /// The value's D-Bus type signature.
    public var signature: String {
        switch self {
        case .byte: "y"
        case .bool: "b"
        case .int16: "n"
        case .uint16: "q"
        case .int32: "i"
        case .uint32: "u"
        case .int64: "x"
        case .uint64: "t"
        case .double: "d"
        case .string: "s"
        case .objectPath: "o"
        case .signature: "g"
        case .array(let element, _): "a" + element
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .dictEntry(let k, let v): "{" + k.signature + v.signature + "}"
        case .variant: "v"
        }
    }

    /// `a{sv}`, the shape of `Properties.GetAll` replies.
    public static func propertyMap(_ properties: [(String, BusValue)]) -> BusValue {
        .array(elementSignature: "{sv}", properties.map { .dictEntry(.string($0.0), .variant($0.1)) })
    }

    public var stringValue: String? {
        switch self {
        case .string(let s), .objectPath(let s), .signature(let s): s
        case .variant(let v): v.stringValue
        default: nil
        }
    }

    public var uint32Value: UInt32? {
        switch self {
        case .uint32(let v): v
        case .variant(let v): v.uint32Value
        default: nil
        }
    }

    public var uint64Value: UInt64? {
        switch self {
        case .uint64(let v): v
        case .uint32(let v): UInt64(v)
        case .variant(let v): v.uint64Value
        default: nil
        }
    }

    public var boolValue: Bool? {
        switch self {
        case .bool(let v): v
        case .variant(let v): v.boolValue
        default: nil
        }
    }

    /// The fields of a structure (looking through a variant).
    public var structFields: [BusValue]? {
        switch self {
        case .structure(let f): f
        case .variant(let v): v.structFields
        default: nil
        }
    }

    /// The elements of an array (looking through a variant).
    public var arrayElements: [BusValue]? {
        switch self {
        case .array(_, let e): e
        case .variant(let v): v.arrayElements
        default: nil
        }
    }

    /// An `a{sv}` as a dictionary with the variants unwrapped.
    public var propertyDictionary: [String: BusValue]? {
        guard let entries = arrayElements else { return nil }
        var result: [String: BusValue] = [:]
        for entry in entries {
            guard case .dictEntry(let key, let value) = entry, let name = key.stringValue else { return nil }
            if case .variant(let inner) = value { result[name] = inner } else { result[name] = value }
        }
        return result
    }
}
