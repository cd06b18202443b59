"""End to end: a reboot with su, runuser and ssh sessions open, and a power loss. sensd is ordered to stop
after the sessions (packaging/sensd.service), so a reboot's Logoffs go out live, with their true times and
reason "reboot"; after a power loss they come at the next start, observed late, with the last moment the
previous boot was known alive."""

import calendar
import json
import time

from container import DEBIAN, SHARE, login_command, read_lines, replay_everything, wait_until
from test_durability import prepare

HOW = [("su", "alice"), ("runuser", "bob"), ("su", "carol"), ("ssh", "alice"), ("runuser", "carol")]


def hold_sessions(c, name):
    """Sessions held open until the machine goes down; returns their ids once sensd knows them all."""
    rec = f"{SHARE}/{name}.sessions"
    c.run(f"install -m 666 /dev/null {rec}")
    for how, user in HOW:
        c.spawn(login_command(how, user, f"{SHARE}/{name}-never", rec))
    wait_until(lambda: len(read_lines(c.path(rec))) >= len(HOW), f"the {name} sessions")
    held = {line.split()[0]: line.split()[1] for line in read_lines(c.path(rec))}
    wait_until(lambda: held.keys() <= {json.loads(l).get("sessionId") for l in c.run("sensctl who --json").stdout.splitlines()},
               "sensd to know every held session")
    return held


def stamp(text):
    """An event time (RFC 3339, UTC, microseconds) as Unix seconds."""
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + int(text[20:26]) / 1e6


def test_a_reboot_reports_every_open_session_live_with_its_time_and_reason_then_seqs_go_on(container, record):
    c = container
    prepare(c)
    c.run("mkdir -p /var/log/journal && systemd-tmpfiles --create --prefix /var/log/journal && journalctl --flush")
    c.run("systemctl enable --now sensd.service")
    held = hold_sessions(c, "reboot")
    before = int(c.run("sensctl position").stdout.split()[1])
    shutdown_seconds = c.reboot()
    went_down = time.time()
    c.boot()
    assert c.run("systemctl is-active sensd.service").stdout.strip() == "active"
    log = replay_everything(c)
    for sid, user in held.items():
        ends = [e for e in log if e["sessionId"] == sid and e["event"] in ("LogoffInitiated", "Logoff")]
        assert [e["event"] for e in ends] == ["LogoffInitiated", "Logoff"], (sid, ends)
        for e in ends:
            assert e["userName"] == user and e["reason"] == "reboot" and "observedLate" not in e, e
            assert stamp(e["time"]) <= went_down, e
    seqs = [e["seq"] for e in log]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] > before
    # sensd's own stop during the shutdown: from systemd's "Stopping" to its "Stopped", in the previous boot.
    lines = c.run("journalctl -b -1 -u sensd.service -o short-unix --no-pager -q", check=False).stdout.splitlines()
    stopping = [float(l.split()[0]) for l in lines if "Stopping sensd.service" in l]
    stopped = [float(l.split()[0]) for l in lines if "Stopped sensd.service" in l or "sensd.service: Deactivated" in l]
    # A session after the reboot is reported as usual.
    sid = c.run("su - bob -c 'echo $XDG_SESSION_ID'").stdout.strip()
    after = wait_until(lambda: [e for e in replay_everything(c) if e["sessionId"] == sid and e["event"] == "Logoff" and e["seq"] > seqs[-1]], "a Logoff after the reboot")
    assert "reason" not in after[0] and "observedLate" not in after[0]
    record[f"debian{DEBIAN}_reboot"] = {
        "sessions": len(held), "shutdown_seconds": round(shutdown_seconds, 2),
        "sensd_stop_seconds": round(stopped[-1] - stopping[-1], 3) if stopping and stopped else None,
        "logoff_before_down_seconds": round(went_down - max(stamp(e["time"]) for e in log if e["sessionId"] in held and e["event"] == "Logoff"), 2),
    }


def test_a_power_loss_gives_late_logoffs_no_later_than_the_loss(container, record):
    c = container
    c.run("systemctl start sensd.service")
    held = hold_sessions(c, "power")
    # Session ids start again at c1 with each boot (no kernel audit here): only what comes after counts.
    before = int(c.run("sensctl position").stdout.split()[1])
    c.run("journalctl --flush; logger -t sensd-test 'about to lose power'")
    killed_at = time.time()
    lost_at = c.power_loss()
    c.boot()
    log = wait_until(lambda: (lambda l: l if all(any(e["sessionId"] == sid and e["event"] == "Logoff" for e in l) for sid in held) else None)(
                         [e for e in replay_everything(c) if e["seq"] > before]),
                     "the late Logoffs of the sessions the power loss ended")
    said = c.run("journalctl -b SYSLOG_IDENTIFIER=sensd --no-pager -q -o cat", check=False).stdout
    assert "it ended by that boot's last journal entry" in said, said[-2000:]
    for sid, user in held.items():
        ends = [e for e in log if e["sessionId"] == sid and e["event"] == "Logoff"]
        assert len(ends) == 1, ends
        e = ends[0]
        assert e["userName"] == user and e["observedLate"] is True and e["reason"] == "sensd-down", e
        # No later than the moment the container was gone (its last journal entry can follow the SIGKILL by the
        # time the kernel takes to end every process in it).
        assert stamp(e["time"]) <= lost_at, f"{e['time']} is after the power loss"
        assert "observedAt" in e and stamp(e["observedAt"]) > lost_at
    record[f"debian{DEBIAN}_power_loss"] = {
        "sessions": len(held),
        "kill_took_seconds": round(lost_at - killed_at, 3),
        "logoff_time_after_sigkill_seconds": round(max(stamp(e["time"]) for e in log if e["sessionId"] in held and e["event"] == "Logoff") - killed_at, 3),
    }
