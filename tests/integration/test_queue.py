"""The bulk queue end to end: `sesgate run` (front and workers in one
process) with the managed Redis and first_recipient = queue, in front of the
fake SES. A send to many To recipients is answered at once with a batch id,
and the workers send one copy per To recipient upstream (Cc and Bcc ride with
copy 0); permanent upstream errors become dead letters, retryable ones are
sent again."""

import base64
import time
import urllib.parse

import pytest

import harness

PREFIX = "sesgate-it"
DLQ = "%s:{%s}:dlq" % (PREFIX, PREFIX)

pytestmark = pytest.mark.needs_sesgate


@pytest.fixture(scope="module")
def qgw(tmp_path_factory):
    """The fake upstream and `sesgate run` with first_recipient = queue."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("queue"), extra={"send": {
        "first_recipient": "queue", "max_attempts": "5", "rate": "1000",
        "concurrency": "4"}})  # the fake's listen backlog is 5
    yield gw
    harness.stop_run_gateway(gw)


@pytest.fixture
def q(qgw):
    """qgw with the fake's records and rules cleared."""
    qgw.fake.reset()
    return qgw


def send(gw, to, cc=(), bcc=(), subject="Queued hello"):
    """SendEmail through boto3; returns (response, X-Sesgate-Batch-Id or None)."""
    client = harness.boto3_client(gw, "ses")
    seen = {}

    def after_call(http_response, **kwargs):
        seen["headers"] = {k.lower(): v for k, v in http_response.headers.items()}

    client.meta.events.register("after-call.ses.SendEmail", after_call)
    dest = {"ToAddresses": list(to)}
    if cc:
        dest["CcAddresses"] = list(cc)
    if bcc:
        dest["BccAddresses"] = list(bcc)
    resp = client.send_email(
        Source=harness.SENDER, Destination=dest,
        Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": "Hello from the queue \u00fc"}}},
    )
    return resp, seen.get("headers", {}).get("x-sesgate-batch-id")




def params(rec):
    """The form parameters of a recorded v1 request."""
    return dict(urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode(), keep_blank_values=True))


def dlq_len(gw):
    """Entries on the dead-letter stream."""
    return int(gw.sesgate.redis("XLEN", DLQ) or 0)


def test_fanout_120(q):
    to = ["to%03d@example.net" % i for i in range(120)]
    resp, batch = send(q, to, cc=["cc@example.net"], bcc=["bcc@example.net"])
    assert resp.get("MessageId"), resp
    # The response (front.c) names the batch in X-Sesgate-Batch-Id.
    assert batch, "the answer carried no X-Sesgate-Batch-Id header"
    recs = harness.wait_records(q.fake, 120)
    time.sleep(0.5)
    recs = q.fake.requests()
    assert len(recs) == 120, "upstream received %d requests" % len(recs)
    seen = []
    common = None
    for rec in recs:
        assert rec["verified"], rec.get("verify_error")
        assert rec["status"] == 200
        p = params(rec)
        assert p["Action"] == "SendEmail"
        assert "Destination.ToAddresses.member.2" not in p
        addr = p.pop("Destination.ToAddresses.member.1")
        seen.append(addr)
        cc = p.pop("Destination.CcAddresses.member.1", None)
        bcc = p.pop("Destination.BccAddresses.member.1", None)
        if addr == to[0]:
            assert cc == "cc@example.net" and bcc == "bcc@example.net", p
        else:
            assert cc is None and bcc is None, (addr, cc, bcc)
        assert not any(k.startswith("Destination.") for k in p), p
        if common is None:
            common = p
        assert p == common
    assert sorted(seen) == sorted(to)
    assert len(set(seen)) == 120
    assert common["Source"] == harness.SENDER
    assert common["Message.Subject.Data"] == "Queued hello"


def test_permanent_errors_dead_letter(q):
    before = dlq_len(q)
    q.fake.control({"mode": "status", "status": 400, "code": "MessageRejected",
                    "message": "Email address is not verified.", "count": 3})
    to = ["perm%d@example.net" % i for i in range(5)]
    send(q, to)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if dlq_len(q) - before >= 3 and len([r for r in q.fake.requests() if r["status"] == 200]) >= 2:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    recs = q.fake.requests()
    assert len([r for r in recs if r["status"] == 200]) == 2
    assert len([r for r in recs if r["status"] == 400]) == 3
    assert dlq_len(q) - before == 3
    assert "queue_dead" in q.sesgate.log_text()


def test_retryable_errors_delivered(q):
    q.fake.control({"mode": "status", "status": 503, "code": "ServiceUnavailable",
                    "message": "Service unavailable.", "count": 2})
    before = dlq_len(q)
    to = ["retry%d@example.net" % i for i in range(5)]
    send(q, to)
    recs = harness.wait_records(q.fake, 5, timeout=20, pred=lambda r: r["status"] == 200)
    assert len(recs) == 5, harness._summary(q.fake.requests())
    got = sorted(params(r)["Destination.ToAddresses.member.1"] for r in recs)
    assert got == sorted(to)
    assert len([r for r in q.fake.requests() if r["status"] == 503]) == 2
    assert dlq_len(q) == before
