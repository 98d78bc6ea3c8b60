"""The aws command line (`aws ses`, `aws sesv2`) through sesgate to the fake upstream.

Credentials reach the CLI only through AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY; its config and credentials files are empty, except
where a test loads the small plugin in awscli_plugin/ (request capture, an
expired signing clock, a body tampered after signing).
"""

import dataclasses
import json

import pytest

import harness
from harness import RCPT, SENDER, assert_forwarded, check_refusal, decoded_body, run_aws

V1_SEND = [
    "ses", "send-email", "--from", SENDER, "--destination", "ToAddresses=%s" % RCPT,
    "--message", "Subject={Data=Hello from the cli,Charset=UTF-8},Body={Text={Data=text body}}",
]
V2_CONTENT = {"Simple": {"Subject": {"Data": "Hello from the cli"}, "Body": {"Text": {"Data": "text body"}}}}
V2_SEND = [
    "sesv2", "send-email", "--from-email-address", SENDER, "--destination", "ToAddresses=%s" % RCPT,
    "--content", json.dumps(V2_CONTENT),
]


def ok(result):
    """The JSON output of a successful aws run."""
    assert result.rc == 0, "aws failed (%d): %s" % (result.rc, result.stderr[-3000:])
    assert result.json is not None, result.stdout
    return result.json


def forwarded(gateway, result, message_id=None):
    """The upstream's record of an aws run; byte-compared when it was captured."""
    sent = None
    if result.captured:
        assert len(result.captured) == 1, result.captured
        sent = result.captured[0]
    return assert_forwarded(gateway, sent, message_id)


@pytest.mark.parametrize("capture", [False, True], ids=["plain", "captured"])
def test_ses_send_email(gateway, capture):
    result = run_aws(gateway, V1_SEND, gateway.creds("app"), capture=capture)
    out = ok(result)
    assert harness.MESSAGE_ID_RE.match(out["MessageId"])
    assert bool(result.captured) == capture
    params = decoded_body(forwarded(gateway, result, out["MessageId"]))
    assert params["Action"] == "SendEmail" and params["Source"] == SENDER
    assert params["Destination.ToAddresses.member.1"] == RCPT
    assert params["Message.Subject.Data"] == "Hello from the cli"
    assert params["Message.Body.Text.Data"] == "text body"


@pytest.mark.parametrize("capture", [False, True], ids=["plain", "captured"])
def test_sesv2_send_email(gateway, capture):
    result = run_aws(gateway, V2_SEND, gateway.creds("app"), capture=capture)
    out = ok(result)
    assert harness.MESSAGE_ID_RE.match(out["MessageId"])
    rec = forwarded(gateway, result, out["MessageId"])
    body = decoded_body(rec)
    assert rec["path"] == "/v2/email/outbound-emails"
    assert body["FromEmailAddress"] == SENDER
    assert body["Destination"] == {"ToAddresses": [RCPT]}
    assert body["Content"] == V2_CONTENT


def test_ses_get_send_quota(gateway):
    result = run_aws(gateway, ["ses", "get-send-quota"], gateway.creds("app"))
    out = ok(result)
    assert out["MaxSendRate"] == 14.0 and out["Max24HourSend"] == 50000.0
    assert forwarded(gateway, result)["action"] == "GetSendQuota"


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("case", list(harness.REFUSALS["v1"]))
def test_refused(gateway, api, case):
    if case in harness.POLICY_REFUSALS and gateway.direct:
        pytest.skip("client policy is sesgate's")
    creds = gateway.creds("app")
    args = V1_SEND if api == "v1" else V2_SEND
    opts = {}
    if case == "wrong_secret":
        creds = dataclasses.replace(creds, secret=harness.new_secret())
    elif case == "unknown_key":
        creds = gateway.creds("unknown")
    elif case in ("expired", "tampered"):
        opts["fault"] = case
    elif case == "missing_auth":
        creds, opts["unsigned"] = None, True
    elif case == "denied_action":
        creds = gateway.creds("limited")
        args = ["ses", "list-identities"] if api == "v1" else ["sesv2", "get-account"]
    elif case == "denied_sender":
        creds = gateway.creds("limited")
        args = [("other@other.example" if a == SENDER else a) for a in args]
    result = run_aws(gateway, args, creds, debug=True, **opts)
    # the aws command exits 254 when the service answered with an error
    assert result.rc == 254, "aws exited %d: %s %s" % (result.rc, result.stdout, result.stderr[-2000:])
    check_refusal(gateway, api, case, result.code, result.status, result.message)
