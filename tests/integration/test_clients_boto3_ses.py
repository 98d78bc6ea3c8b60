"""boto3 `ses` (SES v1, Query API) through sesgate to the fake upstream."""

import contextlib
import dataclasses
import json

import pytest
from botocore.exceptions import ClientError

import harness
from harness import RCPT, SENDER, assert_forwarded, boto3_client, check_refusal, check_response_headers

SEND = {
    "Source": "Sender <%s>" % SENDER,
    "Destination": {"ToAddresses": [RCPT]},
    "Message": {
        "Subject": {"Data": "Hello \u00fc", "Charset": "UTF-8"},
        "Body": {"Text": {"Data": "text body"}, "Html": {"Data": "<b>html</b> body", "Charset": "UTF-8"}},
    },
}


def call(gw, method, creds=None, **kwargs):
    """Call one ses method with the request captured; returns (response, sent)."""
    cap = []
    client = boto3_client(gw, "ses", creds, capture=cap)
    resp = getattr(client, method)(**kwargs)
    check_response_headers(resp["ResponseMetadata"]["HTTPHeaders"], "v1")
    assert len(cap) == 1
    return resp, cap[0]


def test_send_email(gateway):
    resp, sent = call(gateway, "send_email", **SEND)
    assert harness.MESSAGE_ID_RE.match(resp["MessageId"])
    rec = assert_forwarded(gateway, sent, resp["MessageId"])
    assert rec["action"] == "SendEmail"
    assert rec["recipients"] == [RCPT]


def test_send_raw_email(gateway):
    raw = harness.raw_message()
    resp, sent = call(gateway, "send_raw_email", RawMessage={"Data": raw})
    rec = assert_forwarded(gateway, sent, resp["MessageId"], compare="raw")
    assert rec["action"] == "SendRawEmail"
    assert harness.decoded_body(rec)["RawMessage.Data"] == raw


def test_send_raw_email_with_destinations(gateway):
    raw = harness.raw_message()
    resp, sent = call(gateway, "send_raw_email", Source=SENDER, Destinations=[RCPT], RawMessage={"Data": raw})
    rec = assert_forwarded(gateway, sent, resp["MessageId"], compare="raw")
    assert rec["recipients"] == [RCPT]


def test_send_templated_email(gateway):
    resp, sent = call(
        gateway, "send_templated_email", Source=SENDER, Destination={"ToAddresses": [RCPT]},
        Template="welcome", TemplateData=json.dumps({"name": "Ana"}),
    )
    rec = assert_forwarded(gateway, sent, resp["MessageId"])
    assert rec["action"] == "SendTemplatedEmail"


def test_get_send_quota(gateway):
    resp, sent = call(gateway, "get_send_quota")
    assert resp["MaxSendRate"] == 14.0
    assert resp["Max24HourSend"] == 50000.0
    # passed through from the upstream as it reports it
    assert resp["SentLast24Hours"] == gateway.fake.quota()["quota"]["sent_last_24_hours"]
    rec = assert_forwarded(gateway, sent)
    assert rec["action"] == "GetSendQuota"


def test_list_identities(gateway):
    resp, sent = call(gateway, "list_identities")
    assert resp["Identities"] == ["example.com", "allowed.example", "sender@example.com"]
    assert_forwarded(gateway, sent)


def test_verify_email_identity(gateway):
    resp, sent = call(gateway, "verify_email_identity", EmailAddress="new@example.com")
    assert set(resp) == {"ResponseMetadata"}
    rec = assert_forwarded(gateway, sent)
    assert rec["action"] == "VerifyEmailIdentity"


@pytest.mark.parametrize("source", ["someone@allowed.example", "Boss <boss@example.com>"])
def test_limited_client_allowed_sender(gateway, source):
    resp, sent = call(gateway, "send_email", gateway.creds("limited"), **dict(SEND, Source=source))
    assert_forwarded(gateway, sent, resp["MessageId"])


def test_limited_client_allowed_raw_sender(gateway):
    raw = harness.raw_message(from_="Boss <boss@example.com>")
    resp, sent = call(gateway, "send_raw_email", gateway.creds("limited"), RawMessage={"Data": raw})
    assert_forwarded(gateway, sent, resp["MessageId"], compare="raw")


CASES = list(harness.REFUSALS["v1"]) + ["denied_sender_raw"]


@pytest.mark.parametrize("case", CASES)
def test_refused(gateway, case):
    base = case.replace("_raw", "")
    if base in harness.POLICY_REFUSALS and gateway.direct:
        pytest.skip("client policy is sesgate's")
    creds = gateway.creds("app")
    opts = {}
    clock = contextlib.nullcontext()
    op = ("send_email", SEND)
    if case == "wrong_secret":
        creds = dataclasses.replace(creds, secret=harness.new_secret())
    elif case == "unknown_key":
        creds = gateway.creds("unknown")
    elif case == "expired":
        clock = harness.signing_clock_offset(-600)
    elif case == "tampered":
        opts["tamper"] = True
    elif case == "missing_auth":
        opts["unsigned"] = True
    elif case == "denied_action":
        creds, op = gateway.creds("limited"), ("list_identities", {})
    elif case == "denied_sender":
        creds, op = gateway.creds("limited"), ("send_email", dict(SEND, Source="someone@other.example"))
    elif case == "denied_sender_raw":
        raw = harness.raw_message(from_="Someone <someone@other.example>")
        creds, op = gateway.creds("limited"), ("send_raw_email", {"RawMessage": {"Data": raw}})
    client = boto3_client(gateway, "ses", creds, **opts)
    with clock, pytest.raises(ClientError) as ei:
        getattr(client, op[0])(**op[1])
    check_response_headers(ei.value.response["ResponseMetadata"]["HTTPHeaders"], "v1", error=True)
    assert ei.value.response["Error"].get("Type") == "Sender"
    check_refusal(gateway, "v1", base, *harness.client_error(ei))
