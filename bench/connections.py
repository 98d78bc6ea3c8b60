#!/usr/bin/python3
"""connections.py -- hold N client connections open on one `sesgate run`.

Starts `build/sesgate run` with the built-in sandbox upstream and
[server] max_connections = N + 1000 in a fresh directory, opens N TCP
connections to its SES port, sends one signed GetSendQuota on every one,
reads every answer, keeps them all open for HOLD seconds (sesgate returns
freed memory to the system every 10 s, so hold at least 10 s), sends a second
request on every one (so each connection is proven alive and kept, not
reopened), then closes them. Prints the time of each round, sesgate's
open descriptors and RSS with N connections held, and what /metrics says.
Loopback only; every step is bounded in time.

Usage: bench/connections.py [N (10000)] [HOLD seconds (10)]
SESGATE_BIN (environment): the build to measure (default: build/sesgate,
made first). `bench/connections.py 200 1` is a short smoke run.
"""

import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials

ROOT = Path(__file__).resolve().parent.parent
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
HOLD = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid):
    """(open fds, VmRSS kB, VmHWM kB) of pid."""
    fds = len(os.listdir("/proc/%d/fd" % pid))
    text = Path("/proc/%d/status" % pid).read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1))
    return fds, rss, hwm


def round_trip(socks, request, deadline_s=120):
    """Send request on every socket, read one whole answer from each;
    returns (seconds, answers with status 200)."""
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    pending = {}
    for s in socks:
        s.sendall(request)
        sel.register(s, selectors.EVENT_READ)
        pending[s] = b""
    ok = 0
    bad = {}
    deadline = t0 + deadline_s
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise SystemExit("connections: a connection was closed by sesgate")
            pending[s] += data
            buf = pending[s]
            head, sep, body = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                if buf.startswith(b"HTTP/1.1 200"):
                    ok += 1
                else:
                    bad[buf.split(b"\r\n", 1)[0] + b" " + body[200:400]] = bad.get(buf.split(b"\r\n", 1)[0] + b" " + body[200:400], 0) + 1
                sel.unregister(s)
                del pending[s]
    sel.close()
    if pending:
        raise SystemExit("connections: %d answers missing after %d s" % (len(pending), deadline_s))
    for k, v in bad.items():
        print("connections: %d answered %r" % (v, k))
    return time.monotonic() - t0, ok


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = N + 4000  # sesgate inherits it: room for what it raises to
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    binary = os.environ.get("SESGATE_BIN")
    if not binary:  # a given SESGATE_BIN is measured as it is
        subprocess.run(["make", "-s", "-j2", "all"], cwd=ROOT, check=True)
        binary = ROOT / "build" / "sesgate"
    binary = Path(binary).resolve()
    work = Path(tempfile.mkdtemp(prefix="sesgate-conns-"))
    port, admin = free_port(), free_port()
    (work / "sesgate.ini").write_text(
        "[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\nmax_connections = %d\n"
        # events = off: the sandbox's SNS posts would be connections too
        "idle_timeout = 10m\n[redis]\ndata_dir = %s\n[sandbox]\nevents = off\n"
        % (port, admin, N + 1000, work / "var"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SESGATE_"))}
    proc = subprocess.Popen([str(binary), "run", "-c", str(work / "sesgate.ini")],
                            stdout=open(work / "run.out", "wb"), stderr=open(work / "run.err", "wb"),
                            env=env, cwd=str(work))
    socks = []
    try:
        for _ in range(100):
            if "try it" in (work / "run.out").read_text():
                break
            time.sleep(0.1)
        creds_text = (work / "var" / "credentials").read_text()
        key = re.search(r"aws_access_key_id = (\S+)", creds_text).group(1)
        secret = re.search(r"aws_secret_access_key = (\S+)", creds_text).group(1)
        base = status(proc.pid)
        body = "Action=GetSendQuota&Version=2010-12-01"
        req = botocore.awsrequest.AWSRequest(method="POST", url="http://127.0.0.1:%d/" % port, data=body,
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "ses", "us-east-1").add_auth(req)
        head = "".join("%s: %s\r\n" % (k, v) for k, v in req.headers.items())
        request = ("POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sContent-Length: %d\r\n\r\n%s"
                   % (port, head, len(body), body)).encode()
        t0 = time.monotonic()
        for _ in range(N):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.setblocking(True)
            socks.append(s)
        opened = time.monotonic() - t0
        first, ok1 = round_trip(socks, request)
        held = status(proc.pid)
        time.sleep(HOLD)
        rested = status(proc.pid)
        second, ok2 = round_trip(socks, request)
        after = status(proc.pid)
        metrics = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            "http://127.0.0.1:%d/metrics" % admin, timeout=10).read().decode()
        open_conns = re.search(r"^sesgate_connections (\S+)", metrics, re.M)
        print("connections: %d opened in %.2f s; first request on each: %d answered 200 in %.2f s; "
              "held %.0f s; second request on each: %d answered 200 in %.2f s"
              % (N, opened, ok1, first, HOLD, ok2, second))
        print("connections: sesgate before: %d fds, RSS %d kB; with %d held: %d fds, RSS %d kB just after the "
              "first round, %d kB after holding %.0f s (%.2f kB per connection); after the second round: %d fds, "
              "RSS %d kB, peak %d kB"
              % (base[0], base[1], N, held[0], held[1], rested[1], HOLD, (rested[1] - base[1]) / N, after[0],
                 after[1], after[2]))
        print("connections: /metrics sesgate_connections %s" % (open_conns.group(1) if open_conns else "?"))
        if ok1 != N or ok2 != N:
            raise SystemExit("connections: not every request was answered 200")
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("connections: kept", work)


if __name__ == "__main__":
    main()
