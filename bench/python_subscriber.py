"""What users write today, as the python3-dbus tutorial shows it: subscribe to logind's signals with a GLib
main loop, look the user up when a session appears, print a line when it is removed. Each SessionRemoved of
PREFIX<index> is timestamped (CLOCK_MONOTONIC ns) when the handler runs, after the print.

    python3 python_subscriber.py PREFIX COUNT OUT [DONE]   (DBUS_SYSTEM_BUS_ADDRESS names the bus)
"""

import json
import signal
import sys
import time

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

prefix, count, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Optional: a file written once COUNT sessions were seen (for runs whose standard output nobody reads).
done_path = sys.argv[4] if len(sys.argv) > 4 else None
DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
users = {}
first = {}
wrong = 0


def session_new(session_id, path):
    try:
        session = bus.get_object("org.freedesktop.login1", path)
        users[str(session_id)] = str(session.Get("org.freedesktop.login1.Session", "Name", dbus_interface="org.freedesktop.DBus.Properties"))
    except dbus.DBusException:
        pass  # gone before we could ask: this client never learns who it was


def session_removed(session_id, path):
    global wrong
    sid = str(session_id)
    user = users.pop(sid, None)
    print(f"{user or '?'} logged off, session {sid}")
    if sid.startswith(prefix):
        first[int(sid[len(prefix):])] = time.monotonic_ns()
        if user is None:
            wrong += 1
        if len(first) == count:
            sys.__stdout__.write("done\n")
            sys.__stdout__.flush()
            if done_path:
                open(done_path, "w").write(f"{len(first)} {wrong}\n")


bus.add_signal_receiver(session_new, "SessionNew", "org.freedesktop.login1.Manager", "org.freedesktop.login1", "/org/freedesktop/login1")
bus.add_signal_receiver(session_removed, "SessionRemoved", "org.freedesktop.login1.Manager", "org.freedesktop.login1", "/org/freedesktop/login1")
loop = GLib.MainLoop()


def stop(*_):
    with open(out_path, "w") as f:
        f.write(json.dumps({"received": len(first), "wrong": wrong}) + "\n")
        for i, t in sorted(first.items()):
            f.write(f"{i} {t} {t}\n")
    loop.quit()


GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop)
sys.stdout = open("/dev/null", "w")  # the print is part of the work, not of the measurement's output
print("x")
sys.__stdout__.write("ready\n")
sys.__stdout__.flush()
loop.run()
