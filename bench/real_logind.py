#!/usr/bin/python3
"""sensd against the real systemd-logind: its added latency over a bare bus client, for a burst of real su
sessions, in the end-to-end container (tests/e2e/container.py: Debian 12, systemd as init, real PAM).

In the container, side by side on the same logins:
  floor   `sensd-bench floor-ids`: a bare sd-bus client timestamping every SessionRemoved logind sends
  sensd   the installed sensd (its packaged unit, socket-activated) and one subscriber,
          `sensd-bench subscriber-ids`, timestamping every Logoff line
N su sessions are opened and held; then all are released at once, so logind removes them in a burst; three
such bursts, pooled. For each session, added latency = sensd subscriber's receipt - floor's receipt
(CLOCK_MONOTONIC, same kernel).

    bench/real_logind.py --stage DIR --bench BINARY [--sessions N] [--out FILE]
(root; DIR is the output of `make install DESTDIR=DIR PREFIX=/usr`, e.g. .build-deb/root)
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/e2e"))
from container import SHARE, Container, login_command, read_lines, wait_until  # noqa: E402
from run import latency_summary, wait_line  # noqa: E402  (bench/run.py, beside this file)

BENCH = "/usr/local/libexec/sensd-bench"


def receipts(path):
    out = {}
    for line in read_lines(path):
        sid, t = line.split()
        out.setdefault(sid, int(t))
    return out


def install_bench(c: Container, bench_binary: Path):
    """Copies the release sensd-bench into the container, once."""
    target = c.path(BENCH)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bench_binary, target)


def measure(c: Container, bench_binary: Path, sessions: int, others: int = 0, tag: str = "latency", bursts: int = 1) -> dict:
    """`bursts` bursts of `sessions` su logins in a booted container with sensd installed, with `others` more
    subscribers reading everything besides the measured one; returns the figures, pooled over the bursts
    (one burst on 2 cores is at the mercy of which of 200 exiting su processes runs first). Raises if the
    floor or sensd misses a session."""
    install_bench(c, bench_binary)
    c.add_users("benchuser")
    c.run("systemctl start sensd.socket sensd.service")
    runs = [burst(c, sessions, others, f"{tag}-{i}") for i in range(bursts)]
    added = [a for r in runs for a in r["added"]]
    return {
        "sessions": sessions,
        "bursts": bursts,
        "subscribers": 1 + others,
        "how": "su, all held, then released at once",
        "burst_seconds": [r["seconds"] for r in runs],
        "added_over_floor_ms": latency_summary(added),
        "per_burst_p50_p99_ms": [(each["p50"], each["p99"]) for each in (latency_summary(r["added"]) for r in runs)],
        "sensd_before_floor": sum(1 for a in added if a < 0),
    }


def burst(c: Container, sessions: int, others: int, tag: str) -> dict:
    """One burst; returns its duration and the added latency of each session (ms)."""
    floor_out, sub_out = f"{SHARE}/{tag}-floor.out", f"{SHARE}/{tag}-sensd.out"
    hold, rec = f"{SHARE}/{tag}.hold", f"{SHARE}/{tag}.sessions"
    c.run(f"rm -f {floor_out} {sub_out} {hold}; install -m 666 /dev/null {rec}")
    floor = c.spawn(f"exec {BENCH} floor-ids {sessions} {floor_out}", stdout=subprocess.PIPE)
    wait_line(floor, "ready", 30, "the floor")
    sub = c.spawn(f"exec {BENCH} subscriber-ids /run/sensd/events.sock {sessions} {sub_out}", stdout=subprocess.PIPE)
    wait_line(sub, "ready", 30, "the sensd subscriber")
    load = None
    if others:
        # Subscribers to everything that count nothing (no session is named "none..."): fan-out load only.
        load = c.spawn(f"exec {BENCH} subscribe /run/sensd/events.sock {others} none 1 nobody /dev/null", stdout=subprocess.PIPE)
        wait_line(load, "ready", 60, "the other subscribers")
    for _ in range(sessions):
        c.spawn(login_command("su", "benchuser", hold, rec))
    wait_until(lambda: len(read_lines(c.path(rec))) >= sessions, f"{sessions} su sessions to open", timeout=300)
    ids = {line.split()[0] for line in read_lines(c.path(rec))}
    c.run(f"touch {hold}")
    started = time.monotonic()
    wait_line(floor, "done", 120, "the floor's SessionRemoved")
    wait_line(sub, "done", 120, "sensd's Logoffs")
    burst_seconds = time.monotonic() - started
    c.run("pkill -TERM -x sensd-bench")
    wait_until(lambda: len(read_lines(c.path(floor_out))) >= sessions and len(read_lines(c.path(sub_out))) >= sessions,
               "the receipts to be written", timeout=30)
    f, s = receipts(c.path(floor_out)), receipts(c.path(sub_out))
    missing_floor, missing_sensd = ids - f.keys(), ids - s.keys()
    if missing_floor or missing_sensd:
        raise AssertionError(f"missed sessions: floor {sorted(missing_floor)}, sensd {sorted(missing_sensd)}")
    added = [(s[i] - f[i]) / 1e6 for i in ids]
    if load is not None:
        load.kill()
    return {"seconds": round(burst_seconds, 3), "added": added}


PYTHON_SUBSCRIBER = "/usr/local/libexec/python_subscriber.py"


def cpu_usec(c: Container, unit: str) -> int:
    """CPU time (µs) of `unit`'s main process so far, every thread: the first field of each thread's
    /proc/PID/task/TID/schedstat (ns on the CPU). The container has no CPU controller of its own, so neither
    the cgroup nor systemd can say; the tick-granular utime/stime would be 10 ms a step."""
    pid = c.main_pid(unit)
    out = c.run(f"cat /proc/{pid}/task/*/schedstat").stdout.split("\n")
    return sum(int(line.split()[0]) for line in out if line.strip()) // 1000


def cpu_per_session(c: Container, bench_binary: Path, sessions: int, rounds: int = 3) -> dict:
    """CPU per ended session of sensd as installed (log and journal entries on) and of the python3-dbus
    subscriber of bench/python_subscriber.py, side by side on the same real su sessions: each is a service
    whose CPU time is read before the sessions open and after both have seen every one end. Opening counts too: each session's Logon (sensd) or lookup (Python) is part of its cost."""
    install_bench(c, bench_binary)
    shutil.copy(Path(__file__).with_name("python_subscriber.py"), c.path(PYTHON_SUBSCRIBER))
    c.add_users("benchuser")
    c.run("systemctl start sensd.socket sensd.service")
    per_round = []
    for i in range(rounds):
        tag = f"cpu-{i}"
        rec = f"{SHARE}/{tag}.sessions"
        sub_out, py_out, py_done = f"{SHARE}/{tag}-sensd.out", f"{SHARE}/{tag}-python.out", f"{SHARE}/{tag}-python.done"
        c.run(f"rm -f {sub_out} {py_out} {py_done}; install -m 666 /dev/null {rec}")
        # Session ids in the container are c1, c2, ...: prefix "c", and the subscriber counts every one.
        c.run(f"systemd-run --unit bench-python --collect -p StandardOutput=null python3 {PYTHON_SUBSCRIBER} c {sessions} {py_out} {py_done}")
        sub = c.spawn(f"exec {BENCH} subscriber-ids /run/sensd/events.sock {sessions} {sub_out}", stdout=subprocess.PIPE)
        wait_line(sub, "ready", 30, "the sensd subscriber")
        wait_until(lambda: c.run("systemctl is-active bench-python.service", check=False).stdout.strip() == "active", "the Python subscriber")
        sensd_before, python_before = cpu_usec(c, "sensd.service"), cpu_usec(c, "bench-python.service")
        # Each session waits on a lock held until all are open (blocked, not polling: 600 polling loops would
        # be most of the machine's CPU, and the measurement's noise).
        lock = f"{SHARE}/{tag}.lock"
        holder = c.spawn(f"exec flock {lock} sleep 100000")
        wait_until(lambda: c.run(f"flock -n {lock} true", check=False).returncode == 1, "the lock to be held")
        body = f'echo "$XDG_SESSION_ID $(id -un) $(id -u) su" >> {rec}; flock -s {lock} true'
        # Opened 50 at a time: 600 su at once make pam_systemd time out on a 2-core machine, and a login
        # without a session would leave both subscribers waiting for a Logoff that never comes.
        for first in range(0, sessions, 50):
            for _ in range(first, min(sessions, first + 50)):
                c.spawn(f"su - benchuser -c '{body}'")
            wait_until(lambda: len(read_lines(c.path(rec))) >= min(sessions, first + 50), f"{first + 50} su sessions to open", timeout=300)
        without = [line for line in read_lines(c.path(rec)) if not line.split()[0].startswith("c")]
        if without:
            raise AssertionError(f"{len(without)} su logins got no logind session (pam_systemd timed out?)")
        holder.kill()
        c.run("pkill -f 'slee[p] 100000' || true")
        try:
            wait_line(sub, "done", 180, "sensd's Logoffs")
        except TimeoutError:
            print(c.run("systemctl status sensd.service --no-pager; loginctl list-sessions --no-legend | wc -l; journalctl -u sensd --no-pager -n 20", check=False).stdout, file=sys.stderr)
            raise
        wait_until(lambda: c.path(py_done).exists(), "the Python subscriber to see every session end", timeout=180)
        sensd_used, python_used = cpu_usec(c, "sensd.service") - sensd_before, cpu_usec(c, "bench-python.service") - python_before
        c.run("pkill -TERM -x sensd-bench; systemctl stop bench-python.service")
        seen, wrong = map(int, c.path(py_done).read_text().split())
        per_round.append({"sensd_us_per_session": round(sensd_used / sessions, 1), "python_us_per_session": round(python_used / sessions, 1),
                          "python_wrong": wrong})
    sensd = sorted(r["sensd_us_per_session"] for r in per_round)[len(per_round) // 2]
    python = sorted(r["python_us_per_session"] for r in per_round)[len(per_round) // 2]
    return {"sessions": sessions, "rounds": per_round, "sensd_us_per_session_median": sensd,
            "python_us_per_session_median": python, "ratio_sensd_to_python": round(sensd / python, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True, type=Path)
    ap.add_argument("--bench", required=True, type=Path, help="the release sensd-bench")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU per session, sensd beside Python (600 sessions)")
    args = ap.parse_args()
    c = Container(args.stage).start()
    try:
        if args.cpu_only:
            result = cpu_per_session(c, args.bench, 600)
        else:
            result = [measure(c, args.bench, args.sessions, others, tag=f"latency-{others}", bursts=args.bursts) for others in (0, 99)]
    finally:
        c.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
