"""What a careless or hostile local user can do to sensd's Varlink socket, run inside the test container as
that user (no project code, the protocol only):

    python3 varlink_client.py SOCKET hold N STOPFILE OUT   N connections, each calling GetInfo; hold them
    python3 varlink_client.py SOCKET probe OUT             a malformed message, an oversized one, one without
                                                           its NUL (then EOF), and a call that waits for its NUL
    python3 varlink_client.py SOCKET neverread OUT         Subscribe {"since":1}, then never read

OUT gets one JSON object.
"""

import json
import os
import resource
import socket
import sys
import time

path, mode = sys.argv[1], sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def reply(s, timeout=10):
    """The next NUL-terminated message, or None at EOF."""
    s.settimeout(timeout)
    data = b""
    while not data.endswith(b"\0"):
        chunk = s.recv(1)
        if not chunk:
            return None
        data += chunk
    return json.loads(data[:-1])


def call(s, method, parameters=None, more=False):
    message = {"method": method, "parameters": parameters or {}}
    if more:
        message["more"] = True
    s.sendall(json.dumps(message).encode() + b"\0")


def write(out, result):
    with open(out + ".partial", "w") as f:
        json.dump(result, f)
    os.rename(out + ".partial", out)


if mode == "hold":
    n, stop, out = int(sys.argv[3]), sys.argv[4], sys.argv[5]
    held, counts = [], {"served": 0, "refused": 0, "errors": [], "limits": []}
    for _ in range(n):
        try:
            s = connect()
            try:
                call(s, "org.varlink.service.GetInfo")
            except BrokenPipeError:
                # Refused before the call went out: the refusal is still there to read (as sd-varlink does,
                # which reads on after a write finds the peer gone).
                pass
            r = reply(s)
        except OSError as e:
            counts["errors"].append(e.strerror)
            continue
        if r and "parameters" in r and "interfaces" in r["parameters"]:
            counts["served"] += 1
            held.append(s)
        else:
            counts["refused"] += 1
            if r and r.get("error") and r["parameters"].get("limit") not in counts["limits"]:
                counts["limits"].append(r["parameters"].get("limit"))
                counts.setdefault("names", []).append(r["error"])
            s.close()
    write(out, counts)
    while not os.path.exists(stop):
        time.sleep(0.1)

elif mode == "probe":
    out = sys.argv[3]
    result = {}
    s = connect()
    s.sendall(b"this is not json\0")
    result["malformed"] = reply(s)
    result["malformedClosed"] = reply(s, timeout=5) is None
    s = connect()
    try:
        s.sendall(b"x" * 100_000)
    except OSError:
        pass
    result["oversized"] = reply(s)
    s = connect()
    s.sendall(json.dumps({"method": "org.varlink.service.GetInfo"}).encode())
    s.shutdown(socket.SHUT_WR)
    result["withoutNulAtEof"] = reply(s)
    # Without its NUL a call waits; the NUL completes it.
    s = connect()
    s.sendall(json.dumps({"method": "org.varlink.service.GetInfo"}).encode())
    try:
        early = reply(s, timeout=1)
    except socket.timeout:
        early = "nothing"
    s.sendall(b"\0")
    result["beforeNul"] = early
    result["afterNul"] = reply(s)
    write(out, result)

elif mode == "neverread":
    out = sys.argv[3]
    s = connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    call(s, "io.sensd.Events.Subscribe", {"since": 1}, more=True)
    write(out, {"subscribed": True})
    while True:
        time.sleep(1)
