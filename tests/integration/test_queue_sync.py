"""first_recipient = sync (the default): copy 0 of a batch is sent at once and
the client gets SES's real answer for it, with X-Sesgate-Batch-Id; the other
copies are queued and sent by the workers. Covers v1 and v2 (Simple and Raw)
batches from boto3."""

import base64
import email
import json
import time
import urllib.parse

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate


@pytest.fixture(scope="module")
def sgw(tmp_path_factory):
    """The fake upstream and `sesgate run` with the default first_recipient."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("queue-sync"),
                             extra={"send": {"rate": "1000", "concurrency": "4"}})
    yield gw
    harness.stop_run_gateway(gw)




def test_v1_sync_batch(sgw):
    sgw.fake.reset()
    rcpts = ["u%d@example.com" % i for i in range(6)]
    headers = {}
    client = harness.boto3_client(sgw, "ses", creds=sgw.creds("app"))
    client.meta.events.register("after-call", lambda http_response, **kw: headers.update(http_response.headers))
    out = client.send_email(Source="s@example.com", Destination={"ToAddresses": rcpts},
                            Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "x"}}})
    assert out["MessageId"].startswith("0100018c"), out  # the upstream's own id for copy 0
    assert len(headers.get("X-Sesgate-Batch-Id", headers.get("x-sesgate-batch-id", ""))) == 36
    got = harness.wait_records(sgw.fake, 6, settle=0.3)
    tos = []
    for r in got:
        params = dict(urllib.parse.parse_qsl(base64.b64decode(r["body_b64"]).decode()))
        assert params["Action"] == "SendEmail" and r["verified"]
        assert "Destination.ToAddresses.member.2" not in params
        tos.append(params["Destination.ToAddresses.member.1"])
    assert sorted(tos) == sorted(rcpts)
    assert any(m["message_id"] == out["MessageId"] for m in got if m.get("message_id"))


def test_v2_simple_and_raw_batches(sgw):
    sgw.fake.reset()
    v2 = harness.boto3_client(sgw, "sesv2", creds=sgw.creds("app"))
    rcpts = ["v%d@example.com" % i for i in range(4)]
    out = v2.send_email(FromEmailAddress="s@example.com", Destination={"ToAddresses": rcpts, "BccAddresses": ["hid@example.com"]},
                        Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}})
    assert out["MessageId"]
    got = harness.wait_records(sgw.fake, 4, settle=0.3)
    bodies = [json.loads(base64.b64decode(r["body_b64"])) for r in got]
    assert sorted(b["Destination"]["ToAddresses"][0] for b in bodies) == sorted(rcpts)
    assert sum("BccAddresses" in b["Destination"] for b in bodies) == 1
    assert all(b["Content"] == {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}} for b in bodies)

    sgw.fake.reset()
    raw = ("From: s@example.com\r\nTo: \"Doe, Jane\" <a@example.com>, b@example.com\r\n"
           "Cc: c@example.com\r\nBcc: secret@example.com\r\nSubject: raw\r\n\r\nbody\r\n").encode()
    out = v2.send_email(Content={"Raw": {"Data": raw}})
    assert out["MessageId"]
    got = harness.wait_records(sgw.fake, 2, settle=0.3)
    assert len(got) == 2
    seen = set()
    for r in got:
        body = json.loads(base64.b64decode(r["body_b64"]))
        msg = email.message_from_bytes(base64.b64decode(body["Content"]["Raw"]["Data"]))
        assert msg["Bcc"] is None and msg.get_payload() == "body\r\n"
        seen.add(msg["To"])
    assert seen == {"a@example.com", "b@example.com"}


def batch_status(gw, batch):
    """GET /batches/{id} on the admin listener, decoded."""
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + batch)
    assert status == 200, body
    return json.loads(body)


def wait_complete(gw, batch, timeout=20):
    """The batch status once every recipient has an outcome."""
    deadline = time.monotonic() + timeout
    st = batch_status(gw, batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.2)
        st = batch_status(gw, batch)
    return st


def v1_send(gw, rcpts, retries=None):
    """SendEmail through boto3; returns (response or the ClientError, batch id or "")."""
    headers = {}
    client = harness.boto3_client(gw, "ses", creds=gw.creds("app"), max_attempts=retries or 1)
    client.meta.events.register("after-call", lambda http_response, **kw: headers.update(
        {k.lower(): v for k, v in http_response.headers.items()}))
    try:
        out = client.send_email(Source="s@example.com", Destination={"ToAddresses": rcpts},
                                Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "x"}}})
    except client.exceptions.ClientError as err:
        out = err
    return out, headers.get("x-sesgate-batch-id", "")


def to_of(rec):
    """The one To address of a recorded v1 SendEmail."""
    p = dict(urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode()))
    assert "Destination.ToAddresses.member.2" not in p
    return p["Destination.ToAddresses.member.1"]


def test_copy0_recorded_in_batch_status(sgw):
    sgw.fake.reset()
    rcpts = ["st%d@example.com" % i for i in range(5)]
    out, batch = v1_send(sgw, rcpts)
    assert batch, out
    st = wait_complete(sgw, batch)
    assert st["complete"] and st["first_recipient"] == "sync", st
    assert (st["total"], st["sent"], st["dead"]) == (5, 5, 0), st
    by_index = {r["index"]: r for r in st["recipients"]}
    assert [by_index[i]["address"] for i in range(5)] == rcpts
    assert by_index[0]["state"] == "sent" and by_index[0]["message_id"] == out["MessageId"], st
    ids = {r["message_id"] for r in st["recipients"]}
    assert len(ids) == 5, st


def test_copy0_rejected_queues_nothing(sgw):
    # SES refuses copy 0 (as it would refuse the whole send): the client gets
    # that error and no other copy goes out.
    sgw.fake.reset()
    sgw.fake.control({"mode": "status", "status": 400, "code": "MessageRejected",
                      "message": "Email address is not verified.", "count": 1})
    rcpts = ["rej%d@example.com" % i for i in range(6)]
    out, batch = v1_send(sgw, rcpts)
    assert not isinstance(out, dict), out
    assert out.response["Error"]["Code"] == "MessageRejected", out.response
    assert batch == "", "a refused send named a batch"
    time.sleep(1.5)
    got = sgw.fake.requests()
    assert len(got) == 1 and got[0]["status"] == 400, harness._summary(got)
    assert to_of(got[0]) == rcpts[0]


def test_copy0_retryable_failure_then_sdk_retry_sends_each_once(sgw):
    # A retryable failure of copy 0 queues nothing; the SDK's own retry then
    # sends the batch, so every recipient gets exactly one message.
    sgw.fake.reset()
    sgw.fake.control({"mode": "status", "status": 503, "code": "ServiceUnavailable",
                      "message": "Service unavailable.", "count": 1})
    rcpts = ["rt%d@example.com" % i for i in range(8)]
    out, batch = v1_send(sgw, rcpts, retries=3)
    assert isinstance(out, dict) and out["MessageId"], out
    got = harness.wait_records(sgw.fake, 9, settle=0.3)
    time.sleep(0.5)
    got = sgw.fake.requests()
    assert len([r for r in got if r["status"] == 503]) == 1, harness._summary(got)
    ok = sorted(to_of(r) for r in got if r["status"] == 200)
    assert ok == sorted(rcpts), ok
    assert wait_complete(sgw, batch)["sent"] == 8
