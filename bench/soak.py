#!/usr/bin/python3
"""soak.py -- a sustained mixed load on one `sesgate run`, watching memory.

Starts `build/sesgate run` with the built-in sandbox upstream ([sandbox]
rate 1000/s; [send] status_ttl 1m, so finished batch status leaves Redis as
it would after its TTL in production) in a fresh directory, then for
DURATION seconds sends, on keep-alive connections from three threads:
pass-through GetSendQuota calls (about 50/s), single-recipient SendEmails
(about 20/s) and 50-recipient SendEmails that become batches (one a
second). Every SAMPLE seconds it records sesgate's RSS and open
descriptors, the managed Redis's used_memory and the queue depth. At the end
it waits for the queue to drain and checks: no request failed, every queued
recipient was delivered (the outbox holds one .eml per recipient sent), and
RSS, descriptors and Redis memory in the last third of the run are within
SLACK (10 %) of the middle third (flat, not growing); descriptors may also
differ by FD_SLACK (16: upstream and Redis connections opened on a burst,
which a short run's few dozen descriptors would read as growth).

Usage: bench/soak.py [DURATION seconds (600)] [SAMPLE seconds (30)]
SESGATE_BIN (environment): the build to measure (default: build/sesgate,
made first). `bench/soak.py 6 1` is a short smoke run.
"""

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials

ROOT = Path(__file__).resolve().parent.parent
DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
SAMPLE = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
SLACK = 0.10
FD_SLACK = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Load:
    """Signed requests sent in a loop at a target rate on one connection."""

    def __init__(self, name, port, creds, body_fn, per_second, deadline):
        self.name, self.port, self.creds = name, port, creds
        self.body_fn, self.period, self.deadline = body_fn, 1.0 / per_second, deadline
        self.ok = self.failed = self.recipients = 0
        self.errors = {}

    def sign(self, body):
        req = botocore.awsrequest.AWSRequest(
            method="POST", url="http://127.0.0.1:%d/" % self.port, data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(*self.creds), "ses",
                                "us-east-1").add_auth(req)
        return dict(req.headers.items())

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        k = 0
        next_at = time.monotonic()
        while time.monotonic() < self.deadline:
            body, n = self.body_fn(k)
            k += 1
            try:
                conn.request("POST", "/", body=body, headers=self.sign(body))
                r = conn.getresponse()
                data = r.read()
                if r.status == 200:
                    self.ok += 1
                    self.recipients += n
                else:
                    self.failed += 1
                    code = re.search(rb"<Code>([^<]+)</Code>", data)
                    key = "%d %s" % (r.status, code.group(1).decode() if code else "")
                    self.errors[key] = self.errors.get(key, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def send_body(tag, k, n):
    """A v1 SendEmail to n recipients, form-encoded."""
    to = "&".join("Destination.ToAddresses.member.%d=%s-%d-%d%%40example.com" % (i + 1, tag, k, i)
                  for i in range(n))
    return ("Action=SendEmail&Version=2010-12-01&Source=soak%%40example.com&%s&Message.Subject.Data=soak"
            "&Message.Body.Text.Data=soak+%s+%d" % (to, tag, k))


def status(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    rss = int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/%d/status" % pid).read_text()).group(1))
    return fds, rss


def redis(sock, *args):
    return subprocess.run(["redis-cli", "-s", str(sock)] + list(args), capture_output=True, text=True,
                          timeout=10).stdout


def main():
    binary = os.environ.get("SESGATE_BIN")
    if not binary:  # a given SESGATE_BIN is measured as it is
        subprocess.run(["make", "-s", "-j2", "all"], cwd=ROOT, check=True)
        binary = ROOT / "build" / "sesgate"
    binary = Path(binary).resolve()
    work = Path(tempfile.mkdtemp(prefix="sesgate-soak-"))
    port, admin = free_port(), free_port()
    (work / "sesgate.ini").write_text(
        "[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n[redis]\ndata_dir = %s\n"
        # events = off: their MessageId index lives [feedback] index_ttl (at
        # least a minute, 7 days by default), which would read as growth here
        "[send]\nstatus_ttl = 1m\n[sandbox]\nrate = 1000\ndaily_quota = 10000000\nevents = off\n"
        % (port, admin, work / "var"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SESGATE_"))}
    proc = subprocess.Popen([str(binary), "run", "-c", str(work / "sesgate.ini")],
                            stdout=open(work / "run.out", "wb"), stderr=open(work / "run.err", "wb"),
                            env=env, cwd=str(work))
    sock = work / "var" / "redis" / "redis.sock"
    try:
        for _ in range(100):
            if "try it" in (work / "run.out").read_text():
                break
            time.sleep(0.1)
        text = (work / "var" / "credentials").read_text()
        creds = (re.search(r"aws_access_key_id = (\S+)", text).group(1),
                 re.search(r"aws_secret_access_key = (\S+)", text).group(1))
        deadline = time.monotonic() + DURATION
        loads = [
            Load("pass-through GetSendQuota", port, creds,
                 lambda k: ("Action=GetSendQuota&Version=2010-12-01", 0), 50, deadline),
            Load("single sends", port, creds, lambda k: (send_body("one", k, 1), 1), 20, deadline),
            Load("bulk sends of 50", port, creds, lambda k: (send_body("bulk", k, 50), 50), 1, deadline),
        ]
        threads = [threading.Thread(target=ld.run) for ld in loads]
        for t in threads:
            t.start()
        samples = []
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(min(SAMPLE, max(0.0, deadline - time.monotonic())))
            fds, rss = status(proc.pid)
            mem = int(re.search(r"used_memory:(\d+)", redis(sock, "INFO", "memory")).group(1))
            depth = sum(int(redis(sock, "XLEN", k).strip() or 0)
                        for k in redis(sock, "SMEMBERS", "sesgate:{sesgate}:qs").split())
            samples.append((time.monotonic() - t0, rss, fds, mem, depth))
            print("soak: %5.0f s  RSS %6d kB  fds %4d  redis %8d B  queued %d"
                  % samples[-1], flush=True)
        for t in threads:
            t.join()
        queued = sum(ld.recipients for ld in loads)
        # wait for the queue to drain and count the outbox
        end = time.monotonic() + 120
        while time.monotonic() < end:
            files = sum(1 for _ in (work / "var" / "outbox").glob("*.eml"))
            if files >= queued:
                break
            time.sleep(1)
        for ld in loads:
            print("soak: %-26s %7d ok, %d failed %s" % (ld.name, ld.ok, ld.failed, ld.errors or ""))
        print("soak: %d recipients accepted, %d .eml files in the outbox" % (queued, files))
        third = max(1, len(samples) // 3)
        mid, last = samples[third:2 * third], samples[-third:]
        verdict = []
        for i, name in ((1, "RSS"), (2, "descriptors"), (3, "Redis used_memory")):
            a = max(s[i] for s in mid)
            b = max(s[i] for s in last)
            grew = (b - a) / a if a else 0.0
            verdict.append(grew <= SLACK or (name == "descriptors" and b - a <= FD_SLACK))
            print("soak: %-17s middle third max %d, last third max %d (%+.1f %%)" % (name, a, b, 100 * grew))
        ok = all(verdict) and files == queued and not any(ld.failed for ld in loads)
        print("soak: %s" % ("flat, nothing failed, every recipient delivered" if ok else "FAILED"))
        if not ok:
            sys.exit(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
