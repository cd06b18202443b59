#!/bin/sh
# SENSClient's surface, seen from a package outside sensd's, as a program elsewhere would see it: what the
# library offers builds, and sensd's own parts (SessionTracker, the wire writer, the queues) cannot be named,
# even by importing the module they live in (they have `package` access). Run by `make check`.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
swift=${SWIFT:-swift}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/Sources/outside"
cat > "$dir/Package.swift" <<SWIFT
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
    name: "outside",
    dependencies: [.package(name: "sensd", path: "$repo")],
    targets: [.executableTarget(name: "outside", dependencies: [.product(name: "SENSClient", package: "sensd")])]
)
SWIFT
build() {
    "$swift" build --package-path "$dir" --scratch-path "$repo/.build-surface" --product outside 2>&1
}

cat > "$dir/Sources/outside/main.swift" <<'SWIFT'
import SENSClient
let kind: EventKind = .logoff
let event: SENSEvent? = nil
let time: EventTime? = nil
print(kind, event as Any, time as Any, SensdClient.self)
SWIFT
if ! out=$(build); then
    printf '%s\n' "$out" | tail -20
    echo "client-surface: a program using SENSClient's API does not build" >&2
    exit 1
fi

for internal in SessionTracker EventSequencer SubscriberQueue OutgoingLine RememberedSessions WireFormat; do
    cat > "$dir/Sources/outside/main.swift" <<SWIFT
import SENSClient
import SENSCore
print($internal.self)
SWIFT
    if out=$(build); then
        echo "client-surface: a program outside sensd can name $internal" >&2
        exit 1
    fi
    if ! printf '%s\n' "$out" | grep -q "cannot find '$internal' in scope"; then
        printf '%s\n' "$out" | tail -20
        echo "client-surface: building with $internal failed, but not because it is out of reach" >&2
        exit 1
    fi
done
echo "client-surface: SENSEvent, EventKind, EventTime and SENSClient are API; SessionTracker, EventSequencer, SubscriberQueue, OutgoingLine, RememberedSessions and WireFormat cannot be named"
