"""End to end, as ordinary local users (no groups) would attack the installed service's 0666 socket: holding
every slot, flooding connects with replays, replaying without reading, half-closing a request, running sensd by
hand where another user controls the socket path, and a full state file system. Each asserts what root's and
healthy subscribers receive, sensd's MainPID and restarts, its memory, and the seqs."""

import json
import shutil
import statistics
from pathlib import Path

from container import SHARE, read_lines, sensd_stats, wait_until
from test_durability import assert_exactly_once, burst, events, prepare, resuming_client, sessions_in
from test_family import lines

SOCKET = "/run/sensd/events.sock"
CLIENT = f"{SHARE}/hostile_client.py"
HOSTILE = ["mallory", "eve", "trudy"]


def as_user(user, args):
    """A command line run as `user` without PAM (no session of its own): what any local user can run."""
    return f"setpriv --reuid {user} --regid {user} --init-groups {args}"


def attack(c, user, *args):
    return c.spawn(as_user(user, f"python3 {CLIENT} {SOCKET} " + " ".join(str(a) for a in args)))


def counts(c, out):
    return wait_until(lambda: (lambda p: json.loads(p.read_text()) if p.exists() else None)(c.path(out)), f"the attacker's counts in {out}", timeout=120)


def restarts(c):
    return int(c.run("systemctl show -P NRestarts sensd.service").stdout)


def with_options(c, options):
    c.run("mkdir -p /etc/systemd/system/sensd.service.d && "
          f"printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/sensd {options}\\n' > /etc/systemd/system/sensd.service.d/test-hostile.conf "
          "&& systemctl daemon-reload && systemctl restart sensd.service")


def plain_options(c):
    c.run("rm -f /etc/systemd/system/sensd.service.d/test-hostile.conf && systemctl daemon-reload && systemctl restart sensd.service")


def subscribers_now(c):
    """Connections open now, from sensd's counters (the status line is sent at most once a second, so it can be
    a second behind, and a stale base made the slow-reader test wait for one reader too many)."""
    return sensd_stats(c, SOCKET)["subscribers"] - 1


def root_hello(c):
    """A root client connecting now: its first line."""
    out = c.run(f"timeout 5 socat -u UNIX-CONNECT:{SOCKET} - | head -n 1", check=False).stdout
    return json.loads(out) if out.strip() else None


def test_one_user_or_several_holding_every_slot_lock_out_neither_root_nor_an_administrator(container, record):
    c = container
    c.add_users("alice", "bob", "carol", *HOSTILE, "admin1")
    c.run("usermod -a -G adm admin1")
    shutil.copy(Path(__file__).with_name("hostile_client.py"), c.path(CLIENT))
    prepare(c)
    c.run("systemctl enable --now sensd.service")
    # The installed defaults first: 1,100 connections from one user hit the per-user cap, never the fd limit.
    pid = c.main_pid("sensd.service")
    stop = f"{SHARE}/hold-stop"
    c.run(f"rm -f {stop}")
    attack(c, "mallory", "hold", 1100, stop, f"{SHARE}/hold-mallory.json")
    got = counts(c, f"{SHARE}/hold-mallory.json")
    assert got["hello"] == 64 and got["refused"] == 1036 and got["limits"] == [64], got
    assert "uid" in got["messages"][0] and "64" in got["messages"][0]
    hello = root_hello(c)
    assert hello and hello["hello"] == "sensd"
    record["hostile_one_user_1100_connections"] = {"served": got["hello"], "refused": got["refused"]}
    c.run(f"touch {stop}")
    # Three users together fill what ordinary users may have (200 - 12 kept back): root and adm still get in.
    with_options(c, "--max-subscribers 200")
    pid = c.main_pid("sensd.service")
    c.run(f"rm -f {stop}")
    served = {}
    for user in HOSTILE:
        attack(c, user, "hold", 100, stop, f"{SHARE}/hold-{user}.json")
        served[user] = counts(c, f"{SHARE}/hold-{user}.json")
    assert sum(s["hello"] for s in served.values()) == 188, served
    assert all(s["hello"] <= 64 for s in served.values())
    assert any(188 in s["limits"] for s in served.values()), served
    hello = root_hello(c)
    assert hello and hello["hello"] == "sensd", "root was locked out"
    admin = c.run(as_user("admin1", f"timeout 5 socat -u UNIX-CONNECT:{SOCKET} -") + " | head -n 1", check=False).stdout
    assert '"hello"' in admin, f"a member of adm was locked out: {admin!r}"
    bob = c.run(as_user("bob", f"timeout 5 socat -u UNIX-CONNECT:{SOCKET} -") + " | head -n 1", check=False).stdout
    assert '"too-many-subscribers"' in bob and '"limit":188' in bob, bob
    # One warning per 10 s, not one per refusal; counted in the status line; no restart.
    said = c.run("journalctl SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat", check=False).stdout
    warnings = said.count("refused a subscriber")
    assert warnings <= 8, f"{warnings} refusal warnings"
    status = c.run("systemctl show -P StatusText sensd.service").stdout
    assert "connections refused at a limit" in status, status
    assert c.main_pid("sensd.service") == pid and restarts(c) == 0
    record["hostile_three_users_hold"] = {u: s["hello"] for u, s in served.items()}
    record["hostile_refusal_warnings"] = warnings
    c.run(f"touch {stop}")
    # A descriptor limit lower than the subscriber limit: sensd lowers its own, so the kernel's is never hit.
    c.run("mkdir -p /etc/systemd/system/sensd.service.d && printf '[Service]\\nLimitNOFILE=200\\n' > /etc/systemd/system/sensd.service.d/test-nofile.conf")
    plain_options(c)
    said = c.run("journalctl SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat -n 50", check=False).stdout
    assert "is more than the descriptor limit (200) allows; serving at most 68" in said, said[-2000:]
    c.run(f"rm -f {stop}")
    attack(c, "mallory", "hold", 64, stop, f"{SHARE}/hold-nofile.json")
    attack(c, "eve", "hold", 64, stop, f"{SHARE}/hold-nofile-eve.json")
    got = counts(c, f"{SHARE}/hold-nofile.json")["hello"] + counts(c, f"{SHARE}/hold-nofile-eve.json")["hello"]
    assert got == 68 - 68 // 16, got
    assert root_hello(c)["hello"] == "sensd"
    said = c.run("journalctl SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat", check=False).stdout
    assert "Too many open files" not in said
    c.run(f"touch {stop}")
    c.run("rm -f /etc/systemd/system/sensd.service.d/test-nofile.conf")
    plain_options(c)


def test_connect_and_replay_floods_neither_delay_nor_strip_the_real_logoffs(container, record):
    c = container
    c.run("systemctl start sensd.service")
    # History to replay, so that each flood connection costs something.
    burst(c, "flood-history", 150, f"{SHARE}/flood-history-release")
    c.run(f"touch {SHARE}/flood-history-release")
    pid = c.main_pid("sensd.service")
    proc, out = resuming_client(c, "flood-watch")
    stop = f"{SHARE}/flood-stop"
    c.run(f"rm -f {stop}")
    for i, user in enumerate(["mallory", "mallory", "eve", "eve"]):
        attack(c, user, "flood", stop, f"{SHARE}/flood-{i}.json")
    wait_until(lambda: "subscriber" in c.run("systemctl show -P StatusText sensd.service").stdout, "the flood to be under way")
    record_file = burst(c, "flood", 40, f"{SHARE}/flood-release", users=["alice", "bob", "carol"])
    expected = sessions_in(c, record_file)
    c.run(f"touch {SHARE}/flood-release")
    wait_until(lambda: {e["sessionId"] for e in events(out, "Logoff")} >= set(expected), "every Logoff during the flood", timeout=120)
    c.run(f"touch {stop}")
    floods = [counts(c, f"{SHARE}/flood-{i}.json")["connections"] for i in range(4)]
    c.run("su - alice -c true")
    wait_until(lambda: len([e for e in events(out, "Logoff") if e["sessionId"] not in expected]) >= 1, "the barrier")
    logoffs = [e for e in events(out, "Logoff") if e["sessionId"] in expected]
    assert_exactly_once(logoffs, expected, "during the flood")
    assert not any(e.get("unresolved") for e in logoffs)
    assert c.main_pid("sensd.service") == pid
    record["hostile_flood_connections"] = sum(floods)
    record["hostile_flood_logoffs_with_user"] = f"{len(logoffs)} of {len(expected)}"
    c.kill(proc)


def test_replaying_clients_that_never_read_cost_a_bounded_read_ahead_and_the_memory_comes_back(container, record):
    c = container
    c.run("systemctl start sensd.service")
    pid = c.main_pid("sensd.service")
    last = int(c.run("sensctl position").stdout.split()[1])
    if last < 1200:
        # A backlog longer than what sensd reads ahead, many times over.
        rec = burst(c, "slow-history", (1200 - last) // 3 + 1, f"{SHARE}/slow-history-release")
        c.run(f"touch {SHARE}/slow-history-release")
        n = len(sessions_in(c, rec))
        wait_until(lambda: int(c.run("sensctl position").stdout.split()[1]) >= last + 3 * n, "the history to be logged")
        last = int(c.run("sensctl position").stdout.split()[1])
    before = c.rss_kib(pid)
    stop = f"{SHARE}/slow-stop"
    c.run(f"rm -f {stop}")
    base = subscribers_now(c)
    try:
        for user in HOSTILE:
            attack(c, user, "slow", 64, stop, f"{SHARE}/slow-{user}.json")
        readers = sum(counts(c, f"{SHARE}/slow-{user}.json")["hello"] for user in HOSTILE)
        assert readers == 192
        # Every reader's replay has filled what sensd holds for it once they are all served.
        wait_until(lambda: subscribers_now(c) >= base + 192, "the slow readers to be served")
        during = max(c.rss_kib(pid) for _ in range(20))
    finally:
        c.run(f"touch {stop}")
    wait_until(lambda: subscribers_now(c) <= base, "the slow readers to be gone")
    after = wait_until(lambda: (lambda r: r if r - before < 4096 else None)(c.rss_kib(pid)), "the memory to come back", timeout=30)
    per_reader = (during - before) / readers
    assert per_reader < 256, f"{per_reader:.0f} KiB per replaying reader that never reads"
    record["hostile_slow_readers"] = {"readers": readers, "log_events": last, "rss_before_kib": before, "rss_during_kib": during,
                                      "rss_after_kib": after, "kib_per_reader": round(per_reader, 1)}


def test_a_request_ended_by_eof_counts(container):
    c = container
    c.run("systemctl start sensd.service")
    out = f"{SHARE}/halfclose.jsonl"
    attack(c, "mallory", "halfclose", "'{\"events\":[\"Logoff\"],\"users\":[\"bob\"]}'", out)
    wait_until(lambda: any("accepted" in line for line in lines(c.path(out))), "the accepted line")
    accepted = next(o for o in lines(c.path(out)) if "accepted" in o)
    assert accepted["accepted"] == {"events": ["Logoff"], "users": ["bob"]}
    c.run("su - alice -c true")
    sid = c.run("su - bob -c 'echo $XDG_SESSION_ID'").stdout.strip()
    wait_until(lambda: any(o.get("sessionId") == sid for o in lines(c.path(out))), "bob's Logoff")
    assert {o.get("userName") for o in lines(c.path(out)) if "event" in o} == {"bob"}


def test_sensd_by_hand_never_creates_its_socket_where_another_user_could_swap_it(container):
    c = container
    # Another user's symlink in a sticky directory, pointing at her own private file.
    c.run("rm -rf /tmp/h && install -d -m 1777 /tmp/h")
    c.run(as_user("eve", "sh -c 'echo secret > /tmp/h/eve-file && chmod 600 /tmp/h/eve-file && ln -s /tmp/h/eve-file /tmp/h/s.sock'"))
    r = c.run(as_user("mallory", "sensd --socket /tmp/h/s.sock --state-directory none"), check=False)
    assert r.returncode == 1 and "belongs to uid" in r.stderr, r.stderr
    assert c.run("stat -c %a /tmp/h/eve-file").stdout.strip() == "600"
    # A directory anyone may write to, without the sticky bit.
    c.run("install -d -m 0777 /tmp/h/open")
    r = c.run(as_user("mallory", "sensd --socket /tmp/h/open/s.sock --state-directory none"), check=False)
    assert r.returncode == 1 and "other users can write there" in r.stderr, r.stderr


def test_a_full_state_file_system_keeps_the_service_and_the_socket_up_and_seqs_unique(container, record):
    c = container
    prepare(c)
    c.run("systemctl enable --now sensd.service && systemctl stop sensd.service")
    c.run("cp -a /var/lib/sensd /var/lib/sensd-saved && mount -t tmpfs -o size=4m,mode=0750 sensd-full /var/lib/sensd "
          "&& cp -a /var/lib/sensd-saved/. /var/lib/sensd/ && chown -R sensd:sensd /var/lib/sensd")
    try:
        c.run("systemctl start sensd.service")
        proc, out = resuming_client(c, "diskfull", '{"events":["Logon","Logoff"]}')
        c.run("dd if=/dev/zero of=/var/lib/sensd/filler bs=4k 2>/dev/null; true")
        rec = burst(c, "diskfull", 30, f"{SHARE}/diskfull-release")
        c.run(f"touch {SHARE}/diskfull-release")
        expected = sessions_in(c, rec)
        wait_until(lambda: {e["sessionId"] for e in events(out, "Logoff")} >= set(expected), "live Logoffs while the disk is full")
        wait_until(lambda: "EVENT LOG NOT WRITTEN" in c.run("systemctl show -P StatusText sensd.service").stdout, "the status line to say the log is not written")
        seen = [e["seq"] for e in events(out)]
        # A crash now, and a start on the full disk.
        pid = c.main_pid("sensd.service")
        c.run(f"kill -9 {pid}")
        # Right after the kill systemd may still say "active" for the dead process: wait for the new one.
        wait_until(lambda: c.main_pid("sensd.service") not in (0, pid) and c.run("systemctl is-active sensd.service", check=False).stdout.strip() == "active",
                   "sensd back on the full disk", timeout=30)
        assert c.run("systemctl is-active sensd.socket").stdout.strip() == "active"
        c.run("su - carol -c true")
        try:
            wait_until(lambda: any(e["seq"] > max(seen) for e in events(out)), "an event after the restart")
        except TimeoutError:
            raise AssertionError("no event after the restart on the full disk; sensd said:\n" + c.run("journalctl SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat -n 60", check=False).stdout
                                 + "\nthe client got:\n" + "\n".join(read_lines(out)[-10:]))
        seqs = [e["seq"] for e in events(out)]
        assert len(seqs) == len(set(seqs)), "a seq came twice"
        after = [e for e in events(out) if e["seq"] > max(seen)]
        assert after and all(e["seq"] > max(seen) for e in after)
        said = c.run("journalctl SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat", check=False).stdout
        assert "handed out events it could not log" in said
        # Room again: logged and replayable.
        c.run("rm -f /var/lib/sensd/filler")
        sid = c.run("su - bob -c 'echo $XDG_SESSION_ID'").stdout.strip()
        wait_until(lambda: any(e.get("sessionId") == sid and e["event"] == "Logoff" for e in events(out)), "bob's Logoff")
        # A replay that ends by itself (live: false) finds it in the log.
        replay = [json.loads(line) for line in c.run("sensctl last --json --user bob").stdout.splitlines()]
        assert any(h["sessionId"] == sid and h["logoffTime"] for h in replay), replay
        record["hostile_disk_full"] = {"live_logoffs": len(expected), "seq_jump": min(e["seq"] for e in after) - max(seen)}
        c.kill(proc)
    finally:
        c.run("systemctl stop sensd.socket sensd.service; umount /var/lib/sensd; rm -rf /var/lib/sensd && mv /var/lib/sensd-saved /var/lib/sensd", check=False)
        c.run("systemctl start sensd.socket sensd.service")
