/// One encoded line, shared by every subscriber queue that holds it: one reference each, and bytes at a
/// fixed address, so a write needs no copying and no retaining beyond the line itself.
package final class OutgoingLine: @unchecked Sendable {
    /// The line, newline included. Immutable, and freed with the line.
    public let buffer: UnsafeRawBufferPointer
    /// The event's seq, or nil for control lines.
    public let seq: UInt64?
    /// What a subscription filters on, for event lines.
    public let facts: EventFacts?

    public init(bytes: [UInt8], seq: UInt64?, facts: EventFacts? = nil) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
        buffer = UnsafeRawBufferPointer(storage)
        self.seq = seq
        self.facts = facts
    }

    deinit { buffer.deallocate() }

    /// A copy of the bytes.
    public var bytes: [UInt8] { Array(buffer) }
    public var count: Int { buffer.count }
}

/// A subscriber's bounded queue of lines not yet written to its socket.
///
/// Bounded in lines, so one stopped reader costs at most `limit` shared references, never unbounded memory.
package struct SubscriberQueue: Sendable {
    /// How many lines may wait before the subscriber counts as overflowed.
    public let limit: Int

    private var lines: [OutgoingLine] = []
    private var head = 0
    /// Bytes of `lines[head]` already written.
    private var headOffset = 0

    /// The seq of the last event written completely to the socket.
    public private(set) var lastSeqWritten: UInt64?

    /// The seq of the last event of which at least one byte was written: the point a resume on this
    /// connection continues after.
    public var lastSeqStarted: UInt64? {
        if headOffset > 0, let seq = lines[head].seq { return seq }
        return lastSeqWritten
    }

    public init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Lines waiting, including a partly written one.
    public var count: Int { lines.count - head }
    public var isEmpty: Bool { count == 0 }

    /// Whether a line was written in part: the connection must not be cut mid-line without notice.
    public var isMidLine: Bool { headOffset > 0 }

    /// Adds a line; false (and nothing added) when the queue already holds `limit` lines.
    public mutating func enqueue(_ line: OutgoingLine) -> Bool {
        guard count < limit else { return false }
        lines.append(line)
        return true
    }

    /// Adds a line even past the limit: for the one final control line of a connection.
    public mutating func enqueueFinal(_ line: OutgoingLine) {
        lines.append(line)
    }

    /// The index of the first line no byte of which has been written.
    private var firstUnstarted: Int { head + (headOffset > 0 ? 1 : 0) }

    /// Removes the lines not yet started that `reject` picks (a subscription arriving after they were queued).
    public mutating func removeUnstarted(where reject: (OutgoingLine) -> Bool) {
        let first = firstUnstarted
        guard first < lines.count else { return }
        lines.replaceSubrange(first..., with: lines[first...].filter { !reject($0) })
    }

    /// Puts a line before every line not yet started.
    public mutating func insertBeforeUnstarted(_ line: OutgoingLine) {
        lines.insert(line, at: firstUnstarted)
    }

    /// Drops every line not yet started, keeping the rest of a partly written one so framing stays intact.
    public mutating func dropUnstarted() {
        lines.removeSubrange(firstUnstarted...)
        compact(force: true)
    }

    /// Calls `body` with up to `maxChunks` pending byte ranges in order; `body` returns how many bytes it wrote.
    public mutating func write(maxChunks: Int, _ body: ([UnsafeRawBufferPointer]) -> Int) -> Int {
        guard !isEmpty else { return 0 }
        let end = min(lines.count, head + maxChunks)
        var chunks: [UnsafeRawBufferPointer] = []
        chunks.reserveCapacity(end - head)
        chunks.append(UnsafeRawBufferPointer(rebasing: lines[head].buffer[headOffset...]))
        for i in (head + 1)..<end { chunks.append(lines[i].buffer) }
        // The lines, and so their buffers, are held by `lines` for the duration of the call.
        let written = body(chunks)
        consume(written)
        return written
    }

    /// Marks `n` bytes as written.
    public mutating func consume(_ n: Int) {
        var left = n
        while left > 0 && head < lines.count {
            let remaining = lines[head].count - headOffset
            if left >= remaining {
                left -= remaining
                if let seq = lines[head].seq { lastSeqWritten = seq }
                head += 1
                headOffset = 0
            } else {
                headOffset += left
                left = 0
            }
        }
        compact(force: false)
    }

    private mutating func compact(force: Bool) {
        if head == lines.count {
            lines.removeAll(keepingCapacity: lines.capacity <= 1024)
            head = 0
        } else if force || (head >= 256 && head * 2 >= lines.count) {
            lines.removeSubrange(0..<head)
            head = 0
        }
    }
}
