"""One account rate for every kind of send: SES's bulk calls as batches,
fanned-out SendEmail batches, single sends and SendBounce, from a front
(`sesgate serve`) and two workers (`sesgate work`) sharing one Redis, at an
account rate of 50 recipients a second that the fake SES enforces (any 50 in
a sliding second). No second may hold more than 50 recipients at the
upstream whatever the action, a client with rate = 5 stays at 5 whatever
action it uses, and every destination arrives exactly once."""

import collections
import threading
import time

import pytest

import harness
from test_ratelimit import max_in_window, rigs, send_email  # noqa: F401 (rigs is a fixture)

pytestmark = pytest.mark.needs_sesgate

RATE = 50
SEND = ("SendEmail", "SendRawEmail", "SendTemplatedEmail", "SendBulkTemplatedEmail", "SendBounce",
        "POST /v2/email/outbound-emails", "POST /v2/email/outbound-bulk-emails")


def sends(recs):
    """The sends the fake answered, verified, in time order."""
    return sorted((r for r in recs if r.get("verified") and r.get("action") in SEND and r.get("status")),
                  key=lambda r: r["t"])


def test_bulk_batches_share_the_account_rate(rigs):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    rig = rigs("bulkrate", send={"rate": str(RATE), "concurrency": "4", "first_recipient": "sync"},
               quota={"enforce": True, "max_send_rate": RATE, "max_24_hour_send": 100000},
               clients={"slow": {"rate": "5"}})
    rig.serve()
    rig.work("w1")
    rig.work("w2")
    ses = harness.boto3_client(rig.gw, "ses")
    v2 = harness.boto3_client(rig.gw, "sesv2")
    slow = harness.boto3_client(rig.gw, "ses", creds=rig.creds["slow"])
    want = collections.Counter()

    v1_dests = [{"Destination": {"ToAddresses": ["b1-%03d@example.net" % i],
                                 **({"CcAddresses": ["b1cc-%03d@example.net" % i]} if i % 10 == 0 else {})},
                 "ReplacementTemplateData": '{"i": %d}' % i} for i in range(150)]
    for d in v1_dests:
        want.update(d["Destination"]["ToAddresses"] + d["Destination"].get("CcAddresses", []))
    v2_entries = [{"Destination": {"ToAddresses": ["b2-%03d@example.net" % i]}} for i in range(100)]
    want.update(e["Destination"]["ToAddresses"][0] for e in v2_entries)
    slow_dests = [{"Destination": {"ToAddresses": ["slow-%02d@example.net" % i]}} for i in range(20)]
    want.update(d["Destination"]["ToAddresses"][0] for d in slow_dests)
    fan = ["fan-%03d@example.net" % i for i in range(150)]
    want.update(fan)
    singles = ["one-%02d@example.net" % i for i in range(30)]
    want.update(singles)

    errors = []

    def trickle():
        """Single sends and SendBounce calls through the drain."""
        try:
            for i, to in enumerate(singles):
                send_email(rig.gw, [to], client=ses)
                if i % 6 == 0:
                    ses.send_bounce(OriginalMessageId="orig-%d" % i, BounceSender="bounce@example.com",
                                    BouncedRecipientInfoList=[{"Recipient": "r@example.net",
                                                               "BounceType": "DoesNotExist"}])
                    want.update(["bounce-of:orig-%d" % i])
                time.sleep(0.2)
        except Exception as e:  # reported below
            errors.append(e)

    t0 = time.monotonic()
    th = threading.Thread(target=trickle)
    th.start()
    ses.send_bulk_templated_email(Source=harness.SENDER, Template="t", DefaultTemplateData="{}",
                                  Destinations=v1_dests)
    v2.send_bulk_email(FromEmailAddress=harness.SENDER,
                       DefaultContent={"Template": {"TemplateName": "t", "TemplateData": "{}"}},
                       BulkEmailEntries=v2_entries)
    slow.send_bulk_templated_email(Source=harness.SENDER, Template="t", DefaultTemplateData="{}",
                                   Destinations=slow_dests)
    send_email(rig.gw, fan, client=ses)
    th.join()
    assert not errors, errors
    total = sum(want.values())

    def got(recs):
        c = collections.Counter()
        for r in sends(recs):
            if r["status"] != 200:
                continue
            for e in r.get("entries") or [{"To": r["recipients"], "Cc": [], "Bcc": [],
                                          "message_id": r.get("message_id")}]:
                if e.get("message_id"):
                    c.update(e["To"] + e.get("Cc", []) + e.get("Bcc", []))
        return c

    deadline = time.monotonic() + total / RATE + 60
    while time.monotonic() < deadline and got(rig.fake.requests()) != want:
        time.sleep(0.5)
    recs = rig.fake.requests()
    seen = got(recs)
    all_sends = sends(recs)
    window = max_in_window([(r["t"], len(r["recipients"])) for r in all_sends], 1.0)
    slow_window = max_in_window([(r["t"], sum(1 for a in r["recipients"] if a.startswith("slow-")))
                                 for r in all_sends], 1.0)
    throttled = [r for r in all_sends if r.get("throttled")]
    actions = collections.Counter(r["action"] for r in all_sends)
    span = all_sends[-1]["t"] - all_sends[0]["t"]
    print("\nbulk rate: %d recipients from serve + 2 work at rate %d in %.1f s (ideal %.1f s); max %d in any "
          "1 s window; the rate-5 client's max %d; Throttling %d; calls %s"
          % (total, RATE, span, total / RATE, window, slow_window, len(throttled), dict(actions)))
    missing = want - seen
    extra = seen - want
    assert not missing and not extra, (list(missing.items())[:5], list(extra.items())[:5])
    assert not throttled, "the upstream throttled %d sends" % len(throttled)
    assert window <= RATE, "%d recipients in a 1 s window" % window
    assert slow_window <= 5, "the rate-5 client had %d recipients in a 1 s window" % slow_window
    assert actions["SendBounce"] == 5
    assert time.monotonic() - t0 < total / RATE + 60
