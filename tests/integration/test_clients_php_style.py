"""Requests signed the way daniel-zahariev/php-aws-ses signs them (ses-api.md
§1.3, §4.1, §5): v1 GET with the parameters in the query string, POST with an
unsigned Content-Type, SignedHeaders host;x-amz-date only, and the credential
scope service "email" (the first label of its host name)."""

import re
import urllib.parse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import harness
from harness import RCPT, SENDER, assert_forwarded


def send(gw, method, query="", body=b"", service="ses", creds=None):
    """Sign host;x-amz-date with botocore's SigV4 and send; returns
    (status, headers, body, what was sent)."""
    creds = creds or gw.creds("app")
    url = gw.endpoint + "/" + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, headers={}, data=body)
    SigV4Auth(Credentials(creds.access_key, creds.secret), service, gw.region).add_auth(req)
    headers = dict(req.headers.items())
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert "SignedHeaders=host;x-amz-date," in headers["Authorization"]
    status, rheaders, out = harness.http(method, url, body if method != "GET" else None, headers)
    sent = {"method": method, "path": "/", "query": query, "headers": headers,
            "body_b64": harness.b64(body)}
    return status, rheaders, out, sent


def message_id(xml):
    m = re.search(rb"<MessageId>([^<]+)</MessageId>", xml)
    return m.group(1).decode() if m else None


def test_get_send_quota_in_query(gateway):
    query = "Action=GetSendQuota&Version=2010-12-01"
    status, headers, out, sent = send(gateway, "GET", query)
    assert status == 200, out
    harness.check_response_headers(headers, "v1")
    assert b"<MaxSendRate>14.0</MaxSendRate>" in out
    rec = assert_forwarded(gateway, sent)
    assert rec["method"] == "GET" and rec["query"] == query and rec["action"] == "GetSendQuota"


def test_post_with_unsigned_content_type(gateway):
    body = urllib.parse.urlencode({
        "Action": "SendEmail", "Version": "2010-12-01", "Source": SENDER,
        "Destination.ToAddresses.member.1": RCPT, "Message.Subject.Data": "php style",
        "Message.Body.Text.Data": "body",
    }, quote_via=urllib.parse.quote).encode()
    status, headers, out, sent = send(gateway, "POST", body=body)
    assert status == 200, out
    assert_forwarded(gateway, sent, message_id(out))


@pytest.mark.needs_sesgate
def test_email_service_scope(gateway):
    """sesgate accepts scope service "email" (the upstream gets "ses")."""
    status, headers, out, sent = send(gateway, "GET", "Action=GetSendQuota&Version=2010-12-01", service="email")
    assert status == 200, out
    rec = assert_forwarded(gateway, sent)
    assert "/us-east-1/ses/aws4_request" in rec["headers"]["authorization"]


def test_wrong_secret_refused(gateway):
    bad = harness.Creds("bad", gateway.creds("app").access_key, harness.new_secret())
    status, headers, out, _ = send(gateway, "GET", "Action=GetSendQuota&Version=2010-12-01", creds=bad)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in out, out
    harness.check_response_headers(headers, "v1", error=True)
    harness.assert_not_forwarded(gateway)
