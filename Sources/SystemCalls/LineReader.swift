/// Splits a byte stream into lines (or, with another `separator`, into Varlink's NUL-terminated messages),
/// refusing any longer than `limit` bytes.
public struct LineReader: Sendable {
    public let limit: Int
    public let separator: UInt8
    private var pending: [UInt8] = []

    public init(limit: Int, separator: UInt8 = 0x0A) {
        self.limit = limit
        self.separator = separator
    }

    public enum Outcome: Equatable, Sendable {
        case line(ArraySlice<UInt8>)
        /// More than `limit` bytes arrived without a separator.
        case tooLong
    }

    /// Adds bytes and returns every complete line they finish, in order.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [Outcome] {
        var out: [Outcome] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == separator {
            pending.append(contentsOf: bytes[start..<i])
            start = i + 1
            if pending.count > limit {
                out.append(.tooLong)
                return out
            }
            out.append(.line(pending[...]))
            pending.removeAll(keepingCapacity: true)
        }
        pending.append(contentsOf: bytes[start...])
        if pending.count > limit { out.append(.tooLong) }
        return out
    }

    /// Bytes received after the last separator.
    public var partial: ArraySlice<UInt8> { pending[...] }
}
