"""feedback_ingest.py -- SES events ingested per second through the SNS
endpoint ([feedback] path), signatures verified, by `sesgate serve` with its
managed Redis; driven by bench/feedback_ingest.sh (settings there).

1. A fake SNS publisher (tests/integration/fakesns.py: its own CA, a
   loopback HTTPS server for its signing certificate) and sesgate with
   [feedback] topics = one topic, test_trust = that CA and host.
2. N signed Notifications, half SignatureVersion 1 (SHA1withRSA), half 2
   (SHA256withRSA), each an SES Bounce (identity notification) for a
   message whose SES MessageId is indexed to the client (as sesgate indexes
   the MessageIds it obtains), signed beforehand in 2 processes.
3. One message first: the certificate is fetched and cached; then wrk posts
   the others over CONNS keep-alive connections for at most DURATION
   seconds (bench/feedback_ingest.lua, one message each, stopping when all
   were posted).
4. Events/s = messages applied / the time from the first to the last one
   applied (sesgate's log); none may be refused or answered other than 200
   (sesgate_feedback_messages_total, _refused_total, wrk's counts). The ratio
   against 14/s and 500/s: SES accounts of those sending rates, each mail
   giving one event per second per recipient (a Delivery), at the least.
"""

import datetime
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
import fakesns  # noqa: E402

TOPIC = fakesns.topic_arn("sesgate-bench")
_SNS = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sign_init(key_pem, cert_url):
    from cryptography.hazmat.primitives import serialization
    global _SNS
    _SNS = (serialization.load_pem_private_key(key_pem, None), cert_url)


def _sign_one(i):
    key, cert_url = _SNS
    ses_id = "bench-%08d-%s" % (i, uuid.uuid4().hex)
    rcpt = "r%d@example.com" % i
    msg = {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
           "Subject": "Amazon SES Email Event", "Message": fakesns.ses_bounce(ses_id, rcpt),
           "Timestamp": fakesns.timestamp(), "SignatureVersion": str(1 + i % 2)}
    msg["Signature"] = fakesns.sign(key, msg, 1 + i % 2)
    msg["SigningCertURL"] = cert_url
    msg["UnsubscribeURL"] = "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=%s:x" % TOPIC
    return ses_id, json.dumps(msg)


def metrics(admin):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'sesgate_feedback_(messages|refused)_total\{(.*)\} (\S+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def main():
    n = int(os.environ.get("N", "80000"))
    duration = int(os.environ.get("DURATION", "10"))
    conns = int(os.environ.get("CONNS", "8"))
    keep = os.environ.get("KEEP", "0") == "1"
    binary = Path(os.environ.get("SESGATE_BIN") or HERE.parent / "build" / "sesgate").resolve()
    work = Path(tempfile.mkdtemp(prefix="sesgate-feedback.", dir=os.environ.get("TMPDIR")))
    proc = None
    sns = fakesns.FakeSNS(work).start()
    try:
        port, admin = free_port(), free_port()
        (work / "sesgate.ini").write_text(
            "[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n"
            "[upstream]\nendpoint = http://127.0.0.1:9\nregion = us-east-1\n"
            "access_key_id = AKIABENCHBENCHBENCH0\nsecret_access_key = %s\n"
            "[redis]\ndata_dir = %s\n[send]\nrate = 100\n"
            "[client.app]\naccess_key_id = SGBENCHBENCHBENCH000\nsecret_access_key = %s\n"
            "[feedback]\ntopics = %s\ntest_trust = %s\n"
            % (port, admin, "b" * 40, work / "var", "c" * 40, TOPIC, sns.test_trust))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SESGATE_"))}
        log = open(work / "sesgate.log", "wb")
        proc = subprocess.Popen([str(binary), "serve", "-c", "sesgate.ini"], cwd=str(work), stdout=log,
                                stderr=log, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % admin, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("feedback_ingest: sesgate did not start:\n" + (work / "sesgate.log").read_text()[-3000:])
            time.sleep(0.1)

        t0 = time.monotonic()
        from cryptography.hazmat.primitives import serialization
        key_pem = sns.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        with multiprocessing.Pool(2, _sign_init, (key_pem, sns.cert_url)) as pool:
            signed = pool.map(_sign_one, range(n + 1), chunksize=256)
        print("feedback_ingest: %d notifications signed in %.1f s" % (n + 1, time.monotonic() - t0))

        # index each SES MessageId to the client, as a send through sesgate does
        sock = work / "var" / "redis" / "redis.sock"
        pfx = "sesgate:{sesgate}:"
        cmds = "".join("*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nPX\r\n$7\r\n3600000\r\n"
                       % (len(pfx + "m:" + sid), pfx + "m:" + sid, len("app\t-\t-"), "app\t-\t-")
                       for sid, _ in signed)
        subprocess.run(["redis-cli", "-s", str(sock), "--pipe"], input=cmds.encode(), check=True,
                       capture_output=True, timeout=120)

        url = "http://127.0.0.1:%d/sesgate/sns" % port
        first = json.loads(signed[0][1])
        status, text = fakesns.post(url, first)
        if status != 200:
            sys.exit("feedback_ingest: the first message was answered %d %s:\n%s"
                     % (status, text, (work / "sesgate.log").read_text()[-3000:]))
        before = metrics(admin)

        bodies = work / "bodies.txt"
        with open(bodies, "w") as f:
            for _, body in signed[1:]:
                f.write(body + "\n")
        wrk = shutil.which("wrk") or "/usr/bin/wrk"
        out = subprocess.run([wrk, "-t1", "-c%d" % conns, "-d%ds" % duration, "--timeout", "10s",
                              "-s", str(HERE / "feedback_ingest.lua"), url, "--", str(bodies)],
                             capture_output=True, text=True, timeout=duration + 60)
        m = re.search(r"^JSON (.*)$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            sys.exit("feedback_ingest: wrk failed:\n" + out.stdout + out.stderr)
        res = json.loads(m.group(1))
        after = metrics(admin)
        applied = after.get(("messages", 'type="Notification",outcome="applied"'), 0) - \
            before.get(("messages", 'type="Notification",outcome="applied"'), 0)
        refused = sum(v - before.get(k, 0) for k, v in after.items() if k[0] == "refused")
        # the time from the first to the last message applied, from sesgate's
        # log (wrk's own duration is always DURATION, even when every
        # message was posted sooner)
        time.sleep(0.3)  # info lines are written every 100 ms
        stamps = re.findall(r"^ts=(\S+) level=info event=feedback [^\n]*outcome=applied ",
                            (work / "sesgate.log").read_text(), re.M)[1:]
        span = [datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ") for t in (stamps[0], stamps[-1])]
        secs = max((span[1] - span[0]).total_seconds(), 1e-3)
        rate = (len(stamps) - 1) / secs
        print("feedback_ingest: %d notifications (SignatureVersion 1 and 2, certificate cached, %d "
              "connections), the last applied after %.2f s: %d answered 200, %d other, %d socket errors; applied %d, "
              "refused %d, replays %d (requests still under way after the last message)"
              % (res["requests"], conns, secs, res["requests"] - res["non2xx"], res["non2xx"], res["errors"],
                 applied, refused, max(0, res["requests"] - applied)))
        print("feedback_ingest: latency p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (res["p50_us"] / 1e3, res["p99_us"] / 1e3, res["max_us"] / 1e3))
        print("feedback_ingest: %.0f events/s = %.1f x a 14/s account's events, %.2f x a 500/s account's"
              % (rate, rate / 14, rate / 500))
        replays = res["requests"] - applied
        if res["non2xx"] or res["errors"] or refused or replays > conns:
            sys.exit("feedback_ingest: not every message was applied:\n" + out.stdout +
                     (work / "sesgate.log").read_text()[-3000:])
        if applied >= n:
            print("feedback_ingest: every signed message was posted before %d s: raise N for a full run" % duration)
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sns.stop()
        if keep:
            print("feedback_ingest: kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
