#!/usr/bin/python3
"""bigmsg.py: large raw messages fanned out, side by side in one run.

For each case (message size, To recipients, API) and each sesgate binary
(this build, and with --before BIN another one, such as release 0.1.0), a
fresh sesgate is started against nginx answering SendRawEmail (v1) and v2
SendEmail without reading more than it must, one signed request sends the
message to every recipient, and the drain is timed until nginx has answered
every copy. Two ways of running: `sesgate run` (front and workers in one
process) and `sesgate serve` plus one `sesgate work` (the worker's memory
alone). Printed: the peak RSS of each process (VmHWM), MB/s sent upstream
(copies x the client's request size: each copy carries the whole message),
the worker's CPU seconds per GB sent, and the ratios against --before.

    bench/bigmsg.py [--before BIN] [--cases 1m:1000:v1,10m:200:v1,30m:50:v2]
                    [--modes run,work] [--out bench/results/bigmsg.md]

SESGATE_BIN (environment): the build to measure (default: build/sesgate,
made first). Loopback only; every process it starts is stopped on exit. The
first case list is the issue's; `--cases 256k:20:v1 --modes run --front ''`
is a short smoke run.
"""
import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = os.path.dirname(HERE)
KEY, SECRET = "SGBENCHBIG000000001", "bench-secret-0123456789abcdefghijklmnop"
UP_KEY, UP_SECRET = "AKIABENCHBIG0000001", "upstream-secret-0123456789abcdefghijkl"

NGINX_CONF = """worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format line '$status';
    access_log {run}/access.log line;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    client_max_body_size 200m;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = / {{
            default_type text/xml;
            return 200 '<SendRawEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><SendRawEmailResult><MessageId>0100bench-$request_id-000000</MessageId></SendRawEmailResult><ResponseMetadata><RequestId>$request_id</RequestId></ResponseMetadata></SendRawEmailResponse>';
        }}
        location = /v2/email/outbound-emails {{
            default_type application/json;
            return 200 '{{"MessageId":"0100bench-$request_id-000000"}}';
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def size_of(text):
    units = {"k": 1 << 10, "m": 1 << 20}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def message(size, to):
    """A raw message with an attachment of about size bytes (base64 lines)."""
    rnd = random.Random(size)
    blob = rnd.randbytes(size * 3 // 4)
    b64 = base64.encodebytes(blob)
    head = ("From: News <news@example.com>\r\nTo: %s\r\nSubject: Big\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            "hello\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            % ", ".join(to)).encode()
    return head + b64.replace(b"\n", b"\r\n") + b"\r\n--b--\r\n"


def request(api, port, to, msg):
    """A signed SendRawEmail (v1) or SendEmail Raw (v2): (path, headers, body)."""
    if api == "v1":
        form = [("Action", "SendRawEmail"), ("Version", "2010-12-01"),
                ("RawMessage.Data", base64.b64encode(msg).decode())]
        from urllib.parse import urlencode
        body, path, ctype = urlencode(form).encode(), "/", "application/x-www-form-urlencoded; charset=utf-8"
    else:
        body = json.dumps({"Content": {"Raw": {"Data": base64.b64encode(msg).decode()}}}).encode()
        path, ctype = "/v2/email/outbound-emails", "application/json"
    req = AWSRequest(method="POST", url="http://127.0.0.1:%d%s" % (port, path), data=body,
                     headers={"Content-Type": ctype})
    SigV4Auth(Credentials(KEY, SECRET), "ses", "us-east-1").add_auth(req)
    return path, dict(req.headers.items()), body


def proc_stat(pid):
    """(user+system CPU seconds, VmHWM kB) of a process."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


class Run:
    """One sesgate (run, or serve + work) in a fresh directory."""

    def __init__(self, tmp, binary, mode, up_port, new, first="queue"):
        self.dir = tempfile.mkdtemp(dir=tmp)
        self.port, self.admin, self.admin2 = free_port(), free_port(), free_port()
        send = "rate = off\nfirst_recipient = %s\nmax_recipients = 1000000\n" % first
        if new:
            send += "max_inflight_bytes = 256m\n"
        conf = ("[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\nmax_body = 200m\n"
                "[upstream]\nendpoint = http://127.0.0.1:%d\nregion = us-east-1\n"
                "access_key_id = %s\nsecret_access_key = %s\ntimeout = 120s\n"
                "[redis]\ndata_dir = %s/var\n[send]\n%s"
                "[client.bench]\naccess_key_id = %s\nsecret_access_key = %s\n"
                % (self.port, self.admin, up_port, UP_KEY, UP_SECRET, self.dir, send, KEY, SECRET))
        self.conf = os.path.join(self.dir, "sesgate.ini")
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o600)
        env = {"PATH": os.environ["PATH"], "HOME": self.dir}
        log = open(os.path.join(self.dir, "sesgate.log"), "ab")
        self.procs = {}
        first = "run" if mode == "run" else "serve"
        self.procs[first] = subprocess.Popen([binary, first, "-c", self.conf], stdout=log, stderr=log,
                                             env=env, cwd=self.dir)
        wait_port(self.port)
        wait_port(self.admin)
        if mode == "work":
            conf2 = os.path.join(self.dir, "work.ini")
            with open(conf2, "w") as f:
                f.write(conf.replace("admin_listen = 127.0.0.1:%d" % self.admin,
                                     "admin_listen = 127.0.0.1:%d" % self.admin2))
            os.chmod(conf2, 0o600)
            self.procs["work"] = subprocess.Popen([binary, "work", "-c", conf2], stdout=log, stderr=log,
                                                  env=env, cwd=self.dir)
            wait_port(self.admin2)
        log.close()

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def access_lines(run_dir):
    path = os.path.join(run_dir, "access.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def measure(tmp, nginx_dir, up_port, binary, new, mode, size, n, api, timeout):
    to = ["reader%06d@example.net" % i for i in range(n)]
    msg = message(size, to)
    base = len(access_lines(nginx_dir))
    run = Run(tmp, binary, mode, up_port, new)
    try:
        path, headers, body = request(api, run.port, to, msg)
        cpu0 = {k: proc_stat(p.pid)[0] for k, p in run.procs.items()}
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=300)
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        accepted = time.monotonic() - t0
        if resp.status != 200:
            raise RuntimeError("sesgate answered %d: %s" % (resp.status, answer[:300]))
        deadline = time.monotonic() + timeout
        while len(access_lines(nginx_dir)) - base < n:
            if time.monotonic() > deadline:
                done = len(access_lines(nginx_dir)) - base
                return {"size": size, "n": n, "api": api, "mode": mode, "accepted_s": accepted,
                        "drain_s": None, "copies_done": done, "bytes": 0, "mb_s": 0,
                        "cpu_s_per_gb": 0, "rss_mb": {k: proc_stat(p.pid)[1] / 1024 for k, p in run.procs.items()}}
            for k, p in run.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("sesgate %s exited with %s" % (k, p.returncode))
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        # each copy carries the whole message: the client's body is its size
        # (nginx does not count a body it discards)
        sent = n * len(body)
        stats = {k: proc_stat(p.pid) for k, p in run.procs.items()}
    finally:
        run.stop()
        shutil.rmtree(run.dir, ignore_errors=True)
    worker = "run" if mode == "run" else "work"
    cpu = stats[worker][0] - cpu0[worker]
    return {"size": size, "n": n, "api": api, "mode": mode, "accepted_s": accepted,
            "drain_s": elapsed, "bytes": sent, "mb_s": sent / elapsed / 1e6,
            "cpu_s_per_gb": cpu / (sent / 1e9), "rss_mb": {k: v[1] / 1024 for k, v in stats.items()}}


def front(tmp, up_port, binary, new, size, n, api):
    """The front alone (`sesgate serve`, first_recipient = sync: it sends copy
    0 and queues the rest) taking one large send: its peak RSS."""
    to = ["reader%06d@example.net" % i for i in range(n)]
    msg = message(size, to[:50])  # the To field names a few; the envelope all
    if api == "v1":
        from urllib.parse import urlencode
        form = [("Action", "SendRawEmail"), ("Version", "2010-12-01"),
                ("RawMessage.Data", base64.b64encode(msg).decode())]
        form += [("Destinations.member.%d" % (i + 1), a) for i, a in enumerate(to)]
        body, path, ctype = urlencode(form).encode(), "/", "application/x-www-form-urlencoded; charset=utf-8"
    else:
        body = json.dumps({"Destination": {"ToAddresses": to},
                           "Content": {"Raw": {"Data": base64.b64encode(msg).decode()}}}).encode()
        path, ctype = "/v2/email/outbound-emails", "application/json"
    run = Run(tmp, binary, "serve", up_port, new, first="sync")
    try:
        req = AWSRequest(method="POST", url="http://127.0.0.1:%d%s" % (run.port, path), data=body,
                         headers={"Content-Type": ctype})
        SigV4Auth(Credentials(KEY, SECRET), "ses", "us-east-1").add_auth(req)
        base = run.procs["serve"]
        _, hwm0 = proc_stat(base.pid)
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=300)
        conn.request("POST", path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        answer = resp.read()
        accepted = time.monotonic() - t0
        if resp.status != 200:
            raise RuntimeError("sesgate answered %d: %s" % (resp.status, answer[:300]))
        _, hwm = proc_stat(base.pid)
    finally:
        run.stop()
        shutil.rmtree(run.dir, ignore_errors=True)
    return {"size": size, "n": n, "api": api, "request_mb": len(body) / 1e6, "accepted_s": accepted,
            "rss_before_mb": hwm0 / 1024, "rss_peak_mb": hwm / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="a sesgate binary to compare with (e.g. release 0.1.0)")
    ap.add_argument("--cases", default="1m:1000:v1,10m:200:v1,30m:50:v2")
    ap.add_argument("--modes", default="run,work")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a drain may take (then: not finished)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bigmsg.md"))
    ap.add_argument("--front", default="40m:10000:v2",
                    help="size:recipients:api of the front-only measurement ('' to skip)")
    args = ap.parse_args()
    if shutil.which("nginx") is None:
        sys.exit("missing nginx: apt-get install -y nginx-light")
    binary = os.environ.get("SESGATE_BIN")
    if not binary:  # a given SESGATE_BIN is measured as it is
        subprocess.run(["make", "-C", MAIN, "-s"], check=True)
        binary = os.path.join(MAIN, "build", "sesgate")
    binaries = [("this build", os.path.abspath(binary), True)]
    if args.before:
        binaries.append(("before", args.before, False))
    tmp = tempfile.mkdtemp(prefix="sesgate-bigmsg.")
    nginx_dir = os.path.join(tmp, "nginx")
    os.makedirs(nginx_dir)
    up_port = free_port()
    with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(run=nginx_dir, port=up_port))
    subprocess.run(["nginx", "-c", os.path.join(nginx_dir, "nginx.conf")], check=True)
    rows, fronts = [], []
    try:
        wait_port(up_port)
        for case in filter(None, args.front.split(",")):
            size, n, api = case.split(":")
            for label, binary, new in binaries:
                r = front(tmp, up_port, binary, new, size_of(size), int(n), api)
                r["label"], r["case"] = label, case
                fronts.append(r)
                print(json.dumps(r), flush=True)
        for case in args.cases.split(","):
            size, n, api = case.split(":")
            for mode in args.modes.split(","):
                for label, binary, new in binaries:
                    r = measure(tmp, nginx_dir, up_port, binary, new, mode, size_of(size), int(n), api,
                                args.timeout)
                    r["label"], r["case"] = label, case
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        pid_file = os.path.join(nginx_dir, "nginx.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                os.kill(int(f.read()), signal.SIGQUIT)
        time.sleep(0.5)
        shutil.rmtree(tmp, ignore_errors=True)
    lines = ["| case | mode | binary | accepted s | drain s | MB/s upstream | CPU s/GB | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rss = ", ".join("%s %.0f" % (k, v) for k, v in r["rss_mb"].items())
        if r["drain_s"] is None:
            lines.append("| %s | %s | %s | %.2f | not finished: %d of %d copies in %.0f s | | | %s |" % (
                r["case"], r["mode"], r["label"], r["accepted_s"], r["copies_done"], r["n"], args.timeout, rss))
            continue
        lines.append("| %s | %s | %s | %.2f | %.2f | %.0f | %.2f | %s |" % (
            r["case"], r["mode"], r["label"], r["accepted_s"], r["drain_s"], r["mb_s"],
            r["cpu_s_per_gb"], rss))
    if args.before:
        lines.append("")
        lines.append("| case | mode | MB/s ratio | CPU s/GB ratio | worker peak RSS ratio |")
        lines.append("|---|---|---|---|---|")
        for a in rows:
            if a["label"] != "this build":
                continue
            b = next(x for x in rows if x["label"] == "before" and x["case"] == a["case"] and x["mode"] == a["mode"])
            w = "run" if a["mode"] == "run" else "work"
            if a["drain_s"] is None or b["drain_s"] is None:
                lines.append("| %s | %s | (not finished) | | %.2f |" % (
                    a["case"], a["mode"], a["rss_mb"][w] / b["rss_mb"][w]))
                continue
            lines.append("| %s | %s | %.2f | %.2f | %.2f |" % (
                a["case"], a["mode"], a["mb_s"] / b["mb_s"], a["cpu_s_per_gb"] / b["cpu_s_per_gb"],
                a["rss_mb"][w] / b["rss_mb"][w]))
    if fronts:
        lines += ["", "| front: one send | binary | request MB | accepted s | RSS before MB | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        for r in fronts:
            lines.append("| %s | %s | %.1f | %.2f | %.0f | %.0f |" % (
                r["case"], r["label"], r["request_mb"], r["accepted_s"], r["rss_before_mb"], r["rss_peak_mb"]))
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
