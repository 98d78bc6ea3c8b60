"""Recipient addresses checked as SES checks them, before anything is queued
or sent: each address of the table goes through boto3 v1 (ses), boto3 v2
(sesv2) and the AWS CLI, alone and as one of 50 To recipients. A valid one
is sent (and, in a batch, gets its own copy at the upstream); an invalid one
refuses the whole call with SES's code (InvalidParameterValue on v1,
BadRequestException on v2, status 400) and SES's reason, and nothing at all
reaches the upstream or the queue."""

import json
import time

import botocore.exceptions
import pytest

import harness
from test_fanout_clients import parse_copy

pytestmark = pytest.mark.needs_sesgate

SENDER = "news@example.com"

VALID = [
    "plain@x.example",
    '"john doe"@x.example',
    "user+tag@sub.x.example",
    "a@xn--bcher-kva.example",
    "Named Reader <named@x.example>",
    "user@[192.0.2.1]",
]

INVALID = [
    ("not-an-email", "Missing final '@domain'"),
    ("", "Illegal address"),
    ("a@b\u00fccher.example", "Domain contains illegal character"),
    ("j\u00fcrgen@x.example", "Local address contains illegal character"),
    ("@x.example", "Missing local name"),
    ("a@", "Missing domain"),
    ("a..b@x.example", "Local address contains dot-dot"),
    (".a@x.example", "Local address starts with dot"),
    ("a@x..example", "Domain contains dot-dot"),
    ("a@x.example.", "Domain ends with dot"),
    ("a b@x.example", "Local address contains control or whitespace"),
    ("l" * 65 + "@x.example", "Local address is longer than 64 characters"),
    ("a@x.example, b@x.example", "Illegal address"),
]

CLIENTS = ["boto3-v1", "boto3-v2", "awscli"]


@pytest.fixture(scope="module")
def agw(tmp_path_factory):
    """`sesgate run` (front and workers) in front of the fake upstream."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("addresses"),
                             extra={"send": {"rate": "1000", "concurrency": "4"}})
    yield gw
    harness.stop_run_gateway(gw)
    assert "BatchMissing" not in gw.sesgate.log_text()


def send(gw, client, to, tmp_path):
    """Send one text mail to the To list with client; returns (ok, code,
    status, message)."""
    if client == "awscli":
        dest = tmp_path / "dest.json"
        dest.write_text(json.dumps({"ToAddresses": to}))
        res = harness.run_aws(gw, ["ses", "send-email", "--from", SENDER, "--destination", "file://%s" % dest,
                                   "--message", "Subject={Data=hi},Body={Text={Data=body}}"],
                              gw.creds("app"), debug=True)
        if res.rc == 0:
            assert res.json and res.json.get("MessageId"), res.stdout
            return True, None, res.status, None
        return False, res.code, res.status, res.message
    if client == "boto3-v1":
        c = harness.boto3_client(gw, "ses")
        call = lambda: c.send_email(Source=SENDER, Destination={"ToAddresses": to},  # noqa: E731
                                    Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "body"}}})
    else:
        c = harness.boto3_client(gw, "sesv2")
        call = lambda: c.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": to},  # noqa: E731
                                    Content={"Simple": {"Subject": {"Data": "hi"},
                                                        "Body": {"Text": {"Data": "body"}}}})
    try:
        resp = call()
    except botocore.exceptions.ClientError as e:
        err = e.response
        return False, err["Error"].get("Code"), err["ResponseMetadata"].get("HTTPStatusCode"), \
            err["Error"].get("Message")
    assert resp.get("MessageId"), resp
    return True, None, resp["ResponseMetadata"]["HTTPStatusCode"], None


def fifty(addr, tag):
    """50 To recipients with addr at position 25."""
    to = ["%s%02d@x.example" % (tag, i) for i in range(49)]
    return to[:25] + [addr] + to[25:]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("addr, reason", INVALID, ids=[r for _, r in INVALID])
@pytest.mark.parametrize("shape", ["single", "batch"])
def test_invalid_address_refuses_the_call(agw, client, addr, reason, shape, tmp_path):
    agw.fake.reset()
    to = [addr] if shape == "single" else fifty(addr, "inv")
    ok, code, status, message = send(agw, client, to, tmp_path)
    want_code = "BadRequestException" if client == "boto3-v2" else "InvalidParameterValue"
    assert not ok, "%r was accepted" % addr
    assert (code, status, message) == (want_code, 400, reason)
    assert agw.fake.requests() == [], "a refused send reached the upstream"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("addr", VALID)
@pytest.mark.parametrize("shape", ["single", "batch"])
def test_valid_address_is_sent(agw, client, addr, shape, tmp_path):
    agw.fake.reset()
    tag = "v%d%s%s" % (VALID.index(addr), client[-2:].replace("-", ""), shape[0])
    to = [addr] if shape == "single" else fifty(addr, tag)
    ok, code, status, message = send(agw, client, to, tmp_path)
    assert ok and status == 200, (code, message)
    if shape == "single":
        recs = agw.fake.requests()
        assert len(recs) == 1 and recs[0]["verified"] and recs[0]["status"] == 200, recs
        assert parse_copy(recs[0]).to == [addr]
        return
    # every To recipient got a copy of its own, the tested one included
    recs = wait_requests(agw, 50)
    got = sorted(parse_copy(r).to[0] for r in recs)
    assert got == sorted(to), "copies: %s" % got[:5]
    assert all(r["verified"] and r["status"] == 200 for r in recs)


def wait_requests(gw, n, timeout=30.0):
    """The fake's records once it has n of them (and no more after a pause)."""
    deadline = time.monotonic() + timeout
    recs = gw.fake.requests()
    while len(recs) < n and time.monotonic() < deadline:
        time.sleep(0.1)
        recs = gw.fake.requests()
    time.sleep(0.3)
    recs = gw.fake.requests()
    assert len(recs) == n, "upstream received %d requests, want %d" % (len(recs), n)
    return recs


# ---------------------------------------------------------------- skip mode


@pytest.fixture(scope="module")
def sgw(tmp_path_factory):
    """`sesgate run` with [send] invalid_recipients = skip."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("addresses-skip"),
                             extra={"send": {"rate": "1000", "concurrency": "4", "invalid_recipients": "skip"}})
    yield gw
    harness.stop_run_gateway(gw)


def batch_view(gw, batch, timeout=30.0):
    """GET /batches/{id} once the batch is complete."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + batch)
        assert status == 200, body
        st = json.loads(body)
        if st["complete"] or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_skip_leaves_invalid_addresses_out(sgw, api):
    sgw.fake.reset()
    bad = [("", "Illegal address"), ("not-an-email", "Missing final '@domain'"),
           ("a@b\u00fccher.example", "Domain contains illegal character")]
    valid = ["skip%s%02d@x.example" % (api, i) for i in range(47)]
    to = valid[:10] + [bad[0][0]] + valid[10:30] + [bad[1][0]] + valid[30:] + [bad[2][0]]
    cc = ["cc..bad@x.example", "cc.%s@x.example" % api]
    headers = {}
    if api == "v1":
        c = harness.boto3_client(sgw, "ses")
        c.meta.events.register("after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
        resp = c.send_email(Source=SENDER, Destination={"ToAddresses": to, "CcAddresses": cc},
                            Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "body"}}})
    else:
        c = harness.boto3_client(sgw, "sesv2")
        c.meta.events.register("after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
        resp = c.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": to, "CcAddresses": cc},
                            Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "body"}}}})
    assert resp["MessageId"]
    st = batch_view(sgw, headers["x-sesgate-batch-id"])
    assert (st["total"], st["sent"], st["dead"]) == (len(valid), len(valid), 0), st
    assert [r["address"] for r in st["recipients"]] == valid
    want = [{"address": a, "reason": r} for a, r in bad[:2]] + [
        {"address": bad[2][0], "reason": bad[2][1]}, {"address": cc[0], "reason": "Local address contains dot-dot"}]
    assert sorted(st["invalid"], key=json.dumps) == sorted(want, key=json.dumps)
    recs = wait_requests(sgw, len(valid))
    sent_to = sorted(parse_copy(r).to[0] for r in recs)
    assert sent_to == sorted(valid)
    riders = [a for r in recs for a in parse_copy(r).cc]
    assert riders == [cc[1]], riders


def test_skip_with_one_valid_address_left(sgw, tmp_path):
    sgw.fake.reset()
    ok, code, status, message = send(sgw, "boto3-v1", ["only@x.example", "not-an-email"], tmp_path)
    assert ok and status == 200, (code, message)
    recs = wait_requests(sgw, 1)
    assert parse_copy(recs[0]).to == ["only@x.example"]


def test_skip_with_no_valid_address_refuses(sgw, tmp_path):
    sgw.fake.reset()
    ok, code, status, message = send(sgw, "boto3-v1", ["@x.example", "not-an-email"], tmp_path)
    assert (ok, code, status, message) == (False, "InvalidParameterValue", 400, "Missing local name")
    assert sgw.fake.requests() == []


def test_skip_does_not_apply_when_not_fanned_out(sgw):
    """A send opted out of fan-out (sesgate-fanout=off) goes to SES whole, so
    an invalid address refuses it, as SES would."""
    sgw.fake.reset()
    c = harness.boto3_client(sgw, "ses")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        c.send_email(Source=SENDER, Destination={"ToAddresses": ["a@x.example", "not-an-email"]},
                     Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "body"}}},
                     Tags=[{"Name": "sesgate-fanout", "Value": "off"}])
    assert harness.client_error(exc) == ("InvalidParameterValue", 400, "Missing final '@domain'")
    assert sgw.fake.requests() == []
