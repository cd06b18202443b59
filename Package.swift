// swift-tools-version: 6.0
import PackageDescription

// Swift 6.0 and 6.1 (Debian 13's own swiftlang is 6.0.3) build everything but the integration tests, which
// need every program. Several dependencies' newest releases declare swift-tools-version 6.2 (swift-log from
// 1.10.1, swift-prometheus 2.4, swift-metrics 2.9); SwiftPM passes over releases a compiler cannot read, so
// older ones are taken, and sensd's log handlers use swift-log's older call before 1.11 (README, "Swift
// versions"). `make distro-build` builds and tests all this with Debian's compiler, offline. Where no release
// that Swift 6.0 reads is at hand of swift-log and swift-collections (for sensd), of swift-log,
// swift-service-lifecycle and swift-async-algorithms (for sensd-hooks), or of swift-prometheus and
// swift-metrics (for sensd-exporter), SENSD_WITHOUT_DAEMON=1, SENSD_WITHOUT_HOOKS=1 or
// SENSD_WITHOUT_EXPORTER=1 leaves that program out (distro-build says when it does).
#if compiler(>=6.2)
let withDaemon = true, withHooks = true, withExporter = true, withIntegrationTests = true
#else
let withDaemon = Context.environment["SENSD_WITHOUT_DAEMON"] == nil
let withHooks = Context.environment["SENSD_WITHOUT_HOOKS"] == nil
let withExporter = Context.environment["SENSD_WITHOUT_EXPORTER"] == nil
let withIntegrationTests = false
#endif

var products: [Product] = [
    .executable(name: "sensctl", targets: ["sensctl"]),
    .executable(name: "sensd-pam-report", targets: ["sensd-pam-report"]),
    // For programs that react to sessions: `.product(name: "SENSClient", package: "sensd")`.
    .library(name: "SENSClient", targets: ["SENSClient"]),
]
var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
]
// SENSMonitoring's Prometheus metrics (SessionMetrics) come with swift-prometheus; the users check without.
var monitoringDependencies: [Target.Dependency] = ["SENSClient"]
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
    // The system calls of the daemon and the client: sockets, files, descriptors (each with one owner),
    // peer credentials, the heap. Every call of this kind lives here (it was called UnixSocket until 0.2).
    .target(name: "SystemCalls", dependencies: ["CLinux"]),
    // The SENS event model, the logind session tracker, the wire format. No I/O.
    .target(name: "SENSCore"),
    // The client library: typed events over the public protocol, reconnecting and resuming.
    .target(name: "SENSClient", dependencies: ["SENSCore", "SystemCalls"]),
    // Rule files for the hook runner (sensd.hook(5)): parsing, matching, specifiers. No I/O but reading them.
    .target(name: "SENSHooks", dependencies: ["SENSClient", "SystemCalls"]),
    // pam_exec's program for the failed-logon hook: PAM's items to sensd's root-only socket, never waiting.
    .executableTarget(name: "sensd-pam-report", dependencies: ["SENSCore", "SystemCalls"]),
    .executableTarget(
        name: "sensctl",
        dependencies: [
            "SENSClient", "SENSMonitoring",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ),
    // A scripted systemd-logind stand-in for a private dbus-daemon: tests and benchmarks only.
    .executableTarget(name: "logind-standin", dependencies: ["Systemd", "SystemCalls"]),
    // The benchmark's measuring clients (bench/run.py): a bare sd-bus floor and many sensd subscribers.
    .executableTarget(name: "sensd-bench", dependencies: ["CLinux", "Systemd", "SystemCalls", "SENSCore"]),
    .testTarget(name: "SENSCoreTests", dependencies: ["SENSCore", "SystemCalls"]),
    .testTarget(name: "SENSClientTests", dependencies: ["SENSClient"]),
    .testTarget(name: "SENSHooksTests", dependencies: ["SENSHooks", "SENSClient"]),
    .testTarget(name: "SENSMonitoringTests", dependencies: ["SENSMonitoring", "SENSClient"]),
    // sensctl's own logic (`last`'s pairing, its JSON), in-process.
    .testTarget(name: "SensctlTests", dependencies: ["sensctl", "SENSClient"]),
]

if withDaemon || withHooks {
    #if compiler(>=6.2)
    // 1.11: the log handlers implement log(event:).
    dependencies.append(.package(url: "https://github.com/apple/swift-log", from: "1.11.0"))
    #else
    // Before 1.11 the log handlers implement the older call; 1.5 brought what the daemon uses.
    dependencies.append(.package(url: "https://github.com/apple/swift-log", "1.5.0"..<"1.11.0"))
    #endif
    // sensd's and sensd-hooks' log handlers: structured journal entries, or lines on standard error.
    targets.append(.target(
        name: "SensdLogging",
        dependencies: ["Systemd", "SENSCore", .product(name: "Logging", package: "swift-log")]
    ))
}

if withHooks {
    products.append(.executable(name: "sensd-hooks", targets: ["sensd-hooks"]))
    // 2.7: services added to a running group (a reload's new rules). Swift 6.0 and 6.1 take the newest
    // release whose manifest they read (2.11.0 in distro-build with the packages' histories; 2.13.0 declares
    // tools 6.2).
    dependencies.append(.package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.7.0"))
    // The hook runner: a client of sensd's socket through SENSClient, never of sensd's internals. Each rule
    // is a service of a swift-service-lifecycle group.
    targets.append(.executableTarget(
        name: "sensd-hooks",
        dependencies: [
            "SENSHooks", "SENSClient", "Systemd", "SystemCalls", "CLinux", "SensdLogging",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]
    ))
}

if withDaemon {
    products.append(.executable(name: "sensd", targets: ["sensd"]))
    // Deque: the queue of session detail requests waiting for a free slot on the bus.
    dependencies.append(.package(url: "https://github.com/apple/swift-collections", from: "1.1.0"))
    targets += [
        // The daemon's parts: logind source, subscriber server, logging.
        .target(
            name: "SensdService",
            dependencies: [
                "Systemd", "SENSCore", "SystemCalls", "SensdLogging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "sensd",
            dependencies: [
                "SensdService", "SensdLogging", "SystemCalls",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SensdServiceTests",
            dependencies: ["SensdService", "SENSCore", "SystemCalls", .product(name: "Logging", package: "swift-log")]
        ),
    ]
}

if withExporter {
    products.append(.executable(name: "sensd-exporter", targets: ["sensd-exporter"]))
    // The Prometheus text format for sensd-exporter, rather than an encoder of our own.
    dependencies.append(.package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"))
    monitoringDependencies.append(.product(name: "Prometheus", package: "swift-prometheus"))
    // A client of sensd's socket that serves the metrics over HTTP or writes them for node_exporter.
    targets.append(.executableTarget(
        name: "sensd-exporter",
        dependencies: [
            "SENSClient", "SENSMonitoring", "CLinux",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ))
}

// Who is logged in, for monitoring: threshold ranges and the users check, the Prometheus metrics.
targets.append(.target(name: "SENSMonitoring", dependencies: monitoringDependencies))

if withIntegrationTests {
    targets.append(.testTarget(
        name: "SensdIntegrationTests",
        dependencies: ["SENSCore", "SENSClient", "Systemd", "SystemCalls", "CLinux", "sensd", "sensctl", "sensd-hooks", "sensd-exporter", "sensd-pam-report", "logind-standin"]
    ))
}

let package = Package(
    name: "sensd",
    platforms: [.macOS(.v13)],
    products: products,
    dependencies: dependencies,
    targets: targets
)
