"""End to end, the rest of the SENS logon family against the real logind: Logon fields of an ssh login,
LogoffInitiated of a session whose processes linger, the lock and screensaver pairs, a logind restart, and a
subscriber filtering on one user. Seat switching needs a seat, which a container has not: the integration
tier drives it through the logind stand-in."""

import json

import pytest

from container import DEBIAN, SHARE, SSH, wait_until

SOCKET = "/run/sensd/events.sock"


def lines(path):
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def events_of(path, sid):
    return [e for e in lines(path) if e.get("sessionId") == sid]


def subscribe(c, name, request="{}"):
    """A plain Python socket client in the container that sends `request` and writes every line it gets."""
    out = f"{SHARE}/{name}.jsonl"
    c.spawn(
        "exec python3 -c 'import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[3].encode()+b\"\\n\")\n"
        "f=open(sys.argv[2],\"wb\",0)\n"
        "while True:\n"
        "    b=s.recv(65536)\n"
        "    if not b: break\n"
        "    f.write(b)\n"
        f"' {SOCKET} {out} '{request}'")
    path = c.path(out)
    wait_until(lambda: any("accepted" in line for line in lines(path)), f"{name} to be subscribed")
    return path


class HeldSession:
    """A real su session kept open until release(); its id is known once it has started."""

    def __init__(self, c, user, name, env=""):
        self.c, self.fifo, idfile = c, f"{SHARE}/{name}.fifo", f"{SHARE}/{name}.id"
        c.run(f"rm -f {self.fifo} {idfile} && mkfifo {self.fifo} && chmod 666 {self.fifo} && install -m 666 /dev/null {idfile}")
        c.spawn(f"{env} su - {user} -c 'echo $XDG_SESSION_ID > {idfile}; read x < {self.fifo}'")
        self.id = wait_until(lambda: c.path(idfile).read_text().strip(), f"{name}'s session")
        out = c.run(f"busctl call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager GetSession s {self.id}").stdout
        self.path = out.split()[1].strip('"')

    def call(self, method, *args):
        self.c.run(f"busctl call org.freedesktop.login1 {self.path} org.freedesktop.login1.Session {method} {' '.join(args)}")

    def release(self):
        self.c.run(f"echo bye > {self.fifo}")


def test_ssh_login_is_a_remote_interactive_logon_with_its_fields(container):
    c = container
    c.add_users("alice")
    c.run("systemctl enable --now sensd.service")
    sub = subscribe(c, "ssh")
    c.run(f"install -m 666 /dev/null {SHARE}/ssh.id")
    c.run(f"{SSH} alice@127.0.0.1 'echo $XDG_SESSION_ID > {SHARE}/ssh.id'")
    sid = c.path(f"{SHARE}/ssh.id").read_text().strip()
    wait_until(lambda: any(e["event"] == "Logoff" for e in events_of(sub, sid)), "the ssh session's Logoff")
    logon, initiated, logoff = events_of(sub, sid)
    assert [logon["event"], initiated["event"], logoff["event"]] == ["Logon", "LogoffInitiated", "Logoff"]
    assert logon["remote"] is True and logon["remoteHost"] == "127.0.0.1" and logon["service"] == "sshd"
    assert logon["logonType"] == "RemoteInteractive" and logon["logonTypeCode"] == 10
    assert logon["userName"] == "alice" and logon["class"] == "user" and logon["leader"] > 0
    assert logon["host"] == c.run("hostname").stdout.strip()
    assert logon["sessionStart"] <= logon["time"]
    # Remembered from the start: the Logoff carries the same fields although logind has forgotten the session.
    for key in ("remote", "remoteHost", "service", "logonType", "class", "leader", "sessionStart", "userName", "uid"):
        assert logoff[key] == logon[key], key
    assert "" not in logon.values(), "absent values are omitted, never empty"


def test_lingering_processes_give_logoff_initiated_first_and_logoff_when_they_exit(container):
    c = container
    c.add_users("alice")
    c.run("systemctl start sensd.service")
    sub = subscribe(c, "linger")
    fifo = f"{SHARE}/linger.fifo"
    c.run(f"rm -f {fifo} && mkfifo {fifo} && chmod 666 {fifo} && install -m 666 /dev/null {SHARE}/linger.id")
    # The shell exits at once; the process it left behind keeps the session "closing" (KillUserProcesses=no).
    c.run(f"su - alice -c 'setsid sh -c \"read x < {fifo}\" </dev/null >/dev/null 2>&1 & echo $XDG_SESSION_ID > {SHARE}/linger.id'")
    sid = c.path(f"{SHARE}/linger.id").read_text().strip()
    wait_until(lambda: any(e["event"] == "LogoffInitiated" for e in events_of(sub, sid)), "LogoffInitiated while the process lingers")
    assert c.run(f"loginctl show-session {sid} -p State --value").stdout.strip() == "closing"
    assert [e["event"] for e in events_of(sub, sid)] == ["Logon", "LogoffInitiated"], "no Logoff while processes remain"
    c.run(f"echo bye > {fifo}")
    wait_until(lambda: any(e["event"] == "Logoff" for e in events_of(sub, sid)), "Logoff once the process is gone")
    kinds = [e["event"] for e in events_of(sub, sid)]
    assert kinds == ["Logon", "LogoffInitiated", "Logoff"]
    logon, initiated, logoff = events_of(sub, sid)
    assert initiated["time"] < logoff["time"] and logoff["userName"] == "alice"
    assert logon["class"] == "background" and logon["logonType"] == "Batch"


def test_lock_and_idle_hints_give_the_display_lock_and_screensaver_pairs(container):
    c = container
    c.add_users("bob")
    c.run("systemctl start sensd.service")
    sub = subscribe(c, "hints")
    # A graphical user session: logind v252 takes idle hints only from those.
    s = HeldSession(c, "bob", "hints", env="XDG_SESSION_TYPE=x11 XDG_SESSION_CLASS=user")
    wait_until(lambda: events_of(sub, s.id), "bob's Logon")
    c.run(f"loginctl lock-session {s.id}")  # asks the session to lock; only its LockedHint says it did
    s.call("SetLockedHint", "b", "true")
    s.call("SetLockedHint", "b", "true")
    s.call("SetLockedHint", "b", "false")
    s.call("SetIdleHint", "b", "true")
    s.call("SetIdleHint", "b", "false")
    s.release()
    wait_until(lambda: any(e["event"] == "Logoff" for e in events_of(sub, s.id)), "bob's Logoff")
    kinds = [e["event"] for e in events_of(sub, s.id)]
    assert kinds == ["Logon", "DisplayLock", "DisplayUnlock", "StartScreenSaver", "StopScreenSaver", "LogoffInitiated", "Logoff"]
    assert all(e["userName"] == "bob" and e["type"] == "x11" for e in events_of(sub, s.id))


def test_logind_restart_repeats_no_logon_and_loses_no_logoff(container):
    c = container
    c.add_users("alice", "bob")
    c.run("systemctl start sensd.service")
    sub = subscribe(c, "restart")
    held = [HeldSession(c, "alice", "r1"), HeldSession(c, "bob", "r2")]
    for s in held:
        wait_until(lambda: events_of(sub, s.id), "the Logon")
    c.run("systemctl restart systemd-logind.service")
    wait_until(lambda: c.run("journalctl SYSLOG_IDENTIFIER=sensd -q -o cat | grep -c 'systemd-logind is on the bus'", check=False).stdout.strip() not in ("", "0"),
               "sensd to resynchronise with the new logind")
    # Barrier: a session opened after the restart. logind answers in order, so once its Logoff is here, sensd
    # has already read the details of every re-announced session; a duplicate Logon would be here too.
    c.run(f"install -m 666 /dev/null {SHARE}/after.id && su - alice -c 'echo $XDG_SESSION_ID > {SHARE}/after.id'")
    after = c.path(f"{SHARE}/after.id").read_text().strip()
    wait_until(lambda: any(e["event"] == "Logoff" for e in events_of(sub, after)), "the barrier session's Logoff")
    for s in held:
        assert [e["event"] for e in events_of(sub, s.id)] == ["Logon"], "a re-announced session was logged on again"
    for s in held:
        s.release()
    for s in held:
        wait_until(lambda: any(e["event"] == "Logoff" for e in events_of(sub, s.id)), "the Logoff after the restart")
        assert [e["event"] for e in events_of(sub, s.id)] == ["Logon", "LogoffInitiated", "Logoff"]


def test_subscriber_filtering_on_one_user_receives_only_that_users_events(container):
    c = container
    c.add_users("alice", "bob")
    c.run("systemctl start sensd.service")
    only_bob = subscribe(c, "only-bob", '{"users":["bob"]}')
    everyone = subscribe(c, "everyone", "{}")
    for user in ("alice", "bob", "alice"):
        c.run(f"su - {user} -c true")
    wait_until(lambda: sum(e.get("event") == "Logoff" for e in lines(everyone)) >= 3, "three Logoffs")
    # A barrier that bob's filter lets through: once it arrives, everything before it has been delivered.
    c.run("su - bob -c true")
    wait_until(lambda: sum(e.get("event") == "Logoff" for e in lines(only_bob)) >= 2, "bob's second Logoff")
    got = [e for e in lines(only_bob) if "event" in e]
    assert got and all(e["userName"] == "bob" for e in got)
    assert [e["event"] for e in got] == ["Logon", "LogoffInitiated", "Logoff"] * 2
    assert sum(e.get("userName") == "alice" for e in lines(everyone)) == 6


def test_run0_sessions_carry_who_ran_run0_and_empower_says_elevated(container, record):
    """run0 (systemd 256 and later) opens a session for its target user; who ran it is on the transient service
    that holds the session's leader, where systemd keeps it for the journal. Debian 12 has no run0."""
    if DEBIAN < 13:
        pytest.skip("run0 came with systemd 256; Debian 12 has 252")
    c = container
    c.add_users("alice")
    c.run("systemctl start sensd.service")
    sub = subscribe(c, "run0", '{"events":["Logon","Logoff"]}')

    def held_run0(name, options):
        fifo, idfile = f"{SHARE}/{name}.fifo", f"{SHARE}/{name}.id"
        c.run(f"rm -f {fifo} {idfile} && mkfifo {fifo} && chmod 666 {fifo} && install -m 666 /dev/null {idfile}")
        # Held open until its Logon is out: sensd asks systemd about the leader, which must still be running.
        c.spawn(f"run0 {options} sh -c 'echo $XDG_SESSION_ID > {idfile}; read x < {fifo}'")
        sid = wait_until(lambda: c.path(idfile).read_text().strip(), f"{name}'s session")
        wait_until(lambda: any(e["event"] == "Logon" for e in events_of(sub, sid)), f"{name}'s Logon")
        c.run(f"echo bye > {fifo}")
        wait_until(lambda: any(e["event"] == "Logoff" for e in events_of(sub, sid)), f"{name}'s Logoff")
        return events_of(sub, sid)

    # Several: logind moves the leader out of run0's service into the session's scope as it registers the
    # session, and the lookup once raced that move (it asked which unit holds the leader; now it finds the
    # service whose MainPID the leader is).
    for i in range(5):
        logon, logoff = held_run0(f"run0-alice-{i}", "-u alice")
        assert logon["userName"] == "alice" and logon["service"] == "systemd-run0", logon
        assert logon["invokedBy"] == "root" and logon["invokedByUid"] == 0 and "elevated" not in logon, logon
        assert logoff["invokedBy"] == "root", "remembered from the Logon"
    record[f"debian{DEBIAN}_run0_logon"] = {k: logon.get(k) for k in ("userName", "class", "service", "logonType", "invokedBy", "invokedByUid")}
    if DEBIAN >= 14:
        logon, _ = held_run0("run0-empower", "--empower")
        assert logon["userName"] == "root" and logon["invokedBy"] == "root" and logon["elevated"] is True, logon
