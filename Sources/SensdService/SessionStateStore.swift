import FoundationEssentials
import Logging
import SENSCore
import UnixSocket

/// What sensd keeps across its own restarts: the sessions it has reported and the last seq it gave out.
struct SessionState: Codable {
    static let currentVersion = 1
    var version = SessionState.currentVersion
    var lastSeq: UInt64
    var sessions: [SessionTracker.Remembered]
}

/// The state file in the state directory, replaced as a whole (write, then rename) after each batch of events.
final class SessionStateStore {
    let path: String
    private let logger: Logger

    init(directory: String, logger: Logger) {
        path = directory + "/sessions.json"
        self.logger = logger
    }

    /// The state from the previous run. A damaged file is copied aside (the next save replaces it) and
    /// reported, never fatal.
    func load() -> SessionState? {
        let bytes: [UInt8]
        do {
            guard let b = try Syscall.readFile(path) else { return nil }
            bytes = b
        } catch {
            logger.error("cannot read the state file; starting without it", metadata: ["error": "\(error)"])
            return nil
        }
        do {
            let state = try JSONDecoder().decode(SessionState.self, from: Data(bytes))
            guard state.version == SessionState.currentVersion else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "version \(state.version)"))
            }
            return state
        } catch {
            let aside = path + ".damaged"
            _ = try? Syscall.replaceFile(aside, with: bytes)
            logger.error("the state file is damaged; a copy was kept and sensd starts without it", metadata: ["file": "\(path)", "copy": "\(aside)", "error": "\(error)"])
            return nil
        }
    }

    func save(_ state: SessionState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try Syscall.replaceFile(path, with: Array(try encoder.encode(state)))
    }
}
