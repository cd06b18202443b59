#!/bin/sh
# Builds and unit-tests what Swift 6.0 builds of sensd (Package.swift: the SENSClient and SENSHooks libraries,
# SENSCore, and their tests) with Debian 13's own compiler, swiftlang 6.0.3, inside a Debian 13 container
# with no network: what a distribution's offline build of the libraries sees. Needs root, systemd-nspawn and
# mmdebstrap (scripts/install-deps.sh test). The root file system, Debian's swiftlang and libsystemd-dev on
# trixie, is built once (about a minute) and cached beside the end-to-end tier's.
set -eu
cd "$(dirname "$0")/.."

cache="${SENSD_E2E_CACHE:-/var/cache/sensd-e2e}"
packages="swiftlang,libsystemd-dev,pkg-config,libc6-dev,libstdc++-14-dev"
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
git ls-files -z | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null | tar -C "$work/root/build/sensd" -xf -

# Debian's swift driver finds its runtime only through LD_LIBRARY_PATH (its binaries carry no RUNPATH for
# it); without /proc the compiler dies of signal 4, which nspawn provides. --private-network: nothing is
# fetched, so a dependency that sneaked into the 6.0 manifest fails here.
systemd-nspawn -q -D "$work/root" -M sensd-distro-build --register=no --keep-unit --private-network --as-pid2 \
    --chdir=/build/sensd -E HOME=/root -E LD_LIBRARY_PATH=/usr/libexec/swift/lib/swift/linux \
    -- /bin/bash -c '
        set -eu
        swift --version 2>&1 | head -n 1
        swift build --build-tests > /build/build.log 2>&1 || { cat /build/build.log; exit 1; }
        swift test --skip-build > /build/test.log 2>&1 || { cat /build/test.log; exit 1; }
        grep -E "Test run with|Executed [0-9]+ tests" /build/test.log | tail -n 2
    '
echo "distro-build: the libraries and their tests build and pass with Debian 13's swiftlang, offline"
