import Testing

@testable import SENSClient

#if canImport(Glibc)
import Glibc
#endif

@Suite("the durable cursor")
struct CursorTests {
    func scratch() throws -> String {
        var template = Array("/tmp/sensclient-test-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw CursorError(path: "/tmp", problem: "mkdtemp failed") }
        return String(cString: p)
    }

    func content(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 256)
        let n = fread(&buffer, 1, 255, f)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func nothingSavedYetIsNilThenEachSaveIsWhatLoads() throws {
        let dir = try scratch()
        let cursor = SENSCursor(path: dir + "/position")
        #expect(try cursor.load() == nil)
        try cursor.save(41)
        #expect(try cursor.load() == 41)
        try cursor.save(1 << 53)
        #expect(try cursor.load() == 1 << 53)
        #expect(content(dir + "/position") == "9007199254740992\n", "a plain, readable file")
        #expect(access(dir + "/position.tmp", F_OK) != 0, "the replacement leaves no temporary file")
    }

    @Test(arguments: ["", "forty-one\n", "-3\n", "12 13\n"])
    func aFileThatDoesNotHoldASeqIsAnErrorNamingTheFile(text: String) throws {
        let dir = try scratch()
        let path = dir + "/position"
        let f = try #require(fopen(path, "w"))
        fputs(text, f)
        fclose(f)
        #expect {
            try SENSCursor(path: path).load()
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("does not hold a seq")
        }
    }

    @Test func aCursorThatCannotBeWrittenSaysWhere() throws {
        let dir = try scratch()
        let cursor = SENSCursor(path: dir + "/missing-directory/position")
        #expect {
            try cursor.save(1)
        } throws: { error in
            "\(error)".contains(dir + "/missing-directory/position") && "\(error)".contains("cannot be written")
        }
    }
}
