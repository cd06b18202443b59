"""End to end: the installed sensd, started by systemd from its unit, against a real systemd-logind with
real PAM logins (su, runuser, ssh); what plain socket subscribers (socat, a bare Python socket) receive."""

import json
import time

from container import SHARE, login_command, read_lines, replay_everything, wait_until

USERS = ["alice", "bob", "carol"]
SOCKET = "/run/sensd/events.sock"
# One line per session, written by the session itself: "<XDG_SESSION_ID> <user> <uid> <how>".
SESSIONS = f"{SHARE}/sessions.txt"


def start_subscribers(c, tag):
    """Two subscribers that are not the project's code: socat, and a Python socket reading raw bytes."""
    files = {
        "socat": f"{SHARE}/{tag}-socat.jsonl",
        "python": f"{SHARE}/{tag}-python.jsonl",
    }
    c.spawn(f"exec socat -u UNIX-CONNECT:{SOCKET} CREATE:{files['socat']}")
    c.spawn(
        "exec python3 -c 'import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f=open(sys.argv[2],\"wb\",0)\n"
        "while True:\n"
        "    b=s.recv(65536)\n"
        "    if not b: break\n"
        "    f.write(b)\n"
        f"' {SOCKET} {files['python']}")
    paths = {name: c.path(f) for name, f in files.items()}
    for name, p in paths.items():
        wait_until(lambda: read_lines(p), f"the hello line at the {name} subscriber")
        assert json.loads(read_lines(p)[0])["hello"] == "sensd"
    return paths


def logoffs(path):
    return [e for e in map(json.loads, read_lines(path)) if e.get("event") == "Logoff"]


def session_command(how, user, hold):
    return login_command(how, user, hold, SESSIONS)


def test_every_logoff_reaches_every_plain_subscriber_exactly_once(container, record):
    c = container
    c.add_users(*USERS)
    uids = {u: c.uid(u) for u in USERS}

    # Every session appends its line here; made by root so that the sticky share lets all users append.
    c.run(f"install -m 666 /dev/null {SESSIONS}")
    # A session that predates the daemon: it must still be reported with its user when it ends.
    c.run(f"mkfifo {SHARE}/predate.fifo")
    c.spawn(f"su - alice -c 'echo \"$XDG_SESSION_ID $(id -un) $(id -u) su\" >> {SESSIONS}; read x < {SHARE}/predate.fifo'")
    wait_until(lambda: read_lines(c.path(SESSIONS)), "the predating session")
    predating = read_lines(c.path(SESSIONS))[0].split()[0]

    c.run("systemctl enable --now sensd.service")  # Type=notify: returns once sensd said READY=1
    assert c.run("systemctl is-active sensd.service").stdout.strip() == "active"
    pid = c.main_pid("sensd.service")
    assert c.run(f"stat -c %a {SOCKET}").stdout.strip() == "666"
    subscribers = start_subscribers(c, "burst")
    record["rss_idle_kib"] = c.rss_kib(pid)

    c.run(f"echo done > {SHARE}/predate.fifo")

    # 90 su/runuser sessions for three users and 3 ssh logins, all open at the same time.
    hold = f"{SHARE}/release"
    launches = []
    for i in range(90):
        launches.append(session_command("su" if i % 2 == 0 else "runuser", USERS[i % 3], hold))
    for user in USERS:
        launches.append(session_command("ssh", user, hold))
    script = "\n".join(f"({cmd}) &" for cmd in launches) + "\nwait\n"
    burst = c.spawn(script)
    expected_total = 1 + len(launches)
    wait_until(lambda: len(read_lines(c.path(SESSIONS))) >= expected_total, "every session to start", timeout=120)
    concurrent = int(c.run("loginctl list-sessions --no-legend | wc -l").stdout)
    assert concurrent >= 90, f"only {concurrent} sessions open at once"
    record["sessions_open_at_once"] = concurrent
    started = time.monotonic()
    c.run(f"touch {hold}")
    burst.wait(timeout=120)
    assert burst.returncode == 0

    expected = {}
    for line in read_lines(c.path(SESSIONS)):
        sid, user, uid, how = line.split()
        assert sid not in expected, f"logind gave id {sid} twice"
        expected[sid] = (user, int(uid), how)
    assert len(expected) == expected_total
    assert {how for _, _, how in expected.values()} == {"su", "runuser", "ssh"}

    for name, path in subscribers.items():
        wait_until(lambda: len(logoffs(path)) >= expected_total, f"every Logoff at the {name} subscriber", timeout=60)
    record["burst_seconds_until_last_logoff"] = round(time.monotonic() - started, 3)
    record["rss_after_burst_kib"] = c.rss_kib(pid)

    log = replay_everything(c)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1)), "the log's seqs are not consecutive"
    for name, path in subscribers.items():
        events = logoffs(path)
        got = [e["sessionId"] for e in events]
        assert sorted(got) == sorted(expected), f"{name}: sessions differ: missing {set(expected) - set(got)}, extra {set(got) - set(expected)}"
        assert len(got) == len(set(got)), f"{name}: a Logoff arrived twice"
        for e in events:
            user, uid, how = expected[e["sessionId"]]
            assert "unresolved" not in e, f"{name}: unresolved user on a real login: {e}"
            assert (e["userName"], e["uid"]) == (user, uid), f"{name}: wrong user for {how} session: {e}"
            assert e["time"].endswith("Z") and len(e["time"]) == 27
        everything = [json.loads(line) for line in read_lines(path)[1:]]
        seqs = [e["seq"] for e in everything]
        # A plain subscriber gets every event but the service managers' (Debian 13): exactly the log's.
        logged = [e for e in log if seqs[0] <= e["seq"] <= seqs[-1] and not e.get("class", "").startswith("manager")]
        assert everything == logged, f"{name}: the stream is not every event of the log but the service managers'"
        # The whole family, per session: Logon (for sessions born after the subscriber connected),
        # LogoffInitiated, Logoff, once each and in that order.
        for sid, (user, uid, how) in expected.items():
            kinds = [e["event"] for e in everything if e["sessionId"] == sid]
            wanted = ["LogoffInitiated", "Logoff"] if sid == predating else ["Logon", "LogoffInitiated", "Logoff"]
            assert kinds == wanted, f"{name}: {how} session {sid}: {kinds}"
        record[f"logoffs_at_{name}"] = len(events)
        record[f"events_at_{name}"] = len(everything)
    record["sessions_in_burst"] = expected_total
    record["users"] = {u: uids[u] for u in USERS}
    # Nothing else was logged at warning level or above: no unresolved user, no ignored signal.
    warnings = c.run("journalctl SYSLOG_IDENTIFIER=sensd -p warning --no-pager -q -o cat", check=False).stdout.strip()
    assert warnings == "", warnings


def test_look_alike_signals_on_the_real_system_bus_produce_no_event(container):
    c = container
    c.run("systemctl start sensd.service")
    subscribers = start_subscribers(c, "spoof")
    before = {n: len(logoffs(p)) for n, p in subscribers.items()}
    c.add_users("alice")
    # A live session whose removal a spoofer will claim.
    c.run(f"mkfifo {SHARE}/victim.fifo")
    c.run(f"rm -f {SHARE}/victim.id")
    c.spawn(f"su - alice -c 'echo $XDG_SESSION_ID > {SHARE}/victim.id; read x < {SHARE}/victim.fifo'")
    victim = wait_until(lambda: c.path(f"{SHARE}/victim.id").read_text().strip() if c.path(f"{SHARE}/victim.id").exists() else "", "the victim session")
    path = f"/org/freedesktop/login1/session/{victim}"
    # Broadcast from root (the bus daemon's sender match drops it) and unicast to sensd's own connection
    # (only sensd's owner check can drop that).
    c.run(f"busctl emit /org/freedesktop/login1 org.freedesktop.login1.Manager SessionRemoved so {victim} {path}")
    sensd_name = c.run(f"busctl list --no-legend | awk '$2 == {c.main_pid('sensd.service')} && $1 ~ /^:/ {{print $1}}'").stdout.split()[0]
    c.run(f"busctl emit --destination={sensd_name} /org/freedesktop/login1 org.freedesktop.login1.Manager SessionRemoved so {victim} {path}")
    # Barrier: a real session that ends after the spoofs; its Logoff must be the next event.
    c.run("su - alice -c true")
    for name, p in subscribers.items():
        wait_until(lambda: len(logoffs(p)) > before[name], f"the barrier Logoff at {name}")
        assert logoffs(p)[before[name]]["sessionId"] != victim, f"{name}: spoofed Logoff delivered"
    warnings = c.run("journalctl SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat | grep 'not sent by systemd-logind'", check=False).stdout
    assert "ignored a SessionRemoved signal not sent by systemd-logind" in warnings
    # The real end of the victim session is reported once, with its user.
    c.run(f"echo done > {SHARE}/victim.fifo")
    for name, p in subscribers.items():
        wait_until(lambda: any(e["sessionId"] == victim for e in logoffs(p)), f"the victim's real Logoff at {name}")
        mine = [e for e in logoffs(p) if e["sessionId"] == victim]
        assert len(mine) == 1 and mine[0]["userName"] == "alice"


def test_stopping_the_unit_ends_the_stream_cleanly(container):
    c = container
    c.run("systemctl start sensd.service")
    subscribers = start_subscribers(c, "stop")
    # The socket belongs to sensd.socket, which outlives the service; stopping both removes it.
    c.run("systemctl stop sensd.service sensd.socket")
    assert c.run("systemctl is-active sensd.service", check=False).stdout.strip() == "inactive"
    assert c.run(f"test -e {SOCKET}", check=False).returncode != 0, "socket left behind"
    for name, p in subscribers.items():
        wait_until(lambda: json.loads(read_lines(p)[-1]).get("error") == "shutting-down", f"the shutting-down line at {name}")
    status = c.run("systemctl show -P ExecMainStatus sensd.service").stdout.strip()
    assert status == "0"


def test_sensd_run_by_hand_as_an_ordinary_user_works_on_a_systemd_host(container):
    """The README's promise: `sensd --socket /tmp/sensd.sock` needs no privilege on a host with systemd."""
    c = container
    c.add_users("alice", "bob")
    sock = f"{SHARE}/alice-sensd.sock"
    # setpriv, not su: no PAM, so this sensd runs without a session of its own.
    c.spawn(f"exec setpriv --reuid alice --regid alice --init-groups sensd --socket {sock} 2>{SHARE}/alice-sensd.log")
    wait_until(lambda: c.run(f"test -S {sock}", check=False).returncode == 0, "alice's sensd socket")
    out = f"{SHARE}/alice-sub.jsonl"
    c.spawn(f"exec setpriv --reuid bob --regid bob --init-groups socat -u UNIX-CONNECT:{sock} CREATE:{out}")
    wait_until(lambda: read_lines(c.path(out)), "the hello line from alice's sensd")
    c.run(f"rm -f {SHARE}/bob.id && install -m 666 /dev/null {SHARE}/bob.id")
    c.run(f"su - bob -c 'echo $XDG_SESSION_ID > {SHARE}/bob.id'")
    sid = c.path(f"{SHARE}/bob.id").read_text().strip()
    wait_until(lambda: logoffs(c.path(out)), "bob's Logoff from alice's sensd")
    e = logoffs(c.path(out))[0]
    assert (e["sessionId"], e["userName"], e["uid"]) == (sid, "bob", c.uid("bob"))
    assert c.run(f"stat -c %U {sock}").stdout.strip() == "alice"
