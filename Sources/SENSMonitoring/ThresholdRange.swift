/// A threshold range in the Monitoring Plugins grammar (monitoring-plugins.org, "Development Guidelines",
/// "Threshold and ranges"): `10` alerts outside 0...10, `10:` below 10, `~:10` above 10, `10:20` outside
/// 10...20, `@10:20` inside 10...20.
public struct ThresholdRange: Equatable, Sendable, CustomStringConvertible {
    /// nil: no lower end (`~`).
    public var low: Double?
    /// nil: no upper end.
    public var high: Double?
    /// `@`: alert when the value is inside the range instead of outside it.
    public var alertInside: Bool
    /// The text as given, for the perfdata's warn and crit fields.
    public let text: String

    public init(parsing text: String) throws(ThresholdError) {
        self.text = text
        var body = Substring(text)
        alertInside = body.first == "@"
        if alertInside { body = body.dropFirst() }
        guard !body.isEmpty else { throw ThresholdError(text, "it is empty") }
        if let colon = body.firstIndex(of: ":") {
            let start = body[..<colon], end = body[body.index(after: colon)...]
            if start == "~" {
                low = nil
            } else if start.isEmpty {
                low = 0
            } else {
                guard let value = Double(start), value.isFinite else { throw ThresholdError(text, "'\(start)' is not a number or ~") }
                low = value
            }
            if end.isEmpty {
                high = nil
            } else {
                guard let value = Double(end), value.isFinite else { throw ThresholdError(text, "'\(end)' is not a number") }
                high = value
            }
        } else {
            guard let value = Double(body), value.isFinite else { throw ThresholdError(text, "'\(body)' is not a number") }
            low = 0
            high = value
        }
        if let low, let high, low > high { throw ThresholdError(text, "its start is greater than its end") }
    }

    /// Whether `value` raises the alert this range stands for.
    public func alerts(_ value: Double) -> Bool {
        let inside = (low.map { value >= $0 } ?? true) && (high.map { value <= $0 } ?? true)
        return alertInside ? inside : !inside
    }

    public var description: String { text }
}

/// A threshold that does not parse; the message says why, the way a plugin reports a usage error.
public struct ThresholdError: Error, Equatable, Sendable, CustomStringConvertible {
    public let text: String
    public let reason: String

    init(_ text: String, _ reason: String) {
        self.text = text
        self.reason = reason
    }

    public var description: String {
        "threshold '\(text)' is not a range: \(reason) (use N, N:, ~:N, N:M or @N:M)"
    }
}
