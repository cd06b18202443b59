// swift-tools-version: 6.0
import PackageDescription

// Two floors. With Swift 6.0 (Debian 13's own swiftlang 6.0.3) build: sensd, sensctl, sensd-hooks, the
// libraries SENSClient, SENSHooks and SENSMonitoring, and their tests. sensd-exporter needs Swift 6.2: its
// dependency swift-prometheus declares swift-tools-version 6.2; so do swift-log's releases from 1.10.1 on,
// so Swift 6.0 and 6.1 get swift-log before 1.11, whose log handlers take the older call (README, "Swift
// versions"). `make distro-build` builds and tests the 6.0 set with Debian's compiler, offline.
// SENSD_WITHOUT_DAEMON=1 leaves sensd out, for a Swift 6.0 build where no swift-log release before 1.11 is
// at hand (distro-build says when it does so).

// SENSMonitoring's Prometheus metrics (SessionMetrics) come with swift-prometheus, from 6.2 on.
var monitoringDependencies: [Target.Dependency] = ["SENSClient"]
#if compiler(>=6.2)
monitoringDependencies.append(.product(name: "Prometheus", package: "swift-prometheus"))
#endif

var products: [Product] = [
    .executable(name: "sensctl", targets: ["sensctl"]),
    .executable(name: "sensd-hooks", targets: ["sensd-hooks"]),
    // For programs that react to sessions: `.product(name: "SENSClient", package: "sensd")`.
    .library(name: "SENSClient", targets: ["SENSClient"]),
]
var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
]
var targets: [Target] = [
    // libsystemd's headers; the only C the project links against.
    .systemLibrary(
        name: "CSystemd",
        pkgConfig: "libsystemd",
        providers: [.apt(["libsystemd-dev"])]
    ),
    // The thin Swift layer that owns every libsystemd handle. Nothing above it imports CSystemd.
    .target(name: "Systemd", dependencies: ["CSystemd"]),
    // Linux calls Swift's Glibc module leaves out (epoll, pipe2, accept4, malloc_trim, spawning a command).
    .target(name: "CLinux"),
    // POSIX sockets for the daemon and the client; every socket system call lives here.
    .target(name: "UnixSocket", dependencies: ["CLinux"]),
    // The SENS event model, the logind session tracker, the wire format. No I/O.
    .target(name: "SENSCore"),
    // The client library: typed events over the public protocol, reconnecting and resuming.
    .target(name: "SENSClient", dependencies: ["SENSCore", "UnixSocket"]),
    // Rule files for the hook runner (sensd.hook(5)): parsing, matching, specifiers. No I/O but reading them.
    .target(name: "SENSHooks", dependencies: ["SENSClient", "UnixSocket"]),
    // The hook runner: a client of sensd's socket through SENSClient, never of sensd's internals.
    .executableTarget(
        name: "sensd-hooks",
        dependencies: [
            "SENSHooks", "SENSClient", "Systemd", "UnixSocket", "CLinux",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ),
    // Who is logged in, for monitoring: threshold ranges and the users check, the Prometheus metrics.
    .target(name: "SENSMonitoring", dependencies: monitoringDependencies),
    .executableTarget(
        name: "sensctl",
        dependencies: [
            "SENSClient", "SENSMonitoring",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ),
    .testTarget(name: "SENSCoreTests", dependencies: ["SENSCore", "UnixSocket"]),
    .testTarget(name: "SENSClientTests", dependencies: ["SENSClient"]),
    .testTarget(name: "SENSHooksTests", dependencies: ["SENSHooks", "SENSClient"]),
    .testTarget(name: "SENSMonitoringTests", dependencies: ["SENSMonitoring", "SENSClient"]),
]

// The daemon: with 6.2 and later on swift-log's log(event:) (1.11 on); before, on swift-log before 1.11.
let daemonTargets: [Target] = [
    // The daemon's parts: logind source, subscriber server, logging.
    .target(
        name: "SensdService",
        dependencies: [
            "Systemd", "SENSCore", "UnixSocket",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "DequeModule", package: "swift-collections"),
        ]
    ),
    .executableTarget(
        name: "sensd",
        dependencies: [
            "SensdService", "UnixSocket",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]
    ),
    .testTarget(
        name: "SensdServiceTests",
        dependencies: ["SensdService", "SENSCore", "UnixSocket", .product(name: "Logging", package: "swift-log")]
    ),
]
// Deque: the queue of session detail requests waiting for a free slot on the bus.
let collections = Package.Dependency.package(url: "https://github.com/apple/swift-collections", from: "1.1.0")

#if compiler(>=6.2)
products += [.executable(name: "sensd", targets: ["sensd"])]
dependencies += [.package(url: "https://github.com/apple/swift-log", from: "1.11.0"), collections]
targets += daemonTargets
products += [
    .executable(name: "sensd-exporter", targets: ["sensd-exporter"]),
]
dependencies += [
    // The Prometheus text format for sensd-exporter, rather than an encoder of our own.
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
]
targets += [
    // A client of sensd's socket that serves the metrics over HTTP or writes them for node_exporter.
    .executableTarget(
        name: "sensd-exporter",
        dependencies: [
            "SENSClient", "SENSMonitoring", "CLinux",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ),
    // A scripted systemd-logind stand-in for a private dbus-daemon: tests and benchmarks only.
    .executableTarget(name: "logind-standin", dependencies: ["Systemd", "UnixSocket"]),
    // The benchmark's measuring clients (bench/run.py): a bare sd-bus floor and many sensd subscribers.
    .executableTarget(name: "sensd-bench", dependencies: ["CLinux", "Systemd", "UnixSocket", "SENSCore"]),
    .testTarget(
        name: "SensdIntegrationTests",
        dependencies: ["SENSCore", "SENSClient", "Systemd", "UnixSocket", "CLinux", "sensd", "sensctl", "sensd-hooks", "sensd-exporter", "logind-standin"]
    ),
]
#else
if Context.environment["SENSD_WITHOUT_DAEMON"] == nil {
    products += [.executable(name: "sensd", targets: ["sensd"])]
    // 1.10.1 and later declare swift-tools-version 6.2; 1.5 brought what the daemon calls.
    dependencies += [.package(url: "https://github.com/apple/swift-log", "1.5.0"..<"1.11.0"), collections]
    targets += daemonTargets
}
#endif

let package = Package(
    name: "sensd",
    platforms: [.macOS(.v13)],
    products: products,
    dependencies: dependencies,
    targets: targets
)
