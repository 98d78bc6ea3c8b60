"""Scale-out under a crash: a front (`sesgate serve`) and three workers
(`sesgate work`), each started on its own, share one Redis and one account
rate of 50 recipients a second, which the fake SES enforces exactly (any 50
in a sliding second, docs/RATELIMIT.md). Mid-batch one worker is killed with
SIGKILL while it has sends in flight, and a fresh worker joins later. The
rate must hold through it all (no Throttling, never more than 50 in a
second), every recipient must be delivered, duplicates may only be the killed
worker's sends in flight, and every batch must end complete.

The [send] lease is 5 s, so what the killed worker had claimed is reclaimed
by the others 5 s after it died (docs/QUEUE.md)."""

import signal
import time

import pytest

import harness
from test_queue import PREFIX
from test_ratelimit import (DLQ, Recorder, explain_throttles, metrics, rcpt_counter, rigs, send_email,  # noqa: F401
                            summary)  # (rigs is a fixture)

pytestmark = pytest.mark.needs_sesgate

RATE = 50
CONCURRENCY = 4
LEASE_S = 5
BATCHES = 20
PER_BATCH = 100


def test_worker_killed_mid_batch_rate_holds_nothing_lost(rigs):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    rig = rigs("scaleout", send={"rate": str(RATE), "concurrency": str(CONCURRENCY), "lease": "%ds" % LEASE_S},
               quota={"enforce": True, "max_send_rate": RATE, "max_24_hour_send": 100000})
    # Every send takes 40 ms at the upstream, so a worker always has some in flight.
    rig.fake.control(mode="normal", delay_ms=40, count=1000000)
    front = rig.serve()
    workers = [rig.work("w1"), rig.work("w2"), rig.work("w3")]
    rec = Recorder(rig.fake)
    ses = harness.boto3_client(rig.gw, "ses")
    batches, all_to = [], []
    for b in range(BATCHES):
        to = ["s%02d-%03d@example.net" % (b, i) for i in range(PER_BATCH)]
        all_to += to
        resp, batch = send_email(rig.gw, to, client=ses)
        assert batch, resp
        batches.append(batch)
    total = len(all_to)

    rec.wait_accepted(600, timeout=60)
    victim = workers[0]
    victim_sent = int(metrics(victim).get("sesgate_sent_total", 0))
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    killed_at = time.monotonic()
    at_kill = sum(rcpt_counter(rec.poll()).values())

    time.sleep(8)
    joined = rig.work("w4")
    joined_at = time.monotonic()

    ok, recs = rec.wait(lambda rs: set(rcpt_counter(rs)) >= set(all_to), timeout=total / RATE + 60)
    time.sleep(1.0)
    recs = rec.poll()
    acc, got, thr, window, span = summary(recs)
    dup = sorted(a for a, n in got.items() if n > 1)
    survivors = [int(metrics(w).get("sesgate_sent_total", 0)) for w in workers[1:] + [joined]]
    ideal = (total + len(dup) - 1) / RATE
    print("\nscale-out: serve + 3 work at rate %d, %d recipients; w1 killed after %d accepted (it had sent %d); "
          "w4 joined %.1f s later; all delivered: %s; max %d in any 1 s window; first to last "
          "%.2f s (ideal %.2f s); Throttling %d; duplicates %d %s; sent by w2, w3, w4 after: %s"
          % (RATE, total, at_kill, victim_sent, joined_at - killed_at, ok, window, span, ideal,
             len(thr), len(dup), dup, survivors))
    explain_throttles(recs, "scale-out")

    missing = sorted(set(all_to) - set(got))
    assert not missing, "%d recipients never delivered, e.g. %s" % (len(missing), missing[:10])
    assert not thr, "the upstream throttled %d sends" % len(thr)
    assert window <= RATE, "sesgate attempted %d recipients in a 1 s window" % window
    # Only what the killed worker had handed to the upstream can go twice.
    assert len(dup) <= CONCURRENCY, dup
    assert max(got.values()) <= 2, got.most_common(3)
    # The dead worker's reserved time (at most a second of the rate) is lost;
    # everything else goes at the full rate.
    assert span <= ideal * 1.05 + 2.0, "first to last %.2f s, ideal %.2f s" % (span, ideal)
    assert all(n > 0 for n in survivors), survivors
    for batch in batches:
        st = rig.cli("batch", "show", batch)
        assert st["complete"] is True and (st["total"], st["sent"], st["dead"]) == (PER_BATCH, PER_BATCH, 0), {
            k: st.get(k) for k in ("total", "sent", "dead", "retrying", "queued", "complete")}
    # The entries the killed worker had claimed were taken over by the others.
    assert "event=queue_reclaimed" in "".join(w.log_text() for w in workers[1:] + [joined])
    stream = "%s:{%s}:q:app" % (PREFIX, PREFIX)
    assert int(rig.redis("XLEN", stream) or 0) == 0
    assert rig.redis("XPENDING", stream, "w").split("\n")[0] in ("0", "")
    assert int(rig.redis("XLEN", DLQ) or 0) == 0
    assert front.proc.poll() is None and all(w.proc.poll() is None for w in workers[1:] + [joined])
