"""What a careless or hostile local user can do to sensd's socket, run inside the test container as that
user (no project code, the protocol only):

    python3 hostile_client.py SOCKET hold N STOPFILE OUT     open N connections, write what each got, hold
    python3 hostile_client.py SOCKET slow N STOPFILE OUT     N connections asking {"since":1}, never reading
    python3 hostile_client.py SOCKET flood STOPFILE OUT      connect, {"since":1}, close, as fast as it can
    python3 hostile_client.py SOCKET halfclose REQUEST OUT   a request without its newline, then EOF

OUT gets one JSON object of counts (hold, slow, flood) or every line received (halfclose).
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


def first_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return json.loads(data.split(b"\n")[0]) if data.strip() else None


if mode in ("hold", "slow"):
    n, stop, out = int(sys.argv[3]), sys.argv[4], sys.argv[5]
    held, counts = [], {"hello": 0, "refused": 0, "errors": {}, "limits": []}
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            line = first_line(s)
        except OSError as e:
            counts["errors"][e.strerror] = counts["errors"].get(e.strerror, 0) + 1
            s.close()
            continue
        if line and "hello" in line:
            counts["hello"] += 1
            if mode == "slow":
                s.sendall(b'{"since":1}\n')
            held.append(s)
        else:
            counts["refused"] += 1
            if line and line.get("limit") not in counts["limits"]:
                counts["limits"].append(line.get("limit"))
                counts.setdefault("messages", []).append(line.get("message"))
            s.close()
    with open(out + ".partial", "w") as f:
        json.dump(counts, f)
    os.rename(out + ".partial", out)
    while not os.path.exists(stop):
        time.sleep(0.05)
elif mode == "flood":
    stop, out = sys.argv[3], sys.argv[4]
    n = 0
    while not os.path.exists(stop):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.sendall(b'{"since":1}\n')
            n += 1
        except OSError:
            pass
        s.close()
    with open(out, "w") as f:
        json.dump({"connections": n}, f)
elif mode == "halfclose":
    request, out = sys.argv[3], sys.argv[4]
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(request.encode())
    s.shutdown(socket.SHUT_WR)
    with open(out, "wb", 0) as f:
        while True:
            b = s.recv(65536)
            if not b:
                break
            f.write(b)
