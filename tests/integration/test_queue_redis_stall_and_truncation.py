"""The bulk queue when Redis stalls or answers are cut off, with the real
binary and a real Redis: a Redis that stops answering (SIGSTOP) for longer
than the claim lease, managed or external, while a batch drains; and an upstream whose answers are cut off
after half the body (truncated 200s that SES may have acted on, truncated
errors, and a truncated answer to a pass-through call).

Nothing accepted may be lost; duplicates are bounded by what was in flight or
by the sends whose answer was lost."""

import os
import signal
import subprocess
import threading
import time
from collections import Counter

import botocore.exceptions
import pytest

import harness
from test_queue_faults import (
    DLQ, LEASE_S, REDIS_SERVER, accepted, duplicates, managed_redis_pid, rcpt, rig_factory,
    send, wait_all, wait_count, wait_drained,
)

pytestmark = pytest.mark.needs_sesgate

__all__ = ["rig_factory"]  # the fixture, imported for pytest

STALL_S = 11.0  # longer than the 5 s lease, the 5 s readiness window and the 6 s stall threshold


def redis_servers_in(rdir):
    """Pids of the redis-server processes whose working directory is rdir
    (Redis changes to its data directory)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            exe = os.path.basename(os.readlink("/proc/%s/exe" % name))
            cwd = os.readlink("/proc/%s/cwd" % name)
        except OSError:
            continue
        # Debian's redis-server is a link to redis-check-rdb.
        if exe.startswith("redis") and exe != "redis-cli" and \
                os.path.realpath(cwd) == os.path.realpath(str(rdir)):
            pids.append(int(name))
    return sorted(pids)


def admin_get(gate, path):
    """(status, body text, seconds) of an admin GET, or (None, error, seconds)."""
    t0 = time.monotonic()
    try:
        status, _, body = harness.http("GET", gate.admin_url + path, timeout=5.0)
        return status, (body.decode(errors="replace") if isinstance(body, bytes) else str(body)).strip(), \
            time.monotonic() - t0
    except OSError as e:
        return None, repr(e), time.monotonic() - t0


def probe_send(gw, to, out):
    """Send a batch to to with no SDK retry; store (outcome, seconds) in out."""
    t0 = time.monotonic()
    try:
        resp = send(gw, to)
        out["result"] = (200, resp.get("MessageId"))
    except botocore.exceptions.ClientError as e:
        out["result"] = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code"))
    except Exception as e:  # a timeout or a reset connection
        out["result"] = (None, repr(e))
    out["took"] = time.monotonic() - t0
    out["done_at"] = time.monotonic()


def stall_redis(r, redis_pid, redis_cmd, rdir, tag):
    """Drain a 1,000-recipient batch, SIGSTOP redis_pid for STALL_S mid-batch,
    probe the front while it is stopped, SIGCONT it, and check the outcome."""
    to = ["%s%04d@example.net" % (tag, i) for i in range(1000)]
    r.fake.control(mode="normal", delay_ms=20, count=1000000)
    send(r.gw, to)
    wait_count(r.fake, 200)
    probes = {}
    threads = []
    os.kill(redis_pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # A batch 1 s into the stall (Redis still counts as ready: its last
        # PONG is recent) and one 8 s in (a PING unanswered for over 6 s).
        for name, at in (("early", 1.0), ("late", 8.0)):
            time.sleep(max(0.0, stopped_at + at - time.monotonic()))
            probes[name] = {"to": ["%s-%s%d@example.net" % (tag, name, i) for i in range(2)],
                            "at": time.monotonic() - stopped_at}
            th = threading.Thread(target=probe_send, args=(r.gw, probes[name]["to"], probes[name]), daemon=True)
            th.start()
            threads.append(th)
        time.sleep(max(0.0, stopped_at + 8.5 - time.monotonic()))
        readyz = admin_get(r.gate, "/readyz")
        healthz = admin_get(r.gate, "/healthz")
        servers_during = redis_servers_in(rdir) if rdir else None
        alive_during = r.gate.proc.poll() is None
        time.sleep(max(0.0, stopped_at + STALL_S - time.monotonic()))
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    for th in threads:
        th.join(60)
    for p in probes.values():
        p["answered_in_stall"] = p.get("done_at", resumed_at + 1) < resumed_at
    got = wait_all(r.fake, to, timeout=LEASE_S + 60)
    took = time.monotonic() - resumed_at
    drained = wait_drained(redis_cmd, timeout=LEASE_S + 20)
    drained_in = time.monotonic() - resumed_at
    time.sleep(0.5)
    recs = r.fake.requests()
    got = accepted(recs)
    missing = sorted(set(to) - set(got))
    dup = duplicates(Counter({a: n for a, n in got.items() if a in set(to)}))
    servers_after = redis_servers_in(rdir) if rdir else None
    during = sum(1 for x in recs if stopped_at <= x["t"] < resumed_at)
    after = sorted(x["t"] - resumed_at for x in recs if x["t"] >= resumed_at)
    resume = "%d upstream sends during the stall, the first after it %.1f s after SIGCONT, %d within 2 s of it" % (
        during, after[0] if after else -1, sum(1 for t in after if t < 2))
    log = r.gate.log_text()
    events = Counter(w.split("=", 1)[1] for line in log.splitlines() for w in line.split()
                     if w.startswith("event=") and ("redis" in w or "enqueue" in w or "retry" in w))
    print("\n%s: SIGSTOP redis %.1f s; probes %s; readyz %s healthz %s during the stall; redis-servers "
          "during %s after %s; all delivered %.1f s and queue drained %s %.1f s after SIGCONT; %d duplicate "
          "sends %s; %s; events %s"
          % (tag, STALL_S, {k: (round(v["at"], 1), v.get("result"), round(v.get("took", -1), 2))
                            for k, v in probes.items()},
             readyz, healthz, servers_during, servers_after, took, drained, drained_in, dup,
             sorted(a for a, n in got.items() if n > 1 and a in set(to)), resume, dict(events)))
    return {
        "to": to, "got": got, "missing": missing, "dup": dup, "drained": drained, "probes": probes,
        "readyz": readyz, "healthz": healthz, "servers_during": servers_during, "servers_after": servers_after,
        "alive_during": alive_during,
    }


def check_stall(r, res, redis_cmd):
    """The assertions both stall tests share."""
    assert res["alive_during"] and r.gate.proc.poll() is None, "sesgate exited while Redis was stopped"
    assert not res["missing"], "%d addresses never delivered, e.g. %s" % (len(res["missing"]), res["missing"][:10])
    # Sends in flight when Redis stopped had their outcomes queued on the
    # connection; at most the 8 in flight may go twice.
    assert res["dup"] <= 8, "duplicates %d exceed the 8 sends in flight" % res["dup"]
    assert res["drained"] == (0, 0, 0), "stream length, delay set size, pending entries"
    assert int(redis_cmd("XLEN", DLQ) or 0) == 0, redis_cmd("XRANGE", DLQ, "-", "+")
    assert res["healthz"][0] == 200, res["healthz"]
    assert res["readyz"][0] == 503 and "redis" in res["readyz"][1], res["readyz"]
    got = res["got"]
    for name, p in res["probes"].items():
        status, code = p.get("result", (None, None))
        if status == 200:
            assert all(got[a] == 1 for a in p["to"]), (name, p, [got[a] for a in p["to"]])
        else:
            assert all(got[a] == 0 for a in p["to"]), ("refused, yet sent", name, p)
    # A batch arriving once Redis has left a PING unanswered for 6 s gets a
    # clear, retryable SES error at once, before Redis is back.
    late = res["probes"]["late"]
    assert late.get("result") == (503, "ServiceUnavailable") and late["answered_in_stall"] and late["took"] < 1.0, \
        late
    # One arriving 1 s in had its enqueue written to Redis before the stall
    # could be told from a slow reply. Redis runs it when it resumes (even on
    # a closed connection), so the front waits for the reply rather than
    # answer "nothing was sent": stored and accepted once Redis is back (or,
    # after 15 s without a PONG, the connection is dropped and it fails).
    early = res["probes"]["early"]
    assert early.get("result", (None,))[0] in (200, 503) and early["took"] < STALL_S + 2, early


def test_managed_redis_stopped_mid_batch(rig_factory):
    r = rig_factory("stop").start()
    first = managed_redis_pid(r.gate)
    rdir = r.workdir / "var" / "redis"
    assert redis_servers_in(rdir) == [first]
    res = stall_redis(r, first, r.redis, rdir, "m")
    # Two redis-servers on one append-only file would lose data: sesgate must
    # wait for the stopped one, never start a second beside it.
    assert res["servers_during"] == [first], res["servers_during"]
    assert res["servers_after"] == [first], res["servers_after"]
    assert managed_redis_pid(r.gate) == first
    assert "redis_exited" not in r.gate.log_text()
    check_stall(r, res, r.redis)


def test_external_redis_stopped_mid_batch(rig_factory, tmp_path):
    port = harness.free_port()
    rdir = tmp_path / "ext-redis"
    rdir.mkdir()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(rdir)],
                            stdout=open(rdir / "redis.log", "ab"), stderr=subprocess.STDOUT)
    try:
        assert harness.wait_port(port, 10), "redis-server did not start"

        def redis_cmd(*args):
            out = subprocess.run([harness.REDIS_CLI, "-p", str(port)] + [str(a) for a in args],
                                 capture_output=True, text=True, timeout=10, check=True)
            return out.stdout.strip()

        r = rig_factory("extstop", redis={"url": "redis://127.0.0.1:%d" % port}).start()
        res = stall_redis(r, proc.pid, redis_cmd, rdir, "x")
        assert res["servers_during"] == [proc.pid] and res["servers_after"] == [proc.pid]
        check_stall(r, res, redis_cmd)
    finally:
        try:
            os.kill(proc.pid, signal.SIGCONT)
        except OSError:
            pass
        proc.terminate()
        proc.wait(10)


def transport_retries(log):
    """Counter of logged queue_retry reasons."""
    out = Counter()
    for line in log.splitlines():
        if "event=queue_retry" in line:
            out[line.split(" reason=")[1].split()[0] if " reason=" in line else "?"] += 1
    return out


def test_truncated_answers_mid_batch(rig_factory):
    r = rig_factory("trunc", send={"max_attempts": "20"}).start()
    to = ["t%03d@example.net" % i for i in range(300)]
    r.fake.control(
        {"mode": "normal", "delay_ms": 20, "count": 40},
        {"mode": "normal", "truncate": True, "count": 20},
        {"mode": "normal", "count": 10},
        {"mode": "status", "status": 400, "code": "MessageRejected", "message": "Email address is not verified.",
         "truncate": True, "count": 5},
        {"mode": "status", "status": 500, "code": "InternalFailure", "message": "Internal failure.",
         "truncate": True, "count": 5},
    )
    t0 = time.monotonic()
    send(r.gw, to)
    got = wait_all(r.fake, to, timeout=60)
    took = time.monotonic() - t0
    assert wait_drained(r.redis, timeout=20) == (0, 0, 0)
    recs = r.fake.requests()
    got = accepted(recs)
    truncated = Counter(x["status"] for x in recs if x.get("fault") == "truncate")
    missing = sorted(set(to) - set(got))
    dup = duplicates(got)
    twice = sorted(a for a, n in got.items() if n > 1)
    cut_200 = {rcpt(x) for x in recs if x.get("fault") == "truncate" and x["status"] == 200}
    retries = transport_retries(r.gate.log_text())
    print("\ntruncated answers %s: all delivered in %.1f s, %d duplicate sends (all of them a truncated 200: %s), "
          "queue retries %s" % (dict(truncated), took, dup, set(twice) <= cut_200, dict(retries)))
    assert truncated == Counter({200: 20, 400: 5, 500: 5}), truncated
    assert not missing, "%d addresses never delivered, e.g. %s" % (len(missing), missing[:10])
    # A truncated 200 may have been acted on: it is a transport failure and
    # goes again (at least once), so at most those 20 go twice.
    assert dup <= 20, dup
    assert set(twice) <= cut_200, (twice, cut_200)
    assert retries["transport"] >= 30, retries
    assert int(r.redis("XLEN", DLQ) or 0) == 0, r.redis("XRANGE", DLQ, "-", "+")


def test_truncated_answer_to_client_calls(rig_factory):
    r = rig_factory("truncsync", send={"first_recipient": "sync"}).start()
    results = {}
    # Pass-through calls, v1 and v2.
    ses = harness.boto3_client(r.gw, "ses", max_attempts=1)
    sesv2 = harness.boto3_client(r.gw, "sesv2", max_attempts=1)
    calls = {
        "GetSendQuota": lambda: ses.get_send_quota(),
        "v2 GetAccount": lambda: sesv2.get_account(),
        "SendEmail 1 rcpt": lambda: send(r.gw, ["single@example.net"]),
        "SendEmail sync batch": lambda: send(r.gw, ["b0@example.net", "b1@example.net", "b2@example.net"]),
    }
    for name, call in calls.items():
        r.fake.control(mode="normal", truncate=True, count=1)
        t0 = time.monotonic()
        try:
            call()
            results[name] = (200, None)
        except botocore.exceptions.ClientError as e:
            results[name] = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code"))
        except Exception as e:
            results[name] = (None, repr(e))
        results[name] += (round(time.monotonic() - t0, 2),)
        assert r.gate.proc.poll() is None, "sesgate exited after a truncated answer to %s" % name
    time.sleep(1.0)
    recs = r.fake.requests()
    got = accepted(recs)
    print("\ntruncated upstream answers, what the client saw (status, code, seconds): %s; upstream accepted %s"
          % (results, dict(got)))
    for name, (status, code, took) in results.items():
        assert (status, code) == (503, "ServiceUnavailable") and took < 5, (name, results[name])
    assert all(x.get("fault") == "truncate" for x in recs if x.get("verified")), recs
    # The sync batch: copy 0's answer was lost, so nothing else was queued
    # and the client's retry is what sends the batch.
    assert got == Counter({"single@example.net": 1, "b0@example.net": 1}), got
    status = r.redis("KEYS", "*:b:*")
    assert status == "", status
    # The gateway works normally afterwards.
    assert send(r.gw, ["after@example.net"]).get("MessageId")
    assert ses.get_send_quota()["Max24HourSend"] == r.fake.quota()["quota"]["max_24_hour_send"]
