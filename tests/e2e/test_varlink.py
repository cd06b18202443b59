"""End to end, the Varlink interface against a real logind and real PAM logins: systemd's own varlinkctl
(Debian 13 and testing; Debian 12's systemd 252 has none, and there a plain socket client speaks Varlink)
introspecting io.sensd.Events, following alice's Logoff as an ordinary user, resuming with since, listing the
sessions loginctl lists; and the hostile-user cases against the Varlink socket, sharing the JSON-lines
socket's limits."""

import json
import shlex
import shutil
from pathlib import Path

import pytest

from container import DEBIAN, SHARE, login_command, read_lines, sensd_stats, wait_until
from test_family import HeldSession

VARLINK = "/run/sensd/io.sensd.Events"
SOCKET = "/run/sensd/events.sock"
CLIENT = f"{SHARE}/varlink_client.py"
HAS_VARLINKCTL = DEBIAN >= 13


def replies(text):
    """Every JSON object in varlinkctl's output (one per reply, pretty or short)."""
    decoder, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)


def varlinkctl(c, args, user=None, check=True):
    prefix = f"runuser -u {user} -- " if user else ""
    return c.run(f"{prefix}varlinkctl {args}", check=check)


# A Varlink call by a plain Python client (Debian 12 has no varlinkctl): argv is the socket, the method, the
# parameters (JSON), "more" or "once", and what to print of each reply ("reply" or "parameters", as varlinkctl
# does), a line each, until a reply without continues.
PY_VARLINK = ("import json,socket,sys\n"
              "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
              "m={'method':sys.argv[2],'parameters':json.loads(sys.argv[3])}\n"
              "if sys.argv[4]=='more': m['more']=True\n"
              "s.sendall(json.dumps(m).encode()+b'\\0')\n"
              "buf=b''\n"
              "while True:\n"
              "    b=s.recv(65536)\n"
              "    if not b: break\n"
              "    buf+=b\n"
              "    *done,buf=buf.split(b'\\0')\n"
              "    for d in done:\n"
              "        r=json.loads(d); print(json.dumps(r if sys.argv[5]=='reply' else r.get('parameters')), flush=True)\n"
              "        if not r.get('continues'): sys.exit(0)\n")


def py_varlink_command(method, parameters, more, show, user=None):
    prefix = f"runuser -u {user} -- " if user else ""
    return (f"{prefix}python3 -c {shlex.quote(PY_VARLINK)} {VARLINK} {method} {shlex.quote(json.dumps(parameters or {}))} "
            f"{'more' if more else 'once'} {show}")


def python_call(c, method, parameters=None, more=False, user=None):
    """A Varlink call by the plain Python client: every reply, whole."""
    out = c.run(py_varlink_command(method, parameters, more, "reply", user=user)).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def follow(c, name, parameters, user):
    """A subscription that runs in the background, writing what it gets: varlinkctl where there is one."""
    out = f"{SHARE}/{name}.out"
    c.run(f"install -m 666 /dev/null {out}")
    if HAS_VARLINKCTL:
        c.spawn(f"runuser -u {user} -- varlinkctl call -E {VARLINK} io.sensd.Events.Subscribe {shlex.quote(json.dumps(parameters))} > {out} 2>&1")
    else:
        c.spawn(py_varlink_command("io.sensd.Events.Subscribe", parameters, True, "parameters", user=user) + f" > {out}")
    path = c.path(out)
    wait_until(lambda: any("state" in r for r in replies(path.read_text())), f"{name}'s subscription to start")
    return path


def test_varlinkctl_introspects_and_an_ordinary_user_follows_alices_logoff_and_resumes_with_since(container, record):
    c = container
    c.add_users("alice", "bob")
    c.run("systemctl enable --now sensd.service")
    mode = c.run(f"stat -c '%F %a' {VARLINK}").stdout.strip()
    assert mode == "socket 666", mode
    if HAS_VARLINKCTL:
        info = varlinkctl(c, f"info {VARLINK}", user="bob").stdout
        assert "io.sensd.Events" in info and "org.varlink.service" in info, info
        # introspect parses the description with systemd's own IDL parser before it prints it.
        idl = varlinkctl(c, f"introspect {VARLINK} io.sensd.Events", user="bob").stdout
        assert "interface io.sensd.Events" in idl and "method Subscribe(" in idl and "error EventsMissing(" in idl, idl
        record["varlinkctl_introspect_lines"] = len(idl.splitlines())
    else:
        info = python_call(c, "org.varlink.service.GetInfo")
        assert info[0]["parameters"]["interfaces"] == ["io.sensd.Events", "org.varlink.service"], info
    # bob, an ordinary user, follows alice's sessions.
    out = follow(c, "bob-follows-alice", {"users": ["alice"]}, user="bob")
    alice = HeldSession(c, "alice", "varlink-alice")
    alice.release()
    logoff = wait_until(lambda: next((r["event"] for r in replies(out.read_text()) if r.get("event", {}).get("event") == "Logoff"), None),
                        "alice's Logoff over Varlink")
    assert logoff["sessionId"] == alice.id and logoff["userName"] == "alice" and logoff["uid"] == c.uid("alice"), logoff
    events = [r["event"] for r in replies(out.read_text()) if "event" in r]
    assert {e["userName"] for e in events} == {"alice"} and [e["event"] for e in events][:1] == ["Logon"], events
    record["varlink_logoff"] = logoff
    # Resume from just before it, ending once caught up: the same event, byte for byte the JSON-lines one.
    since = logoff["seq"] - 1
    if HAS_VARLINKCTL:
        resumed = replies(varlinkctl(c, f"call --more {VARLINK} io.sensd.Events.Subscribe " + shlex.quote(json.dumps({"since": since, "live": False})), user="bob").stdout)
    else:
        resumed = [r["parameters"] for r in python_call(c, "io.sensd.Events.Subscribe", {"since": since, "live": False}, more=True, user="bob")]
    assert resumed[0]["state"]["fromSeq"] == logoff["seq"], resumed[0]
    assert [r["event"]["seq"] for r in resumed if "event" in r][:1] == [logoff["seq"]], resumed
    assert resumed[-1].get("endSeq") is not None and resumed[-1]["endSeq"] >= logoff["seq"], resumed[-1]
    # A since ahead of every event given out (a history reset) is a named error, not silence.
    ahead = {"since": logoff["seq"] + 100_000}
    if HAS_VARLINKCTL:
        failed = varlinkctl(c, f"call --more {VARLINK} io.sensd.Events.Subscribe " + shlex.quote(json.dumps(ahead)), user="bob", check=False)
        assert failed.returncode != 0 and "io.sensd.Events.NoSuchSeq" in failed.stdout + failed.stderr, failed
        record["varlinkctl_error"] = (failed.stdout + failed.stderr).strip()
    else:
        failed = python_call(c, "io.sensd.Events.Subscribe", ahead, more=True)
        assert failed[-1]["error"] == "io.sensd.Events.NoSuchSeq", failed


def test_list_sessions_matches_loginctl_and_the_registry_lists_the_interface_where_systemd_keeps_one(container, record):
    c = container
    c.add_users("alice", "bob", "carol")
    c.run("systemctl enable --now sensd.service")
    record_file, hold = f"{SHARE}/vl.sessions", f"{SHARE}/vl.release"
    c.run(f"install -m 666 /dev/null {record_file} && rm -f {hold}")
    procs = [c.spawn(login_command(how, user, hold, record_file)) for how, user in [("su", "alice"), ("runuser", "bob"), ("ssh", "carol")]]
    wait_until(lambda: len(read_lines(c.path(record_file))) >= 3, "three sessions to open", timeout=120)
    ids = {line.split()[0] for line in read_lines(c.path(record_file))}
    wait_until(lambda: ids <= {s["sessionId"] for s in list_sessions(c)}, "sensd to know the three sessions")
    listed = list_sessions(c)
    people = set()
    for sid in c.run("loginctl list-sessions --no-legend | awk '{print $1}'").stdout.split():
        cls = c.run(f"loginctl show-session {sid} -p Class --value", check=False).stdout.strip()
        if cls and cls not in ("manager", "manager-early"):
            people.add(sid)
    assert {s["sessionId"] for s in listed} == people, (listed, people)
    assert {s["userName"] for s in listed if s["sessionId"] in ids} == {"alice", "bob", "carol"}
    if HAS_VARLINKCTL:
        # With more: one reply per session.
        one_each = replies(varlinkctl(c, f"call --more {VARLINK} io.sensd.Events.ListSessions '{{}}'").stdout)
        assert {r["session"]["sessionId"] for r in one_each} == people, one_each
    record["varlink_list_sessions"] = sorted(people)
    c.run(f"touch {hold}")
    for p in procs:
        p.wait(timeout=60)
    registry = c.run("test -d /run/varlink/registry && echo yes || echo no").stdout.strip()
    link = c.run("readlink /run/varlink/registry/io.sensd.Events", check=False).stdout.strip()
    if registry == "yes":
        assert link == VARLINK, f"the registry exists but does not list sensd: {link!r}"
    # Where systemd keeps no registry, sensd.socket creates none (the link's directory does not exist).
    record["varlink_registry"] = link or "no registry on this release"


def list_sessions(c):
    if HAS_VARLINKCTL:
        return replies(varlinkctl(c, f"call {VARLINK} io.sensd.Events.ListSessions '{{}}'").stdout)[0]["sessions"]
    return python_call(c, "io.sensd.Events.ListSessions")[0]["parameters"]["sessions"]


def test_the_varlink_socket_shares_the_limits_and_refuses_bad_messages_clearly(container, record):
    c = container
    c.add_users("alice", "mallory", "bob")
    shutil.copy(Path(__file__).with_name("varlink_client.py"), c.path(CLIENT))
    c.run(f"chmod 644 {CLIENT}")
    c.run("systemctl enable --now sensd.service")
    pid = c.main_pid("sensd.service")
    stop = f"{SHARE}/vl-hold-stop"
    c.run(f"rm -f {stop}")
    # What is connected before mallory comes (the earlier tests' followers, and the stats request itself).
    base = sensd_stats(c)["subscribers"]
    # mallory holds 40 JSON-lines connections, then tries 100 Varlink ones: 24 are let in, the rest refused
    # with the limit named: one cap for both sockets.
    shutil.copy(Path(__file__).with_name("hostile_client.py"), c.path(f"{SHARE}/hostile_client.py"))
    c.spawn(f"runuser -u mallory -- python3 {SHARE}/hostile_client.py {SOCKET} hold 40 {stop} {SHARE}/vl-json.json")
    wait_until(lambda: c.path(f"{SHARE}/vl-json.json").exists(), "mallory's JSON-lines connections")
    c.spawn(f"runuser -u mallory -- python3 {CLIENT} {VARLINK} hold 100 {stop} {SHARE}/vl-hold.json")
    wait_until(lambda: c.path(f"{SHARE}/vl-hold.json").exists(), "mallory's Varlink connections", timeout=120)
    json_side = json.loads(c.path(f"{SHARE}/vl-json.json").read_text())
    varlink_side = json.loads(c.path(f"{SHARE}/vl-hold.json").read_text())
    assert json_side["hello"] == 40, json_side
    assert varlink_side["served"] == 24 and varlink_side["refused"] == 76, varlink_side
    assert varlink_side["limits"] == [64] and varlink_side["names"] == ["io.sensd.Events.TooManySubscribers"], varlink_side
    # bob is not mallory: he still gets in, on either socket.
    assert python_call(c, "org.varlink.service.GetInfo", user="bob")[0]["parameters"]["interfaces"]
    c.run(f"touch {stop}")
    # mallory's holders see the stop file and go: awaited, or her next connections would still meet her cap.
    wait_until(lambda: sensd_stats(c)["subscribers"] == base, f"mallory's 64 connections to close ({base} connections before them)")
    # Malformed, oversized, unfinished: each a named error or silence, never a crash.
    c.run(f"runuser -u mallory -- python3 {CLIENT} {VARLINK} probe {SHARE}/vl-probe.json", timeout=60)
    probe = json.loads(c.path(f"{SHARE}/vl-probe.json").read_text())
    assert probe["malformed"]["error"] == "io.sensd.Events.BadMessage" and probe["malformedClosed"], probe
    assert probe["oversized"]["error"] == "io.sensd.Events.MessageTooLong" and probe["oversized"]["parameters"]["limit"] == 4096, probe
    assert probe["withoutNulAtEof"] is None, probe
    assert probe["beforeNul"] == "nothing" and "interfaces" in probe["afterNul"]["parameters"], probe
    # A subscriber that never reads holds a bounded read-ahead and holds up no one: alice's Logoff still
    # reaches a reader at once.
    c.spawn(f"runuser -u mallory -- python3 {CLIENT} {VARLINK} neverread {SHARE}/vl-never.json")
    wait_until(lambda: c.path(f"{SHARE}/vl-never.json").exists(), "the never-reading subscriber")
    out = follow(c, "vl-reader", {"users": ["alice"]}, user="bob")
    alice = HeldSession(c, "alice", "vl-alice")
    alice.release()
    wait_until(lambda: any(r.get("event", {}).get("event") == "Logoff" for r in replies(out.read_text())), "alice's Logoff despite the stalled reader")
    assert c.main_pid("sensd.service") == pid
    stats = sensd_stats(c)
    record["varlink_hostile"] = {"served": varlink_side["served"], "refused": varlink_side["refused"], "subscribers_now": stats["subscribers"]}
