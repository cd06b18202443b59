"""End to end: sensd-hooks as installed, under systemd, against sensd and a real logind with real su sessions:
which rules run for whom, User=, Unit= with a template unit, TimeoutSec=, a broken rule file, and the runner
killed with SIGKILL mid-burst then kept stopped while sessions end: it must catch up with every missed event,
repeating at most the run that was under way."""

import re

from container import end_su_sessions, read_lines, wait_until

RULES = "/etc/sensd/hooks.d"
OUT = "/var/lib/e2e-hooks"


def rule(c, name, text):
    c.path(f"{RULES}/{name}.hook").write_text(text)


def runner_log(c):
    return c.run("journalctl -u sensd-hooks.service --no-pager -o cat", check=False).stdout


def test_rules_run_for_the_right_sessions_as_the_right_user_and_a_broken_file_is_only_reported(container, record):
    c = container
    c.add_users("alice", "bob", "carol")
    c.run(f"mkdir -p {OUT} && chmod 1777 {OUT}")
    # Written by commands running as several users: made by root, writable by all.
    c.run(f"install -m 666 /dev/null {OUT}/as-session-user && install -m 666 /dev/null {OUT}/as-carol")
    for page in ("man8/sensd-hooks.8.gz", "man5/sensd.hook.5.gz"):
        assert c.path(f"/usr/share/man/{page}").exists(), page
    c.path("/etc/systemd/system/e2e-cleanup@.service").write_text(
        f"[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo %I >> {OUT}/units'\n")
    rule(c, "alice-only", f"[Match]\nEvent=Logoff\nUserName=alice\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ $SENS_SESSION_ID $SENS_USER_NAME >> {OUT}/alice-only; cat >> {OUT}/alice-only.stdin'\n")
    rule(c, "as-carol", f"[Match]\nEvent=Logoff\nUserName=bob\n[Run]\nExec=/bin/sh -c 'echo $(id -un) $HOME for $SENS_USER_NAME >> {OUT}/as-carol; echo said-to-the-journal-$SENS_SEQ'\nUser=carol\n")
    rule(c, "as-session-user", f"[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $(id -un) >> {OUT}/as-session-user'\nUser=%u\n")
    rule(c, "unit", "[Match]\nEvent=Logoff\nUserName=alice\n[Run]\nUnit=e2e-cleanup@%u.service\n")
    rule(c, "hang", "[Match]\nEvent=Logoff\nUserName=bob\n[Run]\nExec=/bin/sleep 600.5\nTimeoutSec=2\n")
    rule(c, "broken", "[Match]\nEvent=Logof\n[Run]\nExec=/bin/true\n")

    check = c.run("sensd-hooks --check", check=False)
    assert check.returncode == 1, check.stdout
    assert f"{RULES}/broken.hook:2: unknown event 'Logof'" in check.stdout, check.stdout
    assert "5 rules ok, 1 mistake" in check.stdout, check.stdout

    c.run("systemctl start sensd.service sensd-hooks.service")
    for name in ("alice-only", "as-carol", "as-session-user", "unit", "hang"):
        wait_until(lambda: c.path(f"/var/lib/sensd-hooks/{name}.seq").exists(), f"rule {name} to take its position")
    assert re.search(rf"{RULES}/broken.hook:2: unknown event 'Logof'; known: .*; the rule is left out", runner_log(c)), runner_log(c)

    sessions = end_su_sessions(c, "hooks-users", ["alice", "bob", "alice", "carol"], timeout=120)
    alice = {sid for sid, user in sessions.items() if user == "alice"}
    bob = {sid for sid, user in sessions.items() if user == "bob"}
    wait_until(lambda: len(read_lines(c.path(f"{OUT}/alice-only"))) >= 2, "alice's runs")
    wait_until(lambda: len(read_lines(c.path(f"{OUT}/as-session-user"))) >= 4, "a run per session as its user")
    wait_until(lambda: len(read_lines(c.path(f"{OUT}/units"))) >= 2, "the template unit's runs")
    wait_until(lambda: "rule hang: seq" in runner_log(c) and "was stopped after TimeoutSec=2s" in runner_log(c), "the hanging command's time-out", timeout=30)

    ran_for = [line.split()[1] for line in read_lines(c.path(f"{OUT}/alice-only"))]
    assert sorted(ran_for) == sorted(alice), (ran_for, sessions)
    assert read_lines(c.path(f"{OUT}/alice-only.stdin"))[0].startswith('{"event":"Logoff"'), "the event's line on stdin"
    assert read_lines(c.path(f"{OUT}/as-carol")) == ["carol /home/carol for bob"] * len(bob)
    assert sorted(read_lines(c.path(f"{OUT}/as-session-user"))) == sorted(sessions.values())
    # A unit started by systemd gets no event variables: only its instance, the user, through %I.
    assert read_lines(c.path(f"{OUT}/units")) == ["alice"] * len(alice)
    # The command's output is in the journal under the rule's name.
    said = c.run("journalctl -t sensd-hook/as-carol --no-pager -o cat", check=False).stdout
    assert re.search(r"said-to-the-journal-\d+", said), said
    # The hanging command was stopped, with its process group, and the other rules did not wait for it.
    assert c.run("pgrep -f 'slee[p] 600.5'", check=False).returncode == 1
    log = runner_log(c)
    assert re.search(r"rule as-carol: seq \d+ Logoff bob session \S+: exited with status 0", log), log

    score = re.search(r"Overall exposure level for sensd-hooks\.service: ([0-9.]+)",
                      c.run("systemd-analyze security sensd-hooks.service --no-pager", check=False).stdout)
    assert score, "systemd-analyze gave no score"
    record["hooks_security_exposure"] = float(score.group(1))
    c.run(f"rm -f {RULES}/*.hook && systemctl reload sensd-hooks.service")


def test_a_runner_killed_mid_burst_and_kept_stopped_catches_up_with_every_event(container, record):
    c = container
    c.add_users("alice", "bob")
    c.run(f"mkdir -p {OUT} && chmod 1777 {OUT} && rm -f {OUT}/ledger")
    # Slow enough that the burst keeps it busy: the kill lands while a run is under way.
    rule(c, "ledger", f"[Match]\nEvent=Logoff\n[Run]\nExec=/bin/sh -c 'echo $SENS_SEQ $SENS_SESSION_ID >> {OUT}/ledger; sleep 0.3'\n")
    c.run("systemctl restart sensd-hooks.service")
    wait_until(lambda: c.path("/var/lib/sensd-hooks/ledger.seq").exists(), "the ledger rule's position")

    first = end_su_sessions(c, "hooks-burst-1", ["alice", "bob"] * 10, timeout=120)
    wait_until(lambda: len(read_lines(c.path(f"{OUT}/ledger"))) >= 5, "the first runs")
    c.run("systemctl kill -s KILL sensd-hooks.service")
    c.run("systemctl stop sensd-hooks.service")
    handled_before = len(read_lines(c.path(f"{OUT}/ledger")))
    assert handled_before < 20, "the runner was killed mid-burst, not after it"
    second = end_su_sessions(c, "hooks-burst-2", ["alice", "bob"] * 5, timeout=120)
    c.run("systemctl start sensd-hooks.service")
    expected = set(first) | set(second)
    wait_until(lambda: {line.split()[1] for line in read_lines(c.path(f"{OUT}/ledger"))} >= expected, "every missed run", timeout=60)

    lines = read_lines(c.path(f"{OUT}/ledger"))
    sessions = [line.split()[1] for line in lines]
    repeats = len(sessions) - len(set(sessions))
    assert set(sessions) == expected
    assert repeats <= 1, f"more runs repeated than were under way at the kill: {lines}"
    seqs = [int(line.split()[0]) for line in lines]
    assert sorted(set(seqs)) == [s for i, s in enumerate(seqs) if s not in seqs[:i]], "runs in seq order"
    record["hooks_kill9_sessions"] = len(expected)
    record["hooks_kill9_runs_before_kill"] = handled_before
    record["hooks_kill9_runs_repeated"] = repeats
    c.run(f"rm -f {RULES}/ledger.hook && systemctl reload sensd-hooks.service")
