#!/usr/bin/python3
"""enqueue_stall.py HOST:PORT CREDENTIALS N OUT.json [INTERVAL_MS [PROBE_HOST:PORT]]

While one SES v1 SendEmail to N To recipients is sent to sesgate at
HOST:PORT, send one-recipient SendEmails every INTERVAL_MS (10) from other
connections, and record how long each took. CREDENTIALS is an AWS shared
credentials file with a [sesgate] profile (sesgate run writes one under
data_dir). The single sends go to PROBE_HOST:PORT (default HOST:PORT).

Order: the big request is built and signed first (botocore SigV4Auth,
service "email"); the probe starts and runs alone for 1 s; the big request
is sent; the probe goes on until 1 s after its answer. Each probe send is
started on schedule by a pool of threads (open loop), so a stalled server
shows as the latency of every send it held, not as fewer sends.

Writes OUT.json: {"big": {status, seconds, start, end}, "probes":
[[start, seconds, status], ...]} (times in s from the probe's start) and
prints p50, p99 and max of the probes sent while the big request was in
flight, and of all of them.
"""
import configparser
import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
SMALL = ("Action=SendEmail&Version=2010-12-01&Source=probe%40example.com"
         "&Destination.ToAddresses.member.1=probe{k}%40example.com"
         "&Message.Subject.Data=probe&Message.Body.Text.Data=probe")


def stall_signed(hostport, creds, body):
    """Headers (a dict) of a SigV4-signed POST of body (bytes) to hostport."""
    req = AWSRequest(method="POST", url=f"http://{hostport}/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(creds, "email", REGION).add_auth(req)
    return dict(req.headers.items())


def stall_post(hostport, headers, body, timeout):
    """POST body; (HTTP status or 0 on a transport error, seconds)."""
    host, port = hostport.rsplit(":", 1)
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        c.request("POST", "/", body=body, headers=headers)
        r = c.getresponse()
        r.read()
        status = r.status
        c.close()
    except OSError:
        status = 0
    return status, time.monotonic() - t0


def stall_pct(xs, p):
    """The p-th percentile (nearest rank) of the sorted list xs."""
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))]


def stall_line(name, lat):
    """One summary line of latencies in seconds."""
    s = sorted(lat)
    return ("%s: %d sends, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
            % (name, len(s), 1000 * stall_pct(s, 50), 1000 * stall_pct(s, 99), 1000 * (s[-1] if s else 0)))


def main():
    if len(sys.argv) not in (5, 6, 7):
        sys.exit(__doc__)
    hostport, credfile, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    interval = (float(sys.argv[5]) if len(sys.argv) >= 6 else 10.0) / 1000.0
    probe_at = sys.argv[6] if len(sys.argv) == 7 else hostport
    cp = configparser.ConfigParser()
    cp.read(credfile)
    creds = Credentials(cp["sesgate"]["aws_access_key_id"], cp["sesgate"]["aws_secret_access_key"])

    parts = ["Action=SendEmail", "Version=2010-12-01", "Source=news%40example.com"]
    parts += ["Destination.ToAddresses.member.%d=r%07d%%40example.com" % (i, i) for i in range(1, n + 1)]
    parts += ["Message.Subject.Data=A+million", "Message.Body.Text.Data=Each+its+own+copy"]
    big = "&".join(parts).encode()
    del parts
    big_headers = stall_signed(hostport, creds, big)
    print("enqueue_stall: %d recipients, a %d-byte request" % (n, len(big)), flush=True)

    probes = []
    lock = threading.Lock()
    t_zero = time.monotonic()

    def probe(k):
        body = SMALL.format(k=k).encode()
        start = time.monotonic() - t_zero
        status, secs = stall_post(probe_at, stall_signed(probe_at, creds, body), body, 60)
        with lock:
            probes.append([start, secs, status])

    stop = threading.Event()
    result = {}

    def scheduler(pool):
        k = 0
        nxt = time.monotonic()
        while not stop.is_set():
            pool.submit(probe, k)
            k += 1
            nxt += interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    with ThreadPoolExecutor(max_workers=256) as pool:
        th = threading.Thread(target=scheduler, args=(pool,), daemon=True)
        th.start()
        time.sleep(1.0)
        result["start"] = time.monotonic() - t_zero
        status, secs = stall_post(hostport, big_headers, big, 900)
        result.update(status=status, seconds=secs, end=time.monotonic() - t_zero)
        time.sleep(1.0)
        stop.set()
        th.join()
    with open(out, "w") as f:
        json.dump({"big": result, "probes": probes}, f)
    during = [p[1] for p in probes if result["start"] <= p[0] <= result["end"]]
    failed = sum(1 for p in probes if p[2] != 200)
    print("enqueue_stall: the big request answered %d in %.2f s" % (result["status"], result["seconds"]))
    print("enqueue_stall: " + stall_line("probe sends while it was in flight", during))
    print("enqueue_stall: " + stall_line("probe sends, all", [p[1] for p in probes]))
    print("enqueue_stall: probe sends not answered 200: %d" % failed)
    sys.exit(0 if result["status"] == 200 and failed == 0 else 1)


if __name__ == "__main__":
    main()
