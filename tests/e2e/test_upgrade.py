"""End to end, an upgrade as a host would do it: the 0.1.0 package (built from its commit) installed with apt,
sessions made, then the current package installed over it while a `sensctl monitor --reconnect` and open
sessions carry on. Every old event must come back unchanged, seqs go on, and the monitor misses nothing."""

import json
import shlex
import shutil

from container import SHARE, read_lines, replay_everything, wait_until

USERS = ["alice", "bob"]
OLD_REPLAY = (
    "import json,socket,sys\n"
    "s=socket.socket(socket.AF_UNIX); s.connect('/run/sensd/events.sock'); f=s.makefile()\n"
    "last=json.loads(f.readline())['lastSeq']; s.sendall(b'{\"since\":0}\\n')\n"
    "out=[]\n"
    "while last and (not out or out[-1].get('seq',0)<last):\n"
    "    o=json.loads(f.readline())\n"
    "    if 'event' in o: out.append(o)\n"
    "print(json.dumps(out))\n")


def logins(c, name, n, hold=None):
    rec = f"{SHARE}/{name}.sessions"
    c.run(f"install -m 666 /dev/null {rec}")
    for i in range(n):
        user = USERS[i % 2]
        body = f'echo "$XDG_SESSION_ID {user}" >> {rec}' + (f"; while [ ! -e {hold} ]; do sleep 0.05; done" if hold else "")
        c.spawn(f"su - {user} -c '{body}'")
    wait_until(lambda: len(read_lines(c.path(rec))) >= n, f"the {name} logins")
    return {line.split()[0]: line.split()[1] for line in read_lines(c.path(rec))}


def test_installing_the_current_package_over_0_1_0_keeps_every_event_and_the_stream(bare_container, released_deb, record):
    c = bare_container
    for deb in (released_deb, c.deb):
        shutil.copy(deb, c.path(f"{SHARE}/{deb.name}"))
    c.run(f"cd {SHARE} && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./{released_deb.name}", timeout=300)
    assert c.run("sensctl --version").stdout.strip() == "0.1.0"
    for user in USERS:
        c.run(f"id {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}")
    monitor = f"{SHARE}/upgrade-monitor.jsonl"
    c.spawn(f"exec sensctl monitor --json --reconnect > {monitor} 2> {SHARE}/upgrade-monitor.err")
    wait_until(lambda: read_lines(c.path(monitor)), "the monitor's hello")
    before = logins(c, "before", 10)
    held = logins(c, "held", 2, hold=f"{SHARE}/upgrade-release")
    wait_until(lambda: set(before) <= {json.loads(l).get("sessionId") for l in read_lines(c.path(monitor)) if '"Logoff"' in l}, "the Logoffs before the upgrade")
    old = json.loads(c.run(f"python3 -c {shlex.quote(OLD_REPLAY)}").stdout)
    assert old and old[-1]["seq"] == len(old)

    out = c.run(f"cd {SHARE} && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./{c.deb.name}", timeout=300)
    assert "Unpacking sensd" in out.stdout
    assert c.run("sensctl --version").stdout.strip() != "0.1.0"
    assert c.run("systemctl is-active sensd.service sensd.socket").stdout.split() == ["active", "active"]
    # 0.1.0 had no hook runner: the upgrade enables and starts it as an install does.
    assert c.run("systemctl is-enabled sensd-hooks.service").stdout.strip() == "enabled"
    assert c.run("systemctl is-active sensd-hooks.service").stdout.strip() == "active"
    assert c.run("cat /var/lib/sensd/format").stdout.strip() == "1"
    wait_until(lambda: "reconnected" in c.path(f"{SHARE}/upgrade-monitor.err").read_text(), "the monitor to reconnect")
    c.run(f"touch {SHARE}/upgrade-release")
    after = logins(c, "after", 6)
    expected = {**before, **held, **after}
    everything = wait_until(lambda: (lambda l: l if set(expected) <= {e["sessionId"] for e in l if e["event"] == "Logoff"} else None)(replay_everything(c)),
                            "every Logoff in the log")
    # The old history, unchanged; seqs go on from it with nothing skipped.
    assert everything[:len(old)] == old
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    for sid, user in expected.items():
        ends = [e for e in everything if e["sessionId"] == sid and e["event"] == "Logoff"]
        assert len(ends) == 1 and ends[0]["userName"] == user and "observedLate" not in ends[0], (sid, ends)
        assert len([e for e in everything if e["sessionId"] == sid and e["event"] == "Logon"]) == 1, f"{sid}: a second Logon"
    # The monitor connected across the upgrade: shutting-down, then every Logoff once, seqs in order.
    lines = [json.loads(l) for l in read_lines(c.path(monitor))]
    assert any(o.get("error") == "shutting-down" for o in lines)
    wait_until(lambda: set(expected) <= {json.loads(l).get("sessionId") for l in read_lines(c.path(monitor)) if '"Logoff"' in l}, "every Logoff at the monitor")
    lines = [json.loads(l) for l in read_lines(c.path(monitor))]
    logoffs = [o["sessionId"] for o in lines if o.get("event") == "Logoff" and o["sessionId"] in expected]
    assert sorted(logoffs) == sorted(expected), "the monitor missed or repeated a Logoff"
    seqs = [o["seq"] for o in lines if "event" in o]
    assert seqs == sorted(set(seqs))
    record["upgrade_from_0_1_0"] = {"old_events": len(old), "events_after": len(everything) - len(old), "monitor_logoffs": len(logoffs)}
