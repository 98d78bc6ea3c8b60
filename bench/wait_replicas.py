#!/usr/bin/python3
"""What [redis] wait_replicas costs: the latency of a queued batch's answer
(SendEmail to 10 To recipients, first_recipient = queue) with and without
WAIT 1, against a master and one replica on loopback.

    SESGATE_BIN=build/sesgate bench/wait_replicas.py [BATCHES] [CLIENTS...]

For each setting (wait_replicas 0, then 1) and each number of concurrent
clients (default 1 and 8), BATCHES batches (default 500) after 50 of warm-up;
prints p50, p90, p99 and max of the client's wall time per call, in ms. The
workers send at 1 recipient/s so that draining does not compete for the
cores. Uses the integration tests' harness (fake SES, boto3). `20 1` is a
short run (`make bench`). WAIT_TIMEOUT (1s): [redis] wait_timeout, longer
for a loaded machine or a sanitizer build."""

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
import tempfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402


def redis(workdir, name, replica_of=None):
    port = harness.free_port()
    d = Path(workdir) / name
    d.mkdir(parents=True)
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(d), "--logfile", str(d / "log")]
    if replica_of:
        cmd += ["--replicaof", "127.0.0.1", str(replica_of)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert harness.wait_port(port, 10)
    return port, proc


def run(gw, batches, clients):
    lat = []
    lock = threading.Lock()
    per = batches // clients

    def worker(k):
        c = harness.boto3_client(gw, "ses")
        mine = []
        for i in range(per + 50 // clients):
            to = ["c%d-%d-%d@example.net" % (k, i, j) for j in range(10)]
            t0 = time.perf_counter()
            c.send_email(Source=harness.SENDER, Destination={"ToAddresses": to},
                         Message={"Subject": {"Data": "b"}, "Body": {"Text": {"Data": "x"}}})
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine[50 // clients:])

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    return {"n": len(lat), "p50": q[49] * 1000, "p90": q[89] * 1000, "p99": q[98] * 1000,
            "max": lat[-1] * 1000, "per_s": len(lat) / wall}


def main():
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    clients = [int(a) for a in sys.argv[2:]] or [1, 8]
    work = Path(tempfile.mkdtemp(prefix="sesgate-bench-wait-"))
    mport, mproc = redis(work, "master")
    rport, rproc = redis(work, "replica", replica_of=mport)
    print("master 127.0.0.1:%d, replica 127.0.0.1:%d, sesgate %s" % (mport, rport, harness.sesgate_bin()))
    try:
        for wait in (0, 1):
            extra = {"redis": {"url": "redis://127.0.0.1:%d" % mport, "wait_replicas": str(wait),
                               "wait_timeout": os.environ.get("WAIT_TIMEOUT", "1s")},
                     "send": {"first_recipient": "queue", "rate": "1", "max_wait": "2s"}}
            gw = harness.run_gateway(work / ("gate%d" % wait), extra=extra)
            try:
                for n in clients:
                    r = run(gw, batches, n)
                    print("wait_replicas=%d clients=%d batches=%d: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, "
                          "max %.2f ms, %.0f batches/s" % (wait, n, r["n"], r["p50"], r["p90"], r["p99"],
                                                          r["max"], r["per_s"]))
            finally:
                harness.stop_run_gateway(gw)
    finally:
        for p in (rproc, mproc):
            p.terminate()
            p.wait()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("SESGATE_BIN", str(ROOT / "build" / "sesgate"))
    main()
