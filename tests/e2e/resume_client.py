"""A subscriber that never gives up, written against the protocol alone (no project code): it reconnects
whenever the stream ends (daemon killed or restarting, overflow) and resumes with "since" after the last
event it received. Runs inside the test container.

    python3 resume_client.py SOCKET OUT REQUEST_JSON

OUT gets every line received, each prefixed with the receipt time: "<unix time> <line>".
"""

import json
import socket
import sys
import time

path, out_path, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = open(out_path, "a", buffering=1)
position = request.pop("since", None)


def connect():
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            time.sleep(0.05)  # the daemon is restarting: a client's backoff


while True:
    s = connect()
    asked = dict(request)
    if position is not None:
        asked["since"] = position
    s.sendall(json.dumps(asked).encode() + b"\n")
    buffer = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        received = time.time()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode()
            out.write(f"{received:.6f} {line}\n")
            o = json.loads(line)
            if "event" in o:
                position = o["seq"]
            elif "hello" in o and position is None:
                position = o["lastSeq"]
            elif "accepted" in o:
                position = max(position or 0, o["fromSeq"] - 1)
            elif "gap" in o:
                position = max(position or 0, o["lastMissing"])
    s.close()
