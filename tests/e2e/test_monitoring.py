"""End to end, who is logged in, for monitoring stacks, against the real logind and real PAM logins: a real
Prometheus server from Debian's archive scraping sensd-exporter (socket-activated by its own unit) and
node_exporter's textfile collector reading what sensd-exporter-textfile.service writes; the check plugin
against loginctl's own count, as an unprivileged user and with sensd stopped; and an unprivileged user
flooding the exporter's port while sessions end."""

import json
import re
import shlex
import urllib.parse

from container import SHARE, SSH, login_command, read_lines, sensd_stats, wait_until
from test_family import lines, subscribe

USERS = ["alice", "bob", "carol", "dave", "erin", "mallory"]
PROMETHEUS = "127.0.0.1:9090"


def hold_sessions(c, tag, logins):
    """Real logins held open until the returned `release` runs; returns {session id: (user, how)} and release."""
    record, hold = f"{SHARE}/{tag}.sessions", f"{SHARE}/{tag}.release"
    c.run(f"install -m 666 /dev/null {record} && rm -f {hold}")
    procs = [c.spawn(login_command(how, user, hold, record)) for how, user in logins]
    wait_until(lambda: len(read_lines(c.path(record))) >= len(logins), f"the {tag} sessions to open", timeout=120)
    sessions = {line.split()[0]: (line.split()[1], line.split()[3]) for line in read_lines(c.path(record))}

    def release():
        c.run(f"touch {hold}")
        for p in procs:
            p.wait(timeout=60)
    return sessions, release


def logind_counts(c):
    """loginctl's own count: (sessions, distinct users) of every class but the service managers'."""
    ids = c.run("loginctl list-sessions --no-legend | awk '{print $1}'").stdout.split()
    sessions, users = 0, set()
    for sid in ids:
        cls = c.run(f"loginctl show-session {sid} -p Class --value", check=False).stdout.strip()
        if cls in ("", "manager", "manager-early"):
            continue
        sessions += 1
        users.add(c.run(f"loginctl show-session {sid} -p Name --value").stdout.strip())
    return sessions, len(users)


def query(c, promql):
    """A PromQL instant query to the Prometheus server in the container: {labels: value}."""
    url = f"http://{PROMETHEUS}/api/v1/query?query={urllib.parse.quote(promql)}"
    out = c.run(f"python3 -c {shlex.quote('import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())')} {shlex.quote(url)}",
                check=False).stdout
    if not out.strip():
        return None
    body = json.loads(out)
    assert body["status"] == "success", body
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in body["data"]["result"]}


def scalar(c, promql):
    result = query(c, promql)
    return None if not result else sum(result.values())


def http_get(c, url, user=None):
    script = ("import sys,urllib.request,urllib.error\n"
              "try:\n    r=urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status); print(r.read().decode())\n"
              "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n"
              "except Exception as e:\n    print('error', e)")
    prefix = f"runuser -u {user} -- " if user else ""
    return c.run(f"{prefix}python3 -c {shlex.quote(script)} {shlex.quote(url)}", check=False).stdout


def test_prometheus_and_node_exporter_count_three_ssh_and_two_su_sessions_one_locked(container, record):
    c = container
    c.add_users(*USERS)
    c.run("systemctl enable --now sensd.service sensd-exporter.socket sensd-exporter-textfile.service")
    sessions, release = hold_sessions(c, "prom", [("ssh", "alice"), ("ssh", "bob"), ("ssh", "carol"), ("su", "dave"), ("su", "erin")])
    alice = next(sid for sid, (user, how) in sessions.items() if user == "alice")
    path = c.run(f"busctl call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager GetSession s {alice}").stdout.split()[1].strip('"')
    c.run(f"loginctl lock-session {alice}")  # asks the session to lock; its LockedHint says it did
    c.run(f"busctl call org.freedesktop.login1 {path} org.freedesktop.login1.Session SetLockedHint b true")
    assert logind_counts(c) == (5, 5)

    # Debian's own node_exporter (its textfile collector reads /var/lib/prometheus/node-exporter) and a
    # Prometheus server scraping both every second.
    c.run("systemctl start prometheus-node-exporter.service")
    config = f"{SHARE}/prometheus.yml"
    c.path(config).write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: sensd\n    static_configs:\n      - targets: ['127.0.0.1:9848']\n"
        "  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:9100']\n")
    c.run(f"install -d -o prometheus {SHARE}/prometheus-data")
    c.spawn(f"exec runuser -u prometheus -- prometheus --config.file={config} --storage.tsdb.path={SHARE}/prometheus-data "
            f"--web.listen-address={PROMETHEUS} >{SHARE}/prometheus.log 2>&1")
    wait_until(lambda: scalar(c, 'sum(sensd_sessions{job="sensd"})') == 5, "Prometheus to see 5 sessions from sensd-exporter", timeout=90)
    assert scalar(c, 'sensd_users{job="sensd"}') == 5
    assert scalar(c, 'sum(sensd_sessions{job="sensd",remote="true"})') == 3
    assert scalar(c, 'sum(sensd_sessions{job="sensd",locked="true"})') == 1
    assert scalar(c, 'sum(sensd_sessions{job="sensd",class="background"})') == 2
    assert scalar(c, 'sensd_up{job="sensd"}') == 1
    assert scalar(c, 'sensd_log_written{job="sensd"}') == 1
    # The same numbers through node_exporter's textfile collector.
    wait_until(lambda: scalar(c, 'sensd_users{job="node"}') == 5, "node_exporter to expose sensd.prom", timeout=60)
    assert scalar(c, 'sum(sensd_sessions{job="node",locked="true"})') == 1
    record["prometheus_scrape"] = [l for l in http_get(c, "http://127.0.0.1:9848/metrics").splitlines()
                                   if l.startswith(("sensd_sessions", "sensd_users", "sensd_up"))]
    # The exporter's event stream subscribes beside its first scrape; the scrape Prometheus keeps may be
    # from before it is accepted.
    wait_until(lambda: scalar(c, 'sensd_exporter_stream_connected{job="sensd"}') == 1,
               "the exporter's event stream to be subscribed", timeout=60)

    release()
    # The exporter started with the first scrape, after the logons: their Logoffs and durations are its own.
    wait_until(lambda: scalar(c, 'sensd_events_total{job="sensd",event="Logoff"}') == 5, "5 Logoffs counted", timeout=60)
    wait_until(lambda: scalar(c, 'sum(sensd_sessions{job="sensd"}) or vector(0)') == 0, "no session left", timeout=30)
    assert scalar(c, 'sensd_users{job="sensd"}') == 0
    assert scalar(c, 'sum(sensd_session_duration_seconds_count{job="sensd"})') == 5
    assert scalar(c, 'sensd_session_duration_seconds_count{job="sensd",logon_type="RemoteInteractive"}') == 3
    wait_until(lambda: scalar(c, 'sensd_users{job="node"}') == 0, "the textfile to follow", timeout=60)


def test_the_check_plugin_matches_loginctl_for_an_ordinary_user_and_is_unknown_without_sensd(container, record):
    c = container
    c.add_users(*USERS)
    c.run("systemctl start sensd.service")
    sessions, release = hold_sessions(c, "check", [("ssh", "alice"), ("su", "bob"), ("su", "bob")])
    expected_sessions, expected_users = logind_counts(c)
    assert (expected_sessions, expected_users) == (3, 2)
    # An ordinary user runs it, as a monitoring agent would.
    out = c.run("runuser -u mallory -- sensctl check users -w 1 -c 5", check=False)
    assert out.returncode == 1, out
    assert out.stdout.strip() == f"USERS WARNING - {expected_users} users logged in, {expected_sessions} sessions (alice, bob) | users=2;1;5;0; sessions=3;;;0;"
    record["check_plugin_line"] = out.stdout.strip()
    remote = c.run("sensctl check users --remote --count sessions -c 0", check=False)
    assert remote.returncode == 2 and "1 session (alice)" in remote.stdout, remote
    assert c.run("sensctl users").stdout.strip() == "alice bob bob"
    assert c.run("sensctl users --unique").stdout.strip() == "alice bob"
    release()
    c.run("systemctl stop sensd.socket sensd.service")
    try:
        away = c.run("runuser -u mallory -- sensctl check users", check=False)
        assert away.returncode == 3, away
        assert away.stdout.startswith("USERS UNKNOWN - cannot ask sensd: cannot connect to /run/sensd/events.sock"), away.stdout
        record["check_plugin_unknown"] = away.stdout.strip()
    finally:
        c.run("systemctl start sensd.socket sensd.service")


def test_an_unprivileged_flood_of_the_exporters_port_leaves_sensd_and_its_logoffs_alone(container, record):
    c = container
    c.add_users(*USERS)
    c.run("systemctl start sensd.service sensd-exporter.socket")
    watcher = subscribe(c, "flood-watcher", '{"events":["Logoff"]}')
    flood = f"{SHARE}/flood.py"
    c.path(flood).write_text(
        "import socket, sys, time\n"
        "held = []\n"
        "for i in range(400):\n"
        "    try:\n"
        "        s = socket.create_connection(('127.0.0.1', 9848), timeout=2)\n"
        "        s.sendall(b'GET /metrics HTTP/1.1\\r\\nX: ' + b'a' * 3000)\n"
        "        held.append(s)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(len(held), flush=True)\n"
        "open(sys.argv[1], 'w').write('holding')\n"
        "time.sleep(30)\n")
    mark = f"{SHARE}/flood.holding"
    c.run(f"rm -f {mark}")
    c.spawn(f"exec runuser -u mallory -- python3 {flood} {mark}")
    wait_until(lambda: c.path(mark).exists(), "mallory's connections to be open", timeout=60)
    busy = http_get(c, "http://127.0.0.1:9848/metrics", user="mallory")
    assert busy.startswith("503") and "limit 64" in busy, busy
    # sensd does not notice: a session that ends now reaches its subscriber.
    sid = c.run("su - alice -c 'echo $XDG_SESSION_ID'").stdout.strip()
    wait_until(lambda: any(e.get("sessionId") == sid for e in lines(watcher)), "the Logoff during the flood")
    stats = sensd_stats(c)
    assert stats["refused"] == 0 and stats["overflowed"] == 0, stats
    assert c.run("systemctl is-active sensd.service sensd-exporter.service").stdout.split() == ["active", "active"]
    c.run("pkill -u mallory python3", check=False)
    wait_until(lambda: http_get(c, "http://127.0.0.1:9848/metrics").startswith("200"), "the exporter to serve again", timeout=30)


def test_the_exporters_units_are_hardened(container, record):
    c = container
    out = c.run("systemd-analyze security sensd-exporter.service --no-pager", check=False).stdout
    score = float(re.search(r"Overall exposure level for sensd-exporter\.service: ([0-9.]+)", out).group(1))
    record["security_exposure_exporter"] = score
    assert score <= 1.5, out
