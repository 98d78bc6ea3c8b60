"""The bulk queue under faults, with the real binary and a real Redis: a
sesgate killed mid-batch, its managed Redis killed mid-batch, an upstream
that drops, fails, garbles and stalls, and a Redis that is down when a batch
arrives. Nothing accepted may be lost; duplicates are bounded by what was in
flight.

The rigs run with a 5 s claim lease ([send] lease), so entries left pending
by a dead worker are reclaimed 5 s later."""

import base64
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter

import pytest

import harness
from test_queue import PREFIX

pytestmark = pytest.mark.needs_sesgate

STREAM = "%s:{%s}:q:app" % (PREFIX, PREFIX)  # the stream of client "app"
DELAYED = "%s:{%s}:d" % (PREFIX, PREFIX)
DLQ = "%s:{%s}:dlq" % (PREFIX, PREFIX)
FILLING = "%s:{%s}:filling" % (PREFIX, PREFIX)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
LEASE_S = 5


class WorkSesgate(harness.Sesgate):
    """`sesgate work` (workers only) on a configuration already written."""

    command = "work"
    writes_config = False
    serves = False


def children(pid):
    """Process ids whose parent is pid."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def pid_alive(pid):
    """True while process pid exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def managed_redis_pid(gate):
    """The pid of the redis-server sesgate started for gate."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for pid in children(gate.proc.pid):
            try:
                exe = os.readlink("/proc/%d/exe" % pid)
            except OSError:
                continue
            if "redis" in os.path.basename(exe):
                return pid
        time.sleep(0.1)
    raise AssertionError("no redis-server child of sesgate pid %d" % gate.proc.pid)


class Rig:
    """A fake upstream and `sesgate run` in one fresh work directory."""

    def __init__(self, workdir, send=None, upstream=None, redis=None, server=None, fake_args=(), env=None):
        self.workdir = workdir
        self.upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
        self.fake = harness.FakeSES(workdir, self.upstream, extra_args=fake_args).start()
        self.app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
        policies = {"app": {"creds": self.app, "allow_actions": ["*"], "allow_from": ["*"]}}
        extra = {"send": {"first_recipient": "queue", "max_attempts": "12", "rate": "1000",
                          "concurrency": "8", "lease": "%ds" % LEASE_S}}
        extra["send"].update(send or {})
        if upstream:
            extra["upstream"] = upstream
        if redis:
            extra["redis"] = redis
        if server:
            extra["server"] = server
        self.gate = harness.RunSesgate(workdir, self.fake.url, self.upstream, policies, extra=extra, env=env)
        self.gw = harness.Gateway(self.gate.url, harness.REGION, False, self.fake, self.gate,
                                  self.upstream, {"app": self.app}, workdir)
        self.others = []   # further sesgate processes (sesgate work)
        self.orphans = []  # redis-server pids to stop at the end

    def start(self):
        """Start sesgate run."""
        self.gate.start()
        return self

    def close(self):
        """Stop everything this rig started; return the sesgate logs."""
        logs = ""
        for g in [self.gate] + self.others:
            g.stop()
            logs += g.log_text()
        for pid in self.orphans:
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        self.fake.stop()
        return logs

    def redis(self, *args):
        """redis-cli on the managed Redis."""
        return self.gate.redis(*args)


@pytest.fixture
def rig_factory(tmp_path):
    """Build rigs; stop them and check their logs for sanitizer reports afterwards."""
    rigs = []

    def make(name, **kw):
        r = Rig(tmp_path / name, **kw)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        logs = r.close()
        assert not harness.SANITIZER_RE.search(logs), logs[-4000:]


def send(gw, to, max_attempts=1):
    """SendEmail through boto3 to the To list."""
    client = harness.boto3_client(gw, "ses", max_attempts=max_attempts)
    return client.send_email(
        Source=harness.SENDER, Destination={"ToAddresses": list(to)},
        Message={"Subject": {"Data": "Fault test"}, "Body": {"Text": {"Data": "body"}}},
    )


def rcpt(rec):
    """The To address of a recorded upstream send, or None."""
    if rec.get("action") not in ("SendEmail", None):
        return None
    p = dict(urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode(), keep_blank_values=True))
    return p.get("Destination.ToAddresses.member.1")


def accepted(records):
    """Counter of To addresses the upstream answered 200 for (a 200 with a
    garbled body counts: the upstream accepted it, sesgate must not resend)."""
    return Counter(a for a in (rcpt(r) for r in records if r.get("verified") and r.get("status") == 200)
                   if a)


def wait_all(fake, to, timeout):
    """Wait until every address in to was accepted upstream; returns the Counter."""
    deadline = time.monotonic() + timeout
    want = set(to)
    got = Counter()
    while time.monotonic() < deadline:
        got = accepted(fake.requests())
        if want <= set(got):
            return got
        time.sleep(0.5)
    return got


def wait_count(fake, n, timeout=30):
    """Wait until the upstream accepted at least n sends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sum(accepted(fake.requests()).values())
        if got >= n:
            return got
        time.sleep(0.05)
    raise AssertionError("upstream accepted only %d sends in %d s" % (got, timeout))


def wait_drained(redis, timeout=10):
    """Wait until the stream and the delay set are empty; returns (xlen, zcard, pending)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        xlen = int(redis("XLEN", STREAM) or 0)
        zcard = int(redis("ZCARD", DELAYED) or 0)
        pending = redis("XPENDING", STREAM, "w").split("\n")[0]
        state = (xlen, zcard, int(pending or 0))
        if state == (0, 0, 0):
            return state
        time.sleep(0.2)
    return state


def duplicates(got):
    """Sends beyond the first, over all addresses."""
    return sum(n - 1 for n in got.values() if n > 1)


def test_kill_sesgate_mid_batch(rig_factory):
    r = rig_factory("kill").start()
    to = ["k%04d@example.net" % i for i in range(5000)]
    r.fake.control(mode="normal", delay_ms=20, count=1000000)
    redis_pid = managed_redis_pid(r.gate)
    r.orphans.append(redis_pid)
    send(r.gw, to)
    wait_count(r.fake, 1500)
    r.gate.proc.send_signal(signal.SIGKILL)
    r.gate.proc.wait()
    killed_at = time.monotonic()
    time.sleep(0.3)  # sends the fake was answering when sesgate died are recorded now
    at_kill = sum(accepted(r.fake.requests()).values())
    assert pid_alive(redis_pid), "the managed redis-server died with sesgate"
    worker = WorkSesgate(r.workdir, r.fake.url, r.upstream, r.gate.clients, extra=r.gate.extra)
    worker.port, worker.admin_port, worker.config_path = r.gate.port, r.gate.admin_port, r.gate.config_path
    worker.log_path = r.gate.log_path.with_name("sesgate-work-%d.log" % worker.admin_port)
    r.others.append(worker)
    worker.start()
    got = wait_all(r.fake, to, timeout=LEASE_S + 60)
    took = time.monotonic() - killed_at
    # Entries that were in flight stay pending until the lease runs out, then
    # are reclaimed and, having no recorded outcome, sent again.
    drained = wait_drained(r.redis, timeout=LEASE_S + 20)
    drained_in = time.monotonic() - killed_at
    time.sleep(0.5)
    got = accepted(r.fake.requests())
    missing = sorted(set(to) - set(got))
    dup = duplicates(got)
    print("\nkill -9 sesgate run after %d accepted sends: all delivered %.1f s and queue drained %s "
          "%.1f s after the kill, %d duplicate sends %s"
          % (at_kill, took, drained, drained_in, dup, sorted(a for a, n in got.items() if n > 1)))
    assert not missing, "%d addresses never delivered, e.g. %s" % (len(missing), missing[:10])
    assert dup <= 8, "duplicates %d exceed the 8 sends in flight" % dup
    assert drained == (0, 0, 0), "stream length, delay set size, pending entries"

    assert int(r.redis("XLEN", DLQ) or 0) == 0


def test_kill_managed_redis_mid_batch(rig_factory):
    r = rig_factory("redis").start()
    to = ["r%04d@example.net" % i for i in range(1000)]
    r.fake.control(mode="normal", delay_ms=20, count=1000000)
    first = managed_redis_pid(r.gate)
    send(r.gw, to)
    wait_count(r.fake, 200)
    os.kill(first, signal.SIGKILL)
    killed_at = time.monotonic()
    got = wait_all(r.fake, to, timeout=LEASE_S + 40)
    took = time.monotonic() - killed_at
    drained = wait_drained(r.redis, timeout=LEASE_S + 20)
    drained_in = time.monotonic() - killed_at
    time.sleep(0.5)
    got = accepted(r.fake.requests())
    assert r.gate.proc.poll() is None, "sesgate exited when its Redis died"
    second = managed_redis_pid(r.gate)
    assert second != first
    missing = sorted(set(to) - set(got))
    dup = duplicates(got)
    print("\nkill -9 managed redis-server: all delivered %.1f s and queue drained %s %.1f s after the kill, "
          "%d duplicate sends %s" % (took, drained, drained_in, dup, sorted(a for a, n in got.items() if n > 1)))
    assert not missing, "%d addresses never delivered, e.g. %s" % (len(missing), missing[:10])
    # Outcomes Redis could not take while it was down are recorded once it is
    # back; what the append-only file had not yet written (up to a second
    # with appendfsync everysec) is sent again, at most what was in flight.
    assert dup <= 8, "duplicates %d exceed the 8 sends in flight" % dup
    assert drained == (0, 0, 0), "stream length, delay set size, pending entries"
    assert int(r.redis("XLEN", DLQ) or 0) == 0
    assert "redis_exited" in r.gate.log_text()


def test_upstream_faults_mid_batch(rig_factory):
    r = rig_factory("upstream", upstream={"timeout": "1s"}, send={"max_attempts": "20"}).start()
    to = ["u%03d@example.net" % i for i in range(300)]
    r.fake.control(
        {"mode": "normal", "delay_ms": 20, "count": 40},
        {"mode": "normal", "drop": True, "count": 20},
        {"mode": "normal", "count": 10},
        {"mode": "status", "status": 503, "code": "ServiceUnavailable", "message": "Service unavailable.",
         "count": 20},
        {"mode": "normal", "garbage": True, "count": 10},
        {"mode": "normal", "garbage": True, "status": 502, "count": 5},
        {"mode": "normal", "delay_ms": 3000, "count": 6},
    )
    send(r.gw, to)
    got = wait_all(r.fake, to, timeout=60)
    time.sleep(3.5)  # a stalled send the fake still answers is recorded 3 s after it began
    recs = r.fake.requests()
    got = accepted(recs)
    faults = Counter(x.get("fault") for x in recs)
    missing = sorted(set(to) - set(got))
    dup = duplicates(got)
    print("\nupstream faults %s: %d duplicate sends %s" % (dict(faults), dup,
                                                          sorted(a for a, n in got.items() if n > 1)))
    assert not missing, "%d addresses never delivered, e.g. %s" % (len(missing), missing[:10])
    assert faults["drop"] == 20 and faults["status"] == 20 and faults["garbage"] == 15, dict(faults)
    # Only a stalled send (answered 200 after sesgate gave up) may be delivered twice.
    assert dup <= 6, dup
    assert wait_drained(r.redis, timeout=20) == (0, 0, 0)
    assert int(r.redis("XLEN", DLQ) or 0) == 0, r.redis("XRANGE", DLQ, "-", "+")


def test_redis_down_at_send(rig_factory, tmp_path):
    port = harness.free_port()
    rdir = tmp_path / "ext-redis"
    rdir.mkdir()

    def start_redis():
        proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(rdir)],
                                stdout=open(rdir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        assert harness.wait_port(port, 10), "redis-server did not start"
        return proc

    redis = start_redis()
    try:
        r = rig_factory("down", redis={"url": "redis://127.0.0.1:%d" % port}).start()
        redis.terminate()
        redis.wait(10)
        time.sleep(0.5)
        to = ["d%d@example.net" % i for i in range(5)]
        import botocore.exceptions
        t0 = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            send(r.gw, to)
        took = time.monotonic() - t0
        err = ei.value.response
        print("\nRedis down: %s %s in %.2f s" % (err["ResponseMetadata"]["HTTPStatusCode"],
                                                 err["Error"].get("Code"), took))
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
        assert err["Error"]["Code"] == "ServiceUnavailable", err
        assert took < 2.0, took
        time.sleep(1.0)
        assert r.fake.requests() == [], "a send reached the upstream while Redis was down"
        redis = start_redis()
        deadline = time.monotonic() + 15
        resp = None
        while time.monotonic() < deadline:
            try:
                resp = send(r.gw, to)
                break
            except botocore.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "ServiceUnavailable", e.response
                time.sleep(0.5)
        assert resp and resp.get("MessageId"), "no successful send within 15 s of Redis coming back"
        got = wait_all(r.fake, to, timeout=20)
        assert set(got) == set(to) and duplicates(got) == 0, got
    finally:
        redis.terminate()
        redis.wait(10)


def test_dropped_connection_not_resent_by_libcurl(rig_factory):
    """A send whose connection closed without an answer is resent only by the
    queue (a logged queue_retry), never silently by libcurl on a fresh
    connection: the upstream may have acted on it."""
    r = rig_factory("resend").start()
    to = ["s%03d@example.net" % i for i in range(80)]
    r.fake.control({"mode": "normal", "delay_ms": 20, "count": 24}, {"mode": "normal", "drop": True, "count": 20})
    send(r.gw, to)
    got = wait_all(r.fake, to, timeout=30)
    assert set(got) == set(to)
    drops = Counter(rcpt(x) for x in r.fake.requests() if x.get("fault") == "drop")
    log = r.gate.log_text()
    retries = Counter()
    for line in log.splitlines():
        if "event=queue_retry" in line and "reason=transport" in line:
            idx = int(line.split(" index=")[1].split()[0])
            retries[to[idx]] += 1
    silent = {a: (n, retries[a]) for a, n in drops.items() if n > retries[a]}
    print("\ndropped sends %d, queue transport retries %d, resent without the queue (drops, retries): %s"
          % (sum(drops.values()), sum(retries.values()), silent))
    assert not silent, "sent again without a queue retry (drop records, logged retries): %s" % silent


def test_slow_send_outlasting_the_lease_is_not_sent_twice(rig_factory):
    """A send the upstream takes longer than the lease to answer stays with
    the worker that has it: the worker's own reclaim of the idle entry must
    not start a second send of it."""
    r = rig_factory("slow", upstream={"timeout": "15s"}).start()
    to = ["slow%d@example.net" % i for i in range(3)]
    r.fake.control(mode="normal", delay_ms=(LEASE_S + 3) * 1000, count=3)
    send(r.gw, to)
    got = wait_all(r.fake, to, timeout=LEASE_S + 20)
    time.sleep(LEASE_S + 2)  # a second send would have begun by now
    got = accepted(r.fake.requests())
    sends = Counter(rcpt(x) for x in r.fake.requests() if x.get("verified"))
    print("\nsends outlasting the lease: accepted %s, sends %s" % (dict(got), dict(sends)))
    assert set(got) == set(to)
    assert all(n == 1 for n in sends.values()), sends
    assert wait_drained(r.redis, timeout=10) == (0, 0, 0)


class ServeSesgate(harness.Sesgate):
    """`sesgate serve` (the front only) beside a rig's `sesgate run`: its own
    configuration file and port, the same managed Redis (data_dir)."""

    command = "serve"


def serve_beside(r, env):
    """Start a front-only sesgate on r's Redis with env (the test hook)."""
    front = ServeSesgate(r.workdir, r.fake.url, r.upstream, r.gate.clients, extra=r.gate.extra, env=env)
    front.config_path = r.workdir / "serve.ini"
    front.log_path = r.gate.log_path.with_name("sesgate-serve-%d.log" % front.port)
    r.others.append(front)
    return front.start()


def send_in_thread(gw, to):
    """send(gw, to) in a thread; returns (thread, result dict: resp or error)."""
    out = {}

    def run():
        try:
            out["resp"] = send(gw, to)
        except Exception as e:  # the front may be killed under it
            out["error"] = e
        out["at"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wait_filling(redis, timeout=30):
    """Wait until a batch is being filled; its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = redis("ZRANGE", FILLING, 0, 0)
        if ids:
            return ids
        time.sleep(0.005)
    raise AssertionError("no batch was being filled within %d s" % timeout)


def test_front_killed_mid_fill_a_worker_finishes_the_batch(rig_factory):
    """A front killed with kill -9 in the middle of filling a batch leaves a
    batch that is stored but not all queued; a worker's tick finishes the
    fill once its last step is 5 s old, and every recipient is sent exactly
    once (the killed front sent nothing itself)."""
    r = rig_factory("fillkill").start()
    front = serve_beside(r, {"TEST_SESGATE_FILL_STEP": "5"})
    to = ["f%04d@example.net" % i for i in range(3000)]
    gw = harness.Gateway(front.url, harness.REGION, False, r.fake, front, r.upstream, {"app": r.app}, r.workdir)
    t, out = send_in_thread(gw, to)
    bid = wait_filling(r.redis)
    front.proc.send_signal(signal.SIGKILL)
    front.proc.wait()
    killed_at = time.monotonic()
    t.join(30)
    assert "error" in out, "the client was answered before the batch was whole: %s" % out
    key = "%s:{%s}:b:%s" % (PREFIX, PREFIX, bid)
    left_at = int(r.redis("HGET", key, "filling") or 0)
    assert 0 < left_at < len(to), "killed mid-fill, next index %d" % left_at
    assert r.redis("ZSCORE", FILLING, bid)
    got = wait_all(r.fake, to, timeout=60)
    took = time.monotonic() - killed_at
    assert wait_drained(r.redis, timeout=20) == (0, 0, 0)
    time.sleep(0.5)
    got = accepted(r.fake.requests())
    missing = sorted(set(to) - set(got))
    print("\nfront killed at index %d of %d: the batch finished and delivered %.1f s later, %d duplicates"
          % (left_at, len(to), took, duplicates(got)))
    assert not missing, "%d addresses never delivered, e.g. %s" % (len(missing), missing[:10])
    assert duplicates(got) == 0, sorted(a for a, n in got.items() if n > 1)
    assert set(got) == set(to)
    assert r.redis("HEXISTS", key, "filling") == "0" and r.redis("ZCARD", FILLING) == "0"
    assert "event=queue_fill_resumed" in r.gate.log_text()
    status = harness.sesgate_json(r.gate.config_path, r.workdir, "batch", "show", bid)
    assert (status["total"], status["sent"], status["filling"]) == (len(to), len(to), False)


def test_gateway_answers_other_sends_while_a_batch_fills(rig_factory):
    """Other clients' sends are answered between the steps of a big
    enqueue; the batch is shown as filling meanwhile, and its client hears
    success only once it is whole."""
    r = rig_factory("fillbusy", env={"TEST_SESGATE_FILL_STEP": "1"}).start()
    to = ["g%04d@example.net" % i for i in range(6000)]
    t, out = send_in_thread(r.gw, to)
    bid = wait_filling(r.redis)
    status = harness.sesgate_json(r.gate.config_path, r.workdir, "batch", "show", bid)
    assert status["filling"] is True and 0 < status["filled"] < len(to), status
    rows = harness.sesgate_json(r.gate.config_path, r.workdir, "status")["recent"]
    row = [b for b in rows if b["batch_id"] == bid][0]
    assert row["filling"] is True and 0 < row["filled"] <= len(to), row
    t0 = time.monotonic()
    single = send(r.gw, ["single@example.net"])
    answered = time.monotonic()
    still = r.redis("ZSCORE", FILLING, bid)
    print("\na single send answered in %.3f s while the batch filled (%s)" % (answered - t0, still))
    assert single.get("MessageId")
    assert still, "the batch was whole before the single send was answered"
    assert "resp" not in out, "the batch's client was answered before the batch was whole"
    t.join(60)
    assert out.get("resp", {}).get("MessageId"), out
    assert r.redis("ZCARD", FILLING) == "0"
    key = "%s:{%s}:b:%s" % (PREFIX, PREFIX, bid)
    assert r.redis("HEXISTS", key, "filling") == "0"
    got = wait_all(r.fake, to + ["single@example.net"], timeout=60)
    assert set(got) == set(to) | {"single@example.net"} and duplicates(got) == 0
