import ArgumentParser
import FoundationEssentials
import SENSClient

#if canImport(Glibc)
import Glibc
#endif

/// Events already saved (`sensctl monitor --json`, a hook's standard input, a journal export turned into
/// lines) projected for a SIEM, as `monitor --format` does live.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert sensd's event lines on standard input to ECS or OCSF, one JSON object per line.",
        discussion: """
            Lines that are not events (hello, accepted, gap and error lines) are left out; a line that is not \
            JSON, or an event this version cannot read, is reported on standard error with its line number \
            and the conversion goes on. Exits 1 if there was any.
            """
    )

    @Option(help: ArgumentHelp("ecs (Elastic Common Schema \(EventFormat.ecsVersion)), ocsf (OCSF \(EventFormat.ocsfVersion) Authentication) or sensd.", valueName: "FORMAT"))
    var format: String

    func validate() throws {
        guard EventFormat(rawValue: format) != nil else {
            throw ValidationError("unknown format '\(format)'; known: \(EventFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let format = EventFormat(rawValue: format)!
        let decoder = JSONDecoder()
        var out = Output()
        var number = 0
        var bad = 0
        while let line = readLine(strippingNewline: true) {
            number += 1
            // sensd's other lines (hello, accepted, gap, errors) begin with another key.
            if line.isEmpty || (line.hasPrefix("{") && !line.hasPrefix(#"{"event":"#)) { continue }
            do {
                let event = try decoder.decode(SENSEvent.self, from: Data(line.utf8))
                out.line(event.formatted(format, line: line).utf8)
            } catch {
                bad += 1
                printError("sensctl: line \(number): not an event this version reads: \(error)")
            }
            out.flush()
        }
        out.flush()
        if bad > 0 { throw ExitCode(1) }
    }
}
