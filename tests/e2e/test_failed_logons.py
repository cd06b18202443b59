"""End to end, failed logons (LogonFailed) with the PAM hook installed as an administrator would install it
(`pam-auth-update --enable sensd-failed-logons`), against real PAM: wrong passwords through su, run by an
ordinary user, and through ssh (a known and an unknown user); each reported once, with its user, service
and origin; nothing for the logins that succeed (ssh by key, su with the right password); with sshd's
messages turned on, a refused key (which PAM never sees) reported, and a wrong password still once; nothing
for an ordinary user's subscription; a flood stays bounded; and the same failure as ECS and OCSF.

Not here: audit records. Kernel audit does not reach a container (the kernel takes audit messages only
from its first PID namespace, and journald's audit socket is not started in one); the integration tier
feeds sensd's audit source journal files written by systemd-journal-remote instead."""

import json
import shlex

from container import SHARE, SSH, read_lines, replay_everything, sensd_stats, wait_until

PASSWORD = "Corr3ct-h0rse"
ASKPASS = "/usr/local/bin/e2e-wrong-password"


def failed(c):
    return [e for e in replay_everything(c) if e["event"] == "LogonFailed"]


def wait_failed(c, n, what):
    return wait_until(lambda: (lambda f: f if len(f) >= n else None)(failed(c)), what)


def ssh_with_password(c, user, password_script):
    """A password login over ssh, as a person would type it: OpenSSH asks the askpass program (8.4 and later
    with SSH_ASKPASS_REQUIRE=force), one attempt, no key."""
    return c.run(f"SSH_ASKPASS_REQUIRE=force SSH_ASKPASS={password_script} DISPLAY=:0 setsid -w ssh -q "
                 "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no "
                 "-o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 "
                 f"{user}@127.0.0.1 true </dev/null", check=False)


def test_the_profile_goes_after_the_modules_that_authenticate_and_only_root_may_report(container):
    c = container
    c.add_users("alice", "bob")
    c.run(f"echo 'alice:{PASSWORD}' | chpasswd && echo 'bob:{PASSWORD}' | chpasswd")
    # OpenSSH 9.8 and later (Debian 13, testing) refuse for a while a source whose logins failed
    # (PerSourcePenalties); every login here comes from 127.0.0.1, and the test makes them fail on purpose.
    c.run("if /usr/sbin/sshd -T 2>/dev/null | grep -qi '^persourcepenalties'; then "
          "echo 'PerSourcePenalties no' > /etc/ssh/sshd_config.d/e2e-no-penalties.conf && systemctl restart ssh.service; fi")
    before = c.run("cat /etc/pam.d/common-auth").stdout
    assert "sensd-pam-report" not in before, "off until an administrator turns it on"
    c.run("pam-auth-update --enable sensd-failed-logons")
    lines = [line for line in c.run("cat /etc/pam.d/common-auth").stdout.splitlines() if line.startswith("auth")]
    unix = next(i for i, line in enumerate(lines) if "pam_unix.so" in line)
    hook = next(i for i, line in enumerate(lines) if "sensd-pam-report" in line)
    deny = next(i for i, line in enumerate(lines) if "pam_deny.so" in line)
    assert unix < hook < deny, lines
    assert lines[hook].split()[1] == "[default=ignore]", lines[hook]
    # pam_unix's success jumps over the hook and pam_deny both.
    assert lines[unix].split()[1] == f"[success={deny - unix}", lines[unix]
    c.run(f"printf '#!/bin/sh\\necho not-the-password\\n' > {ASKPASS} && chmod 755 {ASKPASS}")
    c.run(f"printf '#!/bin/sh\\necho {PASSWORD}\\n' > {ASKPASS}-right && chmod 755 {ASKPASS}-right")
    c.run("systemctl start sensd.service")
    mode = c.run("stat -c '%a %U' /run/sensd/failures.sock").stdout.split()
    assert mode == ["600", "root"], mode
    # bob may not forge a failure.
    forged = c.run("runuser -u bob -- env PAM_TYPE=auth PAM_USER=alice PAM_SERVICE=forged /usr/libexec/sensd/sensd-pam-report; echo $?")
    assert forged.stdout.strip() == "0", "the hook never fails, even when it cannot report"
    assert failed(c) == []


def test_a_wrong_password_through_su_by_an_ordinary_user_is_one_logon_failed(container, record):
    c = container
    result = c.run("runuser -u bob -- sh -c 'echo not-the-password | su -c true alice'", check=False)
    assert result.returncode != 0, "su refused"
    events = wait_failed(c, 1, "the failed su")
    assert len(events) == 1, events
    e = events[0]
    assert (e["userName"], e["uid"], e["targetExists"], e["service"], e["failureReason"], e["source"]) == \
        ("alice", c.uid("alice"), True, "su", "bad-password", "pam"), e
    assert e["sessionId"] == "" and e["count"] == 1 and e["logonType"] == "Interactive" and not e["remote"], e
    # The right password: a session, and no LogonFailed.
    c.run(f"runuser -u bob -- sh -c 'echo {PASSWORD} | su -c true alice'")
    wait_until(lambda: any(x["event"] == "Logoff" and x.get("service") == "su" and x["userName"] == "alice"
                           for x in replay_everything(c)), "the good su's Logoff")
    assert len(failed(c)) == 1
    record["failed_su_reported"] = 1


def test_wrong_passwords_over_ssh_are_reported_with_their_origin_and_a_key_login_is_not(container):
    c = container
    assert ssh_with_password(c, "alice", ASKPASS).returncode != 0
    assert ssh_with_password(c, "nosuchuser", ASKPASS).returncode != 0
    events = wait_failed(c, 3, "the failed ssh logons")[1:]
    assert len(events) == 2, events
    known, unknown = events
    assert (known["userName"], known["service"], known["remoteHost"], known["failureReason"], known["targetExists"]) == \
        ("alice", "sshd", "127.0.0.1", "bad-password", True), known
    assert known["logonType"] == "RemoteInteractive" and known["remote"] is True and known["tty"] == "ssh", known
    assert (unknown["userName"], unknown["targetExists"], unknown["failureReason"]) == ("nosuchuser", False, "unknown-user"), unknown
    assert "uid" not in unknown or unknown["uid"] is None
    # A key login and a right password: sessions, no failure.
    c.run(f"{SSH} alice@127.0.0.1 true")
    assert ssh_with_password(c, "bob", ASKPASS + "-right").returncode == 0
    wait_until(lambda: sum(1 for x in replay_everything(c) if x["event"] == "Logoff" and x.get("service") == "sshd") >= 2,
               "the two ssh sessions' Logoffs")
    assert len(failed(c)) == 3


def test_with_sshds_messages_on_a_refused_key_is_reported_and_a_wrong_password_still_once(container):
    c = container
    c.run("mkdir -p /etc/systemd/system/sensd.service.d && printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/sensd "
          "--failed-logon-sources pam,audit,sshd-message\\n' > /etc/systemd/system/sensd.service.d/e2e-sources.conf "
          "&& systemctl daemon-reload && systemctl restart sensd.service")
    before = len(failed(c))
    # A key alice's authorized_keys does not hold: sshd decides without PAM.
    c.run("test -f /root/.ssh/other || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/other")
    refused = c.run("ssh -q -i /root/.ssh/other -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                    "-o BatchMode=yes -o PreferredAuthentications=publickey alice@127.0.0.1 true", check=False)
    assert refused.returncode != 0
    key = wait_failed(c, before + 1, "the refused key")[before:]
    assert len(key) == 1, key
    assert (key[0]["userName"], key[0]["source"], key[0]["failureReason"], key[0]["service"], key[0]["remoteHost"]) == \
        ("alice", "sshd-message", "other", "sshd", "127.0.0.1"), key[0]
    assert isinstance(key[0].get("remotePort"), int), key[0]
    # A wrong password: PAM's report, sshd's "Failed password" and its "Connection closed": one event.
    assert ssh_with_password(c, "bob", ASKPASS).returncode != 0
    events = wait_failed(c, before + 2, "the wrong password")[before + 1:]
    c.run(f"{SSH} alice@127.0.0.1 true")  # and a barrier: a session whose Logoff comes after all of that
    wait_until(lambda: any(x["event"] == "Logoff" and x.get("service") == "sshd" and x["seq"] > events[-1]["seq"]
                           for x in replay_everything(c)), "the barrier session's Logoff")
    events = failed(c)[before + 1:]
    assert len(events) == 1 and events[0]["userName"] == "bob" and events[0]["failureReason"] == "bad-password", events
    c.run("rm /etc/systemd/system/sensd.service.d/e2e-sources.conf && systemctl daemon-reload && systemctl restart sensd.service")


def test_an_ordinary_users_subscription_never_carries_a_failed_logon(container):
    c = container
    script = ("import socket,sys\n"
              "s=socket.socket(socket.AF_UNIX); s.connect('/run/sensd/events.sock')\n"
              "s.sendall(b'{\"since\":0,\"live\":false}\\n')\n"
              "d=b''\n"
              "while True:\n"
              "    b=s.recv(65536)\n"
              "    if not b: break\n"
              "    d+=b\n"
              "sys.stdout.write(d.decode())\n")
    out = c.run(f"runuser -u bob -- python3 -c {shlex.quote(script)}").stdout
    events = [json.loads(line) for line in out.splitlines() if line.startswith('{"event"')]
    assert any(e["event"] == "Logoff" for e in events), "bob sees the sessions"
    assert not any(e["event"] == "LogonFailed" for e in events), "but not the failures: a name typed there can be a password"
    # Asking for them by name does not help.
    root = c.run("timeout 5 sensctl monitor --json --event LogonFailed --since 0 || true").stdout
    mine = c.run("timeout 5 runuser -u bob -- sensctl monitor --json --event LogonFailed --since 0 || true").stdout
    assert root.count('"event":"LogonFailed"') == len(failed(c)) > 0 and mine.count('"event":"LogonFailed"') == 0, (root, mine)


def test_a_flood_of_failures_is_summarised_and_sensd_stays_small(container, record):
    c = container
    # Windows of 5 s instead of a minute, so that the flood spans several.
    c.run("mkdir -p /etc/systemd/system/sensd.service.d && printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/sensd "
          "--failed-logon-window 5\\n' > /etc/systemd/system/sensd.service.d/e2e-window.conf && systemctl daemon-reload "
          "&& systemctl restart sensd.service")
    pid = c.main_pid("sensd.service")
    rss_before = c.rss_kib(pid)
    # 10,000 reports from one address, as root (as PAM runs it), through the hook itself, as fast as a shell
    # runs it; a Logoff in the middle.
    flood = c.spawn("for i in $(seq 10000); do PAM_TYPE=auth PAM_USER=guess$((i % 300)) PAM_RHOST=198.51.100.4 PAM_TTY=ssh "
                    "PAM_SERVICE=sshd /usr/libexec/sensd/sensd-pam-report; done")
    c.run("sleep 1; su -c true bob")
    flood.wait(timeout=900)
    # The hook never waits: a report the full queue refused is lost (never a login held up). What sensd
    # read, it counts: each window's first five one by one, the rest in the window's summary.
    def settled():
        received = sensd_stats(c)["failedLogonReports"]
        events = [e for e in failed(c) if e.get("remoteHost") == "198.51.100.4"]
        return (received, events) if sum(e["count"] for e in events) == received else None
    received, events = wait_until(settled, "every report read to be counted", timeout=120)
    rss_after = c.rss_kib(pid)
    one_by_one = [e for e in events if e["count"] == 1]
    summaries = [e for e in events if e["count"] > 1]
    record["flood_reports_sent"] = 10000
    record["flood_reports_read"] = received
    record["flood_events"] = len(events)
    record["flood_rss_kib_before_after"] = [rss_before, rss_after]
    assert received >= 9000, f"{received} of 10,000 read"
    assert len(one_by_one) <= 5 * (len(summaries) + 1), [e["count"] for e in events]
    assert len(events) <= 6 * (len(summaries) + 1) and len(events) < 500, "bounded: not one event per failure"
    assert rss_after - rss_before < 8 * 1024, f"sensd grew from {rss_before} to {rss_after} KiB"
    assert any(e["event"] == "Logoff" and e.get("service") == "su" and e["userName"] == "bob" for e in replay_everything(c)), "the Logoff in the middle"
    c.run("rm /etc/systemd/system/sensd.service.d/e2e-window.conf && systemctl daemon-reload && systemctl restart sensd.service")


def test_the_failed_ssh_logon_as_raw_ecs_and_ocsf(container, record):
    c = container
    ssh = next(e for e in failed(c) if e["userName"] == "alice" and e["service"] == "sshd")
    line = json.dumps(ssh, separators=(",", ":"))
    c.path(f"{SHARE}/failed-ssh.jsonl").write_text(line + "\n")
    ecs = json.loads(c.run(f"sensctl convert --format ecs < {SHARE}/failed-ssh.jsonl").stdout)
    ocsf = json.loads(c.run(f"sensctl convert --format ocsf < {SHARE}/failed-ssh.jsonl").stdout)
    assert ecs["event"]["outcome"] == "failure" and ecs["event"]["action"] == "logon-failed" and ecs["source"]["ip"] == "127.0.0.1"
    assert ecs["user"]["name"] == "alice" and ecs["event"]["sequence"] == ssh["seq"]
    assert ocsf["class_uid"] == 3002 and ocsf["activity_id"] == 1 and ocsf["status_id"] == 2
    assert ocsf["status_detail"] == "bad-password" and ocsf["src_endpoint"] == {"ip": "127.0.0.1"} and ocsf["logon_type_id"] == 10
    record["failed_ssh_raw"] = ssh
    record["failed_ssh_ecs"] = ecs
    record["failed_ssh_ocsf"] = ocsf
    # Live, as a SIEM shipper would follow it.
    out = c.run("timeout 5 sensctl monitor --format ocsf --event LogonFailed --since 0 || true").stdout
    assert sum(1 for line in out.splitlines() if json.loads(line)["class_uid"] == 3002) == len(failed(c))
