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
# Kinds a later release adds must not break a program: a switch over EventKind or LogonType that lists
# every value of today and has no default does not compile (it would, were they enums).
for type in "EventKind:logon logoffInitiated logoff sessionDisconnect sessionReconnect displayLock displayUnlock startScreenSaver stopScreenSaver" \
            "LogonType:interactive batch service remoteInteractive"; do
    name=${type%%:*}
    cases=$(for value in ${type#*:}; do printf '    case .%s: return "%s"\n' "$value" "$value"; done)
    cat > "$dir/Sources/outside/main.swift" <<SWIFT
import SENSClient
func name(_ value: $name) -> String {
    switch value {
$cases
    }
}
print($name.allCases.map(name))
SWIFT
    if out=$(build); then
        echo "client-surface: a switch over $name without default compiles: a value added later would break it" >&2
        exit 1
    fi
    if ! printf '%s\n' "$out" | grep -q "switch must be exhaustive"; then
        printf '%s\n' "$out" | tail -20
        echo "client-surface: the switch over $name failed, but not for want of a default" >&2
        exit 1
    fi
done
echo "client-surface: a switch over EventKind or LogonType needs a default"
echo "client-surface: SENSEvent, EventKind, EventTime and SENSClient are API; SessionTracker, EventSequencer, SubscriberQueue, OutgoingLine, RememberedSessions and WireFormat cannot be named"
