"""End to end: programs built on the protocol's resume rule, against a real logind. The SENSClient example
agent (Examples/SeatRelease, a Swift package outside sensd's that depends on it by path) and the Python
example of docs/protocol.md ("Resuming with a cursor"), taken from the installed document, both follow real
su sessions' Logoffs; both are killed with SIGKILL while sessions end, started again, and sensd is restarted
under them. Each must have handled every Logoff exactly once. Last, `systemctl stop` is the Swift agent's
graceful shutdown (swift-service-lifecycle): it exits 0 with its cursor on the last Logoff it handled."""

import re
import shlex

from container import end_su_sessions, read_lines, replay_everything, wait_until

AGENT = "/usr/local/bin/seat-release"
STATE = "/var/lib/e2e-agents"


def start_agents(c):
    # How it ended, as systemd saw it: "exited 0" after a graceful stop, "killed TERM" had SIGTERM killed it.
    # ($$ is systemd's escape for the shell's $.)
    c.run(f"systemd-run --unit seat-release --collect -p 'ExecStopPost=/bin/sh -c \"echo $$EXIT_CODE $$EXIT_STATUS > {STATE}/seat.exit\"' "
          f"{AGENT} --cursor {STATE}/seat.cursor --ledger {STATE}/seat.ledger")
    c.run(f"systemd-run --unit py-resume --collect -p StandardOutput=append:{STATE}/py.out "
          f"-p StandardError=append:{STATE}/py.err python3 -u {STATE}/resume.py {STATE}/py.cursor")
    # Each saves its cursor once it knows where it stands (sensd's hello); from then on nothing is missed.
    for cursor in ("seat.cursor", "py.cursor"):
        wait_until(lambda: c.path(f"{STATE}/{cursor}").exists(), f"{cursor} to be written")


def handled(c):
    """What each agent handled: (seq, user, session) per line, in order."""
    seat = [tuple(line.split()[:3]) for line in read_lines(c.path(f"{STATE}/seat.ledger"))]
    py = []
    for line in read_lines(c.path(f"{STATE}/py.out")):
        m = re.fullmatch(r"(\d+) (\S+) left session (\S+)", line)
        assert m, f"the Python example printed {line!r}"
        py.append(m.groups())
    return {"seat-release": seat, "python": py}


def test_client_programs_resume_after_sigkill_and_a_sensd_restart_with_every_logoff_once(container, request, record):
    c = container
    c.add_users("alice", "bob")
    agent = request.config.getoption("--example")
    c.run(f"mkdir -p {STATE}")
    c.path(AGENT).parent.mkdir(parents=True, exist_ok=True)
    c.path(AGENT).write_bytes(open(agent, "rb").read())
    c.run(f"chmod 755 {AGENT}")
    # The Python example exactly as the installed protocol document prints it.
    doc = c.path("/usr/share/doc/sensd/protocol.md").read_text()
    example = doc.split("### Resuming with a cursor, in Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    c.path(f"{STATE}/resume.py").write_text(example)

    c.run("systemctl start sensd.service")
    start_agents(c)
    expected = end_su_sessions(c, "agents-1", ["alice", "bob"] * 3)
    for name in ("seat-release", "python"):
        wait_until(lambda: len(handled(c)[name]) >= 6, f"{name} to handle the first sessions")

    # Killed while sessions end, then started again: they catch up from their cursors.
    c.run("systemctl kill -s KILL seat-release.service py-resume.service")
    wait_until(lambda: c.run("systemctl is-active seat-release.service py-resume.service", check=False).stdout.split().count("active") == 0,
               "both agents to be dead")
    expected |= end_su_sessions(c, "agents-2", ["alice", "bob"] * 3)
    start_agents(c)
    for name in ("seat-release", "python"):
        wait_until(lambda: len(handled(c)[name]) >= 12, f"{name} to catch up")

    # sensd restarted under them: they reconnect and resume.
    c.run("systemctl restart sensd.service")
    expected |= end_su_sessions(c, "agents-3", ["alice", "bob"] * 2)
    for name in ("seat-release", "python"):
        wait_until(lambda: len(handled(c)[name]) >= 16, f"{name} to follow across the restart")

    logoffs = {e["sessionId"]: e for e in replay_everything(c) if e["event"] == "Logoff" and e["sessionId"] in expected}
    assert set(logoffs) == set(expected)
    for name, lines in handled(c).items():
        sessions = [sid for _, _, sid in lines]
        assert len(sessions) == len(set(sessions)), f"{name} handled a Logoff twice: {lines}"
        assert set(sessions) == set(expected), f"{name}: missing {set(expected) - set(sessions)}, extra {set(sessions) - set(expected)}"
        for seq, user, sid in lines:
            assert (int(seq), user) == (logoffs[sid]["seq"], expected[sid]), f"{name}: {seq} {user} {sid} vs {logoffs[sid]}"
        record[f"client_{name}_logoffs_handled"] = len(lines)
    assert c.run(f"cat {STATE}/py.err", check=False).stdout.count("Traceback") == 0

    # SIGTERM from systemctl stop: a graceful shutdown, not a death by signal.
    c.run(f"rm -f {STATE}/seat.exit")
    c.run("systemctl stop seat-release.service py-resume.service", check=False)
    wait_until(lambda: c.path(f"{STATE}/seat.exit").exists(), "seat-release's stop to be recorded")
    assert c.path(f"{STATE}/seat.exit").read_text().split() == ["exited", "0"]
    last = handled(c)["seat-release"][-1][0]
    assert c.path(f"{STATE}/seat.cursor").read_text().strip() == last
