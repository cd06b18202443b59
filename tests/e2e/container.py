"""A throwaway Debian container (12, 13 or testing, by SENSD_E2E_SUITE) with systemd as init: a real systemd-logind, a real system bus and real
PAM logins, on a machine that runs no systemd itself (see ../../README.md, "Testing").

The root file system is built once by mmdebstrap and cached as a tarball keyed by its package list; each
run unpacks a fresh copy, lays the output of `make install DESTDIR=stage` over it, and boots it with
systemd-nspawn without machined or a scope (the host has no systemd to ask).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

# bookworm (Debian 12, systemd 252), trixie (Debian 13, systemd 257) or forky (Debian testing, the future 14:
# systemd 262 in the archive's snapshot); `make e2e` runs the tier on all three.
SUITE = os.environ.get("SENSD_E2E_SUITE", "bookworm")
SUITES = {"bookworm": 12, "trixie": 13, "forky": 14}
# Testing's Release file carries a Valid-Until date that the archive's snapshot has passed.
TESTING = SUITE == "forky"
if SUITE not in SUITES:
    raise SystemExit(f"SENSD_E2E_SUITE={SUITE}: the end-to-end tier boots {', '.join(SUITES)}")
DEBIAN = SUITES[SUITE]
PACKAGES = sorted([
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "openssh-client",
    "libstdc++6", "libsystemd0", "socat", "python3", "procps", "iproute2", "jq", "systemd-journal-remote",
    # The benchmark's python3-dbus subscriber, run beside sensd on the real logind.
    "python3-dbus", "python3-gi",
    # The monitoring tests: a real Prometheus server scraping sensd-exporter, and node_exporter's textfile collector.
    "prometheus", "prometheus-node-exporter",
])
CACHE = Path(os.environ.get("SENSD_E2E_CACHE", "/var/cache/sensd-e2e"))
# Files the host and the container exchange (nspawn gives the container a fresh /tmp).
SHARE = "/var/lib/sensd-e2e"


def rootfs_tarball() -> Path:
    """The cached root file system, built on first use (about 30 s)."""
    key = hashlib.sha256((SUITE + " " + " ".join(PACKAGES)).encode()).hexdigest()[:12]
    tarball = CACHE / f"rootfs-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    print(f"building the container root file system ({SUITE}) into {tarball}", flush=True)
    subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES)]
        + (['--aptopt=Acquire::Check-Valid-Until "false"'] if TESTING else []) + [SUITE, str(partial)],
        check=True, stdout=subprocess.DEVNULL)
    partial.rename(tarball)
    return tarball


def wait_until(condition, what: str, timeout: float = 60.0, interval: float = 0.05):
    """Polls `condition` until it returns something truthy; the deadline is a guard against hangs."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Container:
    def __init__(self, stage: Path | None):
        self.stage = stage
        self.workdir = Path(tempfile.mkdtemp(prefix="sensd-e2e-"))
        self.root = self.workdir / "root"
        self.nspawn: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.background: list[subprocess.Popen] = []
        self.spawned = 0

    # Life cycle

    def start(self) -> "Container":
        self.root.mkdir()
        subprocess.run(["tar", "-C", str(self.root), "-xf", str(rootfs_tarball())], check=True)
        if self.stage is not None:
            # What a distribution package would put there: exactly the output of `make install`.
            subprocess.run(["cp", "-a", f"{self.stage}/.", str(self.root)], check=True)
            shutil.rmtree(self.root / "DEBIAN", ignore_errors=True)
        # Prometheus and node_exporter are for the monitoring tests, which start them: not at every boot.
        for wanted in self.root.glob("etc/systemd/system/*.wants/prometheus*"):
            wanted.unlink()
        share = self.root / SHARE.lstrip("/")
        share.mkdir(parents=True, exist_ok=True)
        share.chmod(0o1777)  # the logged-in users write here too
        self.boot()
        if self.stage is not None:
            # What a packager's scripts do after `make install`: create the service's user, load the units.
            self.run("systemd-sysusers && systemctl daemon-reload && journalctl --update-catalog")
        return self

    def boot(self):
        """Boots the tree as it is (the first boot, or the next one after a reboot or a power loss)."""
        log = open(self.workdir / "console.log", "ab")
        # systemd 258 and later boot only on the unified cgroup hierarchy (v2), and exit at once, silently, on
        # the legacy one. This host mounts the hybrid layout, on which nspawn 252 gives a container the legacy
        # hierarchy unless told otherwise; the older releases keep the layout they were always tested on.
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1") if DEBIAN >= 14 else None
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "--register=no", "--keep-unit", "--private-network",
             "-b", "--console=pipe"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        # nspawn's first child can be its own short-lived helper that forks the container's init and exits:
        # found too early, that pid is never enterable. So the child is looked up again at every attempt
        # (once, on a busy host, a whole module's container was lost to a stale pid).
        def enterable():
            pid = self._find_init()
            if pid is None:
                return False
            self.init_pid = pid
            return self.run("true", check=False).returncode == 0
        wait_until(enterable, "entering the container", timeout=60)
        # "offline" means systemd is not answering yet; --wait then blocks until boot has finished.
        state = wait_until(
            lambda: (lambda s: s if s not in ("", "offline") else None)(
                self.run("systemctl is-system-running --wait", check=False).stdout.strip()),
            "systemd to answer in the container", timeout=180, interval=0.1)
        if state not in ("running", "degraded"):
            raise RuntimeError(f"container did not boot: {state}\n{self.run('systemctl --failed', check=False).stdout}")

    def reboot(self) -> float:
        """`systemctl reboot` inside; returns once the container has gone down (nspawn exits 133 on a reboot),
        with how long that took, in seconds. `boot()` starts the next boot."""
        started = time.monotonic()
        self.run("systemctl reboot", check=False)
        code = self.nspawn.wait(timeout=120)
        assert code == 133, f"systemd-nspawn exited {code} on a reboot"
        return time.monotonic() - started

    def power_loss(self) -> float:
        """The machine loses power: every process of the container is killed (SIGKILL to its init kills its
        whole PID namespace), with no shutdown of any kind. Returns the time (Unix seconds) by which nothing
        of it was left running: systemd-nspawn has seen its init die."""
        os.kill(self.init_pid, signal.SIGKILL)
        self.nspawn.wait(timeout=60)
        return time.time()

    def _find_init(self):
        if self.nspawn.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited: {(self.workdir / 'console.log').read_text(errors='replace')[-2000:]}")
        try:
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def stop(self):
        for p in self.background:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.nspawn and self.nspawn.poll() is None:
            # SIGTERM asks nspawn to shut the container down cleanly.
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # Inside

    def _enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.init_pid), "-a", "--"]

    def run(self, command: str, check: bool = True, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        """Runs a shell command as root inside the container."""
        result = subprocess.run(
            self._enter() + ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise RuntimeError(f"in container: {command!r} exited {result.returncode}\n{result.stdout}{result.stderr}")
        return result

    def spawn(self, command: str, **kwargs) -> subprocess.Popen:
        """Starts a shell command inside the container without waiting; ended by kill() or at stop().

        nsenter forks to enter the PID namespace, so killing the host's process leaves the command running in
        the container (a resuming client left that way reconnects for ever, and starts sensd again through
        its socket whenever a test stops it): the command's own PID is kept to end it there."""
        self.spawned += 1
        pidfile = f"{SHARE}/.spawned-{self.spawned}.pid"
        wrapped = f"echo $$ > {pidfile}; exec /bin/sh -c {shlex.quote(command)}"
        p = subprocess.Popen(self._enter() + ["/bin/sh", "-c", wrapped], stdin=subprocess.DEVNULL, **kwargs)
        p.pidfile = pidfile
        self.background.append(p)
        return p

    def kill(self, p: subprocess.Popen):
        """Ends a spawned command inside the container (with its children), then its host side."""
        try:
            pid = int(self.path(p.pidfile).read_text())
        except (OSError, ValueError):
            pid = None
        if pid:
            self.run(f"pkill -KILL -P {pid}; kill -KILL {pid}", check=False)
        if p.poll() is None:
            p.kill()
        p.wait()

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container."""
        return self.root / inside.lstrip("/")

    # Helpers for scenarios

    def add_users(self, *names: str):
        """Creates users that can log in with su, runuser and ssh (by the root key made here)."""
        self.run("test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
        self.run("ssh-keygen -A && systemctl enable --now ssh.service >/dev/null 2>&1 || systemctl restart ssh.service")
        for name in names:
            self.run(
                f"id {name} >/dev/null 2>&1 || useradd -m -s /bin/bash {name}; "
                f"install -d -m 700 -o {name} -g {name} /home/{name}/.ssh; "
                f"install -m 600 -o {name} -g {name} /root/.ssh/id_ed25519.pub /home/{name}/.ssh/authorized_keys")

    def uid(self, name: str) -> int:
        return int(self.run(f"id -u {name}").stdout)

    def main_pid(self, unit: str) -> int:
        return int(self.run(f"systemctl show -P MainPID {unit}").stdout)

    def rss_kib(self, pid: int) -> int:
        for line in self.run(f"cat /proc/{pid}/status").stdout.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


SSH = "ssh -q -i /root/.ssh/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes"


def read_lines(path) -> list[str]:
    """The complete, non-empty lines of a file that may not exist yet. A last line without its newline is
    still being written (a long line can take more than one write) and is left for the next read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return [line for line in text.splitlines() if line.strip()]


def login_command(how: str, user: str, hold: str, record: str) -> str:
    """A real PAM login (su, runuser or ssh) that appends "<XDG_SESSION_ID> <user> <uid> <how>" to `record`,
    then waits for the file `hold` to exist before it ends."""
    body = f'echo "$XDG_SESSION_ID $(id -un) $(id -u) {how}" >> {record}; while [ ! -e {hold} ]; do sleep 0.05; done'
    if how == "su":
        return f"su - {user} -c '{body}'"
    if how == "runuser":
        return f"runuser -l {user} -c '{body}'"
    return f"{SSH} {user}@127.0.0.1 '{body}'"



def end_su_sessions(c, tag: str, users: list[str], timeout: float = 60.0) -> dict[str, str]:
    """Real su sessions, one per entry of `users`, all open at once, then all ended; returns each session's
    id and user. Waits at most `timeout` for them to open."""
    record, hold = f"{SHARE}/{tag}.sessions", f"{SHARE}/{tag}.release"
    c.run(f"install -m 666 /dev/null {record}")
    script = "\n".join(f"({login_command('su', user, hold, record)}) &" for user in users) + "\nwait\n"
    burst = c.spawn(script)
    wait_until(lambda: len(read_lines(c.path(record))) >= len(users), f"the {tag} sessions to start", timeout=timeout)
    c.run(f"touch {hold}")
    burst.wait(timeout=120)
    assert burst.returncode == 0
    return {line.split()[0]: line.split()[1] for line in read_lines(c.path(record))}

def replay_everything(c, socket="/run/sensd/events.sock") -> list[dict]:
    """Every event in sensd's log, service managers' too, by the protocol alone: a replay from seq 0 of every
    class that ends by itself once it has caught up ("live": false)."""
    script = ("import json,socket,sys\n"
              "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
              "s.sendall(b'{\"since\":0,\"classes\":[\"*\"],\"live\":false}\\n')\n"
              "data=b''\n"
              "while True:\n"
              "    b=s.recv(1<<16)\n"
              "    if not b: break\n"
              "    data+=b\n"
              "sys.stdout.write(data.decode())\n")
    out = c.run(f"python3 -c {shlex.quote(script)} {socket}").stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines and lines[-1].get("end") == "caught-up", lines[-1:]
    return [o for o in lines if "event" in o]


def sensd_stats(c, socket="/run/sensd/events.sock") -> dict:
    """sensd's counters now, by the protocol alone: the answer to {"stats":true} (after the hello and the
    accepted line, which echoes the request; the connection then ends)."""
    script = ("import socket,sys\n"
              "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
              "s.sendall(b'{\"stats\":true}\\n')\n"
              "sys.stdout.write(s.makefile().read())\n")
    out = c.run(f"python3 -c {shlex.quote(script)} {socket}").stdout
    return next(o for o in map(json.loads, out.splitlines()) if o.get("stats") == "sensd")
