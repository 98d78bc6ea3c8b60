"""Rate limiting end to end: the real binary, its managed Redis and the fake
SES holding sends to an SES-like quota (fakeses.py "Quota": MaxSendRate
recipients in any sliding second, Max24HourSend in a rolling day).

The first tests check the fake's own quota (no sesgate). Then, against
sesgate (docs/RATELIMIT.md):
  a) three processes sharing one Redis (a front and two workers) send 1,500
     recipients at rate = 50 without one Throttling answer, at 50/s;
  b) rate = auto follows a raised MaxSendRate;
  c) an upstream that throttles below the configured rate: sesgate backs off
     (AIMD) and loses nothing;
  d) the daily quota holds the queue, which resumes once the quota is raised;
  e) pass-through sends wait up to max_wait for their turn, else get SES's
     throttling error; a single send goes ahead of a draining batch;
  f) a client's own rate and daily quota.

Times are compared on the fake's clock: every record carries "t", its
time.monotonic() when the send was admitted to (or refused by) its quota.
"""

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import botocore.exceptions
import pytest

import harness
from test_queue import PREFIX
from test_queue_faults import WorkSesgate

pytestmark = pytest.mark.needs_sesgate

DLQ = "%s:{%s}:dlq" % (PREFIX, PREFIX)
SEND_ACTIONS = ("SendEmail", "SendRawEmail", "SendTemplatedEmail", "POST /v2/email/outbound-emails")
RATE_MSG = "Maximum sending rate exceeded."
DAILY_MSG = "Daily message quota exceeded."


# ---------------------------------------------------------------- helpers


def max_in_window(points, window=1.0):
    """The most recipients in any sliding window of the given length over
    points [(t, n), ...]: the windows (t_i - window, t_i] ending at each send."""
    pts = sorted(points)
    best = total = lo = 0
    for t, n in pts:
        total += n
        while pts[lo][0] <= t - window:
            total -= pts[lo][1]
            lo += 1
        best = max(best, total)
    return best


def is_send(rec):
    """A verified send action the fake answered (accepted or refused)."""
    return rec.get("verified") and rec.get("action") in SEND_ACTIONS


def accepted(recs):
    """The sends the fake accepted, in time order."""
    return sorted((r for r in recs if is_send(r) and r.get("status") == 200), key=lambda r: r["t"])


def throttled(recs, kind=None):
    """The sends the fake refused for its quota (kind "rate" or "daily")."""
    return [r for r in recs if is_send(r) and r.get("throttled") and (kind is None or r["throttled"] == kind)]


def attempted(recs):
    """Every send sesgate made, accepted or refused by the fake's quota, in
    time order: the fake refuses what goes beyond its rate, so only windows
    over attempts can show sesgate sending too fast."""
    return sorted((r for r in recs if is_send(r) and (r.get("status") == 200 or r.get("throttled"))),
                  key=lambda r: r["t"])


def attempt_window(recs, window=1.0):
    """The most recipients sesgate attempted in any sliding window."""
    return max_in_window([(r["t"], len(r["recipients"])) for r in attempted(recs)], window)


def rcpt_counter(recs):
    """Counter of the recipients of accepted sends."""
    return Counter(a for r in accepted(recs) for a in r["recipients"])


def rate_between(recs, t0, t1, of=accepted):
    """Recipients per second in [t0, t1) of the sends of(recs) (accepted
    ones by default; of=attempted counts the refused ones too)."""
    n = sum(len(r["recipients"]) for r in of(recs) if t0 <= r["t"] < t1)
    return n / (t1 - t0)


def summary(recs):
    """What the fake saw: (accepted sends in time order, Counter of accepted
    recipients, throttled sends, most recipients sesgate attempted in any
    1 s window (refused sends included), seconds from the first accepted
    send to the last)."""
    acc = accepted(recs)
    window = attempt_window(recs)
    return acc, rcpt_counter(recs), throttled(recs), window, acc[-1]["t"] - acc[0]["t"]


def explain_throttles(recs, label, since=None):
    """Print, for each send the fake refused (from monotonic time since on),
    what it had accepted in the second before (how the sliding window was full)."""
    acc = accepted(recs)
    t0 = acc[0]["t"] if acc else 0.0
    for r in throttled(recs):
        if since is not None and r["t"] < since:
            continue
        before = [x for x in acc if r["t"] - 1.0 < x["t"] <= r["t"]]
        n = sum(len(x["recipients"]) for x in before)
        print("%s upstream %s refusal at +%.3f s: %d recipients accepted in the second before it%s; the "
              "last gaps (ms) %s" % (
                  label, r["throttled"], r["t"] - t0, n,
                  ", the first at +%.3f s" % (before[0]["t"] - t0) if before else "",
                  [round(1000 * (b["t"] - a["t"]), 1) for a, b in zip(before[-8:], before[-7:])]))


class Recorder:
    """Everything the fake recorded, fetched incrementally (?since=)."""

    def __init__(self, fake):
        self.fake = fake
        self.recs = []
        self.next = fake.reset()["seq"]

    def poll(self):
        """Fetch what is new; returns every record so far."""
        new = self.fake.requests(since=self.next)
        if new:
            self.recs.extend(new)
            self.next = new[-1]["seq"] + 1
        return self.recs

    def wait(self, pred, timeout, step=0.25):
        """Poll until pred(records) holds; returns (held, records)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.poll()
            if pred(recs):
                return True, recs
            if time.monotonic() >= deadline:
                return False, recs
            time.sleep(step)

    def wait_accepted(self, n, timeout):
        """Wait until at least n recipients were accepted; returns the records."""
        ok, recs = self.wait(lambda rs: sum(rcpt_counter(rs).values()) >= n, timeout)
        assert ok, "upstream accepted %d of %d recipients in %d s; throttled %d" % (
            sum(rcpt_counter(recs).values()), n, timeout, len(throttled(recs)))
        return recs


def metrics(proc):
    """A sesgate process's /metrics as {name: value summed over labels}."""
    status, _, body = harness.http("GET", proc.admin_url + "/metrics", timeout=5)
    assert status == 200, status
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{")[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def mk_creds(name):
    return harness.Creds(name, harness.new_access_key("SG" + name[:3].upper()), harness.new_secret())


class RateRig:
    """A fake upstream and sesgate processes sharing one configuration (but
    each its own ports) and one data_dir, hence one managed Redis, in a
    fresh work directory."""

    def __init__(self, workdir, send, quota=None, clients=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
        self.fake = harness.FakeSES(self.workdir, self.upstream).start()
        if quota:
            self.fake.set_quota(**quota)
        clients = dict(clients or {})
        clients.setdefault("app", {})
        self.creds = {}
        self.policies = {}
        self.extra = {"send": {"first_recipient": "queue", "concurrency": "4"}}
        self.extra["send"].update(send)
        for name, own in clients.items():
            self.creds[name] = mk_creds(name)
            self.policies[name] = {"creds": self.creds[name], "allow_actions": ["*"], "allow_from": ["*"]}
            if own:
                self.extra["client." + name] = dict(own)
        self.procs = []
        self.front = None
        self.gw = None

    def _add(self, cls, name):
        p = cls(self.workdir, self.fake.url, self.upstream, self.policies, extra=self.extra)
        p.config_path = self.workdir / ("sesgate-%s.ini" % name)
        return p

    def run(self):
        """Start `sesgate run` (front and workers) as the front."""
        return self._front(harness.RunSesgate, "run")

    def serve(self):
        """Start `sesgate serve` (the front only)."""
        return self._front(harness.Sesgate, "serve")

    def _front(self, cls, name):
        p = self._add(cls, name)
        p.start()
        self.procs.append(p)
        self.front = p
        self.gw = harness.Gateway(p.url, harness.REGION, False, self.fake, p, self.upstream,
                                  self.creds, self.workdir)
        return p

    def work(self, name):
        """Start a `sesgate work` process with its own admin port."""
        p = self._add(WorkSesgate, name)
        p.config_path.write_text(p.config_text())
        os.chmod(p.config_path, 0o600)
        p.start()
        self.procs.append(p)
        return p

    def redis(self, *args):
        """redis-cli on the managed Redis (through the front's work directory)."""
        return harness.RunSesgate.redis(self.front, *args)

    def cli(self, *args):
        """Run `sesgate ARGS -c CONFIG --json` on the front's configuration; parsed output."""
        return harness.sesgate_json(self.front.config_path, self.workdir, *args)

    def status_rate(self):
        """`sesgate status --json`'s "rate" object."""
        return self.cli("status")["rate"]

    def wait_status(self, pred, timeout=8.0):
        """Wait until pred(status "rate" object) holds; returns the object."""
        deadline = time.monotonic() + timeout
        while True:
            rate = self.status_rate()
            if pred(rate) or time.monotonic() >= deadline:
                return rate
            time.sleep(0.2)

    def wait_upstream_rate(self, max_send_rate, timeout=8.0):
        """Wait until sesgate stored the upstream's MaxSendRate (rate = auto)."""
        rate = self.wait_status(lambda r: (r.get("upstream") or {}).get("max_send_rate") == max_send_rate,
                                timeout)
        assert (rate.get("upstream") or {}).get("max_send_rate") == max_send_rate, rate
        return rate

    def logs(self):
        return "".join(p.log_text() for p in self.procs)

    def close(self):
        """Stop every process; returns their logs."""
        logs = ""
        for p in reversed(self.procs):
            p.stop()
            logs += p.log_text()
        self.fake.stop()
        return logs


@pytest.fixture
def rigs(tmp_path):
    """Build rigs in fresh work directories; stop them and check their logs."""
    made = []

    def make(name, **kw):
        r = RateRig(tmp_path / name, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        logs = r.close()
        assert not harness.SANITIZER_RE.search(logs), logs[-4000:]


def send_email(gw, to, creds=None, cc=(), subject="Rate test", max_attempts=1, client=None):
    """v1 SendEmail through boto3; returns (response, X-Sesgate-Batch-Id or None)."""
    client = client or harness.boto3_client(gw, "ses", creds=creds, max_attempts=max_attempts)
    seen = {}

    def after_call(http_response, **kwargs):
        seen["batch"] = http_response.headers.get("x-sesgate-batch-id")

    client.meta.events.register("after-call.ses.SendEmail", after_call)
    dest = {"ToAddresses": list(to)}
    if cc:
        dest["CcAddresses"] = list(cc)
    resp = client.send_email(Source=harness.SENDER, Destination=dest,
                             Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": "body"}}})
    client.meta.events.unregister("after-call.ses.SendEmail", after_call)
    return resp, seen.get("batch")


def send_v2(client, to):
    """v2 SendEmail (Simple) to the To list."""
    return client.send_email(FromEmailAddress=harness.SENDER, Destination={"ToAddresses": list(to)},
                             Content={"Simple": {"Subject": {"Data": "v2"}, "Body": {"Text": {"Data": "b"}}}})


def err_of(e):
    """(code, HTTP status, message) of a ClientError."""
    r = e.response
    return r["Error"].get("Code"), r["ResponseMetadata"].get("HTTPStatusCode"), r["Error"].get("Message")


# ---------------------------------------------------------------- the fake's quota (no sesgate)


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """The fake alone; boto3 talks to it with the upstream key."""
    workdir = tmp_path_factory.mktemp("fake-quota")
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(workdir, upstream).start()
    gw = harness.Gateway(fake.url, harness.REGION, True, fake, None, upstream, {"app": upstream}, workdir)
    yield gw
    fake.stop()


@pytest.fixture
def dgw(direct):
    direct.fake.reset()
    direct.fake.set_quota(enforce=False, max_send_rate=14, max_24_hour_send=50000, sent_last_24_hours=0)
    deadline = time.monotonic() + 2
    while direct.fake.quota()["sent_last_second"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the previous test's sends leave the sliding second
    return direct


def test_fake_quota_off_by_default(dgw):
    q = dgw.fake.quota()
    assert q["enforce"] is False, q
    dgw.fake.set_quota(max_send_rate=1)
    ses = harness.boto3_client(dgw, "ses")
    for i in range(4):
        send_email(dgw, ["a%d@example.net" % i, "b%d@example.net" % i], client=ses)
    recs = dgw.fake.requests()
    assert [r["status"] for r in recs] == [200] * 4
    assert dgw.fake.quota()["quota"]["sent_last_24_hours"] == 8
    assert ses.get_send_quota()["SentLast24Hours"] == 8.0


def test_fake_rate_counts_recipients_v1_v2_raw(dgw):
    ses = harness.boto3_client(dgw, "ses")
    v2 = harness.boto3_client(dgw, "sesv2")
    # Raw without Destinations: the To, Cc and Bcc headers count (3 > 1 left).
    raw = harness.raw_message(to="x@example.net, y@example.net").replace(
        b"Subject:", b"Bcc: z@example.net\r\nSubject:")

    def outcome(call):
        try:
            call()
            return None
        except botocore.exceptions.ClientError as e:
            return err_of(e)

    # The six calls must fall within one sliding second. A busy machine may
    # spread them wider: then the fake's window moved on and the round
    # proves nothing, so it runs again (at most 5 rounds).
    for _ in range(5):
        dgw.fake.reset()
        dgw.fake.set_quota(enforce=True, max_send_rate=5, sent_last_24_hours=0)
        harness.wait_for(lambda: not dgw.fake.quota()["sent_last_second"], 3)
        t0 = time.monotonic()
        got = [
            outcome(lambda: send_email(dgw, ["a@example.net", "b@example.net"], cc=["c@example.net"],
                                       client=ses)),  # 3
            outcome(lambda: send_v2(v2, ["d@example.net"])),  # 4
            outcome(lambda: send_email(dgw, ["e@example.net", "f@example.net"], client=ses)),  # 6 > 5
            outcome(lambda: send_v2(v2, ["g@example.net", "h@example.net"])),
            outcome(lambda: ses.send_raw_email(RawMessage={"Data": raw})),
            outcome(lambda: ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": ["i@example.net"]},
                                           Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})),
        ]  # the last: 5 = 5
        took = time.monotonic() - t0
        recs = dgw.fake.requests()
        if len(recs) == 6 and recs[-1]["t"] - recs[0]["t"] < 0.9:
            break
    assert recs[-1]["t"] - recs[0]["t"] < 0.9, "no round of six calls fit in a second (last took %.2f s)" % took
    assert got == [None, None, ("Throttling", 400, RATE_MSG), ("TooManyRequestsException", 429, RATE_MSG),
                   ("Throttling", 400, RATE_MSG), None], got
    assert [r.get("throttled") for r in recs] == [None, None, "rate", "rate", "rate", None]
    assert recs[4]["recipients"] == ["x@example.net", "y@example.net", "z@example.net"]
    ts = [r["t"] for r in recs]
    assert ts == sorted(ts) and t0 <= ts[0] and ts[-1] <= time.monotonic()
    # Once the first sends leave the sliding second, there is room again.
    time.sleep(max(0.0, recs[1]["t"] + 1.05 - time.monotonic()))
    raw_ok = ses.send_raw_email(RawMessage={"Data": raw})
    assert raw_ok["MessageId"]
    assert dgw.fake.quota()["quota"]["sent_last_24_hours"] == 8  # the refused ones are not counted


def test_fake_daily_quota_and_reports(dgw):
    dgw.fake.set_quota(enforce=True, max_send_rate=100, max_24_hour_send=4)
    ses = harness.boto3_client(dgw, "ses")
    v2 = harness.boto3_client(dgw, "sesv2")
    send_email(dgw, ["a@example.net", "b@example.net", "c@example.net"], client=ses)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        send_email(dgw, ["d@example.net", "e@example.net"], client=ses)
    assert err_of(ei.value) == ("Throttling", 400, DAILY_MSG)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        send_v2(v2, ["d@example.net", "e@example.net"])
    assert err_of(ei.value) == ("LimitExceededException", 400, DAILY_MSG)
    q = ses.get_send_quota()
    assert (q["SentLast24Hours"], q["Max24HourSend"], q["MaxSendRate"]) == (3.0, 4.0, 100.0)
    acct = v2.get_account()["SendQuota"]
    assert (acct["SentLast24Hours"], acct["Max24HourSend"], acct["MaxSendRate"]) == (3.0, 4.0, 100.0)
    send_v2(v2, ["d@example.net"])  # 4 = 4
    dgw.fake.set_quota(max_24_hour_send=10)
    send_email(dgw, ["e@example.net", "f@example.net"], client=ses)
    assert ses.get_send_quota()["SentLast24Hours"] == 6.0
    assert [r.get("throttled") for r in dgw.fake.requests() if is_send(r)] == [
        None, "daily", "daily", None, None]
    status, _, body = harness.http("POST", dgw.fake.url + "/__quota", {"enforce": "yes"})
    assert status == 400, body


def test_max_in_window():
    assert max_in_window([(0.0, 1), (0.5, 1), (1.0, 1), (1.99, 1)]) == 2
    assert max_in_window([(0.0, 3), (0.999, 2), (1.5, 1)]) == 5
    assert max_in_window([]) == 0


# ---------------------------------------------------------------- a) three processes, one rate


def test_a_three_processes_share_rate_50(rigs):
    rig = rigs("three", send={"rate": "50", "concurrency": "4"},
               quota={"enforce": True, "max_send_rate": 50, "max_24_hour_send": 100000})
    front = rig.serve()
    workers = [rig.work("w1"), rig.work("w2")]
    rec = Recorder(rig.fake)
    ses = harness.boto3_client(rig.gw, "ses")
    # Warm-up: 100 recipients (ideal 1.98 s) show how much this machine,
    # busy or not, stretches the pacing; the long run's upper bound follows.
    warm = ["w-%03d@example.net" % i for i in range(100)]
    resp, batch = send_email(rig.gw, warm, client=ses)
    assert batch, resp
    wrecs = rec.wait_accepted(100, timeout=30)
    wacc = accepted(wrecs)
    stretch = max(1.0, (wacc[-1]["t"] - wacc[0]["t"]) / 1.98)
    time.sleep(1.0)
    rec = Recorder(rig.fake)
    warm_sent = [int(metrics(w).get("sesgate_sent_total", 0)) for w in workers]
    warm_front = int(metrics(front).get("sesgate_sent_total", 0))
    batches = []
    all_to = []
    for b in range(15):
        to = ["a%02d-%03d@example.net" % (b, i) for i in range(100)]
        all_to += to
        resp, batch = send_email(rig.gw, to, client=ses)
        assert batch, resp
        batches.append(batch)
    recs = rec.wait_accepted(1500, timeout=60)
    time.sleep(0.5)
    recs = rec.poll()
    acc, got, thr, window, span = summary(recs)
    per_worker = [int(metrics(w).get("sesgate_sent_total", 0)) - n for w, n in zip(workers, warm_sent)]
    front_sent = int(metrics(front).get("sesgate_sent_total", 0)) - warm_front
    print("\na) rate 50, serve + 2 work: %d recipients accepted, max %d in any 1 s window, first to last "
          "%.2f s (ideal 29.98 s), upstream Throttling %d, sent per worker %s (front %d)"
          % (sum(got.values()), window, span, len(thr), per_worker, front_sent))
    explain_throttles(recs, "a)")
    assert set(got) == set(all_to) and max(got.values()) == 1, [a for a, n in got.items() if n > 1][:10]
    problems = []
    if thr:
        problems.append("the upstream throttled %d sends, first at +%.3f s" % (len(thr), thr[0]["t"] - acc[0]["t"]))
    if window > 50:
        problems.append("a 1 s window held %d recipients" % window)
    # 1,499 gaps of 20 ms; a sender using a full first second at once would
    # take 29 s: never under 28.5 s (too fast shows whatever the load). Too
    # slow is judged against the warm-up's pacing on this machine: at most
    # 5 % beyond 30 s stretched as much as the warm-up was.
    if not 30 * 0.95 <= span <= 30 * 1.05 * stretch:
        problems.append("first to last accepted send %.2f s, want 28.5 to %.2f s (warm-up stretch %.2f)"
                        % (span, 30 * 1.05 * stretch, stretch))
    if sum(per_worker) != 1500 or min(per_worker) == 0:
        problems.append("sent per worker %s" % per_worker)
    for batch in batches:
        st = rig.cli("batch", "show", batch)
        if not (st["complete"] is True and st["sent"] == 100 and st["dead"] == 0):
            problems.append("batch %s: %s" % (batch, {
                k: st.get(k) for k in ("total", "sent", "dead", "retrying", "queued", "complete")}))
    assert not problems, problems


def test_a_stalled_worker_does_not_bunch_its_late_sends(rigs):
    """A worker stopped (SIGSTOP) for 150 ms at a time while it drains at the
    full rate: the copies whose reserved time passed during the stall are
    reserved again, not sent together when it resumes, so no second holds
    more than the rate."""
    rig = rigs("stall", send={"rate": "50", "concurrency": "4"},
               quota={"enforce": True, "max_send_rate": 50, "max_24_hour_send": 100000})
    rig.serve()
    w = rig.work("w1")
    rec = Recorder(rig.fake)
    to = ["st-%03d@example.net" % i for i in range(400)]
    _, batch = send_email(rig.gw, to)
    assert batch
    rec.wait_accepted(50, timeout=30)
    for _ in range(6):
        w.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.15)
        w.proc.send_signal(signal.SIGCONT)
        time.sleep(0.8)
    ok, recs = rec.wait(lambda rs: set(rcpt_counter(rs)) >= set(to), timeout=60)
    time.sleep(0.5)
    recs = rec.poll()
    acc, got, thr, window, span = summary(recs)
    late = int(metrics(w).get("sesgate_pace_late_total", 0))
    print("\na) six 150 ms stalls at rate 50: %d recipients, max %d in any 1 s window, Throttling %d, "
          "%d copies reserved again, first to last %.2f s" % (sum(got.values()), window, len(thr), late, span))
    explain_throttles(recs, "a) stalls")
    assert ok and set(got) == set(to) and max(got.values()) == 1, sorted(set(to) - set(got))[:5]
    assert late >= 6, "the stalls left no copy late: %d" % late
    assert not thr and window <= 50, (len(thr), window)


# ---------------------------------------------------------------- b) rate = auto follows the upstream


def test_b_auto_rate_follows_upstream_quota(rigs):
    rig = rigs("auto", send={"rate": "auto", "headroom": "1.0", "quota_refresh": "1s"},
               quota={"enforce": True, "max_send_rate": 20, "max_24_hour_send": 100000})
    rig.run()
    rig.wait_upstream_rate(20)
    rec = Recorder(rig.fake)
    to = ["b%03d@example.net" % i for i in range(300)]
    send_email(rig.gw, to)
    recs = rec.wait_accepted(60, timeout=15)
    rate_20 = rig.status_rate()
    base_metric_20 = metrics(rig.front).get("sesgate_rate_base")
    recs = rec.wait_accepted(90, timeout=15)
    t_first = accepted(recs)[0]["t"]
    slow = rate_between(recs, t_first + 1.0, t_first + 4.0)
    rig.fake.set_quota(max_send_rate=40)
    t_change = time.monotonic()
    recs = rec.wait_accepted(300, timeout=30)
    acc = accepted(recs)
    # The first second after the change in which 36 recipients (90 % of 40)
    # were accepted.
    fast_at = None
    for r in acc:
        in_second = sum(len(x["recipients"]) for x in acc if r["t"] - 1.0 < x["t"] <= r["t"])
        if r["t"] > t_change + 1.0 and in_second >= 36:
            fast_at = r["t"]
            break
    fast = rate_between(recs, fast_at, acc[-1]["t"]) if fast_at and acc[-1]["t"] - fast_at >= 1.0 else 0.0
    rate = rig.status_rate()
    base_metric = metrics(rig.front).get("sesgate_rate_base")
    got = rcpt_counter(recs)
    # What sesgate attempted (the fake refuses beyond its rate, so accepted
    # sends alone can never show too many): at most 20 in any second before
    # the raise, at most 40 after it, and nothing throttled.
    before = [r for r in attempted(recs) if r["t"] < t_change]
    window_20 = max_in_window([(r["t"], len(r["recipients"])) for r in before])
    window_all = attempt_window(recs)
    slow_att = rate_between(recs, t_first + 1.0, t_first + 4.0, of=attempted)
    fast_att = rate_between(recs, fast_at, acc[-1]["t"], of=attempted) if fast else 0.0
    print("\nb) rate auto: %.1f/s at MaxSendRate 20 (status rate.base %s, metric %s), %s s after the raise "
          "to 40 a second held >= 36, then %.1f/s; status rate.base %s, metric %s; upstream Throttling %d"
          % (slow, rate_20.get("base"), base_metric_20, None if fast_at is None else round(fast_at - t_change, 2),
             fast, rate.get("base"), base_metric, len(throttled(recs))))
    explain_throttles(recs, "b)")
    assert set(got) == set(to) and max(got.values()) == 1
    problems = []
    if throttled(recs):
        problems.append("the upstream throttled %d sends" % len(throttled(recs)))
    if window_20 > 20 or window_all > 40:
        problems.append("attempted %d in a 1 s window before the raise, %d overall" % (window_20, window_all))
    if not (18 <= slow and slow_att <= 20.5):
        problems.append("%.1f/s accepted, %.1f/s attempted at MaxSendRate 20" % (slow, slow_att))
    if not (rate_20.get("base") == 20 and base_metric_20 == 20):
        problems.append("at MaxSendRate 20: status %s, sesgate_rate_base %s" % (rate_20, base_metric_20))
    if fast_at is None or fast_at - t_change > 4.0:
        problems.append("no second at >= 36/s within 4 s of the raise to 40")
    elif not (36 <= fast and fast_att <= 41):
        problems.append("%.1f/s accepted, %.1f/s attempted after the raise to 40" % (fast, fast_att))
    if not (rate.get("base") == 40 and base_metric == 40):
        problems.append("after the raise: status rate.base %s, sesgate_rate_base %s" % (rate.get("base"), base_metric))
    assert not problems, problems


# ---------------------------------------------------------------- c) an upstream slower than configured


def test_c_upstream_throttles_below_configured_rate(rigs):
    rig = rigs("aimd", send={"rate": "50"},
               quota={"enforce": True, "max_send_rate": 20, "max_24_hour_send": 100000})
    rig.run()
    rec = Recorder(rig.fake)
    to = ["c%03d@example.net" % i for i in range(200)]
    send_email(rig.gw, to)
    recs = rec.wait_accepted(200, timeout=90)
    time.sleep(1.0)
    recs = rec.poll()
    acc = accepted(recs)
    thr = throttled(recs)
    got = rcpt_counter(recs)
    span = acc[-1]["t"] - acc[0]["t"]
    overall = (len(acc) - 1) / span
    half = acc[0]["t"] + span / 2
    thr_late = [r for r in thr if r["t"] >= half]
    m = metrics(rig.front)
    cuts = rig.logs().count("event=rate_cut")
    dead = rig.cli("dlq", "list")
    print("\nc) rate 50 against an upstream enforcing 20/s: %.1f/s accepted over %.1f s, upstream Throttling "
          "%d (%d in the second half), rate_cut lines %d, sesgate_ses_throttled_total %s, status rate %s"
          % (overall, span, len(thr), len(thr_late), cuts, m.get("sesgate_ses_throttled_total"),
             {k: v for k, v in rig.status_rate().items() if k != "upstream"}))
    explain_throttles(recs, "c) second half:", since=half)
    # Accepted sends cannot go beyond the fake's 20/s; what sesgate
    # attempted can. Over the second half, once the rate has settled, it
    # attempts at most a quarter more than the upstream takes.
    late_att = rate_between(recs, half, acc[-1]["t"], of=attempted)
    assert late_att <= 20.5 * 1.25, (late_att, overall)
    assert set(got) == set(to) and max(got.values()) == 1, [a for a, n in got.items() if n > 1]
    assert int(rig.redis("XLEN", DLQ) or 0) == 0 and dead == []
    assert cuts > 0 and m.get("sesgate_ses_throttled_total", 0) > 0
    # Settled: after the first half the upstream refuses far fewer sends than it accepts.
    assert len(thr_late) <= len([r for r in acc if r["t"] >= half]) // 4, (len(thr_late), len(thr))


# ---------------------------------------------------------------- d) the daily quota holds the queue


def test_d_daily_quota_holds_then_resumes(rigs):
    rig = rigs("daily", send={"rate": "auto", "headroom": "1.0", "quota_refresh": "1s"},
               quota={"enforce": True, "max_send_rate": 50, "max_24_hour_send": 100})
    rig.run()
    rate = rig.wait_upstream_rate(50)
    assert rate["upstream"].get("daily_quota") == 100, rate
    rec = Recorder(rig.fake)
    to = ["d%03d@example.net" % i for i in range(150)]
    send_email(rig.gw, to)
    # Until 100 are accepted or sending stops for 3 s.
    last = [0, time.monotonic()]

    def settled(rs):
        n = len([r for r in rs if is_send(r)])
        if n != last[0]:
            last[:] = [n, time.monotonic()]
        return sum(rcpt_counter(rs).values()) >= 100 or time.monotonic() - last[1] > 3.0

    rec.wait(settled, timeout=20)
    recs = rec.poll()
    acc = accepted(recs)
    t_hold = acc[-1]["t"]
    time.sleep(5.0)
    recs = rec.poll()
    n_before = sum(rcpt_counter(recs).values())
    held = [r for r in recs if is_send(r) and r["t"] > t_hold]
    dlq = int(rig.redis("XLEN", DLQ) or 0)
    hold_logged = "event=queue_hold" in rig.logs()
    status_hold = rig.status_rate()
    rig.fake.set_quota(max_24_hour_send=1000)
    t_raise = time.monotonic()
    ok, recs = rec.wait(lambda rs: sum(rcpt_counter(rs).values()) >= 150, timeout=15)
    acc = accepted(recs)
    got = rcpt_counter(recs)
    resumed = acc[n_before]["t"] - t_raise if len(acc) > n_before else None
    done = acc[-1]["t"] - t_raise
    print("\nd) daily quota 100: %d delivered before the hold, %d send attempts in the 5 s after the last, "
          "dlq %d, queue_hold logged %s, status sent_last_24h %s; after the raise the next went %s s later, "
          "the last (%d delivered) %.2f s later; upstream refusals %s"
          % (n_before, len(held), dlq, hold_logged, status_hold.get("sent_last_24h"),
             None if resumed is None else round(resumed, 2), sum(got.values()), done,
             dict(Counter(r["throttled"] for r in throttled(recs)))))
    explain_throttles(recs, "d)")
    assert set(got) == set(to) and max(got.values()) == 1, [a for a, n in got.items() if n > 1]
    problems = []
    if n_before != 100:
        problems.append("%d delivered before the hold, want 100" % n_before)
    if held:
        problems.append("sent during the hold: %s" % [
            (r["status"], r.get("throttled"), round(r["t"] - t_hold, 2)) for r in held])
    if dlq != 0 or int(rig.redis("XLEN", DLQ) or 0) != 0:
        problems.append("dead letters")
    if not hold_logged:
        problems.append("no queue_hold log line")
    if not (ok and done <= 5.0):
        problems.append("the rest took %.2f s after the raise" % done)
    assert not problems, problems


# ---------------------------------------------------------------- e) pass-through sends


def burst(gw, service, n):
    """n single-recipient sends at once from n threads; [(ok, (code, status, message), address)]."""
    clients = [harness.boto3_client(gw, service) for _ in range(n)]
    gate = threading.Barrier(n)
    out = [None] * n

    def one(k):
        addr = "e-%s-%02d@example.net" % (service, k)
        gate.wait()
        try:
            if service == "ses":
                send_email(gw, [addr], client=clients[k])
            else:
                send_v2(clients[k], [addr])
            out[k] = (True, None, addr)
        except botocore.exceptions.ClientError as e:
            out[k] = (False, err_of(e), addr)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_e_pass_through_waits_or_throttles(rigs):
    rig = rigs("pass", send={"rate": "5", "max_wait": "1s", "first_recipient": "sync"})
    rig.serve()
    # A call that is not a send opens the connection to the upstream first:
    # the gaps measured are the pacing's, not a first connect's (its setup
    # delays the burst's first send at the upstream by up to ~20 ms here).
    harness.boto3_client(rig.gw, "ses").get_send_quota()
    for service, want in (("ses", ("Throttling", 400, RATE_MSG)),
                          ("sesv2", ("TooManyRequestsException", 429, RATE_MSG))):
        rec = Recorder(rig.fake)
        out = burst(rig.gw, service, 20)
        time.sleep(0.3)
        recs = rec.poll()
        ok = [a for good, _, a in out if good]
        refused = [e for good, e, _ in out if not good]
        acc = accepted(recs)
        gaps = [round(b["t"] - a["t"], 3) for a, b in zip(acc, acc[1:])]
        print("\ne) %s burst of 20 at rate 5, max_wait 1 s: %d answered 200, refused %s; upstream gaps %s"
              % (service, len(ok), dict(Counter(refused)), gaps))
        # Takes start 200 ms apart; those starting within max_wait (1 s) fit.
        assert 5 <= len(ok) <= 7, (len(ok), out)
        assert all(e == want for e in refused), Counter(refused)
        assert sorted(a for r in acc for a in r["recipients"]) == sorted(ok)
        assert len([r for r in recs if is_send(r)]) == len(ok), "refused sends reached the upstream"
        # 200 ms apart, less 5 % for the timer and the network.
        assert all(g >= 0.19 for g in gaps), gaps
        time.sleep(1.5)  # the reservations run out


def test_e_single_send_goes_ahead_of_bulk(rigs):
    rig = rigs("ahead", send={"rate": "20", "max_wait": "1s"})
    rig.run()
    rec = Recorder(rig.fake)
    to = ["bulk%03d@example.net" % i for i in range(200)]
    send_email(rig.gw, to)
    rec.wait_accepted(40, timeout=10)
    ses = harness.boto3_client(rig.gw, "ses")
    t0 = time.monotonic()
    resp, batch = send_email(rig.gw, ["single@example.net"], client=ses)
    took = time.monotonic() - t0
    recs = rec.poll()
    left = 200 - sum(n for a, n in rcpt_counter(recs).items() if a.startswith("bulk"))
    print("\ne) single send while a batch drains at 20/s (%d still queued): answered in %.3f s"
          % (left, took))
    assert resp["MessageId"] and batch is None
    assert "single@example.net" in rcpt_counter(recs)
    assert left > 20, "the batch was nearly drained: the check proves nothing"
    assert took <= 1.0 + 0.2, took


# ---------------------------------------------------------------- f) per-client rate and daily quota


@pytest.fixture(scope="module")
def crig(tmp_path_factory):
    """`sesgate run` at rate 30 with a client "slow" (rate 5), clients
    "capped" (daily_quota 10), "bulkcap" (daily_quota 12, fan-out off: its
    bulk calls go to SES as they are) and "slowbulk" (rate 5, fan-out off),
    and an unrestricted "app"."""
    rig = RateRig(tmp_path_factory.mktemp("clients"), send={"rate": "30"},
                  clients={"slow": {"rate": "5"}, "capped": {"daily_quota": "10"},
                           "bulkcap": {"daily_quota": "12", "fanout": "off"},
                           "slowbulk": {"rate": "5", "fanout": "off"}})
    try:
        rig.run()
    except Exception:
        rig.close()
        raise
    yield rig
    logs = rig.close()
    assert not harness.SANITIZER_RE.search(logs), logs[-4000:]


def client_share_run(crig):
    """A rate-5 client's batch of 20 and an unrestricted client's batch of
    120, sent together at account rate 30; measured once per module."""
    if getattr(crig, "share", None) is not None:
        return crig.share
    rig = crig
    rec = Recorder(rig.fake)
    slow_to = ["slow%02d@example.net" % i for i in range(20)]
    fast_to = ["fast%03d@example.net" % i for i in range(120)]
    send_email(rig.gw, slow_to, creds=rig.creds["slow"])
    send_email(rig.gw, fast_to, creds=rig.creds["app"])
    recs = rec.wait_accepted(140, timeout=40)
    acc = accepted(recs)
    slow = [r for r in acc if r["recipients"][0].startswith("slow")]
    fast = [r for r in acc if r["recipients"][0].startswith("fast")]
    s0, s1 = slow[0]["t"], slow[-1]["t"]
    m = {
        "got": rcpt_counter(recs), "want": set(slow_to + fast_to),
        "slow_rate": (len(slow) - 1) / (s1 - s0),
        "slow_window": max_in_window([(r["t"], 1) for r in slow]),
        "six_span": min(slow[k + 5]["t"] - slow[k]["t"] for k in range(len(slow) - 5)),
        "fast_during": len([r for r in fast if s0 <= r["t"] <= s1]) / (s1 - s0),
        "both": max_in_window([(r["t"], 1) for r in acc]),
    }
    t_all = acc[0]["t"]
    print("\nf) slow client's sends at %s" % [round(r["t"] - t_all, 3) for r in slow])
    print("f) unrestricted client's sends from %.3f to %.3f s" % (fast[0]["t"] - t_all, fast[-1]["t"] - t_all))
    print("f) client rate 5: %.2f/s on average over %.1f s, max %d in any 1 s window (six sends within "
          "%.3f s); unrestricted client meanwhile %.1f/s; max %d in any 1 s window in all"
          % (m["slow_rate"], s1 - s0, m["slow_window"], m["six_span"], m["fast_during"], m["both"]))
    crig.share = m
    return m


def test_f_client_rate_caps_its_share(crig):
    m = client_share_run(crig)
    assert set(m["got"]) == m["want"] and max(m["got"].values()) == 1
    problems = []
    if m["slow_rate"] > 5 * 1.02:
        problems.append("client rate 5: average %.2f/s" % m["slow_rate"])
    if m["six_span"] < 0.95:  # never six in a second (5 % timing slack)
        problems.append("client rate 5: six sends within %.3f s (max %d in a 1 s window)"
                        % (m["six_span"], m["slow_window"]))
    if m["both"] > 31:  # the account rate, one send of timing slack
        problems.append("account rate 30: %d in a 1 s window" % m["both"])
    assert not problems, problems


def test_f_clients_share_the_account_fairly(crig):
    m = client_share_run(crig)
    # most of the other 25/s go to the unrestricted client meanwhile
    assert m["fast_during"] >= 20, "unrestricted client sent %.1f/s while the rate-5 client's batch drained" \
        % m["fast_during"]


def test_f_later_batch_of_another_client_is_not_stuck(rigs):
    """Two unrestricted clients, two workers (`sesgate run` and `sesgate
    work`), account rate 30: a batch queued while another client's batch of
    240 drains starts within a second and the two share the rate."""
    rig = rigs("share", send={"rate": "30"}, clients={"peer": {}})
    rig.run()
    rig.work("second")
    rec = Recorder(rig.fake)
    big = ["big%03d@example.net" % i for i in range(240)]
    later = ["later%02d@example.net" % i for i in range(60)]
    send_email(rig.gw, big, creds=rig.creds["app"])
    rec.wait_accepted(30, timeout=10)
    t_later = time.monotonic()
    send_email(rig.gw, later, creds=rig.creds["peer"])
    recs = rec.wait_accepted(300, timeout=40)
    acc = accepted(recs)
    mine = [r for r in acc if r["recipients"][0].startswith("later")]
    other = [r for r in acc if r["recipients"][0].startswith("big")]
    p0, p1 = mine[0]["t"], mine[-1]["t"]
    # The share while both batches drain: between the later batch's 6th and
    # 55th send (its first and last reads are thinner on two workers).
    m0, m1 = mine[5]["t"], mine[54]["t"]
    big_mid = len([r for r in other if m0 <= r["t"] <= m1])
    share = 49 / (49 + big_mid)
    both = max_in_window([(r["t"], 1) for r in acc])
    print("\nf) a later batch of another client: first send %.3f s after it was queued, all 60 in %.1f s "
          "(%.1f/s), the big batch done %.1f s after it; while both drained the later batch got %.0f %% "
          "(%d and %d sends in %.1f s); max %d in any 1 s window"
          % (p0 - t_later, p1 - p0, 59 / (p1 - p0), other[-1]["t"] - p1, 100 * share, 49, big_mid,
             m1 - m0, both))
    assert sorted(rcpt_counter(recs)) == sorted(big + later) and max(rcpt_counter(recs).values()) == 1
    assert not throttled(recs)
    assert p0 - t_later <= 1.5, "the later batch waited %.1f s behind the big one" % (p0 - t_later)
    assert 0.4 <= share <= 0.6, "the later batch got %.0f %% of the rate" % (100 * share)
    assert other[-1]["t"] - p1 >= 2, "the later batch finished with the big one: it did not share"
    assert both <= 31


def test_f_other_sends_count_against_the_client_quota(crig):
    """SES's own bulk call passed through (fan-out off), SendBounce and
    SendCustomVerificationEmail go through the limiter like any send: each
    recipient of every destination counts against the client's daily_quota,
    and a call that would pass it gets SES's daily-quota answer and never
    reaches the upstream."""
    rig = crig
    rig.fake.reset()
    ses = harness.boto3_client(rig.gw, "ses", creds=rig.creds["bulkcap"], max_attempts=1)

    def bulk(n_dest):
        return ses.send_bulk_templated_email(
            Source="sender@example.com", Template="t", DefaultTemplateData="{}",
            Destinations=[{"Destination": {"ToAddresses": ["bt%d-%d@example.net" % (d, i) for i in range(3)],
                                           "CcAddresses": ["bc%d@example.net" % d],
                                           "BccAddresses": ["bb%d@example.net" % d]}} for d in range(n_dest)])

    def bounce():
        return ses.send_bounce(OriginalMessageId="m-1", BounceSender="bounce@example.com",
                               BouncedRecipientInfoList=[{"Recipient": "r@example.net", "BounceType": "DoesNotExist"}])

    def refused(call):
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            call()
        return err_of(ei.value)

    bulk(2)  # 2 destinations of 5 recipients: 10 of 12
    bounce()  # 11
    got = refused(lambda: bulk(1))  # 5 more: 16 > 12
    ses.send_custom_verification_email(EmailAddress="new@example.net", TemplateName="t")  # 12
    got2 = refused(bounce)  # 13 > 12
    actions = [r.get("action") for r in rig.fake.requests() if r.get("verified")]
    print("\nf) bulkcap (daily_quota 12): upstream saw %s; refused: %s, %s" % (actions, got, got2))
    assert got == got2 == ("Throttling", 400, DAILY_MSG), (got, got2)
    assert actions == ["SendBulkTemplatedEmail", "SendBounce", "SendCustomVerificationEmail"], actions


def test_f_client_rate_holds_for_sesv2_bulk_email(crig):
    """A rate-5 client's v2 SendBulkEmail calls of 5 recipients each, passed
    through as they are (fan-out off), are spaced by the client's rate, as
    its SendEmail calls are."""
    rig = crig
    rig.fake.reset()
    v2 = harness.boto3_client(rig.gw, "sesv2", creds=rig.creds["slowbulk"], max_attempts=1)
    for k in range(3):
        v2.send_bulk_email(
            FromEmailAddress="sender@example.com",
            DefaultContent={"Template": {"TemplateName": "t", "TemplateData": "{}"}},
            BulkEmailEntries=[{"Destination": {"ToAddresses": ["sb%d-%d@example.net" % (k, i)]}} for i in range(5)])
    recs = [r for r in rig.fake.requests() if r.get("verified") and r.get("status") == 200]
    ts = sorted(r["t"] for r in recs)
    print("\nf) slow (rate 5): three v2 SendBulkEmail calls of 5 at +%s s" % [round(t - ts[0], 2) for t in ts])
    assert len(ts) == 3 and sum(len(r["recipients"]) for r in recs) == 15, recs
    # 5 recipients at 5/s (paced at 97 %) take 1.03 s each
    assert ts[2] - ts[0] >= 1.9, [t - ts[0] for t in ts]


def test_f_client_daily_quota_pass_through(crig):
    rig = crig
    rec = Recorder(rig.fake)
    ses = harness.boto3_client(rig.gw, "ses", creds=rig.creds["capped"])
    for i in range(10):
        send_email(rig.gw, ["cap%02d@example.net" % i], client=ses)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        send_email(rig.gw, ["cap10@example.net"], client=ses)
    print("\nf) daily_quota 10, the 11th recipient: %s" % (err_of(ei.value),))
    assert err_of(ei.value) == ("Throttling", 400, DAILY_MSG)
    time.sleep(0.3)
    recs = rec.poll()
    assert sorted(rcpt_counter(recs)) == ["cap%02d@example.net" % i for i in range(10)]
    assert len([r for r in recs if is_send(r)]) == 10
    # The account and the other clients are not held by it.
    send_email(rig.gw, ["free@example.net"], creds=rig.creds["app"])
    assert "free@example.net" in rcpt_counter(rec.poll())
