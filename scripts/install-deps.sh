#!/bin/sh
# Installs the Debian packages sensd needs: `build` for compiling, `test` for every test tier and the demo.
# Does nothing when they are all present; otherwise needs root (apt-get).
set -eu

# python3 turns docs/protocol.md into the sensd-protocol(7) man page.
build="libsystemd-dev python3"
# dbus: a private dbus-daemon for the integration tier. systemd-container and mmdebstrap: a throwaway
# container with a real systemd-logind. python3-pytest: the end-to-end driver. python3-venv: the ECS and
# OCSF schema check (make formats-check) installs its Python packages into one. systemd-journal-remote:
# journal files with audit records for the integration tier (a container gets no kernel audit).
test="dbus systemd-container mmdebstrap python3 python3-pytest python3-venv systemd-journal-remote"
# The benchmark's "what users write today" subscriber: python3-dbus with a GLib main loop.
bench="dbus python3 python3-dbus python3-gi"

wanted=""
for set in "$@"; do
    case "$set" in
        build) wanted="$wanted $build" ;;
        test) wanted="$wanted $test" ;;
        bench) wanted="$wanted $bench" ;;
        *) echo "install-deps.sh: unknown set '$set' (build, test, bench)" >&2; exit 2 ;;
    esac
done

missing=""
for p in $wanted; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: missing Debian packages:$missing; run as root or install them" >&2
    exit 1
fi
echo "install-deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
