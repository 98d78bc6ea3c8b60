"""Correlation: every MessageId sesgate obtains from SES is indexed in Redis
({P}:m:<MessageId> = "<client>\\t<batch or ->\\t<index or ->", PX [feedback]
index_ttl) so that SES's events about it find the client, the batch and the
unit: the front's pass-through sends (SendEmail, SendRawEmail,
SendTemplatedEmail, v2 SendEmail, and a bulk call passed through whole, each
destination under its position), copy 0 of a sync batch, the queued copies
the workers send, and a bulk batch's units (the first ones sent before the
answer under their position in the call, the queued ones under their batch
and index).

`sesgate run` in front of the fake SES upstream (fakeses.py, which gives
MessageIds in SES's format), with [feedback] topics set (SES events reach
sesgate) and without (nothing is indexed). The events that read the index
are applied by src/lua/events.lua, tested with the SNS endpoint."""

import json
import time

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

SENDER = "news@example.com"
PFX = "sesgate-it:{sesgate-it}:"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"


def start(tmp_path_factory, name, feedback):
    extra = {"send": {"first_recipient": "sync", "rate": "200", "concurrency": "4"}}
    if feedback:
        extra["feedback"] = {"topics": TOPIC, "index_ttl": "2h"}
    return harness.run_gateway(tmp_path_factory.mktemp(name), extra=extra, fake_args=("--max-send-rate", "1000"))


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    g = start(tmp_path_factory, "corr", True)
    try:
        yield g
    finally:
        harness.stop_run_gateway(g)


def index_of(gw, mid):
    """The index entry of MessageId mid: (client, batch, index, ms to live),
    None when absent."""
    v = gw.sesgate.redis("GET", PFX + "m:" + mid)
    if v == "":
        return None
    ttl = int(gw.sesgate.redis("PTTL", PFX + "m:" + mid))
    client, batch, index = v.split("\t")
    return client, batch, index, ttl


def wait_index(gw, mid, timeout=5.0):
    """The index entry of mid once the front's write is in (it is sent after
    the answer)."""
    harness.wait_for(lambda: index_of(gw, mid) is not None, timeout=timeout)
    return index_of(gw, mid)


def call(gw, service, method, **kwargs):
    """method with the app's key: (response, X-Sesgate-Batch-Id or None)."""
    client = harness.boto3_client(gw, service)
    headers = {}
    client.meta.events.register(
        "after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
    return getattr(client, method)(**kwargs), headers.get("x-sesgate-batch-id")


def batch_view(gw, ref):
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + ref)
    assert status == 200, body
    return json.loads(body)


def settle(gw, batch, timeout=60.0):
    deadline = time.monotonic() + timeout
    st = batch_view(gw, batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.1)
        st = batch_view(gw, batch)
    assert st["complete"], st
    return st


def simple(to):
    return dict(Source=SENDER, Destination={"ToAddresses": to},
                Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})


def test_pass_through_sends_are_indexed_under_the_client(gw):
    mids = []
    resp, batch = call(gw, "ses", "send_email", **simple(["one@example.net"]))
    assert batch is None
    mids.append(resp["MessageId"])
    raw = harness.raw_message(to="raw@example.net")
    resp, _ = call(gw, "ses", "send_raw_email", RawMessage={"Data": raw})
    mids.append(resp["MessageId"])
    resp, _ = call(gw, "ses", "send_templated_email", Source=SENDER,
                   Destination={"ToAddresses": ["tpl@example.net"]}, Template="welcome", TemplateData="{}")
    mids.append(resp["MessageId"])
    resp, _ = call(gw, "sesv2", "send_email", FromEmailAddress=SENDER,
                   Destination={"ToAddresses": ["v2@example.net"]},
                   Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}})
    mids.append(resp["MessageId"])
    upstream = {r["message_id"] for r in gw.fake.requests() if r.get("message_id")}
    for mid in mids:
        assert mid in upstream and len(mid) == 60, mid
        client, batch, index, ttl = wait_index(gw, mid)
        assert (client, batch, index) == ("app", "-", "-")
        assert 2 * 3600000 - 60000 < ttl <= 2 * 3600000


def test_bulk_call_passed_through_indexes_each_destination_by_position(gw):
    tags = [{"Name": "sesgate-fanout", "Value": "off"}]
    dests = [{"Destination": {"ToAddresses": ["pt%d@example.net" % i]}, "ReplacementTemplateData": "{}"}
             for i in range(3)]
    resp, batch = call(gw, "ses", "send_bulk_templated_email", Source=SENDER, Template="welcome",
                       DefaultTemplateData="{}", DefaultTags=tags, Destinations=dests)
    assert batch is None
    assert [s["Status"] for s in resp["Status"]] == ["Success"] * 3
    for pos, s in enumerate(resp["Status"]):
        assert wait_index(gw, s["MessageId"])[:3] == ("app", "-", str(pos))


def test_batch_copies_are_indexed_under_batch_and_index(gw):
    to = ["b%d@example.net" % i for i in range(5)]
    resp, batch = call(gw, "ses", "send_email", **simple(to))
    assert batch
    # copy 0 went before the answer: indexed by enqueue.lua with the batch
    assert index_of(gw, resp["MessageId"])[:3] == ("app", batch, "0")
    st = settle(gw, batch)
    assert len(st["recipients"]) == 5
    for r in st["recipients"]:
        client, b, index, ttl = index_of(gw, r["message_id"])
        assert (client, b, index) == ("app", batch, str(r["index"])), r
        assert 0 < ttl <= 2 * 3600000


def test_bulk_batch_units_are_indexed(gw):
    entries = [{"Destination": {"ToAddresses": ["u%d@example.net" % i]}} for i in range(6)]
    resp, batch = call(gw, "sesv2", "send_bulk_email", FromEmailAddress=SENDER,
                       DefaultContent={"Template": {"TemplateName": "welcome", "TemplateData": "{}"}},
                       BulkEmailEntries=entries)
    assert batch
    results = resp["BulkEmailEntryResults"]
    synced = [r for r in results if not r["MessageId"].startswith("sesgate-")]
    assert synced, "first_recipient = sync sent no unit before the answer"
    # the units sent before the answer are not part of the batch: indexed
    # under their position in the call
    for pos, r in enumerate(results[:len(synced)]):
        assert wait_index(gw, r["MessageId"])[:3] == ("app", "-", str(pos))
    st = settle(gw, batch)
    assert st["total"] == len(results) - len(synced)
    for r in st["recipients"]:
        assert index_of(gw, r["message_id"])[:3] == ("app", batch, str(r["index"])), r


def test_nothing_is_indexed_without_feedback(tmp_path_factory):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    g = start(tmp_path_factory, "nofeedback", False)
    try:
        resp, _ = call(g, "ses", "send_email", **simple(["solo@example.net"]))
        _, batch = call(g, "ses", "send_email", **simple(["x%d@example.net" % i for i in range(3)]))
        st = settle(g, batch)
        assert [r["state"] for r in st["recipients"]] == ["sent"] * 3
        time.sleep(0.3)
        assert g.sesgate.redis("KEYS", PFX + "m:*") == ""
        assert index_of(g, resp["MessageId"]) is None
    finally:
        harness.stop_run_gateway(g)
