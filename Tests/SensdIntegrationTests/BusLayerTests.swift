import Foundation
import Systemd
import Testing

final class Token {}

struct Weak {
    weak var object: Token?
    init(_ object: Token) { self.object = object }
}

@Suite("The sd-bus layer against a private dbus-daemon")
struct BusLayerTests {
    @Test func anAsynchronousCallFreesItsClosureOnceTheReplyIsHandled() throws {
        let dir = try ScratchDirectory()
        let daemon = try PrivateBus(in: dir)
        let loop = try EventLoop()
        let bus = try Bus.connect(address: daemon.address, description: "test")
        try bus.attach(to: loop)
        var tokens: [Weak] = []
        var replies = 0
        for _ in 0..<50 {
            let token = Token()
            tokens.append(Weak(token))
            let call = try bus.methodCall(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetId")
            try bus.callAsync(call) { result in
                withExtendedLifetime(token) {
                    if case .success = result { replies += 1 }
                }
            }
        }
        let deadline = Date().addingTimeInterval(patience)
        while replies < 50 && Date() < deadline {
            _ = try loop.runOnce(timeoutMicroseconds: 100_000)
        }
        #expect(replies == 50)
        #expect(tokens.filter { $0.object != nil }.count == 0, "every reply handler is released after its reply")
    }

    @Test func sessionObjectPathsAreEscapedAsLogindDoes() {
        let prefix = "/org/freedesktop/login1/session"
        #expect(Bus.objectPath(prefix: prefix, id: "c1") == prefix + "/c1")
        #expect(Bus.objectPath(prefix: prefix, id: "12") == prefix + "/_312")
        #expect(Bus.id(ofObjectPath: prefix + "/_312", prefix: prefix) == "12")
        #expect(Bus.id(ofObjectPath: "/org/freedesktop/login1/user/_1000", prefix: prefix) == nil)
    }
}
