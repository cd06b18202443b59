#!/usr/bin/env python3
"""Generates the state directory a given sensd build leaves behind, for the upgrade tests: that build's sensd
runs against the logind stand-in on a private dbus-daemon, sessions come and go, some stay open, and sensd is
stopped cleanly. Nothing in the output is written by hand.

    scripts/make-state-fixture.py BUILD_DIR OUT_DIR

BUILD_DIR holds that version's `sensd` and `logind-standin` (e.g. a `swift build` of tag v0.1.0).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

build, out = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="sensd-fixture-")
config = f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><listen>unix:path={work}/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/>
<allow send_type="method_call"/><allow send_type="signal"/><allow send_type="method_return"/><allow send_type="error"/>
<allow receive_type="method_call"/><allow receive_type="signal"/><allow receive_type="method_return"/><allow receive_type="error"/>
</policy></busconfig>"""
open(f"{work}/bus.conf", "w").write(config)
bus = subprocess.Popen(["dbus-daemon", f"--config-file={work}/bus.conf", "--nofork", "--print-address=1"], stdout=subprocess.PIPE, text=True)
env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.stdout.readline().strip())
standin = subprocess.Popen([f"{build}/logind-standin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
assert standin.stdout.readline().startswith("ready")


def logind(command):
    standin.stdin.write(command + "\n")
    standin.stdin.flush()
    answer = standin.stdout.readline()
    assert answer.startswith("ok"), (command, answer)


state = f"{work}/state"
sensd = subprocess.Popen([f"{build}/sensd", "--socket", f"{work}/s.sock", "--state-directory", state, "--session-files", "no"],
                         env=env, stderr=open(f"{work}/sensd.log", "w"))
while not os.path.exists(f"{work}/s.sock"):
    time.sleep(0.05)
# Sessions that end, one with a lock and an unlock, and two that stay open across the upgrade.
logind("open c1 1000 alice")
logind("wait-asked c1")
logind("set c1 LockedHint true")
logind("set c1 LockedHint false")
logind("burst 20 b 1001 bob")
logind("open c2 1002 carol")
logind("open c3 1000 alice")
logind("wait-asked c2")
logind("wait-asked c3")
logind("close c1")
logind("open c4 1003 dave")
logind("wait-asked c4")
# Wait for the last event to be logged: the hello line's lastSeq counts it.
import json, socket
while True:
    s = socket.socket(socket.AF_UNIX)
    s.connect(f"{work}/s.sock")
    hello = json.loads(s.makefile().readline())
    s.close()
    if hello["lastSeq"] >= 68:
        break
    time.sleep(0.05)
sensd.send_signal(signal.SIGTERM)
sensd.wait()
standin.stdin.close()
standin.wait()
bus.kill()
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(state, out)
print(f"{out}: the state sensd in {build} left, lastSeq {hello['lastSeq']}, version {hello['version']}")
shutil.rmtree(work)
