#!/bin/sh
# Builds and unit-tests what Swift 6.0 builds of sensd (Package.swift: the programs, the libraries, their
# unit tests) with Debian 13's own compiler, swiftlang 6.0.3, inside a Debian 13 container with no network:
# what a distribution's offline build sees. The dependencies are vendored the way README.md ("Swift
# versions") tells a packager to: the manifest, as Swift 6.0 reads it, names them; each is cloned here, where
# the network (or this machine's package mirror) is, into the container's /vendor; the build inside reads
# GitHub from there. Needs root, systemd-nspawn and mmdebstrap (scripts/install-deps.sh test). The root file
# system, Debian's swiftlang, git and libsystemd-dev on trixie, is built once (about a minute) and cached
# beside the end-to-end tier's.
set -eu
cd "$(dirname "$0")/.."

cache="${SENSD_E2E_CACHE:-/var/cache/sensd-e2e}"
packages="swiftlang,libsystemd-dev,pkg-config,libc6-dev,libstdc++-14-dev,git,ca-certificates"
key=$(printf 'trixie %s' "$packages" | sha256sum | cut -c1-12)
tarball="$cache/rootfs-trixie-swiftlang-$key.tar"
if [ ! -e "$tarball" ]; then
    mkdir -p "$cache"
    echo "distro-build: building the Debian 13 root file system with swiftlang into $tarball"
    mmdebstrap --variant=minbase --include="$packages" trixie "$tarball.partial.tar" >/dev/null
    mv "$tarball.partial.tar" "$tarball"
fi

work=$(mktemp -d /var/tmp/sensd-distro-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
tar -C "$work/root" -xf "$tarball"
# The tree as git knows it (the working copy's contents), without any build products.
mkdir -p "$work/root/build/sensd"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null | tar -C "$work/root/build/sensd" -xf -

# Debian's swift driver finds its runtime only through LD_LIBRARY_PATH (its binaries carry no RUNPATH for
# it); without /proc the compiler dies of signal 4, which nspawn provides. --private-network: nothing is
# fetched from outside, so a dependency that was not vendored fails the build.
inside() {
    systemd-nspawn -q -D "$work/root" -M sensd-distro-build --register=no --keep-unit --private-network --as-pid2 \
        --chdir=/build/sensd -E HOME=/root -E LD_LIBRARY_PATH=/usr/libexec/swift/lib/swift/linux -- /bin/bash -c "$1"
}

# Every package of the dependency graph (transitive ones included), as this machine's Swift resolves it,
# cloned whole (tags and all) into /vendor/OWNER/NAME: the build inside picks the releases Swift 6.0 reads.
urls=$(swift package show-dependencies --format json 2>/dev/null | python3 -c '
import json, sys
def walk(node):
    for d in node.get("dependencies", []):
        print(d["url"])
        walk(d)
walk(json.load(sys.stdin))' | sort -u)
# SENSD_VENDOR_FROM=DIR takes DIR/OWNER/NAME instead, where it exists: a packager's own copies with more
# releases than this machine's package mirror holds (README.md, "Swift versions").
for url in $urls; do
    path=${url#https://github.com/}
    source=$url
    if [ -n "${SENSD_VENDOR_FROM:-}" ] && [ -e "$SENSD_VENDOR_FROM/$path" ]; then source="$SENSD_VENDOR_FROM/$path"; fi
    echo "distro-build: vendoring $url from $source"
    git clone --quiet --mirror "$source" "$work/root/vendor/$path"
done

# Whether a vendored package has a release Swift 6.0 can read: a Package.swift of tools 6.0 or lower, or a
# Package@swift-6.0.swift (or an earlier one). This machine's offline package copies hold one release of
# each, and swift-log 1.16.2, swift-service-lifecycle 2.13.0, swift-prometheus 2.4.1 and swift-metrics 2.13.0
# declare tools 6.2 and have no such manifest: then the program that needs one is left out of the build, and
# this says so; everything else is still built and tested.
readable() {
    repo="$work/root/vendor/$1"
    [ -d "$repo" ] || repo="$repo.git"
    for tag in $(git -C "$repo" tag); do
        # A version-specific manifest for 6.0 or earlier (Package@swift-5.8.swift, ...) is one SwiftPM 6.0 reads.
        if git -C "$repo" ls-tree --name-only "$tag" | grep -Eq '^Package@swift-(5(\.[0-9]+)*|6(\.0)*)\.swift$'; then return 0; fi
        version=$(git -C "$repo" show "$tag:Package.swift" | sed -n '1s/.*swift-tools-version: *\([0-9.]*\).*/\1/p')
        case "$version" in 5.*|6.0|6.0.*) return 0 ;; esac
    done
    echo "distro-build: NOT BUILDING $2: no release of $1 here is one Swift 6.0 reads (tags: $(git -C "$repo" tag | tr '\n' ' '))"
    return 1
}
leave_out=""
{ readable apple/swift-log sensd && readable apple/swift-collections sensd; } || leave_out="$leave_out SENSD_WITHOUT_DAEMON=1"
{ readable apple/swift-log sensd-hooks && readable swift-server/swift-service-lifecycle sensd-hooks \
    && readable apple/swift-async-algorithms sensd-hooks; } || leave_out="$leave_out SENSD_WITHOUT_HOOKS=1"
{ readable swift-server/swift-prometheus sensd-exporter && readable apple/swift-metrics sensd-exporter; } || leave_out="$leave_out SENSD_WITHOUT_EXPORTER=1"

inside "
    set -eu
    export HOME=/root $leave_out"'
    set -eu
    git config --global url.file:///vendor/.insteadOf https://github.com/
    swift --version 2>&1 | head -n 1
    swift build --build-tests > /build/build.log 2>&1 || { cat /build/build.log; exit 1; }
    swift test --skip-build > /build/test.log 2>&1 || { cat /build/test.log; exit 1; }
    grep -E "Test run with|Executed [0-9]+ tests" /build/test.log | tail -n 2
    # Which releases Swift 6.0 took.
    swift package show-dependencies 2>/dev/null | sed -n "s/.*[-─] \([a-z-]*\)<[^@]*@\([0-9.]*\)>.*/  \1 \2/p" | sort -u
    # The programs run: the hook runner checks the shipped example rules.
    .build/debug/sensctl --version
    if [ -x .build/debug/sensd ]; then .build/debug/sensd --version; fi
    if [ -x .build/debug/sensd-exporter ]; then .build/debug/sensd-exporter --help | head -n 1; fi
    if [ -x .build/debug/sensd-hooks ]; then .build/debug/sensd-hooks --check --rules-directory docs/examples; fi
'
if [ -z "$leave_out" ]; then
    echo "distro-build: every program, the libraries and their unit tests build and pass with Debian 13's swiftlang, offline"
else
    echo "distro-build: what is not left out above builds and passes with Debian 13's swiftlang, offline; left out:$leave_out"
fi
