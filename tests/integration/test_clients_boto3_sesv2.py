"""boto3 `sesv2` (SES v2, REST-JSON API) through sesgate to the fake upstream."""

import contextlib
import dataclasses
import json

import pytest
from botocore.exceptions import ClientError

import harness
from harness import RCPT, SENDER, assert_forwarded, boto3_client, check_refusal, check_response_headers

SIMPLE = {
    "FromEmailAddress": "Sender <%s>" % SENDER,
    "Destination": {"ToAddresses": [RCPT]},
    "Content": {
        "Simple": {
            "Subject": {"Data": "Hello \u00fc", "Charset": "UTF-8"},
            "Body": {"Text": {"Data": "text body"}, "Html": {"Data": "<b>html</b> body"}},
        }
    },
    "EmailTags": [{"Name": "campaign", "Value": "it-test"}],
}


def call(gw, method, creds=None, **kwargs):
    """Call one sesv2 method with the request captured; returns (response, sent)."""
    cap = []
    client = boto3_client(gw, "sesv2", creds, capture=cap)
    resp = getattr(client, method)(**kwargs)
    check_response_headers(resp["ResponseMetadata"]["HTTPHeaders"], "v2")
    assert len(cap) == 1
    return resp, cap[0]


def test_send_email_simple(gateway):
    resp, sent = call(gateway, "send_email", **SIMPLE)
    assert harness.MESSAGE_ID_RE.match(resp["MessageId"])
    rec = assert_forwarded(gateway, sent, resp["MessageId"])
    assert rec["path"] == "/v2/email/outbound-emails"
    assert rec["recipients"] == [RCPT]


def test_send_email_raw(gateway):
    raw = harness.raw_message()
    resp, sent = call(gateway, "send_email", Content={"Raw": {"Data": raw}})
    rec = assert_forwarded(gateway, sent, resp["MessageId"], compare="raw")
    assert harness.decoded_body(rec)["Content"]["Raw"]["Data"] == raw
    assert rec["recipients"] == [RCPT]


def test_get_account(gateway):
    resp, sent = call(gateway, "get_account")
    assert resp["SendQuota"]["MaxSendRate"] == 14.0
    assert resp["SendQuota"]["Max24HourSend"] == 50000.0
    assert resp["ProductionAccessEnabled"] is True
    rec = assert_forwarded(gateway, sent)
    assert (rec["method"], rec["path"]) == ("GET", "/v2/email/account")


def test_list_email_identities(gateway):
    resp, sent = call(gateway, "list_email_identities", PageSize=10)
    names = [i["IdentityName"] for i in resp["EmailIdentities"]]
    assert names == ["example.com", "allowed.example", "sender@example.com"]
    rec = assert_forwarded(gateway, sent)
    assert rec["query"] == sent["query"] == "PageSize=10"


def test_delete_email_template_encoded_name(gateway):
    resp, sent = call(gateway, "delete_email_template", TemplateName="my tpl/\u00fc")
    assert sent["path"] == "/v2/email/templates/my%20tpl%2F%C3%BC"
    rec = assert_forwarded(gateway, sent)
    assert rec["method"] == "DELETE"
    assert rec["path"] == "/v2/email/templates/my%20tpl%2F%C3%BC"


@pytest.mark.parametrize("source", ["someone@allowed.example", "Boss <boss@example.com>"])
def test_limited_client_allowed_sender(gateway, source):
    resp, sent = call(gateway, "send_email", gateway.creds("limited"), **dict(SIMPLE, FromEmailAddress=source))
    assert_forwarded(gateway, sent, resp["MessageId"])


def test_limited_client_allowed_raw_sender(gateway):
    raw = harness.raw_message(from_="Boss <boss@example.com>")
    resp, sent = call(gateway, "send_email", gateway.creds("limited"), Content={"Raw": {"Data": raw}})
    assert_forwarded(gateway, sent, resp["MessageId"], compare="raw")


CASES = list(harness.REFUSALS["v2"]) + ["denied_sender_raw"]


@pytest.mark.parametrize("case", CASES)
def test_refused(gateway, case):
    base = case.replace("_raw", "")
    if base in harness.POLICY_REFUSALS and gateway.direct:
        pytest.skip("client policy is sesgate's")
    creds = gateway.creds("app")
    opts = {}
    clock = contextlib.nullcontext()
    op = ("send_email", SIMPLE)
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
        creds, op = gateway.creds("limited"), ("get_account", {})
    elif case == "denied_sender":
        creds, op = gateway.creds("limited"), ("send_email", dict(SIMPLE, FromEmailAddress="x@other.example"))
    elif case == "denied_sender_raw":
        raw = harness.raw_message(from_="Someone <someone@other.example>")
        creds, op = gateway.creds("limited"), ("send_email", {"Content": {"Raw": {"Data": raw}}})
    client = boto3_client(gateway, "sesv2", creds, **opts)
    with clock, pytest.raises(ClientError) as ei:
        getattr(client, op[0])(**op[1])
    check_response_headers(ei.value.response["ResponseMetadata"]["HTTPHeaders"], "v2", error=True)
    check_refusal(gateway, "v2", base, *harness.client_error(ei))


def test_tampered_json_stays_valid():
    """The tamper helper changes one letter and keeps JSON parseable."""
    body = json.dumps(SIMPLE).encode()
    out = harness.tamper_bytes(body)
    assert len(out) == len(body) and sum(a != b for a, b in zip(out, body)) == 1
    json.loads(out)
