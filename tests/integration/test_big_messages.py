"""Large messages fanned out: each copy's body is produced as it is sent
(copybody), the batch's message held once, and [send] max_inflight_bytes
bounds the bytes of request bodies in flight. What SES receives must be
byte for byte what a whole rendering gives: the original message with its
own To field, no Bcc field, the Cc field on copy 0 only, every other byte
(the attachment above all) unchanged."""

import random
import re

import pytest

import harness
from test_fanout_clients import Raw, check_batch, check_copies, field, mime_body, parse_copy, settle

pytestmark = pytest.mark.needs_sesgate

SENDER = "news@example.com"


def big_raw(to, cc, bcc, size, eol=b"\r\n"):
    """A raw message to the To list with an attachment of size random bytes."""
    rnd = random.Random(size)
    attachment = bytes(rnd.randrange(256) for _ in range(size))
    boundary = "=_big_%d" % size
    fields = [field("From", "News <%s>" % SENDER, eol=eol), field("To", ", ".join(to), eol=eol),
              field("Cc", ", ".join(cc), eol=eol), field("Bcc", ", ".join(bcc), eol=eol),
              field("Subject", "Big %d" % size, eol=eol), field("MIME-Version", "1.0", eol=eol),
              field("Content-Type", 'multipart/mixed; boundary="%s"' % boundary, eol=eol)]
    return Raw(fields, mime_body(boundary, attachment, eol), eol)


def metric(gw, name):
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/metrics")
    assert status == 200
    m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
    assert m, "%s missing from /metrics" % name
    return float(m.group(1))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """`sesgate run` with room for one large body in flight at a time."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("big"), extra={
        "server": {"max_body": "20m"},
        "send": {"rate": "1000", "concurrency": "4", "max_inflight_bytes": "1500k"}})
    yield gw
    harness.stop_run_gateway(gw)


@pytest.mark.parametrize("service, eol", [("ses", b"\r\n"), ("ses", b"\n"), ("sesv2", b"\r\n")])
def test_large_raw_message_fanned_out(big, service, eol):
    big.fake.reset()
    to = ["big%s%d@x.example" % (service, i) for i in range(12)]
    cc, bcc = ["cc.big@x.example"], ["bcc.big@x.example"]
    raw = big_raw(to, cc, bcc, 1 << 20, eol)
    headers = {}
    c = harness.boto3_client(big, service)
    c.meta.events.register("after-call", lambda http_response, **kw: headers.update(
        {k.lower(): v for k, v in http_response.headers.items()}))
    waits = metric(big, "sesgate_upstream_inflight_waits_total")
    if service == "ses":
        resp = c.send_raw_email(RawMessage={"Data": raw.data()})
        rest = {"Action": "SendRawEmail", "Version": "2010-12-01"}
    else:
        resp = c.send_email(Content={"Raw": {"Data": raw.data()}})
        rest = {"Content": {"Raw": {"Data": None}}}
    batch = headers["x-sesgate-batch-id"]
    st, recs = settle(big, batch, timeout=120)
    by_addr = check_copies(big, recs, to, cc, bcc, rest=rest, raw=raw)
    check_batch(big, "sync", batch, resp["MessageId"], st, to, by_addr)
    # each body is about 1.4 MB against room for 1.5 MB: the copies went one
    # at a time, the others waiting
    assert metric(big, "sesgate_upstream_inflight_waits_total") > waits
    assert metric(big, "sesgate_upstream_inflight_bytes") == 0
    assert metric(big, "sesgate_upstream_inflight_bytes_max") == 1500 * 1024


def test_one_message_larger_than_the_cap_still_goes(big):
    big.fake.reset()
    to = ["huge%d@x.example" % i for i in range(3)]
    raw = big_raw(to, [], [], 3 << 20)
    headers = {}
    c = harness.boto3_client(big, "ses")
    c.meta.events.register("after-call", lambda http_response, **kw: headers.update(
        {k.lower(): v for k, v in http_response.headers.items()}))
    c.send_raw_email(RawMessage={"Data": raw.data()})
    st, recs = settle(big, headers["x-sesgate-batch-id"], timeout=120)
    assert (st["sent"], st["dead"]) == (3, 0), st
    assert sorted(parse_copy(r).to[0] for r in recs) == sorted(to)
    for r in recs:
        assert parse_copy(r).raw.endswith(raw.body)
