// swift-tools-version: 6.0
// An example of a program outside sensd that uses its client library: it depends on sensd by path, as a
// program elsewhere would depend on it by URL (`.package(url: ..., from: "0.2.0")`).
import PackageDescription

let package = Package(
    name: "SeatRelease",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "sensd", path: "../.."),
        // SIGTERM as a graceful shutdown, the way server programs run.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        .executableTarget(
            name: "seat-release",
            dependencies: [
                .product(name: "SENSClient", package: "sensd"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
