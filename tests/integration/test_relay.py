"""Relays of SES events to a client's events_url (docs/FEEDBACK.md, "Relays").

Entries are added to the relay stream P:{P}:relay in the format the event
pipeline (src/lua/events.lua) writes, on the real binary's managed Redis;
a test HTTP server plays the application. Each relay must arrive once,
byte for byte, with SNS's headers; survive the application being down;
end in the dead-relay stream after relay_attempts failures and come back
from there with `sesgate relay retry`; and survive the relaying process
being killed mid-POST."""

import http.server
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

PREFIX = "sesgate-it"
RL = "%s:{%s}:relay" % (PREFIX, PREFIX)
RD = "%s:{%s}:relay:d" % (PREFIX, PREFIX)
RDLQ = "%s:{%s}:relay:dlq" % (PREFIX, PREFIX)
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
SUB = TOPIC + ":0f7a1e2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
LEASE_S = 5


class Receiver:
    """The application: an HTTP server that records every POST (headers as
    sent, body as bytes) and answers with self.status. With hold set, a
    request is recorded and then waits for hold to be cleared (unanswered
    while it waits)."""

    def __init__(self, port=None):
        self.port = port or harness.free_port()
        self.status = 200
        self.hold = threading.Event()  # set: hold requests
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.got = []  # dicts: headers (list of pairs), body (bytes), answered (status or None)
        self.server = None
        self.thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/sns/events?app=1" % self.port

    def start(self):
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                rec = {"path": self.path, "headers": list(self.headers.items()), "body": body,
                       "answered": None}
                with rcv.lock:
                    rcv.got.append(rec)
                if rcv.hold.is_set():
                    # held: never answered (its client is gone by the release)
                    rcv.release.wait(60)
                    self.close_connection = True
                    return
                status = rcv.status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                    rec["answered"] = status
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self, status=200):
        """Bodies answered with status, in arrival order."""
        with self.lock:
            return [r["body"] for r in self.got if r["answered"] == status]

    def all(self):
        with self.lock:
            return list(self.got)


def sns_body(n, extra=""):
    """An SNS Notification as SNS POSTs it (a Bounce inside), with
    non-ASCII text, escapes and CRLF line ends so that byte-for-byte
    matters."""
    mid = str(uuid.uuid4())
    message = {
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": "r%d@example.net" % n,
                                          "diagnosticCode": "smtp; 550 5.1.1 user unknown \u00fc"}],
                   "timestamp": "2026-12-07T22:00:00.000Z", "feedbackId": "fb-%d" % n},
        "mail": {"messageId": "0100018c-%08d" % n, "source": "s\u00e9nder@example.com"},
    }
    envelope = ("{\r\n  \"Type\" : \"Notification\",\r\n  \"MessageId\" : \"%s\",\r\n"
                "  \"TopicArn\" : \"%s\",\r\n  \"Message\" : %s,\r\n"
                "  \"Timestamp\" : \"2026-12-07T22:00:01.000Z\",\r\n  \"SignatureVersion\" : \"1\",\r\n"
                "  \"Signature\" : \"c2lnbmF0dXJl\",\r\n"
                "  \"SigningCertURL\" : \"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem\",\r\n"
                "  \"UnsubscribeURL\" : \"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe\"%s\r\n}"
                % (mid, TOPIC, json.dumps(json.dumps(message, ensure_ascii=False), ensure_ascii=False), extra))
    return mid, envelope.encode("utf-8")


def add_relay(gate, client, body, mid, sub=SUB, attempt="0"):
    """XADD one relay to P:{P}:relay as events.lua writes it; its entry id."""
    r = harness.RedisClient(unix=gate.workdir / "var" / "redis" / "redis.sock")
    try:
        return r.cmd("XADD", RL, "*", "c", client, "t", TOPIC, "y", "Notification", "i", mid,
                     "s", sub, "b", body, "a", attempt)
    finally:
        r.close()


def relay_state(gate):
    """(stream length, entries pending in the group, retry set size, dead relays)."""
    r = harness.RedisClient(unix=gate.workdir / "var" / "redis" / "redis.sock")
    try:
        try:
            pending = r.cmd("XPENDING", RL, "w")[0]
        except harness.RedisClient.Error:
            pending = 0  # no stream or no group yet
        return (r.cmd("XLEN", RL), pending, r.cmd("ZCARD", RD), r.cmd("XLEN", RDLQ))
    finally:
        r.close()


def metric(gate, result):
    """sesgate_relays_total{result=...} on the admin listener."""
    _, _, body = harness.http("GET", gate.admin_url + "/metrics")
    m = re.search(r'^sesgate_relays_total\{result="%s"\} (\d+)$' % result, body.decode(), re.M)
    assert m, body.decode()[-2000:]
    return int(m.group(1))


def gauge(gate, name):
    """An unlabelled gauge on the admin listener (None until it is read)."""
    _, _, body = harness.http("GET", gate.admin_url + "/metrics")
    m = re.search(r"^%s (\d+)$" % name, body.decode(), re.M)
    return int(m.group(1)) if m else None


def sesgate_cmd(gate, *args):
    """Run `sesgate ARGS -c CONFIG` (an operator command); the result."""
    return subprocess.run([str(harness.sesgate_bin())] + list(args) + ["-c", str(gate.config_path)],
                          capture_output=True, text=True, timeout=60, env=harness.clean_env(),
                          cwd=str(gate.workdir))


def header_map(rec):
    """The request's headers, names lowercased; a name sent twice fails."""
    names = [k.lower() for k, _ in rec["headers"]]
    assert len(names) == len(set(names)), rec["headers"]
    return {k.lower(): v for k, v in rec["headers"]}


def check_sns_headers(rec, mid, sub=SUB):
    h = header_map(rec)
    assert h["x-amz-sns-message-type"] == "Notification"
    assert h["x-amz-sns-message-id"] == mid
    assert h["x-amz-sns-topic-arn"] == TOPIC
    if sub:
        assert h["x-amz-sns-subscription-arn"] == sub
    else:
        assert "x-amz-sns-subscription-arn" not in h
    assert h["content-type"] == "text/plain; charset=UTF-8"
    assert h["user-agent"] == "Amazon Simple Notification Service Agent"
    assert int(h["content-length"]) == len(rec["body"])
    want = {"host", "content-length", "content-type", "user-agent", "x-amz-sns-message-type",
            "x-amz-sns-message-id", "x-amz-sns-topic-arn"} | ({"x-amz-sns-subscription-arn"} if sub else set())
    assert set(h) == want, h
    assert rec["path"] == "/sns/events?app=1"


@pytest.fixture
def rig(tmp_path):
    """Start `sesgate run` with client "app" relaying to a Receiver (and a
    client "quiet" without events_url); stop both, check the log."""
    made = []

    def make(name="relay", feedback=None, receiver=None):
        rcv = receiver or Receiver()
        extra = {"client.app": {"events_url": rcv.url},
                 "feedback": dict({"relay_timeout": "2s"}, **(feedback or {})),
                 "send": {"lease": "%ds" % LEASE_S}}
        gw = harness.run_gateway(tmp_path / name, extra=extra, clients=("app", "quiet"))
        made.append((gw, rcv))
        return gw, rcv

    yield make
    for gw, rcv in made:
        rcv.stop()
        harness.stop_run_gateway(gw)


def test_each_relay_delivered_once_byte_for_byte_with_sns_headers(rig):
    gw, rcv = rig()
    rcv.start()
    gate = gw.sesgate
    sent = {}
    for n in range(6):
        extra = ""
        if n == 5:  # a large notification (SNS allows 256 KB)
            extra = ",\r\n  \"Padding\" : \"%s\"" % ("x\u00e9" * 60000)
        mid, body = sns_body(n, extra)
        add_relay(gate, "app", body, mid, sub="" if n == 3 else SUB)
        sent[mid] = (body, n)
    # A client without events_url (and one that does not exist): dropped, logged.
    mid_q, body_q = sns_body(99)
    add_relay(gate, "quiet", body_q, mid_q)
    add_relay(gate, "gone", body_q, mid_q)

    assert harness.wait_for(lambda: len(rcv.bodies()) >= 6, timeout=20)
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 0), timeout=10)
    time.sleep(1.5)  # nothing more arrives
    got = rcv.all()
    assert len(got) == 6, [r["headers"] for r in got]
    for rec in got:
        mid = header_map(rec)["x-amz-sns-message-id"]
        body, n = sent.pop(mid)
        assert rec["body"] == body
        check_sns_headers(rec, mid, sub="" if n == 3 else SUB)
    assert not sent
    assert body_q not in [r["body"] for r in got]
    log = gate.log_text()
    assert re.search(r"event=relay_dropped .*client=quiet", log), log[-3000:]
    assert re.search(r"event=relay_dropped .*client=gone", log), log[-3000:]
    assert "/sns/events" not in log  # the URL may carry a secret: never logged
    assert metric(gate, "delivered") == 6
    assert metric(gate, "retry") == 0 and metric(gate, "dead") == 0
    st = harness.sesgate_json(gate.config_path, gate.workdir, "status")
    assert st["relays"] == {"queued": 0, "inflight": 0, "retrying": 0, "dead": 0}


def test_application_down_for_10s_then_back(rig):
    rcv = Receiver()
    gw, rcv = rig(receiver=rcv)  # the application is not listening yet
    gate = gw.sesgate
    sent = {}
    for n in range(3):
        mid, body = sns_body(n)
        add_relay(gate, "app", body, mid)
        sent[mid] = body
    harness.wait_log(gate, r"event=relay_retry ", count=3, timeout=10)
    st = harness.sesgate_json(gate.config_path, gate.workdir, "status")
    assert st["relays"]["queued"] + st["relays"]["retrying"] == 3, st["relays"]
    time.sleep(10)
    assert rcv.all() == []
    rcv.start()
    back = time.monotonic()
    assert harness.wait_for(lambda: len(rcv.bodies()) >= 3, timeout=90)
    print("\nthe application got every relay %.1f s after it came back"
          % (time.monotonic() - back))
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 0), timeout=10)
    time.sleep(2)
    bodies = rcv.bodies()
    assert sorted(bodies) == sorted(sent.values()), "lost or duplicated"
    assert len(rcv.all()) == 3
    assert metric(gate, "delivered") == 3 and metric(gate, "retry") >= 3
    assert metric(gate, "dead") == 0


def test_failing_application_dead_relays_then_retry_and_purge(rig):
    gw, rcv = rig(feedback={"relay_attempts": "3"})
    rcv.status = 500
    rcv.start()
    gate = gw.sesgate
    mid1, body1 = sns_body(1)
    mid2, body2 = sns_body(2)
    add_relay(gate, "app", body1, mid1)
    add_relay(gate, "app", body2, mid2)
    assert harness.wait_for(lambda: relay_state(gate)[3] == 2, timeout=30)
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 2), timeout=10)
    time.sleep(1)
    assert len(rcv.bodies(500)) == 6  # three tries each
    assert sorted(rcv.bodies(500)) == sorted([body1] * 3 + [body2] * 3)
    assert metric(gate, "retry") == 4 and metric(gate, "dead") == 2
    assert metric(gate, "delivered") == 0

    dead = harness.sesgate_json(gate.config_path, gate.workdir, "relay", "list")
    # oldest first; which died first depends on the backoff's jitter
    assert sorted(d["id"] for d in dead) == [d["id"] for d in dead]
    dead.sort(key=lambda d: d["sns_message_id"] != mid1)
    assert [d["sns_message_id"] for d in dead] == [mid1, mid2]
    for d, body in zip(dead, (body1, body2)):
        assert d["client"] == "app" and d["topic_arn"] == TOPIC and d["type"] == "Notification"
        assert d["subscription_arn"] == SUB and d["attempts"] == 3 and d["error"] == "HTTP 500"
        assert d["body"].encode("utf-8") == body and d["body_bytes"] == len(body)
    text = sesgate_cmd(gate, "relay", "list")
    assert text.returncode == 0, text.stderr
    lines = sorted(text.stdout.splitlines(), key=lambda x: mid1 not in x)
    assert len(lines) == 2 and lines[0].startswith(dead[0]["id"] + " app " + mid1 + " 3 %d " % len(body1))
    assert lines[0].endswith(" HTTP 500")
    st = harness.sesgate_json(gate.config_path, gate.workdir, "status")
    assert st["relays"] == {"queued": 0, "inflight": 0, "retrying": 0, "dead": 2}
    plain = sesgate_cmd(gate, "status")
    assert "relays_dead 2" in plain.stdout.splitlines(), plain.stdout
    assert harness.wait_for(lambda: gauge(gate, "sesgate_relays_dead") == 2, timeout=10)
    assert gauge(gate, "sesgate_relays_queued") == 0 and gauge(gate, "sesgate_relays_retrying") == 0

    usage = sesgate_cmd(gate, "relay", "retry")
    assert usage.returncode == 2 and "usage" in usage.stderr

    rcv.status = 200
    r = sesgate_cmd(gate, "relay", "retry", dead[0]["id"])
    assert r.returncode == 0 and r.stdout.strip() == "1 dead relays moved to the relay queue", r
    assert harness.wait_for(lambda: rcv.bodies(200) == [body1], timeout=20)
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 1), timeout=10)
    time.sleep(1.5)
    assert rcv.bodies(200) == [body1]
    check_sns_headers([x for x in rcv.all() if x["answered"] == 200][0], mid1)
    left = harness.sesgate_json(gate.config_path, gate.workdir, "relay", "list")
    assert [d["sns_message_id"] for d in left] == [mid2]

    r = sesgate_cmd(gate, "relay", "purge")
    assert r.returncode == 0 and r.stdout.strip() == "1 dead relays deleted", r
    assert harness.sesgate_json(gate.config_path, gate.workdir, "relay", "list") == []
    assert relay_state(gate) == (0, 0, 0, 0)
    assert metric(gate, "delivered") == 1

    # retry --all moves every dead relay back
    rcv.status = 500
    mid3, body3 = sns_body(3)
    add_relay(gate, "app", body3, mid3)
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 1), timeout=30)
    rcv.status = 200
    r = sesgate_cmd(gate, "relay", "retry", "--all")
    assert r.returncode == 0 and r.stdout.strip() == "1 dead relays moved to the relay queue", r
    assert harness.wait_for(lambda: body3 in rcv.bodies(200), timeout=20)
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 0), timeout=10)
    assert rcv.bodies(200) == [body1, body3]


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


class WorkSesgate(harness.Sesgate):
    """`sesgate work` on a configuration already written."""

    command = "work"
    writes_config = False
    serves = False


def test_process_killed_mid_relay_is_reclaimed_and_delivered(rig):
    gw, rcv = rig()
    rcv.hold.set()
    rcv.start()
    gate = gw.sesgate
    redis_pids = [p for p in children(gate.proc.pid)
                  if "redis" in os.path.basename(os.readlink("/proc/%d/exe" % p))]
    assert len(redis_pids) == 1
    mid, body = sns_body(7)
    add_relay(gate, "app", body, mid)
    assert harness.wait_for(lambda: len(rcv.all()) == 1, timeout=20)
    gate.proc.send_signal(signal.SIGKILL)
    gate.proc.wait()
    killed = time.monotonic()
    rcv.hold.clear()
    rcv.release.set()  # the held request's answer goes nowhere
    assert relay_state(gate)[:2] == (1, 1)  # still on the stream, pending for the dead process

    worker = WorkSesgate(gate.workdir, gate.upstream_url, gate.upstream, gate.clients, extra=gate.extra)
    worker.port, worker.admin_port, worker.config_path = gate.port, gate.admin_port, gate.config_path
    worker.log_path = gate.log_path.with_name("sesgate-work-%d.log" % worker.admin_port)
    try:
        worker.start()
        assert harness.wait_for(lambda: rcv.bodies(200) == [body], timeout=LEASE_S + 30)
        took = time.monotonic() - killed
        print("\nreclaimed and delivered %.1f s after the kill" % took)
        # the lease: max([send] lease, relay_timeout + 5 s) = 7 s
        assert took >= 7 - 0.5
        assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 0), timeout=10)
        time.sleep(1.5)
        assert rcv.bodies(200) == [body]
        assert [r["body"] for r in rcv.all()] == [body, body]  # the held try, then the delivery
        check_sns_headers(rcv.all()[1], mid)
        assert re.search(r"event=relay_reclaimed ", worker.log_text())
        assert metric(worker, "delivered") == 1
    finally:
        worker.stop()
        wlog = worker.log_text()
        for pid in redis_pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
    assert not harness.SANITIZER_RE.search(wlog), wlog[-4000:]


def test_events_lua_relay_reaches_the_application_once(rig):
    """The entry events.lua (the event pipeline's script) queues is the one
    the relay delivers; a replay of the SNS message queues nothing more.
    (The SNS endpoint in front of events.lua is tested on its own.)"""
    gw, rcv = rig()
    rcv.start()
    gate = gw.sesgate
    lua = (harness.REPO / "src" / "lua" / "events.lua").read_text()
    pre = "%s:{%s}:" % (PREFIX, PREFIX)
    r = harness.RedisClient(unix=gate.workdir / "var" / "redis" / "redis.sock")
    sent = []
    try:
        now = int(time.time() * 1000)
        for n, client in enumerate(("app", "quiet", "app")):
            ses_id = "0100018c-e2e-%d" % n
            r.cmd("SET", pre + "m:" + ses_id, "%s\t-\t-" % client, "PX", 600000)
            mid, body = sns_body(n)
            for replay in (0, 1):  # SNS delivers at least once: the second is a replay
                out = r.cmd("EVAL", lua, 5, pre + "sns:" + mid, pre + "m:" + ses_id, pre + "sup", RL, pre,
                            now, 600000, "bounced", now, "", 0, 600000, "app\n", TOPIC, "Notification",
                            mid, SUB, body, 1, "r%d@example.net" % n, "{}")
                assert out[0] == replay, out
            if client == "app":
                sent.append((mid, body))
    finally:
        r.close()
    assert harness.wait_for(lambda: len(rcv.bodies()) >= 2, timeout=20)
    assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 0), timeout=10)
    time.sleep(1.5)
    got = rcv.all()
    assert sorted(x["body"] for x in got) == sorted(b for _, b in sent)
    for rec in got:
        mid = header_map(rec)["x-amz-sns-message-id"]
        assert rec["body"] == dict(sent)[mid]
        check_sns_headers(rec, mid)


def test_events_url_is_read_when_the_relay_is_sent(rig):
    """A reload (SIGHUP) that changes a client's events_url sends the next
    relays to the new one; one that removes it drops them, logged."""
    gw, first = rig()
    first.start()
    second = Receiver().start()
    gate = gw.sesgate
    try:
        mid1, body1 = sns_body(1)
        add_relay(gate, "app", body1, mid1)
        assert harness.wait_for(lambda: first.bodies() == [body1], timeout=20)

        def reload(n):
            gate.config_path.write_text(gate.config_text())
            gate.proc.send_signal(signal.SIGHUP)
            harness.wait_log(gate, r"event=reload ", count=n, timeout=10)

        gate.extra["client.app"]["events_url"] = second.url
        reload(1)
        mid2, body2 = sns_body(2)
        add_relay(gate, "app", body2, mid2)
        assert harness.wait_for(lambda: second.bodies() == [body2], timeout=20)
        check_sns_headers(second.all()[0], mid2)

        del gate.extra["client.app"]["events_url"]
        reload(2)
        mid3, body3 = sns_body(3)
        add_relay(gate, "app", body3, mid3)
        harness.wait_log(gate, r"event=relay_dropped .*client=app .*sns_message_id=%s" % mid3, timeout=10)
        assert harness.wait_for(lambda: relay_state(gate) == (0, 0, 0, 0), timeout=10)
        time.sleep(1)
        assert first.bodies() == [body1] and second.bodies() == [body2]
        assert len(first.all()) == 1 and len(second.all()) == 1
    finally:
        second.stop()
