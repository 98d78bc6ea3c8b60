"""Pass-through sends take from blocks of the rate their process reserved
ahead (docs/RATELIMIT.md, "Blocks"): far fewer limit.lua calls than sends,
the rolling day counts exactly the recipients sent once the blocks' time has
passed, and two processes sharing a Redis stay within the rate while both
take from blocks.
"""

import threading
import time

import botocore.exceptions
import pytest

import harness
from test_ratelimit import RateRig, Recorder, attempt_window, err_of, metrics, send_email, throttled

pytestmark = pytest.mark.needs_sesgate


@pytest.fixture
def rigs(tmp_path):
    made = []

    def make(name, **kw):
        r = RateRig(tmp_path / name, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        logs = r.close()
        assert not harness.SANITIZER_RE.search(logs), logs[-4000:]


def script_calls(rig):
    """EVAL and EVALSHA calls the managed Redis has run so far."""
    n = 0
    for line in rig.redis("INFO", "commandstats").splitlines():
        name, _, rest = line.partition(":")
        if name in ("cmdstat_evalsha", "cmdstat_eval"):
            n += int(rest.split(",")[0].split("=")[1])
    return n


def hammer(gw, threads, per_thread, tag):
    """threads threads each making per_thread one-recipient v1 sends in a
    row; [(ok, error or None, address)]."""
    out = []
    lock = threading.Lock()
    clients = [harness.boto3_client(gw, "ses") for _ in range(threads)]

    def run(k):
        for i in range(per_thread):
            addr = "%s-%02d-%03d@example.net" % (tag, k, i)
            try:
                send_email(gw, [addr], client=clients[k])
                res = (True, None, addr)
            except botocore.exceptions.ClientError as e:
                res = (False, err_of(e), addr)
            with lock:
                out.append(res)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def test_blocks_cut_script_calls_and_the_day_counts_what_was_sent(rigs):
    # 12 senders in a loop keep the rate (40/s) busy: the sends ask for a
    # block's worth and more, so they take from blocks.
    rig = rigs("calls", send={"rate": "40", "max_wait": "5s", "first_recipient": "sync"},
               quota={"enforce": True, "max_send_rate": 40, "max_24_hour_send": 100000})
    front = rig.serve()
    rec = Recorder(rig.fake)
    before = script_calls(rig)
    t0 = time.monotonic()
    out = hammer(rig.gw, 12, 20, "blk")
    took = time.monotonic() - t0
    calls = script_calls(rig) - before
    ok = [a for good, _, a in out if good]
    refused = [e for good, e, _ in out if not good]
    time.sleep(0.6)  # the last blocks' time passes; their unused recipients leave the day
    recs = rec.poll()
    day = rig.status_rate()
    m = metrics(front)
    print("\n%d pass-through sends at rate 40 from 12 senders in %.1f s: %d answered 200, refused %d; "
          "%d limit.lua calls (%.2f per send); at most %d recipients in any 1 s window; rolling day %s; "
          "limiter takes %d" % (len(out), took, len(ok), len(refused), calls, calls / len(out),
                                attempt_window(recs), day.get("sent_last_24h"),
                                m.get("sesgate_limiter_takes_total", 0)))
    assert len(out) == 240
    assert all(e[0] == "Throttling" for e in refused), refused[:5]
    assert sorted(a for r in recs if r.get("status") == 200 for a in r.get("recipients", [])) == sorted(ok)
    assert not throttled(recs) and attempt_window(recs) <= 40
    # one call per send without blocks
    assert calls <= 0.75 * len(out), calls
    assert int(m.get("sesgate_limiter_takes_total", 0)) == len(out)
    # the rolling day counts every send that reached the upstream (one
    # refused there with Throttling stays counted, as without blocks)
    assert day.get("sent_last_24h") == len(ok) + len(throttled(recs)), day


def test_two_processes_taking_blocks_stay_within_the_rate(rigs):
    rig = rigs("two", send={"rate": "40", "max_wait": "5s", "first_recipient": "sync"},
               quota={"enforce": True, "max_send_rate": 40, "max_24_hour_send": 100000})
    rig.serve()
    gw1 = rig.gw
    rig._front(harness.Sesgate, "serve2")
    gw2 = rig.gw
    rec = Recorder(rig.fake)
    before = script_calls(rig)
    outs = [None, None]

    # most of the load on the first: its sends ask for blocks of two or three
    def load(i, gw):
        outs[i] = hammer(gw, 12 if i == 0 else 4, 15, "two%d" % i)

    ts = [threading.Thread(target=load, args=(i, gw)) for i, gw in enumerate((gw1, gw2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    calls = script_calls(rig) - before
    time.sleep(0.6)
    recs = rec.poll()
    out = outs[0] + outs[1]
    ok = [a for good, _, a in out if good]
    refused = [e for good, e, _ in out if not good]
    window = attempt_window(recs)
    day = rig.status_rate()
    print("\n%d sends through two processes at rate 40: %d answered 200, refused %d; at most %d "
          "recipients in any 1 s window; upstream Throttling %d; %d limit.lua calls; rolling day %s"
          % (len(out), len(ok), len(refused), window, len(throttled(recs)), calls, day.get("sent_last_24h")))
    assert len(out) == 240
    assert not throttled(recs), "the upstream refused sends over its rate"
    assert window <= 40, window
    assert all(e[0] == "Throttling" for e in refused), refused[:5]
    assert sorted(a for r in recs if r.get("status") == 200 for a in r.get("recipients", [])) == sorted(ok)
    assert calls < len(out), "no block was taken: %d calls for %d sends" % (calls, len(out))
    # the rolling day counts every send that reached the upstream (one
    # refused there with Throttling stays counted, as without blocks)
    assert day.get("sent_last_24h") == len(ok) + len(throttled(recs)), day
