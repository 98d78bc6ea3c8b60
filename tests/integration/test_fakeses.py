"""Checks of the fake SES upstream itself: its SigV4 verification, its SES
answers and its fault injection. These talk to the fake directly (with the
upstream credentials), with or without sesgate."""

import dataclasses
import datetime
import json
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.parsers import ResponseParserError

import fakeses
import harness

VECTOR_KEYS = {"AKIDEXAMPLE": ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)}
VECTOR_NOW = datetime.datetime(2015, 8, 30, 12, 36, 0)
VECTOR_BODY = (
    b"Action=SendEmail&Version=2010-12-01&Source=a%40example.com&Destination.ToAddresses.member.1=b%40example.com"
    b"&Message.Subject.Data=Hi&Message.Body.Text.Data=x"
)
VECTOR_HEADERS = [
    ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
    ("Host", "email.us-east-1.amazonaws.com"),
    ("X-Amz-Date", "20150830T123600Z"),
    ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request, "
     "SignedHeaders=content-type;host;x-amz-date, "
     "Signature=fed54040635ea87681f0326f8087e55cb9baacfb5eb963ed8da48d07edc93002"),
]


def verify(headers, body=VECTOR_BODY, method="POST", path="/", query="", keys=VECTOR_KEYS, now=VECTOR_NOW):
    return fakeses.verify_sigv4(method, path, query, headers, body, keys, "us-east-1", now, 300)


def replace_header(headers, name, value):
    return [(n, value if n.lower() == name.lower() else v) for n, v in headers]


def test_vector_v1_post():
    assert verify(VECTOR_HEADERS)["ok"]


def test_vector_v2_delete_with_session_token():
    keys = {"AKIDEXAMPLE": ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSIONTOKEN")}
    headers = [
        ("Host", "email.us-east-1.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("X-Amz-Security-Token", "SESSIONTOKEN"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ses/aws4_request, "
         "SignedHeaders=host;x-amz-date;x-amz-security-token, "
         "Signature=d9825855c6607e5f7d57d716b36f5fceacc3e075ecec52b5b988d3c88c26cf9e"),
    ]
    assert verify(headers, b"", "DELETE", "/v2/email/templates/my%20tpl", keys=keys)["ok"]
    assert verify(headers, b"", "DELETE", "/v2/email/templates/my%20tpl")["kind"] == "token"


@pytest.mark.parametrize("mutate,kind", [
    (lambda h, b: (h, b + b"&x=1"), "signature"),
    (lambda h, b: (replace_header(h, "Content-Type", "text/plain"), b), "signature"),
    (lambda h, b: (replace_header(h, "Host", "email.us-east-1.amazonaws.com:443"), b), "signature"),
    (lambda h, b: ([x for x in h if x[0] != "Authorization"], b), "missing"),
    (lambda h, b: (replace_header(h, "Authorization", h[3][1].replace("AKIDEXAMPLE", "AKIDOTHER")), b),
     "unknown_key"),
    (lambda h, b: (replace_header(h, "Authorization", h[3][1].replace("us-east-1", "eu-west-1")), b), "signature"),
    (lambda h, b: (replace_header(h, "Authorization", h[3][1].replace("/ses/", "/email/")), b), "signature"),
    (lambda h, b: (replace_header(h, "X-Amz-Date", "20150830T123601Z"), b), "signature"),
    (lambda h, b: (h + [("x-amz-content-sha256", "0" * 64)], b), "signature"),
    (lambda h, b: (replace_header(h, "Authorization", "AWS3-HTTPS AWSAccessKeyId=AKIDEXAMPLE"), b), "incomplete"),
], ids=["body", "signed-header", "host", "no-auth", "unknown-key", "region", "service", "date", "payload-hash",
        "algorithm"])
def test_vector_mutations_refused(mutate, kind):
    headers, body = mutate(VECTOR_HEADERS, VECTOR_BODY)
    assert verify(headers, body)["kind"] == kind


def test_clock_skew_window():
    late = VECTOR_NOW + datetime.timedelta(minutes=6)
    res = verify(VECTOR_HEADERS, now=late)
    assert res["kind"] == "expired" and res["message"].startswith("Signature expired: 20150830T123600Z")
    early = VECTOR_NOW - datetime.timedelta(minutes=6)
    assert verify(VECTOR_HEADERS, now=early)["message"].startswith("Signature not yet current")
    assert verify(VECTOR_HEADERS, now=VECTOR_NOW + datetime.timedelta(minutes=4))["ok"]


def test_unsigned_header_changes_nothing():
    assert verify(VECTOR_HEADERS + [("User-Agent", "anything"), ("X-Other", "1")])["ok"]


def test_botocore_signed_query_and_path():
    """A request signed by botocore with an encoded path and a query verifies."""
    creds = Credentials("AKIDEXAMPLE", VECTOR_KEYS["AKIDEXAMPLE"][0])
    req = AWSRequest(method="GET", url="http://127.0.0.1:9/v2/email/identities/a%2Bb%40example.com"
                     "?NextToken=x%2Fy%3Dz&PageSize=5", headers={}, data=b"")
    SigV4Auth(creds, "ses", "us-east-1").add_auth(req)
    headers = [("Host", "127.0.0.1:9")] + list(req.headers.items())
    now = datetime.datetime.strptime(req.context["timestamp"], "%Y%m%dT%H%M%SZ")
    res = verify(headers, b"", "GET", "/v2/email/identities/a%2Bb%40example.com", "NextToken=x%2Fy%3Dz&PageSize=5",
                 now=now)
    assert res["ok"], res


# ---------------------------------------------------------------- live fake


@pytest.fixture
def fake_gw(gw):
    """gw seen from a client talking straight to the fake with the upstream key."""
    gw.fake.reset()
    clients = dict(gw.clients, app=dataclasses.replace(gw.upstream, name="app"))
    yield dataclasses.replace(gw, endpoint=gw.fake.url, direct=True, clients=clients)
    gw.fake.reset()


def test_status_rule_then_revert(fake_gw):
    fake_gw.fake.control(mode="status", status=503, code="ServiceUnavailable", message="try later", count=1)
    ses = harness.boto3_client(fake_gw, "ses")
    with pytest.raises(ClientError) as ei:
        ses.get_send_quota()
    assert harness.client_error(ei) == ("ServiceUnavailable", 503, "try later")
    assert ei.value.response["Error"]["Type"] == "Receiver"
    assert ses.get_send_quota()["MaxSendRate"] == 14.0
    recs = fake_gw.fake.requests()
    assert [r["fault"] for r in recs] == ["status", None]


def test_throttle_v1_and_v2(fake_gw):
    fake_gw.fake.throttle(count=2)
    with pytest.raises(ClientError) as ei:
        harness.boto3_client(fake_gw, "ses").get_send_quota()
    assert harness.client_error(ei) == ("Throttling", 400, "Maximum sending rate exceeded.")
    with pytest.raises(ClientError) as ei:
        harness.boto3_client(fake_gw, "sesv2").get_account()
    assert harness.client_error(ei) == ("TooManyRequestsException", 429, "Maximum sending rate exceeded.")
    harness.check_response_headers(ei.value.response["ResponseMetadata"]["HTTPHeaders"], "v2", error=True)


def test_sdk_retries_through_throttling(fake_gw):
    fake_gw.fake.throttle(count=2)
    resp = harness.boto3_client(fake_gw, "ses", max_attempts=3).get_send_quota()
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(fake_gw.fake.requests()) == 3


def test_rule_sequence(fake_gw):
    fake_gw.fake.control({"mode": "normal", "count": 1}, {"mode": "status", "status": 500, "count": 1})
    ses = harness.boto3_client(fake_gw, "ses")
    ses.get_send_quota()
    with pytest.raises(ClientError) as ei:
        ses.get_send_quota()
    assert harness.client_error(ei)[:2] == ("InternalFailure", 500)
    ses.get_send_quota()


def test_drop(fake_gw):
    fake_gw.fake.control(drop=True, count=1)
    with pytest.raises(ConnectionClosedError):
        harness.boto3_client(fake_gw, "ses").get_send_quota()
    assert fake_gw.fake.requests()[0]["fault"] == "drop"


def test_garbage(fake_gw):
    fake_gw.fake.control(garbage=True, count=1)
    # Depending on the botocore version a body that is not SES's XML is a
    # ResponseParserError or an error finding the result element.
    with pytest.raises((ResponseParserError, KeyError)):
        harness.boto3_client(fake_gw, "ses").get_send_quota()


def test_delay(fake_gw):
    fake_gw.fake.control(delay_ms=300, count=1)
    t0 = time.monotonic()
    harness.boto3_client(fake_gw, "ses").get_send_quota()
    assert time.monotonic() - t0 >= 0.3


def test_bad_rule_rejected(fake_gw):
    with pytest.raises(RuntimeError):
        fake_gw.fake.control(mode="sometimes")


def test_quota_control(fake_gw):
    fake_gw.fake.set_quota(max_send_rate=2.5, max_24_hour_send=200)
    try:
        resp = harness.boto3_client(fake_gw, "sesv2").get_account()
        assert resp["SendQuota"]["MaxSendRate"] == 2.5 and resp["SendQuota"]["Max24HourSend"] == 200.0
    finally:
        fake_gw.fake.set_quota(max_send_rate=14, max_24_hour_send=50000)


def test_other_actions(fake_gw):
    ses = harness.boto3_client(fake_gw, "ses")
    assert ses.list_templates().get("TemplatesMetadata", []) == []
    assert ses.get_account_sending_enabled()["Enabled"] is True
    assert set(ses.verify_email_address(EmailAddress="x@example.com")) == {"ResponseMetadata"}
    ids = ses.send_bulk_templated_email(
        Source="s@example.com", Template="t", DefaultTemplateData="{}",
        Destinations=[{"Destination": {"ToAddresses": ["a@example.com"]}},
                      {"Destination": {"ToAddresses": ["b@example.com"]}}])["Status"]
    assert [s["Status"] for s in ids] == ["Success", "Success"]
    v2 = harness.boto3_client(fake_gw, "sesv2")
    assert set(v2.delete_email_identity(EmailIdentity="a+b@example.com")) == {"ResponseMetadata"}
    out = v2.send_bulk_email(
        FromEmailAddress="s@example.com",
        DefaultContent={"Template": {"TemplateName": "t", "TemplateData": "{}"}},
        BulkEmailEntries=[{"Destination": {"ToAddresses": ["a@example.com"]}}])
    assert out["BulkEmailEntryResults"][0]["Status"] == "SUCCESS"
    paths = [r["path"] for r in fake_gw.fake.requests()]
    assert "/v2/email/identities/a%2Bb%40example.com" in paths


def test_ses_validation_errors(fake_gw):
    ses = harness.boto3_client(fake_gw, "ses")
    with pytest.raises(ClientError) as ei:
        ses.send_raw_email(RawMessage={"Data": b"Subject: no recipients\r\n\r\nx\r\n"})
    assert harness.client_error(ei)[:2] == ("InvalidParameterValue", 400)
    many = ["r%d@example.com" % i for i in range(51)]
    with pytest.raises(ClientError) as ei:
        ses.send_email(Source="s@example.com", Destination={"ToAddresses": many},
                       Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    assert harness.client_error(ei) == ("InvalidParameterValue", 400, "Recipient count exceeds 50.")


def test_invalid_action(fake_gw):
    creds = Credentials(fake_gw.upstream.access_key, fake_gw.upstream.secret)
    for body, code in ((b"Action=NoSuchThing&Version=2010-12-01", "InvalidAction"),
                       (b"Action=GetSendQuota&Version=2009-10-16", "InvalidAction"),
                       (b"Version=2010-12-01", "MissingAction")):
        req = AWSRequest(method="POST", url=fake_gw.fake.url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        SigV4Auth(creds, "ses", "us-east-1").add_auth(req)
        status, headers, out = harness.http("POST", req.url, body, dict(req.headers.items()))
        assert status == 400 and b"<Code>%s</Code>" % code.encode() in out, out


def test_record_file_and_control_not_recorded(fake_gw):
    harness.boto3_client(fake_gw, "ses").get_send_quota()
    recs = fake_gw.fake.requests()
    assert len(recs) == 1
    rec = recs[0]
    for key in ("method", "path", "query", "headers", "body_b64", "access_key", "verified", "verify_error",
                "time", "status", "request_id"):
        assert key in rec
    assert rec["headers"]["host"].startswith("127.0.0.1:")
    lines = [json.loads(x) for x in fake_gw.fake.record_path.read_text().splitlines()]
    assert lines[-1]["seq"] == rec["seq"]
    assert not any(x["path"].startswith("/__") for x in lines)
