import Foundation
import Testing
@testable import SENSCore

@Suite("Varlink format: calls parsed, replies and errors framed, events carried byte for byte")
struct VarlinkFormatTests {
    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        #expect(bytes.last == 0, "every message ends with NUL")
        #expect(bytes.dropLast().firstIndex(of: 0) == nil, "and has no other")
        return try #require(JSONSerialization.jsonObject(with: Data(bytes.dropLast())) as? [String: Any])
    }

    @Test func aCallGivesItsMethodFlagsAndParameters() throws {
        let call = try Varlink.parseCall(Array(#"{"method":"io.sensd.Events.Subscribe","parameters":{"users":["alice"],"since":4},"more":true}"#.utf8)[...])
        #expect(call.method == "io.sensd.Events.Subscribe" && call.interface == "io.sensd.Events" && call.member == "Subscribe")
        #expect(call.more && !call.oneway)
        let request = try call.subscription()
        #expect(request.users == ["alice"] && request.since == 4)
    }

    @Test(arguments: [
        #"not json"#, #"[1,2]"#, #"{"parameters":{}}"#, #"{"method":""}"#, #"{"method":"a.B","parameters":[]}"#, #"{"method":"a.B","more":"yes"}"#,
    ])
    func aMessageThatIsNoCallIsABadMessage(text: String) {
        #expect(throws: ProtocolError.self) { try Varlink.parseCall(Array(text.utf8)[...]) }
    }

    @Test func aBadParameterIsInvalidParameterNamingItAndSensdsOwnErrorsLiveUnderItsInterface() throws {
        let call = try Varlink.parseCall(Array(#"{"method":"io.sensd.Events.Subscribe","parameters":{"uids":[-1]}}"#.utf8)[...])
        var caught: ProtocolError?
        do { _ = try call.subscription() } catch { caught = error }
        let error = try #require(caught)
        let invalid = try Self.object(Varlink.error(error))
        #expect(invalid["error"] as? String == "org.varlink.service.InvalidParameter")
        #expect((invalid["parameters"] as? [String: Any])?["parameter"] as? String == "uids")
        let overflow = try Self.object(Varlink.error(ProtocolError(.overflow, "behind"), extra: [("limit", 8), ("lastSeq", 41)]))
        #expect(overflow["error"] as? String == "io.sensd.Events.Overflow")
        #expect((overflow["parameters"] as? [String: Any])?["lastSeq"] as? Int == 41)
        for code in [ProtocolError.Code.badRequest, .requestTooLong, .overflow, .tooManySubscribers, .shuttingDown, .logUnavailable] {
            let name = try Self.object(Varlink.error(ProtocolError(code, "x")))["error"] as? String
            #expect(name?.hasPrefix("io.sensd.Events.") == true)
            // Every error sensd sends is declared in its interface.
            #expect(name.map { Varlink.description.contains("error " + $0.dropFirst("io.sensd.Events.".count) + "(") } == true)
        }
    }

    @Test func anEventIsTheJSONLinesObjectUnderEventInAContinuedReply() throws {
        let line = WireFormat.line(SENSEvent(event: .logoff, seq: 12, time: EventTime(microsecondsSinceEpoch: 1_790_000_000_000_000), sessionId: "c3", userName: "alice", uid: 1000))
        let reply = Varlink.event(line)
        #expect(reply.seq == 12)
        let object = try Self.object(reply.bytes)
        #expect(object["continues"] as? Bool == true)
        let event = try #require((object["parameters"] as? [String: Any])?["event"])
        let original = try JSONSerialization.jsonObject(with: Data(line.bytes)) as? NSDictionary
        #expect((event as? NSDictionary) == original)
        // Byte for byte: the line without its newline sits in the reply as it is.
        #expect(String(decoding: reply.bytes, as: UTF8.self).contains(String(decoding: line.bytes.dropLast(), as: UTF8.self)))
    }

    @Test func theDescriptionDeclaresTheInterfaceEveryMethodAndEveryErrorItsRepliesUse() {
        let text = Varlink.description
        #expect(text.contains("\ninterface io.sensd.Events\n"))
        for method in ["Subscribe", "ListSessions", "GetHistory", "GetStats"] { #expect(text.contains("method \(method)(")) }
        for error in ["EventsMissing", "NoSuchSeq"] { #expect(text.contains("error \(error)(")) }
        // Balanced parentheses: a description systemd's parser would not choke on for want of one.
        #expect(text.filter { $0 == "(" }.count == text.filter { $0 == ")" }.count)
    }
}
