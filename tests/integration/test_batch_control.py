"""Pause, resume and cancel of a queued batch end to end: `sesgate batch
pause|resume|cancel ID` and POST /batches/{id}/pause|resume|cancel against
`sesgate run` (then `sesgate work`) with the managed Redis and the fake SES
upstream, at a slow rate so that the batch is being drained when the
command runs."""

import json
import signal
import subprocess
import time
from collections import Counter

import pytest

import harness
from test_queue import send
from test_queue_faults import LEASE_S, WorkSesgate, managed_redis_pid, pid_alive, rcpt, rig_factory

pytestmark = pytest.mark.needs_sesgate
assert rig_factory  # the fixture the tests below use

SLOW = {"rate": "20", "concurrency": "4"}


def cli(rig, *args):
    """`sesgate ARGS -c CONFIG`: the CompletedProcess (text)."""
    cmd = [str(harness.sesgate_bin())] + list(args) + ["-c", str(rig.gate.config_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env=harness.clean_env(rig.gate.env), cwd=str(rig.workdir))


def cli_json(rig, *args):
    """A command with --json that must succeed: its parsed output."""
    r = cli(rig, *args, "--json")
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert not harness.SANITIZER_RE.search(r.stderr), r.stderr
    return json.loads(r.stdout)


def admin(rig, method, path):
    """A request to the admin listener: (status, parsed JSON body or text)."""
    status, _, body = harness.http(method, rig.gate.admin_url + path, b"" if method == "POST" else None)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def sends(rig, to):
    """The accepted upstream sends to the addresses in to: [(t, address)]."""
    want = set(to)
    out = []
    for rec in rig.fake.requests():
        a = rcpt(rec)
        if a in want and rec.get("verified") and rec.get("status") == 200:
            out.append((rec["t"], a))
    return out


def wait_sends(rig, to, n, timeout=30):
    """Wait until the upstream accepted at least n sends to the addresses in to."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sends(rig, to)
        if len(got) >= n:
            return got
        time.sleep(0.05)
    raise AssertionError("only %d sends in %d s" % (len(got), timeout))


def wait_show(rig, batch, pred, timeout=30):
    """Poll `sesgate batch show --json` until pred holds; the last view."""
    deadline = time.monotonic() + timeout
    st = cli_json(rig, "batch", "show", batch)
    while not pred(st) and time.monotonic() < deadline:
        time.sleep(0.2)
        st = cli_json(rig, "batch", "show", batch)
    return st


def test_pause_survives_kill_and_resume_sends_everything_once(rig_factory):
    r = rig_factory("pause", send=SLOW).start()
    r.orphans.append(managed_redis_pid(r.gate))
    to = ["p%03d@example.net" % i for i in range(80)]
    _, batch = send(r.gw, to)
    assert batch
    wait_sends(r, to, 10)
    ans = cli_json(r, "batch", "pause", batch)
    returned = time.monotonic()
    assert ans["batch"] == batch and ans["state"] == "paused", ans
    assert 0 <= ans["in_flight"] <= 4  # concurrency
    st = cli_json(r, "batch", "show", batch)
    assert st["state"] == "paused" and not st["complete"]
    # the worker goes on reading: what it reaches is held, not sent
    time.sleep(2)
    after = [t for t, _ in sends(r, to) if t > returned]
    assert len(after) <= ans["in_flight"], (after, ans)
    # kill -9 the process that runs the worker, and start a worker again
    r.gate.proc.send_signal(signal.SIGKILL)
    r.gate.proc.wait()
    assert pid_alive(r.orphans[0])
    worker = WorkSesgate(r.workdir, r.fake.url, r.upstream, r.gate.clients, extra=r.gate.extra)
    worker.port, worker.admin_port, worker.config_path = r.gate.port, r.gate.admin_port, r.gate.config_path
    worker.log_path = r.gate.log_path.with_name("sesgate-work-%d.log" % worker.admin_port)
    r.others.append(worker)
    worker.start()
    before = len(sends(r, to))
    # nothing is sent while paused, past the claim lease of the killed
    # worker's entries and several seconds of the rate
    time.sleep(LEASE_S + 4)
    assert len(sends(r, to)) == before
    st = cli_json(r, "batch", "show", batch)
    assert st["state"] == "paused" and st["sent"] == before and st["queued"] == len(to) - before, st
    # a pause again answers the state and changes nothing
    again = cli(r, "batch", "pause", batch)
    assert again.returncode == 0 and again.stdout.startswith("batch %s paused in_flight 0 held " % batch), again
    ans = cli_json(r, "batch", "resume", batch)
    assert ans["state"] == "running" and ans["held"] == 0, ans
    st = wait_show(r, batch, lambda s: s["complete"], timeout=30)
    assert st["complete"] and st["state"] == "running" and st["sent"] == len(to), st
    time.sleep(0.5)
    got = Counter(a for _, a in sends(r, to))
    assert set(got) == set(to) and max(got.values()) == 1, got.most_common(3)
    # the complete batch refuses pause and resume
    for cmd in ("pause", "resume", "cancel"):
        res = cli(r, "batch", cmd, batch)
        harness.assert_exit(res, 1)
        assert "complete" in res.stderr, res.stderr


def test_cancel_mid_drain(rig_factory):
    r = rig_factory("cancel", send=SLOW).start()
    to = ["c%03d@example.net" % i for i in range(100)]
    r.fake.control(mode="normal", delay_ms=300, count=1000000)  # sends stay in flight a while
    _, batch = send(r.gw, to)
    assert batch
    wait_sends(r, to, 15)
    status, ans = admin(r, "POST", "/batches/%s/cancel" % batch)
    returned = time.monotonic()
    assert status == 200 and ans["batch"] == batch and ans["state"] == "cancelled", (status, ans)
    assert set(ans) == {"batch", "state", "in_flight", "held"}
    st = wait_show(r, batch, lambda s: s["complete"], timeout=20)
    time.sleep(1)
    got = sends(r, to)
    late = [t for t, _ in got if t > returned]
    print("\ncancel at %d sends: in_flight %d, %d started after the command returned"
          % (len(got) - len(late), ans["in_flight"], len(late)))
    assert len(late) <= ans["in_flight"], (late, ans)
    assert st["complete"] and st["state"] == "cancelled", st
    assert st["sent"] == len(got) and st["cancelled"] == len(to) - len(got) > 0, st
    assert st["sent"] + st["cancelled"] == st["total"] == len(to) and st["progress"] == 100
    states = Counter(x["state"] for x in st["recipients"])
    assert states == {"sent": len(got), "cancelled": len(to) - len(got)}, states
    status, view = admin(r, "GET", "/batches/%s" % batch)
    assert status == 200 and view["state"] == "cancelled" and view["cancelled"] == st["cancelled"]
    assert view["complete"]
    s = cli_json(r, "status")
    row = [b for b in s["recent"] if b["batch_id"] == batch][0]
    assert row["state"] == "cancelled" and row["pending"] == 0 and row["cancelled"] == st["cancelled"]
    # cancel again: the same answer; pause and resume refused
    status, ans = admin(r, "POST", "/batches/%s/cancel" % batch)
    assert status == 200 and ans["state"] == "cancelled" and ans["held"] == 0
    for cmd in ("pause", "resume"):
        status, body = admin(r, "POST", "/batches/%s/%s" % (batch, cmd))
        assert status == 409 and "cancelled" in body["message"], body
        res = cli(r, "batch", cmd, batch)
        harness.assert_exit(res, 1)
        assert "cancelled" in res.stderr, res.stderr
    text = cli(r, "batch", "show", batch).stdout
    assert "state cancelled\n" in text and "cancelled %d\n" % st["cancelled"] in text


def test_admin_pause_resume_and_refusals(rig_factory):
    r = rig_factory("admin", send={"rate": "10", "concurrency": "2"}).start()
    to = ["a%03d@example.net" % i for i in range(30)]
    _, batch = send(r.gw, to)
    wait_sends(r, to, 3)
    status, ans = admin(r, "POST", "/batches/%s/pause" % batch)
    assert status == 200 and ans["state"] == "paused", ans
    status, view = admin(r, "GET", "/batches/%s" % batch)
    assert status == 200 and view["state"] == "paused"
    # held units accumulate as the worker reaches them
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, ans = admin(r, "POST", "/batches/%s/pause" % batch)
        if ans["held"] + view["sent"] >= len(to) - 4:
            break
        time.sleep(0.3)
    assert status == 200 and ans["state"] == "paused" and ans["held"] > 0, ans
    status, ans = admin(r, "POST", "/batches/%s/resume" % batch)
    assert status == 200 and ans == {"batch": batch, "state": "running", "in_flight": 0, "held": 0}, ans
    st = wait_show(r, batch, lambda s: s["complete"], timeout=20)
    assert st["complete"] and st["sent"] == len(to), st
    status, body = admin(r, "POST", "/batches/%s/pause" % batch)
    assert status == 409 and "complete" in body["message"], body
    unknown = "00000000-0000-4000-8000-000000000000"
    for cmd in ("pause", "resume", "cancel"):
        status, body = admin(r, "POST", "/batches/%s/%s" % (unknown, cmd))
        assert status == 404 and body == {"message": "batch not found"}
        res = cli(r, "batch", cmd, unknown)
        harness.assert_exit(res, 1)
        assert "batch %s not found" % unknown in res.stderr
    assert admin(r, "POST", "/batches/not-a-batch/pause")[0] == 400
    assert admin(r, "POST", "/batches/%s/stop" % batch)[0] == 404
    assert admin(r, "GET", "/batches/%s/pause" % batch)[0] == 405
    assert admin(r, "POST", "/batches/%s" % batch)[0] == 405
    res = cli(r, "batch", "pause")
    harness.assert_exit(res, 2)


def test_cancelled_batch_drains_without_taking_the_rate(rig_factory):
    r = rig_factory("norate", send={"rate": "2", "concurrency": "2"}).start()
    to = ["n%03d@example.net" % i for i in range(60)]
    _, batch = send(r.gw, to)
    wait_sends(r, to, 2)
    ans = cli_json(r, "batch", "cancel", batch)
    assert ans["state"] == "cancelled", ans
    cancelled_at = time.monotonic()
    # at 2 recipients a second the rest would take half a minute
    st = wait_show(r, batch, lambda s: s["complete"], timeout=30)
    took = time.monotonic() - cancelled_at
    assert st["complete"] and took < 8, (took, st)
    sent = len(sends(r, to))
    assert st["sent"] == sent and st["cancelled"] == len(to) - sent, st
    # the reservations of the copies cancelled at the gate went back
    used = cli_json(r, "status")["rate"]["sent_last_24h"]
    assert used == sent, (used, sent)
