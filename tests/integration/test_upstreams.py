"""Several upstreams ([upstream.NAME], docs/UPSTREAMS.md) end to end: the
real binary (`sesgate run`), its managed Redis, and two fake SES upstreams,
each with its own keys, verified by botocore.

  a) [upstream] at rate 20 and [upstream.eu] at rate 50 drain batches at
     once, each within its own rate (the most recipients in any 1 s window
     at its fake), the faster one not held back by the slower;
  b) [upstream] answers Throttling for a while: its copies wait and are all
     delivered, while [upstream.eu] keeps its rate;
  c) routing: a client's `upstream`, the region a boto3 client signs for, an
     upstream's `senders` domain, else [upstream]; a pass-through call
     (GetSendQuota) reaches the routed upstream, signed with its keys;
  d) the keys: a batch routed to [upstream.eu] records u = eu in its hash
     and queues on P:{P}:u:eu:q:<client>; `sesgate status --json` and
     /metrics report each upstream.
"""

import subprocess
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import harness

pytestmark = pytest.mark.needs_sesgate

PREFIX = "sesgate-it"
SEND_ACTIONS = ("SendEmail", "SendRawEmail", "SendTemplatedEmail", "POST /v2/email/outbound-emails")
RATE_MSG = "Maximum sending rate exceeded."


def max_in_window(points, window=1.0):
    """The most recipients in any sliding window (t - window, t] over
    points [(t, n), ...]."""
    pts = sorted(points)
    best = total = lo = 0
    for t, n in pts:
        total += n
        while pts[lo][0] <= t - window:
            total -= pts[lo][1]
            lo += 1
        best = max(best, total)
    return best


def sends(recs, status=200):
    """The verified sends a fake answered with status (None: any), in time order."""
    return sorted((r for r in recs if r.get("verified") and r.get("action") in SEND_ACTIONS
                   and (status is None or r.get("status") == status)), key=lambda r: r["t"])


def recipients(recs):
    """Counter of the recipients of the sends a fake accepted."""
    return Counter(a for r in sends(recs) for a in r["recipients"])


class Rig:
    """Two fakes ([upstream] in us-east-1, [upstream.eu] in eu-west-1) and
    `sesgate run` in front of them."""

    def __init__(self, workdir, rate_default=20, rate_eu=50, send=None, fake_b_args=(), eu=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_a = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
        self.key_b = harness.Creds("upstream-eu", harness.new_access_key("AKIA"), harness.new_secret())
        self.fake_a = harness.FakeSES(self.workdir / "fake-default", self.key_a, region="us-east-1").start()
        self.fake_b = harness.FakeSES(self.workdir / "fake-eu", self.key_b, region="eu-west-1",
                                      extra_args=fake_b_args).start()
        self.creds = {n: harness.Creds(n, harness.new_access_key("SG" + n.upper()[:5]), harness.new_secret())
                      for n in ("app", "pinned")}
        policies = {n: {"creds": c, "allow_actions": ["*"], "allow_from": ["*"]} for n, c in self.creds.items()}
        extra = {
            "upstream": {"rate": str(rate_default)},
            "upstream.eu": {
                "endpoint": self.fake_b.url, "region": "eu-west-1",
                "access_key_id": self.key_b.access_key, "secret_access_key": self.key_b.secret,
                "timeout": "10s", "rate": str(rate_eu), "senders": "*@eu.example.com",
            },
            "client.pinned": {"upstream": "eu"},
            "admin": {},
            "send": {"first_recipient": "queue", "concurrency": "8"},
        }
        extra["send"].update(send or {})
        extra["upstream.eu"].update(eu or {})
        del extra["admin"]
        self.gate = harness.RunSesgate(self.workdir, self.fake_a.url, self.key_a, policies, region="us-east-1",
                                       extra=extra)
        try:
            self.gate.start()
        except Exception:
            self.stop()
            raise

    def client(self, name="app", region="us-east-1", service="ses"):
        """A boto3 client of client name signing for region."""
        c = self.creds[name]
        session = boto3.session.Session(aws_access_key_id=c.access_key, aws_secret_access_key=c.secret,
                                        region_name=region)
        return session.client(service, endpoint_url=self.gate.url,
                              config=Config(retries={"total_max_attempts": 1}, read_timeout=30))

    def stop(self):
        if getattr(self, "gate", None):
            self.gate.stop()
        self.fake_a.stop()
        self.fake_b.stop()
        log = self.gate.log_text() if getattr(self, "gate", None) else ""
        assert not harness.SANITIZER_RE.search(log), log[-4000:]


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.stop()


def batch(client, n, domain, source="sender@example.com"):
    """Send one batch of n To recipients at domain; returns the addresses."""
    to = ["r%03d@%s" % (i, domain) for i in range(n)]
    client.send_email(Source=source, Destination={"ToAddresses": to},
                      Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    return to


def wait_all(fake, want, timeout):
    """Wait until fake accepted every address of want; returns (records, the
    fake's monotonic time of the last send)."""
    deadline = time.monotonic() + timeout
    while True:
        recs = fake.requests()
        got = recipients(recs)
        if all(got[a] >= 1 for a in want):
            return recs
        assert time.monotonic() < deadline, "%s: %d of %d recipients in %d s" % (
            fake.workdir, sum(1 for a in want if got[a]), len(want), timeout)
        time.sleep(0.2)


def test_two_upstreams_drain_at_once_each_within_its_rate(rig):
    """100 recipients to [upstream] (20/s) and 150 to [upstream.eu] (50/s),
    sent together: each fake sees at most its rate in any second, only its
    own recipients, and eu drains in about 3 s, not at the slower pace."""
    rig.fake_a.reset()
    rig.fake_b.reset()
    t_sent = time.monotonic()
    to_a = batch(rig.client("app"), 100, "a.example")
    to_b = batch(rig.client("pinned"), 150, "b.example")
    recs_b = wait_all(rig.fake_b, to_b, 30)
    recs_a = wait_all(rig.fake_a, to_a, 40)
    acc_a, acc_b = sends(recs_a), sends(recs_b)
    win_a = max_in_window([(r["t"], len(r["recipients"])) for r in sends(recs_a, None)])
    win_b = max_in_window([(r["t"], len(r["recipients"])) for r in sends(recs_b, None)])
    assert win_a <= 20, win_a
    assert win_b <= 50, win_b
    # only their own mail, each recipient once, signed with their own keys
    assert set(recipients(recs_a)) == set(to_a) and max(recipients(recs_a).values()) == 1
    assert set(recipients(recs_b)) == set(to_b) and max(recipients(recs_b).values()) == 1
    assert {r["access_key"] for r in acc_a} == {rig.key_a.access_key}
    assert {r["access_key"] for r in acc_b} == {rig.key_b.access_key}
    # eu at its own pace: 150 at 50/s is 3 s (about 2.9 s from the first);
    # at [upstream]'s 20/s it would take 7.5 s
    span_b = acc_b[-1]["t"] - acc_b[0]["t"]
    span_a = acc_a[-1]["t"] - acc_a[0]["t"]
    assert span_b < 4.5, span_b
    assert 4.0 < span_a < 8.0, span_a
    assert acc_b[-1]["t"] - t_sent < 6.0, acc_b[-1]["t"] - t_sent
    # both drained at the same time: eu's sends started before [upstream]'s ended
    assert acc_b[0]["t"] < acc_a[-1]["t"]


def test_a_throttled_upstream_does_not_slow_another(rig):
    """[upstream.eu] answers Throttling for 3 s while both drain: [upstream]
    keeps its 20/s meanwhile, and every copy for eu is delivered afterwards,
    at eu's fake only (its retries go back to eu's streams: due.lua reads
    the batch's u)."""
    rig.fake_a.reset()
    rig.fake_b.reset()
    rig.fake_b.control(mode="status", status=400, code="Throttling", message=RATE_MSG)
    to_b = batch(rig.client("pinned"), 40, "b.example")
    to_a = batch(rig.client("app"), 60, "a.example")
    time.sleep(3.0)
    refused_b = [r for r in rig.fake_b.requests() if r.get("action") == "SendEmail" and r.get("status") == 400]
    rig.fake_b.control()  # normal again
    recs_a = wait_all(rig.fake_a, to_a, 30)
    acc_a = sends(recs_a)
    assert refused_b, "the fake throttled nothing: the test proves nothing"
    assert not [r for r in sends(recs_a, None) if r.get("status") != 200]
    # 60 at 20/s: about 3 s from the first, as without the other's trouble
    span_a = acc_a[-1]["t"] - acc_a[0]["t"]
    assert 2.5 < span_a < 4.5, span_a
    assert max_in_window([(r["t"], len(r["recipients"])) for r in acc_a]) <= 20
    recs_b = wait_all(rig.fake_b, to_b, 90)
    assert set(recipients(recs_b)) == set(to_b)
    assert set(recipients(rig.fake_a.requests())) == set(to_a), "eu's copies reached [upstream]"
    # the throttled upstream's limiter counted it, the other's did not
    status, _, body = harness.http("GET", rig.gate.admin_url + "/metrics", timeout=5)
    assert status == 200
    text = body.decode()
    thr = {l.split("{")[1].split("}")[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
           if l.startswith("sesgate_upstream_throttled_total{")}
    assert thr.get('upstream="eu"', 0) >= 1 and thr.get('upstream="default"', 0) == 0, thr


def cli(rig, *args):
    """`sesgate ARGS -c CONFIG`: the CompletedProcess (text)."""
    cmd = [str(harness.sesgate_bin())] + list(args) + ["-c", str(rig.gate.config_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=harness.clean_env(),
                          cwd=str(rig.workdir))


def last_batch(rig):
    """The id of the batch queued last."""
    pfx = "%s:{%s}:" % (PREFIX, PREFIX)
    return rig.gate.redis("ZREVRANGE", pfx + "recent", "0", "0").split()[0]


def test_pause_resume_and_dead_letters_of_a_named_upstream(rig):
    """A batch of [upstream.eu] paused and resumed (control.lua), and its
    dead letters retried (dlq_retry.lua), goes back to eu's streams and is
    delivered by eu's fake alone."""
    rig.fake_a.reset()
    rig.fake_b.reset()
    to = batch(rig.client("pinned"), 100, "p.example")
    bid = last_batch(rig)
    r = cli(rig, "batch", "pause", bid)
    assert r.returncode == 0 and " paused " in r.stdout, (r.stdout, r.stderr)
    time.sleep(1.5)
    before = sum(recipients(rig.fake_b.requests()).values())
    time.sleep(1.0)
    assert sum(recipients(rig.fake_b.requests()).values()) == before, "sent while paused"
    assert before < len(to)
    r = cli(rig, "batch", "resume", bid)
    assert r.returncode == 0, (r.stdout, r.stderr)
    recs = wait_all(rig.fake_b, to, 30)
    assert max(recipients(recs).values()) == 1
    assert not set(recipients(rig.fake_a.requests())) & set(to)
    # dead letters: eu refuses for good, then the operator retries them
    rig.fake_b.control(mode="status", status=400, code="MessageRejected", message="Email address is not verified.")
    dead = batch(rig.client("pinned"), 5, "dl.example")
    pfx = "%s:{%s}:" % (PREFIX, PREFIX)
    assert harness.wait_for(lambda: int(rig.gate.redis("XLEN", pfx + "dlq")) >= 5, timeout=20)
    rig.fake_b.control()
    r = cli(rig, "dlq", "retry")
    assert r.returncode == 0 and r.stdout.startswith("5 dead letters moved"), (r.stdout, r.stderr)
    wait_all(rig.fake_b, dead, 20)
    assert not set(recipients(rig.fake_a.requests())) & set(dead)


def one(client, source, to="x@dest.example"):
    """One single-recipient send (passed through); returns its MessageId."""
    return client.send_email(Source=source, Destination={"ToAddresses": [to]},
                             Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})["MessageId"]


def at(fake, to):
    """The sends fake accepted for recipient to."""
    return [r for r in sends(fake.requests()) if to in r["recipients"]]


def test_routing_by_client_region_and_sender(rig):
    """A client's upstream, the signed region, the sender's domain, else
    [upstream]; a pass-through reaches the routed upstream with its keys."""
    rig.fake_a.reset()
    rig.fake_b.reset()
    cases = [
        ("default", rig.client("app", "us-east-1"), "s@example.com", rig.fake_a),
        ("client upstream", rig.client("pinned", "us-east-1"), "s@example.com", rig.fake_b),
        ("region", rig.client("app", "eu-west-1"), "s@example.com", rig.fake_b),
        ("sender domain", rig.client("app", "us-east-1"), "s@eu.example.com", rig.fake_b),
        ("another domain", rig.client("app", "us-east-1"), "s@x.eu.example.com", rig.fake_a),
        ("v2, region", rig.client("app", "eu-west-1", "sesv2"), None, rig.fake_b),
    ]
    for i, (name, client, source, fake) in enumerate(cases):
        to = "case%d@dest.example" % i
        if source is None:
            client.send_email(FromEmailAddress="s@example.com", Destination={"ToAddresses": [to]},
                              Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}})
        else:
            one(client, source, to)
        other = rig.fake_b if fake is rig.fake_a else rig.fake_a
        got = at(fake, to)
        assert len(got) == 1 and got[0]["access_key"] == fake.creds.access_key, (name, got)
        assert not at(other, to), name
    # a region no upstream serves is refused as SES refuses it
    with pytest.raises(Exception) as exc:
        rig.client("app", "ap-south-1").get_send_quota()
    assert "valid region" in str(exc.value)
    # pass-through: GetSendQuota reaches the routed upstream
    for client, fake, other in ((rig.client("app", "eu-west-1"), rig.fake_b, rig.fake_a),
                                (rig.client("pinned", "us-east-1"), rig.fake_b, rig.fake_a),
                                (rig.client("app", "us-east-1"), rig.fake_a, rig.fake_b)):
        n_fake = len([r for r in fake.requests() if r.get("action") == "GetSendQuota"])
        n_other = len([r for r in other.requests() if r.get("action") == "GetSendQuota"])
        client.get_send_quota()
        assert len([r for r in fake.requests() if r.get("action") == "GetSendQuota"]) == n_fake + 1
        assert len([r for r in other.requests() if r.get("action") == "GetSendQuota"]) == n_other


def test_keys_status_and_metrics_per_upstream(rig):
    """A batch routed to eu is recorded with u = eu and queued on eu's
    streams; `sesgate status --json` and /metrics list each upstream."""
    rig.fake_a.reset()
    rig.fake_b.reset()
    to = batch(rig.client("app", "eu-west-1"), 20, "k.example")
    to_a = batch(rig.client("app", "us-east-1"), 5, "d.example")
    wait_all(rig.fake_b, to, 20)
    wait_all(rig.fake_a, to_a, 20)
    pfx = "%s:{%s}:" % (PREFIX, PREFIX)
    ids = rig.gate.redis("ZRANGE", pfx + "recent", "0", "-1").split()
    us = [rig.gate.redis("HGET", pfx + "b:" + i, "u") for i in ids]
    assert "eu" in us, us
    assert rig.gate.redis("SISMEMBER", pfx + "u:eu:qs", pfx + "u:eu:q:app") == "1"
    assert rig.gate.redis("EXISTS", pfx + "u:eu:rl") == "1"
    out = harness.sesgate_json(rig.gate.config_path, rig.workdir, "status")
    ups = {u["name"]: u for u in out["upstreams"]}
    assert set(ups) == {"default", "eu"}, out["upstreams"]
    assert ups["eu"]["rate"]["base"] == pytest.approx(50, rel=0.01), ups["eu"]
    assert ups["default"]["rate"]["base"] == pytest.approx(20, rel=0.01), ups["default"]
    assert ups["eu"]["region"] == "eu-west-1"
    # a fixed rate is recorded in each upstream's quota hash once Redis answers
    assert ups["eu"]["rate"]["upstream"]["rate"] == pytest.approx(50), ups["eu"]
    assert ups["default"]["rate"]["upstream"]["rate"] == pytest.approx(20), ups["default"]
    assert ups["eu"]["rate"]["sent_last_24h"] == 20 and ups["default"]["rate"]["sent_last_24h"] == 5
    assert ups["eu"]["queue"]["depth"] == 0
    status, _, body = harness.http("GET", rig.gate.admin_url + "/metrics", timeout=5)
    text = body.decode()
    assert 'sesgate_upstream_rate_base{upstream="eu"} 50' in text, text[-3000:]
    assert 'sesgate_upstream_sent_total{upstream="eu"} 20' in text, text[-3000:]
    assert 'sesgate_upstream_sent_total{upstream="default"} 5' in text, text[-3000:]
    # the text view: a line per upstream
    r = subprocess.run([str(harness.sesgate_bin()), "status", "-c", str(rig.gate.config_path)],
                       capture_output=True, text=True, timeout=30, env=harness.clean_env(), cwd=str(rig.workdir))
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("upstream ")]
    assert len(lines) == 2 and lines[1].startswith("upstream eu region eu-west-1 depth 0"), r.stdout
    assert " base_rate 50" in lines[1] and " sent_last_24h 20" in lines[1], lines


def test_rate_auto_reads_the_named_upstreams_own_quota(tmp_path):
    """[upstream.eu] rate = auto: its limiter reads eu's GetSendQuota, signed
    with eu's keys, and paces at its MaxSendRate x headroom; [upstream]
    (fixed) asks nothing."""
    rig = Rig(tmp_path, rate_eu="auto", fake_b_args=["--max-send-rate", "40"])
    try:
        def base():
            status, _, body = harness.http("GET", rig.gate.admin_url + "/metrics", timeout=5)
            for line in body.decode().splitlines():
                if line.startswith('sesgate_upstream_rate_base{upstream="eu"} '):
                    return float(line.rsplit(" ", 1)[1])
            return None
        assert harness.wait_for(lambda: base() == pytest.approx(36.0), timeout=10), base()
        quota_b = [r for r in rig.fake_b.requests() if r.get("action") == "GetSendQuota"]
        assert quota_b and {r["access_key"] for r in quota_b} == {rig.key_b.access_key}
        assert not [r for r in rig.fake_a.requests() if r.get("action") == "GetSendQuota"]
        to = batch(rig.client("pinned"), 72, "auto.example")
        recs = wait_all(rig.fake_b, to, 30)
        acc = sends(recs)
        assert max_in_window([(r["t"], len(r["recipients"])) for r in acc]) <= 36
        assert acc[-1]["t"] - acc[0]["t"] > 1.5
    finally:
        rig.stop()


def test_a_quota_held_upstream_does_not_hold_another(tmp_path):
    """[upstream.eu] with daily_quota = 10: its queue is held once 10 went,
    `sesgate status` says so for eu alone, and [upstream] drains meanwhile
    at its own rate."""
    rig = Rig(tmp_path, eu={"daily_quota": "10"})
    try:
        to_b = batch(rig.client("pinned"), 30, "held.example")
        to_a = batch(rig.client("app"), 40, "free.example")
        recs_a = wait_all(rig.fake_a, to_a, 30)
        acc_a = sends(recs_a)
        assert 1.5 < acc_a[-1]["t"] - acc_a[0]["t"] < 3.5
        time.sleep(1.0)
        got_b = recipients(rig.fake_b.requests())
        # at most the quota (a reservation that would pass it waits whole)
        assert 0 < sum(got_b.values()) <= 10 and set(got_b) <= set(to_b), got_b
        out = harness.sesgate_json(rig.gate.config_path, rig.workdir, "status")
        ups = {u["name"]: u for u in out["upstreams"]}
        assert [h["reason"] for h in ups["eu"]["rate"]["held"]] == ["quota"], ups["eu"]
        assert ups["default"]["rate"]["held"] == [], ups["default"]
        assert ups["eu"]["rate"]["sent_last_24h"] == sum(got_b.values())
        assert ups["eu"]["queue"]["depth"] + ups["eu"]["queue"]["retrying"] >= 1
        assert out["rate"]["held"] == []  # the top-level view is [upstream]'s
    finally:
        rig.stop()
