"""php-aws-ses (the `SimpleEmailService` PHP class, 0.9.x) through sesgate's
HTTPS listener, with the requests exactly as that library builds them:

- SigV4 over `host;x-amz-date` only, the credential scope's service and
  region taken from the first two labels of the host name the application
  configured (`email.us-east-1.<name>:<port>`), the Host header with the port;
- parameters ksorted and encoded with `http_build_query(..., PHP_QUERY_RFC1738)`
  (`+` for a space, `%7E` for `~`), no `Version` parameter;
- GET with the parameters in the query string (signed verbatim) for
  GetSendQuota, GetSendStatistics and ListVerifiedEmailAddresses, DELETE for
  DeleteVerifiedEmailAddress, POST of the form with an unsigned
  `Content-Type: application/x-www-form-urlencoded` for everything else;
- recipients with a display name as `=?UTF-8?B?...?= <addr>`, raw messages
  with LF line ends and `CC:` / `BCC:` fields, SendRawEmail with no Source
  and no Destinations.

The requests go through libcurl (the curl command line), as the library's do,
to `sesgate run` with TLS; fan-out is checked at the fake upstream."""

import base64
import datetime
import hashlib
import hmac
import re
import subprocess

import pytest

import harness
from test_fanout_clients import Raw, attachment_bytes, check_batch, check_copies, field, mime_body, parse_copy, settle

pytestmark = pytest.mark.needs_sesgate

SENDER = "news@example.com"
SERVER_NAME = "email.us-east-1.sesgate.test"


def php_urlencode(value):
    """PHP's urlencode(): letters, digits and -_. stay, a space is '+',
    every other byte %XX (upper case)."""
    out = []
    for b in value.encode():
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_."):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def http_build_query(params):
    """ksort($params); http_build_query($params, '', '&', PHP_QUERY_RFC1738)."""
    return "&".join("%s=%s" % (php_urlencode(k), php_urlencode(v)) for k, v in sorted(params.items()))


def encode_recipient(r):
    """SimpleEmailServiceMessage::encodeRecipients for one recipient."""
    m = re.match(r"(.*)<(.*)>", r)
    if not m:
        return r
    return "=?UTF-8?B?%s?= <%s>" % (base64.b64encode(m.group(1).encode()).decode(), m.group(2))


class PhpAwsSes:
    """SimpleEmailService pointed at host (with its port), signing with creds."""

    def __init__(self, host, creds, cafile, connect_port):
        self.host = host
        self.creds = creds
        self.cafile = cafile
        self.connect_port = connect_port

    def auth_header(self, verb, query, amz_date):
        """SimpleEmailServiceRequest::__getAuthHeaderV4."""
        service, region = self.host.split(".")[0:2]
        canonical_qs, payload = ("", query) if verb == "POST" else (query, "")
        canonical = "\n".join([
            verb, "/", canonical_qs,
            "host:%s\nx-amz-date:%s\n" % (self.host, amz_date),
            "host;x-amz-date", hashlib.sha256(payload.encode()).hexdigest()])
        scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.creds.secret).encode()
        for part in (amz_date[:8], region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=host;x-amz-date, Signature=%s" % (
            self.creds.access_key, scope, sig)

    def request(self, verb, params):
        """SimpleEmailServiceRequest::getResponse; returns (status, headers, body)."""
        query = http_build_query(params)
        amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        url = "https://%s/" % self.host
        cmd = ["curl", "-sS", "--noproxy", "*", "--cacert", str(self.cafile),
               "--resolve", "%s:127.0.0.1" % self.host, "-A", "SimpleEmailService/php",
               "-X", verb, "-D", "-", "-o", "-",
               "-H", "X-Amz-Date: " + amz_date, "-H", "Host: " + self.host,
               "-H", "Authorization: " + self.auth_header(verb, query, amz_date)]
        data = None
        if verb == "POST":
            cmd += ["-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", "@-"]
            data = query.encode()
        else:
            url += "?" + query
        proc = subprocess.run(cmd + [url], input=data, capture_output=True, timeout=30)
        assert proc.returncode == 0, "curl failed (%d): %s" % (proc.returncode, proc.stderr.decode())
        head, _, body = proc.stdout.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        return status, headers, body, query


@pytest.fixture(scope="module")
def php(tmp_path_factory):
    """The fake upstream, `sesgate run` with TLS, and the library's client."""
    work = tmp_path_factory.mktemp("php")
    cert, key = work / "server.pem", work / "server.key"
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=" + SERVER_NAME,
         "-addext", "subjectAltName=DNS:" + SERVER_NAME], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    gw = harness.run_gateway(work, extra={"server": {"tls_cert": str(cert), "tls_key": str(key)},
                                          "send": {"rate": "1000", "concurrency": "4"}})
    gw.endpoint = "https://%s:%d" % (SERVER_NAME, gw.sesgate.port)
    client = PhpAwsSes("%s:%d" % (SERVER_NAME, gw.sesgate.port), gw.creds("app"), cert, gw.sesgate.port)
    yield gw, client
    harness.stop_run_gateway(gw)


@pytest.fixture
def ses(php):
    gw, client = php
    gw.fake.reset()
    return gw, client


def only_record(gw):
    recs = gw.fake.requests()
    assert len(recs) == 1, "upstream expected exactly one request, got %d" % len(recs)
    rec = recs[0]
    assert rec["verified"], rec.get("verify_error")
    assert rec["access_key"] == gw.upstream.access_key and rec["status"] == 200, rec
    return rec


@pytest.mark.parametrize("action, tag", [
    ("GetSendQuota", b"<MaxSendRate>14.0</MaxSendRate>"),
    ("GetSendStatistics", b"<GetSendStatisticsResult"),
    ("ListVerifiedEmailAddresses", b"<ListVerifiedEmailAddressesResult"),
])
def test_get_actions_without_version(ses, action, tag):
    gw, client = ses
    status, headers, body, query = client.request("GET", {"Action": action})
    assert status == 200, body
    assert tag in body, body
    assert headers.get("x-amzn-requestid"), headers
    rec = only_record(gw)
    assert (rec["method"], rec["query"], rec["action"]) == ("GET", query, action)
    assert query == "Action=" + action


def test_verify_and_delete_address(ses):
    gw, client = ses
    status, _, body, _ = client.request("POST", {"Action": "VerifyEmailAddress", "EmailAddress": "new+1@example.com"})
    assert status == 200, body
    rec = only_record(gw)
    assert rec["method"] == "POST" and rec["action"] == "VerifyEmailAddress"
    assert base64.b64decode(rec["body_b64"]) == b"Action=VerifyEmailAddress&EmailAddress=new%2B1%40example.com"
    gw.fake.reset()
    status, _, body, query = client.request("DELETE", {"Action": "DeleteVerifiedEmailAddress",
                                                       "EmailAddress": "new+1@example.com"})
    assert status == 200, body
    rec = only_record(gw)
    assert (rec["method"], rec["query"], rec["action"]) == ("DELETE", query, "DeleteVerifiedEmailAddress")


def test_single_send_forwarded_byte_for_byte(ses):
    gw, client = ses
    params = {"Action": "SendEmail", "Source": encode_recipient("Ünïcode News <%s>" % SENDER),
              "Destination.ToAddresses.member.1": "one@example.net",
              "Message.Subject.Data": "Hello ~ world & more", "Message.Subject.Charset": "UTF-8",
              "Message.Body.Text.Data": "line 1\nline 2 é", "Message.Body.Text.Charset": "UTF-8"}
    status, _, body, query = client.request("POST", params)
    assert status == 200, body
    rec = only_record(gw)
    assert base64.b64decode(rec["body_b64"]) == query.encode()
    assert "%7E" in query and "+world+" in query
    m = re.search(rb"<MessageId>([^<]+)</MessageId>", body)
    assert m and m.group(1).decode() == rec["message_id"]


def test_send_email_fans_out_with_cc(ses):
    gw, client = ses
    to = ["php%02d@example.net" % i for i in range(25)]
    cc = ["cc.php@example.net"]
    params = {"Action": "SendEmail", "Source": encode_recipient("PHP News <%s>" % SENDER),
              "Message.Subject.Data": "Fan-out from PHP", "Message.Subject.Charset": "UTF-8",
              "Message.Body.Text.Data": "text body", "Message.Body.Html.Data": "<p>html body</p>",
              "ReplyToAddresses.member.1": "reply@example.com", "ReturnPath": "bounce@example.com"}
    for i, addr in enumerate(to, 1):
        params["Destination.ToAddresses.member.%d" % i] = addr
    params["Destination.CcAddresses.member.1"] = cc[0]
    status, headers, body, query = client.request("POST", params)
    assert status == 200, body
    batch = headers.get("x-sesgate-batch-id")
    message_id = re.search(rb"<MessageId>([^<]+)</MessageId>", body).group(1).decode()
    rest = parse_copy({"path": "/", "body_b64": harness.b64(query)}).rest
    assert "Version" not in rest
    st, recs = settle(gw, batch)
    by_addr = check_copies(gw, recs, to, cc, rest=rest)
    check_batch(gw, "sync", batch, message_id, st, to, by_addr)


def test_send_raw_email_with_bcc_and_attachment(ses):
    gw, client = ses
    to = ["raw%02d@example.net" % i for i in range(5)]
    cc, bcc = ["cc.raw@example.net"], ["hidden@example.net"]
    eol = b"\n"
    boundary = "1234567890.abcdef"
    fields = [field("To", ", ".join(to), eol=eol),
              field("From", encode_recipient("PHP News <%s>" % SENDER), eol=eol),
              field("CC", ", ".join(cc), eol=eol),
              field("BCC", ", ".join(bcc), eol=eol),
              field("Subject", "=?UTF-8?B?%s?=" % base64.b64encode("Report ü".encode()).decode(), eol=eol),
              field("MIME-Version", "1.0", eol=eol),
              field("Content-type", 'Multipart/Mixed; boundary="%s"' % boundary, eol=eol)]
    raw = Raw(fields, mime_body(boundary, attachment_bytes("php"), eol), eol)
    params = {"Action": "SendRawEmail", "RawMessage.Data": base64.b64encode(raw.data()).decode()}
    status, headers, body, query = client.request("POST", params)
    assert status == 200, body
    batch = headers.get("x-sesgate-batch-id")
    message_id = re.search(rb"<MessageId>([^<]+)</MessageId>", body).group(1).decode()
    st, recs = settle(gw, batch)
    by_addr = check_copies(gw, recs, to, cc, bcc, rest={"Action": "SendRawEmail"}, raw=raw)
    check_batch(gw, "sync", batch, message_id, st, to, by_addr)
    for rec in recs:
        assert b"hidden@example.net" not in parse_copy(rec).raw


def test_wrong_secret_refused(ses):
    gw, client = ses
    bad = PhpAwsSes(client.host, harness.Creds("bad", client.creds.access_key, harness.new_secret()),
                    client.cafile, client.connect_port)
    status, headers, body, _ = bad.request("GET", {"Action": "GetSendQuota"})
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, body
    assert gw.fake.requests() == []


def test_wrong_version_refused(ses):
    gw, client = ses
    status, _, body, _ = client.request("GET", {"Action": "GetSendQuota", "Version": "2009-10-16"})
    assert status == 400, body
    assert b"<Code>InvalidAction</Code>" in body
    assert b"Could not find operation GetSendQuota for version 2009-10-16" in body
    assert gw.fake.requests() == []


def test_action_in_query_string_of_a_post(ses):
    """A POST whose Action is in the query string and the rest in the form
    body: both are read; the single send goes upstream as the client sent it."""
    gw, client = ses
    params = {"Source": SENDER, "Destination.ToAddresses.member.1": "q@example.net",
              "Message.Subject.Data": "query action", "Message.Body.Text.Data": "b"}
    body = http_build_query(params)
    status, headers, out = post_with_query(gw, client, "Action=SendEmail", body)
    assert status == 200, out
    rec = only_record(gw)
    assert (rec["query"], base64.b64decode(rec["body_b64"]).decode()) == ("Action=SendEmail", body)
    assert rec["action"] == "SendEmail"
    # a parameter in both is refused, as any duplicate
    gw.fake.reset()
    status, headers, out = post_with_query(gw, client, "Action=SendEmail", "Action=SendEmail&" + body)
    assert status == 400 and b"<Code>InvalidQueryParameter</Code>" in out, out
    assert gw.fake.requests() == []


def post_with_query(gw, client, query, body):
    """POST body to /?query, signed by botocore (content-type unsigned)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = "https://%s/?%s" % (client.host, query)
    req = AWSRequest(method="POST", url=url, headers={}, data=body.encode())
    SigV4Auth(Credentials(client.creds.access_key, client.creds.secret), "email", "us-east-1").add_auth(req)
    cmd = ["curl", "-sS", "--noproxy", "*", "--cacert", str(client.cafile), "--resolve",
           "%s:127.0.0.1" % client.host, "-D", "-", "-o", "-", "--data-binary", "@-",
           "-H", "Content-Type: application/x-www-form-urlencoded"]
    for k, v in req.headers.items():
        cmd += ["-H", "%s: %s" % (k, v)]
    proc = subprocess.run(cmd + [url], input=body.encode(), capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    head, _, out = proc.stdout.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, out
