"""End to end on today's systemd: each user's service manager (a session of class "manager" since v256, so on
Debian 13 and not on Debian 12) is kept out of a default subscriber's stream and reaches one that names the
class; `sensctl who` and `sensctl last` answer from sensd against real logins, and a snapshot taken during a
burst of real sessions joins the live stream that follows it with nothing missed and nothing twice."""

import datetime
import json

from container import DEBIAN, SHARE, SSH, login_command, read_lines, wait_until
from test_family import lines, subscribe

USERS = ["alice", "bob"]


def test_an_ssh_login_is_one_logon_and_one_logoff_and_its_service_manager_reaches_only_who_asks(container, record):
    c = container
    c.add_users(*USERS)
    c.run("systemctl enable --now sensd.service")
    plain = subscribe(c, "plain-ssh", "{}")
    managers = subscribe(c, "managers", '{"classes":["manager"]}')
    sid = c.run(f"{SSH} alice@127.0.0.1 'echo $XDG_SESSION_ID'").stdout.strip()
    assert sid
    wait_until(lambda: any(e.get("event") == "Logoff" and e.get("sessionId") == sid for e in lines(plain)), "the ssh session's Logoff")
    if DEBIAN >= 13:
        # The service manager's session ends about 10 s after the user's last (UserStopDelaySec).
        wait_until(lambda: any(e.get("event") == "Logoff" for e in lines(managers)), "the service manager's Logoff", timeout=90)
    # A barrier after everything: once its Logoff is here, anything wrongly sent would be too.
    barrier = c.run("su - bob -c 'echo $XDG_SESSION_ID'").stdout.strip()
    wait_until(lambda: any(e.get("event") == "Logoff" and e.get("sessionId") == barrier for e in lines(plain)), "the barrier")
    got = [e for e in lines(plain) if "event" in e and e["sessionId"] != barrier and e.get("userName") == "alice"]
    assert [e["event"] for e in got if e["event"] in ("Logon", "Logoff")] == ["Logon", "Logoff"], got
    assert {e["sessionId"] for e in got} == {sid}
    assert not any(e.get("class", "").startswith("manager") for e in lines(plain) if "event" in e)
    manager_events = [e for e in lines(managers) if "event" in e]
    if DEBIAN >= 13:
        alice = [e for e in manager_events if e["userName"] == "alice"]
        assert [e["event"] for e in alice] == ["Logon", "LogoffInitiated", "Logoff"], manager_events
        assert alice[0]["class"] == "manager" and alice[0]["service"] == "systemd-user" and alice[0]["logonType"] == "Service"
        assert alice[0]["sessionId"] != sid
        record[f"debian{DEBIAN}_manager_session"] = alice[0]["sessionId"]
    else:
        assert manager_events == [], "systemd 252 has no service-manager sessions"
    # Nothing is lost: the log and the journal keep them (with their class).
    history = c.run("sensctl last --all --json --user alice").stdout.splitlines()
    classes = sorted(json.loads(line).get("class") for line in history)
    assert classes == (["manager", "user"] if DEBIAN >= 13 else ["user"]), history


def test_who_and_last_against_real_sessions_and_a_snapshot_during_a_burst_joins_the_stream(container, record):
    c = container
    c.run("systemctl start sensd.service")
    hold = f"{SHARE}/who-hold"
    rec = f"{SHARE}/who.sessions"
    c.run(f"install -m 666 /dev/null {rec} && rm -f {hold}")
    # Three sessions held open: su, runuser and ssh.
    for how, user in [("su", "alice"), ("runuser", "bob"), ("ssh", "alice")]:
        c.spawn(login_command(how, user, hold, rec))
    wait_until(lambda: len(read_lines(c.path(rec))) >= 3, "the held sessions")
    held = {line.split()[0]: line.split() for line in read_lines(c.path(rec))}
    wait_until(lambda: held.keys() <= {json.loads(l).get("sessionId") for l in c.run("sensctl who --json").stdout.splitlines()},
               "sensd to know the held sessions")
    who = [json.loads(line) for line in c.run("sensctl who --json").stdout.splitlines()]
    assert who[0]["snapshot"] == "begin" and who[-1]["snapshot"] == "end"
    sessions = {s["sessionId"]: s for s in who if s["snapshot"] == "session"}
    for sid, (_, user, uid, how) in held.items():
        s = sessions[sid]
        assert (s["userName"], s["uid"]) == (user, int(uid)), s
        assert s["state"] in ("active", "online") and s["logoffInitiated"] is False
        if how == "ssh":
            assert s["remote"] is True and s["remoteHost"] == "127.0.0.1" and s["logonType"] == "RemoteInteractive"
    assert not any(s.get("class", "").startswith("manager") for s in sessions.values())
    table = c.run("sensctl who").stdout
    assert all(sid in table for sid in held) and table.startswith("SESSION"), table

    # A reference subscriber from before the burst; a snapshot taken while it runs.
    reference = subscribe(c, "who-reference", "{}")
    burst_rec = f"{SHARE}/who-burst.sessions"
    c.run(f"install -m 666 /dev/null {burst_rec}")
    c.spawn(f"seq 60 | xargs -P 6 -I{{}} su - bob -c 'echo \"$XDG_SESSION_ID $(id -un) $(id -u) su\" >> {burst_rec}'")
    wait_until(lambda: len(read_lines(c.path(burst_rec))) >= 10, "the burst to be under way")
    snap = subscribe(c, "who-snapshot", '{"snapshot":true}')
    wait_until(lambda: len(read_lines(c.path(burst_rec))) >= 60, "the burst to end", timeout=120)
    c.run(f"touch {hold}")
    barrier = c.run("su - alice -c 'echo $XDG_SESSION_ID'").stdout.strip()
    for path in (reference, snap):
        wait_until(lambda: any(e.get("event") == "Logoff" and e.get("sessionId") == barrier for e in lines(path)), "the barrier")
    got = lines(snap)
    begin = next(o for o in got if o.get("snapshot") == "begin")
    seq = begin["seq"]
    snapshot_ids = {o["sessionId"] for o in got if o.get("snapshot") == "session"}
    ref = [e for e in lines(reference) if "event" in e]
    # What the reference stream says was open at the snapshot's seq (sessions from before the reference
    # subscribed are the held ones, whose Logons came earlier).
    open_at = set(held)
    for e in ref:
        if e["seq"] > seq:
            break
        if e["event"] == "Logon":
            open_at.add(e["sessionId"])
        elif e["event"] == "Logoff":
            open_at.discard(e["sessionId"])
    assert snapshot_ids == open_at, (seq, snapshot_ids ^ open_at)
    after = [e for e in got if "event" in e]
    assert after == [e for e in ref if e["seq"] > seq], "the stream after the snapshot is the reference's, event for event"
    assert any(e["event"] == "Logoff" and e["sessionId"] in burst_ids_of(c, burst_rec) for e in after), "the burst went on after the snapshot"
    record[f"debian{DEBIAN}_snapshot_during_burst"] = {"seq": seq, "open": len(snapshot_ids), "events_after": len(after)}

    # History: every held and burst session with its logon and logoff, newest first.
    burst_ids = burst_ids_of(c, burst_rec)

    def history():
        return [json.loads(line) for line in c.run("sensctl last --json").stdout.splitlines()]

    ended = wait_until(lambda: (lambda h: h if all(not x["stillLoggedIn"] for x in h if x["sessionId"] in burst_ids | held.keys()) else None)(history()),
                       "every held and burst session to show its logoff")
    by_id = {h["sessionId"]: h for h in ended}
    for sid, (_, user, uid, _) in held.items():
        h = by_id[sid]
        assert (h["userName"], h["uid"]) == (user, int(uid)) and h["stillLoggedIn"] is False, h
        assert h["logonTime"] < h["logoffTime"] and h["durationSeconds"] > 0 and h["logonFromLog"] is True
    assert burst_ids <= by_id.keys()
    logons = [h["logonTime"] for h in ended if h["logonTime"]]
    assert logons == sorted(logons, reverse=True), "newest first"
    # --since: only sessions still open at that time or later; a time after every logoff leaves the open ones.
    latest = datetime.datetime.strptime(max(h["logoffTime"] for h in ended if h["logoffTime"]), "%Y-%m-%dT%H:%M:%S.%fZ")
    after_all = (latest + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    still_open = c.run(f"sensctl last --json --since {after_all}").stdout.splitlines()
    assert not ({json.loads(line)["sessionId"] for line in still_open} & (burst_ids | held.keys()))
    record[f"debian{DEBIAN}_last_sessions"] = len(ended)


def burst_ids_of(c, rec):
    return {line.split()[0] for line in read_lines(c.path(rec))}
