#if canImport(Glibc)
import Glibc
#endif

/// Lines for standard output, written with one write(2) per batch so a pipe reader sees each event at once.
struct Output {
    private var bytes: [UInt8] = []

    mutating func line<S: Sequence>(_ text: S) where S.Element == UInt8 {
        bytes.append(contentsOf: text)
        bytes.append(0x0A)
    }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        // A closed stdout (`sensctl monitor | head`) ends the program quietly.
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { exit(0) }
            offset += n
        }
        bytes.removeAll(keepingCapacity: true)
    }
}

func printError(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
