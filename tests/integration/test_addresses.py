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
from test_queue import RunSesgate

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
    workdir = tmp_path_factory.mktemp("addresses")
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(workdir, upstream).start()
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    policies = {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}}
    gate = RunSesgate(workdir, fake.url, upstream, policies,
                      extra={"send": {"rate": "1000", "concurrency": "4"}})
    try:
        gate.start()
    except Exception:
        fake.stop()
        raise
    yield harness.Gateway(gate.url, harness.REGION, False, fake, gate, upstream, {"app": app}, workdir)
    gate.stop()
    fake.stop()
    log = gate.log_text()
    assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]
    assert "BatchMissing" not in log


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
