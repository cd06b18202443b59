// swift-tools-version: 6.0
// An example of a program outside sensd that uses its client library: it depends on sensd by path, as a
// program elsewhere would depend on it by URL (`.package(url: ..., from: "0.2.0")`).
import PackageDescription

let package = Package(
    name: "SeatRelease",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "sensd", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "seat-release",
            dependencies: [.product(name: "SENSClient", package: "sensd")]
        ),
    ]
)
