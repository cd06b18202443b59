import ArgumentParser
import SENSClient

#if canImport(Glibc)
import Glibc
#endif

@main
struct Sensctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensctl",
        abstract: "Watches the SENS logon events sensd publishes.",
        version: SensdClient.version,
        subcommands: [Monitor.self, Who.self, Users.self, Last.self, Position.self, Check.self, Convert.self],
        defaultSubcommand: Monitor.self
    )
}

/// Runs a command's work against sensd, turning the library's errors into sensctl's messages and exit codes:
/// 69 (EX_UNAVAILABLE) when sensd cannot be reached, 1 for any other failure.
func talkingToSensd(_ body: () async throws -> Void) async throws {
    // A closed standard output (`sensctl monitor | head`) must end the program quietly with status 0, not
    // with SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    do {
        try await body()
    } catch let error as SENSClientError {
        printError("sensctl: \(error)")
        throw ExitCode(error.code == .unavailable ? 69 : 1)
    } catch let error as CursorError {
        printError("sensctl: \(error)")
        throw ExitCode(1)
    }
}
