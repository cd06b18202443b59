#!/bin/sh
# Builds and unit-tests what Swift 6.0 builds of sensd (Package.swift: sensctl, sensd-hooks, the libraries,
# their tests) with Debian 13's own compiler, swiftlang 6.0.3, inside a Debian 13 container with no network:
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

# The dependencies Swift 6.0 sees in Package.swift, cloned whole (tags and all) into /vendor/OWNER/NAME.
urls=$(inside 'swift package dump-package' | python3 -c '
import json, sys
for d in json.load(sys.stdin)["dependencies"]:
    for kind in d.get("sourceControl", []):
        print(kind["location"]["remote"][0]["urlString"])')
for url in $urls; do
    path=${url#https://github.com/}
    echo "distro-build: vendoring $url"
    git clone --quiet --mirror "$url" "$work/root/vendor/$path"
done

# sensd needs a swift-log release before 1.11 with Swift 6.0 (later ones declare tools 6.2). Where the only
# copy at hand has none (this machine's offline package set holds 1.16.2 alone), the daemon is left out of
# the build, and this says so; everything else is still built and tested.
daemon=yes
if [ -d "$work/root/vendor/apple/swift-log" ] && \
    ! git -C "$work/root/vendor/apple/swift-log" tag | awk -F. '$1 == 1 && $2 < 11 { found = 1 } END { exit !found }'; then
    daemon=no
    echo "distro-build: NOT BUILDING sensd: the swift-log at hand has only $(git -C "$work/root/vendor/apple/swift-log" tag | tr '\n' ' ')and Swift 6.0 needs one before 1.11 (SENSD_WITHOUT_DAEMON=1)"
fi

inside "
    set -eu
    $([ "$daemon" = no ] && echo "export SENSD_WITHOUT_DAEMON=1")"'
    set -eu
    git config --global url.file:///vendor/.insteadOf https://github.com/
    swift --version 2>&1 | head -n 1
    swift build --build-tests > /build/build.log 2>&1 || { cat /build/build.log; exit 1; }
    swift test --skip-build > /build/test.log 2>&1 || { cat /build/test.log; exit 1; }
    grep -E "Test run with|Executed [0-9]+ tests" /build/test.log | tail -n 2
    # The programs run: the hook runner checks the shipped example rules.
    .build/debug/sensctl --version
    if [ -x .build/debug/sensd ]; then .build/debug/sensd --version; fi
    .build/debug/sensd-hooks --check --rules-directory docs/examples
'
if [ "$daemon" = yes ]; then
    echo "distro-build: sensd, sensctl, sensd-hooks, the libraries and their tests build and pass with Debian 13's swiftlang, offline"
else
    echo "distro-build: sensctl, sensd-hooks, the libraries and their tests build and pass with Debian 13's swiftlang, offline; sensd was not built (above)"
fi
