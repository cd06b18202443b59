#!/usr/bin/env python3
"""make demo: sensd as a distribution would install it, in a throwaway container with a real
systemd-logind, while real users log in and out with su, runuser and ssh. The events stream to
the terminal through `sensctl monitor`, exactly as an administrator would watch them."""

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from container import SSH, Container  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", required=True, help="the output of make install DESTDIR=... PREFIX=/usr")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    say("booting a Debian 12 container with systemd and systemd-logind ...")
    c = Container(Path(args.stage)).start()
    try:
        c.add_users("alice", "bob", "carol")
        say("alice logs in before sensd starts (her session must still be reported by name)")
        c.run("mkfifo /var/lib/sensd-e2e/alice.fifo")
        c.spawn("su - alice -c 'read x < /var/lib/sensd-e2e/alice.fifo'")
        time.sleep(0.5)
        say("systemctl enable --now sensd.service")
        c.run("systemctl enable --now sensd.service")
        print(c.run("systemctl status sensd.service --no-pager -n 0", check=False).stdout, flush=True)
        say("sensctl monitor  (events as they arrive)")
        monitor = c.spawn("exec sensctl monitor")
        time.sleep(0.3)
        c.run("echo bye > /var/lib/sensd-e2e/alice.fifo")
        for r in range(args.rounds):
            c.run("su - bob -c true")
            c.run("runuser -l carol -c true")
            c.run(f"{SSH} alice@127.0.0.1 true")
            c.run("for u in alice bob carol; do (su - $u -c 'sleep 0.2') & done; wait")
        time.sleep(1)
        say("the same stream as raw JSON lines (sensctl monitor --json), one more logoff:")
        raw = c.spawn("exec sensctl monitor --json")
        time.sleep(0.3)
        c.run("su - carol -c true")
        time.sleep(0.5)
        monitor.terminate()
        raw.terminate()
    finally:
        c.stop()
    say("done: the container is gone")


def say(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


if __name__ == "__main__":
    main()
