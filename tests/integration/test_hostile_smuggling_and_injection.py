"""Hostile input beyond malformed requests: request smuggling over a raw socket, header injection
through CR/LF in addresses and subjects, enormous recipient lists, deeply
nested v2 JSON, replayed signatures, and batch ids offered to the wrong
client or on the wrong port.

Every case expects an SES-shaped answer (or, where SES itself accepts the
input, copies that carry no injected header line), checks what reached the
fake upstream, and that sesgate is still alive with no sanitizer report in
its log.
"""

import base64
import collections
import email.parser
import email.policy
import json
import re
import subprocess
import threading
import time
import urllib.parse

import pytest

import harness
from test_hostile import FORM, SEND_BODY, assert_ses_error, raw, request_bytes, responses, signed

pytestmark = pytest.mark.needs_sesgate

INJECT = "\r\nBcc: evil@example.org"
JSON_CT = {"Content-Type": "application/json"}
V2_SEND = "/v2/email/outbound-emails"
BATCH_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ---------------------------------------------------------------- helpers


def assert_alive(gw):
    """sesgate still runs, still answers, and its log has no sanitizer report."""
    assert gw.sesgate.proc.poll() is None, "sesgate exited with %s" % gw.sesgate.proc.returncode
    status, _, _ = harness.http("GET", gw.sesgate.admin_url + "/healthz", timeout=5)
    assert status == 200
    log = gw.sesgate.log_text()
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]


def form(params):
    """A v1 form body from (name, value) pairs, encoded as botocore does."""
    return urllib.parse.urlencode(params).encode()


def v1_send_params(source="sender@example.com", to=("rcpt@example.net",), subject="hi", body="x"):
    """The (name, value) pairs of a v1 SendEmail."""
    p = [("Action", "SendEmail"), ("Version", "2010-12-01"), ("Source", source)]
    p += [("Destination.ToAddresses.member.%d" % (i + 1), a) for i, a in enumerate(to)]
    p += [("Message.Subject.Data", subject), ("Message.Body.Text.Data", body)]
    return p


def v2_send_body(from_="sender@example.com", to=("rcpt@example.net",), subject="hi", extra=None):
    """A v2 SendEmail (Simple content) body as a dict."""
    b = {"FromEmailAddress": from_, "Destination": {"ToAddresses": list(to)},
         "Content": {"Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": "t"}}}}}
    b.update(extra or {})
    return b


def send_raw(gw, method, path, body=b"", headers=None, creds=None, timeout=10.0):
    """Sign (method, path, body) for creds and send it over a raw socket with
    Connection: close; the list of parsed responses."""
    target, hdrs, b = signed(gw, method, path, body, headers, creds=creds)
    hdrs["Connection"] = "close"
    return responses(raw(gw, request_bytes(method, target, hdrs, b), timeout=timeout))


def params_of(rec):
    """The decoded v1 form parameters of an upstream record, as a list of pairs."""
    return urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode(), keep_blank_values=True)


def header_lines(msg):
    """The header section of a raw message, unfolded into (name, value) pairs."""
    head = re.split(rb"\r?\n\r?\n", msg, 1)[0].decode("latin-1")
    out = []
    for line in re.split(r"\r?\n", head):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + line)
        else:
            name, _, value = line.partition(":")
            out.append((name.strip(), value))
    return out


def admin_batch(gw, batch):
    """GET /batches/{id} on the admin listener: (status, decoded JSON)."""
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + batch)
    return status, json.loads(body)


def settle(gw, batch, timeout=30.0):
    """Wait until the batch is complete; its status and the upstream records."""
    deadline = time.monotonic() + timeout
    status, st = admin_batch(gw, batch)
    while status == 200 and not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.1)
        status, st = admin_batch(gw, batch)
    assert status == 200 and st["complete"], st
    return st, gw.fake.requests()


def boto3_call(gw, service, method, creds=None, **kwargs):
    """Call a boto3 method; returns (response or None, response headers,
    (code, status, message) or None)."""
    import botocore.exceptions

    client = harness.boto3_client(gw, service, creds=creds)
    headers = {}
    client.meta.events.register(
        "after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
    try:
        return getattr(client, method)(**kwargs), headers, None
    except botocore.exceptions.ClientError as e:
        err = e.response
        return None, headers, (err["Error"].get("Code"), err["ResponseMetadata"].get("HTTPStatusCode"),
                               err["Error"].get("Message", ""))


# ---------------------------------------------------------------- a gateway with workers


@pytest.fixture(scope="module")
def bg(tmp_path_factory):
    """The fake upstream and `sesgate run` (front plus workers, first_recipient
    = sync) with two unrestricted clients, alice and bob, and max_body = 8m."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("hostile-more"), clients=("alice", "bob"),
                             extra={"server": {"max_body": "8m"},
                                    # the fake's listen backlog is 5
                                    "send": {"rate": "1000", "concurrency": "4"}})
    gw.clients["app"] = gw.clients["alice"]
    yield gw
    harness.stop_run_gateway(gw)


@pytest.fixture
def b(bg):
    """bg with the fake's records and rules cleared."""
    bg.fake.reset()
    return bg


def sesgate_status(gw):
    """`sesgate status --json` for gw's configuration."""
    r = subprocess.run([str(harness.sesgate_bin()), "status", "-c", str(gw.sesgate.config_path), "--json"],
                       capture_output=True, text=True, timeout=30, env=harness.clean_env(), cwd=str(gw.workdir))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# ---------------------------------------------------------------- 1. request smuggling


HIDDEN_BODY = (b"Action=SendEmail&Version=2010-12-01&Source=smuggled%40example.com"
               b"&Destination.ToAddresses.member.1=victim%40example.net"
               b"&Message.Subject.Data=smuggled&Message.Body.Text.Data=x")


def hidden_request(gw):
    """A complete, validly signed request: were it ever parsed as a request of
    its own, the upstream would receive it."""
    t, h, body = signed(gw, "POST", "/", HIDDEN_BODY, FORM)
    return request_bytes("POST", t, h, body)


def front_headers(gw, signed_request):
    """The request line and headers of a request (signed over SEND_BODY when
    signed_request, else only a Host), without any body framing header."""
    if signed_request:
        target, hdrs, _ = signed(gw, "POST", "/", SEND_BODY, FORM)
    else:
        target, hdrs = "/", {"Host": "127.0.0.1", "Content-Type": FORM["Content-Type"]}
    hdrs = {k: v for k, v in hdrs.items() if k.lower() not in ("content-length", "transfer-encoding")}
    lines = ["POST %s HTTP/1.1" % target] + ["%s: %s" % kv for kv in hdrs.items()]
    return "\r\n".join(lines).encode() + b"\r\n"


def chunked(data):
    """data as one chunk plus the last chunk."""
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


# Each case: the framing headers and the bytes after the header section,
# given the hidden request h.
SMUGGLING = {
    "cl-te": lambda h: ([("Content-Length", str(5 + len(h))), ("Transfer-Encoding", "chunked")],
                        b"0\r\n\r\n" + h),
    "te-cl": lambda h: ([("Transfer-Encoding", "chunked"), ("Content-Length", "4")], chunked(h)),
    "two-cl": lambda h: ([("Content-Length", "0"), ("Content-Length", str(len(h)))], h),
    "cl-list": lambda h: ([("Content-Length", "0, %d" % len(h))], h),
    "cl-plus": lambda h: ([("Content-Length", "+0")], h),
    "cl-minus": lambda h: ([("Content-Length", "-0")], h),
    "cl-hex": lambda h: ([("Content-Length", "0x%x" % len(h))], h),
    "cl-inner-space": lambda h: ([("Content-Length", "0 %d" % len(h))], h),
    "cl-overflow": lambda h: ([("Content-Length", "18446744073709551616")], h),
    "te-chunked-identity": lambda h: ([("Transfer-Encoding", "chunked, identity")], b"0\r\n\r\n" + h),
    "te-xchunked": lambda h: ([("Transfer-Encoding", "xchunked")], b"0\r\n\r\n" + h),
    "te-duplicated": lambda h: ([("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
                                b"0\r\n\r\n" + h),
    "header-cr-without-lf": lambda h: ([("X-A", "1\rZTransfer-Encoding: chunked")], b"0\r\n\r\n" + h),
    "te-space-before-colon": lambda h: ([("Transfer-Encoding ", "chunked"), ("Content-Length", str(len(h)))],
                                        h),
    "chunk-size-overflow": lambda h: ([("Transfer-Encoding", "chunked")],
                                      b"10000000000000005\r\nabcde\r\n0\r\n\r\n" + h),
    "chunk-size-negative": lambda h: ([("Transfer-Encoding", "chunked")], b"-5\r\nabcde\r\n0\r\n\r\n" + h),
    "chunk-size-hex-prefix": lambda h: ([("Transfer-Encoding", "chunked")], b"0x5\r\nabcde\r\n0\r\n\r\n" + h),
    "chunk-longer-than-size": lambda h: ([("Transfer-Encoding", "chunked")], b"3\r\nabcdef\r\n0\r\n\r\n" + h),
    "chunk-data-without-crlf": lambda h: ([("Transfer-Encoding", "chunked")], b"3\r\nabcXY0\r\n\r\n" + h),
    "chunk-size-cr-without-lf": lambda h: ([("Transfer-Encoding", "chunked")], b"5\rXabcde\r\n0\r\n\r\n" + h),
}


@pytest.mark.parametrize("signed_request", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_smuggling_refused_and_closed(gateway, case, signed_request):
    """Ambiguous or malformed body framing: one 400 SES error, the connection
    closed, and the request hidden behind it never handled."""
    hidden = hidden_request(gateway)
    framing, rest = SMUGGLING[case](hidden)
    data = front_headers(gateway, signed_request)
    data += b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in framing) + b"\r\n" + rest
    out = raw(gateway, data, timeout=6)
    assert not out.endswith(b"<<timeout>>"), "connection left open: %r" % out[-300:]
    r = responses(out)
    assert len(r) == 1, "expected one answer, got %s: %r" % ([x[0] for x in r], out[:2000])
    assert_ses_error(r[0], 400, "InvalidParameterValue")
    assert r[0][1].get("connection") == "close"
    assert gateway.fake.requests() == [], "a smuggled request reached the upstream"
    assert_alive(gateway)


def test_chunked_body_is_refused_before_it_is_read(gateway):
    """A chunked body is refused at its headers (sesgate takes bodies with
    Content-Length only), however large its chunks claim to be: here one
    announced near 2^63 bytes, followed by 1.5 MiB nothing buffers."""
    data = front_headers(gateway, True) + b"Transfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n"
    # 1.5 MiB against max_body = 1 MiB
    out = harness.raw_exchange(gateway.sesgate.port, data, more=[b"a" * 65536] * 24, timeout=6)
    r = responses(out)
    assert len(r) == 1, out[:2000]
    assert_ses_error(r[0], 400, "InvalidParameterValue")
    assert b"Transfer-Encoding is not accepted" in r[0][2]
    assert gateway.fake.requests() == []
    assert_alive(gateway)


def test_hidden_request_alone_is_served(gateway):
    """The hidden request of the smuggling cases, sent on its own, is handled:
    so the cases above would see it upstream had sesgate parsed it."""
    out = raw(gateway, hidden_request(gateway).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    r = responses(out)
    assert len(r) == 1 and r[0][0] == 200, out[:2000]
    recs = gateway.fake.requests()
    assert len(recs) == 1 and base64.b64decode(recs[0]["body_b64"]) == HIDDEN_BODY


# ---------------------------------------------------------------- 2. header injection


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_crlf_in_sender_boto3(gateway, api):
    """CR LF in Source / FromEmailAddress (boto3 encodes it): SES's
    invalid-parameter error, nothing forwarded."""
    if api == "v1":
        _, _, err = boto3_call(gateway, "ses", "send_email", Source="sender@example.com" + INJECT,
                               Destination={"ToAddresses": ["rcpt@example.net"]},
                               Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}})
        want = ("InvalidParameterValue", 400)
    else:
        _, _, err = boto3_call(gateway, "sesv2", "send_email", FromEmailAddress="sender@example.com" + INJECT,
                               Destination={"ToAddresses": ["rcpt@example.net"]},
                               Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}})
        want = ("BadRequestException", 400)
    assert err is not None and err[:2] == want, err
    assert gateway.fake.requests() == []
    assert_alive(gateway)


@pytest.mark.parametrize("encoding", ["percent", "raw-bytes"])
def test_crlf_in_source_raw(gateway, encoding):
    """CR LF in Source sent over a raw socket, percent-encoded or as literal
    bytes in the form body: InvalidParameterValue, nothing forwarded."""
    body = form(v1_send_params())
    if encoding == "raw-bytes":
        body = body.replace(b"Source=sender%40example.com", b"Source=sender%40example.com" + INJECT.encode())
    else:
        body = body.replace(b"Source=sender%40example.com", b"Source=sender%40example.com%0d%0aBcc:%20evil%40example.org")
    r = send_raw(gateway, "POST", "/", body, FORM)
    assert_ses_error(r[0], 400, "InvalidParameterValue")
    assert gateway.fake.requests() == []
    assert_alive(gateway)


def test_crlf_in_single_to_address(gateway):
    """A single To address with CR LF (no batch): refused, or forwarded
    byte-for-byte so that SES itself judges it; never rewritten."""
    params = v1_send_params(to=("rcpt@example.net" + INJECT,))
    body = form(params)
    r = send_raw(gateway, "POST", "/", body, FORM)
    recs = gateway.fake.requests()
    if r[0][0] == 200:
        assert len(recs) == 1 and base64.b64decode(recs[0]["body_b64"]) == body
    else:
        assert_ses_error(r[0], 400, "InvalidParameterValue")
        assert recs == []
    assert_alive(gateway)


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("where", ["first", "second"])
def test_crlf_in_batch_to_address(b, api, where):
    """A fanned-out send (two To recipients) where one To address carries
    CR LF: SES rejects a whole message for one illegal address, so the
    gateway answers with SES's invalid-parameter error and sends and queues
    nothing."""
    bad = "rcpt.b@example.net" + INJECT
    to = [bad, "rcpt.a@example.net"] if where == "first" else ["rcpt.a@example.net", bad]
    before = {x["batch_id"] for x in sesgate_status(b)["recent"]}
    if api == "v1":
        _, hdrs, err = boto3_call(b, "ses", "send_email", Source="sender@example.com",
                                  Destination={"ToAddresses": to},
                                  Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}})
        want = ("InvalidParameterValue", 400)
    else:
        _, hdrs, err = boto3_call(b, "sesv2", "send_email", FromEmailAddress="sender@example.com",
                                  Destination={"ToAddresses": to},
                                  Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}})
        want = ("BadRequestException", 400)
    if hdrs.get("x-sesgate-batch-id"):
        settle(b, hdrs["x-sesgate-batch-id"])  # let the copies out before judging
    time.sleep(0.5)
    recs = b.fake.requests()
    after = {x["batch_id"] for x in sesgate_status(b)["recent"]}
    assert err is not None and err[:2] == want, "answer %s, batch %s, upstream got %s" % (
        err, hdrs.get("x-sesgate-batch-id"), [params_of(x) if api == "v1" else x["path"] for x in recs])
    assert recs == []
    assert after == before, "a batch was queued: %s" % (after - before)
    assert_alive(b)


@pytest.mark.parametrize("encoding", ["percent", "raw-bytes"])
def test_crlf_in_subject_batch_v1(b, encoding):
    """SES accepts a subject with a line break (it encodes it). Fanned out,
    every copy carries the subject exactly as given, the same parameters as
    the client's request, and no recipient or header it did not ask for."""
    to = ["subj.a@example.net", "subj.b@example.net"]
    subject = "Hello" + INJECT
    body = form(v1_send_params(to=to, subject=subject))
    if encoding == "raw-bytes":
        body = body.replace(b"Hello%0D%0ABcc%3A+evil%40example.org", b"Hello" + INJECT.encode().replace(b" ", b"+"))
        assert INJECT.encode().replace(b" ", b"+") in body
    r = send_raw(b, "POST", "/", body, FORM, creds=b.creds("alice"))
    assert r[0][0] == 200, r
    batch = r[0][1].get("x-sesgate-batch-id")
    assert batch and BATCH_ID_RE.match(batch), r[0][1]
    st, recs = settle(b, batch)
    assert (st["total"], st["sent"]) == (2, 2), st
    assert len(recs) == 2
    want = [(k, v) for k, v in v1_send_params(to=to, subject=subject) if not k.startswith("Destination.")]
    got_to = []
    for rec in recs:
        p = params_of(rec)
        dest = [(k, v) for k, v in p if k.startswith("Destination.")]
        assert len(dest) == 1 and dest[0][0] == "Destination.ToAddresses.member.1", dest
        got_to.append(dest[0][1])
        assert sorted(kv for kv in p if not kv[0].startswith("Destination.")) == sorted(want), p
        assert "evil@example.org" not in [v for k, v in p if k != "Message.Subject.Data"]
    assert sorted(got_to) == sorted(to)
    assert_alive(b)


def test_crlf_in_subject_batch_v2(b):
    """The v2 counterpart: the JSON copies carry the subject unchanged and
    only their own To address."""
    to = ["subj2.a@example.net", "subj2.b@example.net"]
    sent = v2_send_body(to=to, subject="Hello" + INJECT)
    r = send_raw(b, "POST", V2_SEND, json.dumps(sent).encode(), JSON_CT, creds=b.creds("alice"))
    assert r[0][0] == 200, r
    batch = r[0][1].get("x-sesgate-batch-id")
    assert batch, r[0][1]
    st, recs = settle(b, batch)
    assert len(recs) == 2 and st["sent"] == 2
    got_to = []
    for rec in recs:
        obj = json.loads(base64.b64decode(rec["body_b64"]))
        assert obj["Destination"] == {"ToAddresses": [obj["Destination"]["ToAddresses"][0]]}, obj
        got_to.append(obj["Destination"]["ToAddresses"][0])
        assert {k: v for k, v in obj.items() if k != "Destination"} == {
            k: v for k, v in sent.items() if k != "Destination"}, obj
    assert sorted(got_to) == sorted(to)
    assert_alive(b)


def test_v2_literal_control_character_in_json(gateway):
    """A literal CR LF inside a JSON string is not JSON: BadRequestException."""
    body = json.dumps(v2_send_body(from_="sender@example.com")).encode().replace(
        b"sender@example.com", b"sender@example.com\r\nBcc: evil@example.org")
    r = send_raw(gateway, "POST", V2_SEND, body, JSON_CT)
    assert_ses_error(r[0], 400, "BadRequestException", "v2")
    assert gateway.fake.requests() == []
    assert_alive(gateway)


RAW_TAIL = (b"Subject: =?utf-8?Q?s=0D=0ABcc=3A_evil=40example=2Eorg?=\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nbody\r\n")
RAW_INJECT_MSGS = {
    # An encoded word whose text decodes to a line break and a Bcc field.
    "encoded-word": (b"From: sender@example.com\r\n"
                     b"To: =?utf-8?Q?Evil=0D=0ABcc=3A_evil=40example=2Eorg?= <raw.a@example.net>,\r\n"
                     b" =?utf-8?B?" + base64.b64encode(b"x\r\nBcc: evil@example.org") + b"?= <raw.b@example.net>\r\n"
                     + RAW_TAIL),
    # A quoted display name holding an escaped line break (obsolete syntax).
    "quoted-pair": (b"From: sender@example.com\r\n"
                    b"To: <raw.a@example.net>,\r\n"
                    b" \"quoted\\\r\n Bcc: x@example.org\" <raw.b@example.net>\r\n" + RAW_TAIL),
}


@pytest.mark.parametrize("case", sorted(RAW_INJECT_MSGS))
def test_raw_fanout_copies_carry_no_injected_header(b, case):
    """A raw message whose To field hides line breaks in encoded words or a
    quoted display name: each copy's header has one To naming only its
    recipient, no Bcc, and otherwise the original's fields. (The obsolete
    quoted-pair form may instead be refused, as SES may refuse it; the
    encoded-word form is valid and must go through.)"""
    msg0 = RAW_INJECT_MSGS[case]
    body = form([("Action", "SendRawEmail"), ("Version", "2010-12-01"),
                 ("RawMessage.Data", base64.b64encode(msg0).decode())])
    r = send_raw(b, "POST", "/", body, FORM, creds=b.creds("alice"))
    if case == "quoted-pair" and r[0][0] != 200:
        assert_ses_error(r[0], 400, "InvalidParameterValue")
        time.sleep(0.3)
        assert b.fake.requests() == []
        return
    assert r[0][0] == 200, r[0]
    batch = r[0][1].get("x-sesgate-batch-id")
    assert batch, r[0][1]
    st, recs = settle(b, batch)
    assert len(recs) == 2, [params_of(x) for x in recs]
    orig = [(n.lower(), v) for n, v in header_lines(msg0) if n.lower() != "to"]
    owners = []
    for rec in recs:
        p = dict(params_of(rec))
        msg = base64.b64decode(p["RawMessage.Data"])
        fields = header_lines(msg)
        names = [n.lower() for n, _ in fields]
        assert "bcc" not in names, fields
        assert names.count("to") == 1, fields
        to_value = [v for n, v in fields if n.lower() == "to"][0].strip()
        assert to_value in ("raw.a@example.net", "raw.b@example.net"), to_value
        owners.append(to_value)
        assert [(n.lower(), v) for n, v in fields if n.lower() != "to"] == orig
        assert msg.endswith(b"\r\n\r\nbody\r\n")
        parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(msg)
        assert parsed.get_all("Bcc") is None
        assert [k for k, _ in params_of(rec) if k.startswith("Destinations.")] == ["Destinations.member.1"]
        assert p["Destinations.member.1"] == to_value
    assert sorted(owners) == ["raw.a@example.net", "raw.b@example.net"]
    assert_alive(b)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_crlf_in_raw_destinations(b, api):
    """CR LF in a raw send's destinations: SES's invalid-parameter error,
    nothing sent or queued."""
    msg = b"From: sender@example.com\r\nTo: d.a@example.net, d.b@example.net\r\nSubject: s\r\n\r\nbody\r\n"
    dests = ["d.a@example.net", "d.b@example.net" + INJECT]
    if api == "v1":
        _, _, err = boto3_call(b, "ses", "send_raw_email", RawMessage={"Data": msg}, Destinations=dests)
        want = ("InvalidParameterValue", 400)
    else:
        _, _, err = boto3_call(b, "sesv2", "send_email", Destination={"ToAddresses": dests},
                               Content={"Raw": {"Data": msg}})
        want = ("BadRequestException", 400)
    assert err is not None and err[:2] == want, err
    time.sleep(0.3)
    assert b.fake.requests() == []
    assert_alive(b)


# ---------------------------------------------------------------- 3. enormous recipient lists


def test_more_to_recipients_than_max_recipients(b):
    """10001 To recipients through boto3 v1 (max_recipients = 10000): SES's
    InvalidParameterValue, nothing sent, nothing queued."""
    before = sesgate_status(b)
    t0 = time.monotonic()
    _, hdrs, err = boto3_call(b, "ses", "send_email", creds=b.creds("alice"), Source="sender@example.com",
                              Destination={"ToAddresses": ["m%05d@example.net" % i for i in range(10001)]},
                              Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}})
    assert time.monotonic() - t0 < 10
    assert err is not None and err[:2] == ("InvalidParameterValue", 400), err
    assert "x-sesgate-batch-id" not in hdrs
    time.sleep(0.5)
    after = sesgate_status(b)
    assert b.fake.requests() == []
    assert after["depth"] == 0
    assert {x["batch_id"] for x in after["recent"]} == {x["batch_id"] for x in before["recent"]}
    assert_alive(b)


@pytest.mark.parametrize("member", ["Destination.ToAddresses.member.", "ReplyToAddresses.member."])
def test_fifty_thousand_members(b, member):
    """50,000 list members in one v1 form body within max_body (8m here): a
    prompt 400 SES error, nothing forwarded or queued."""
    params = v1_send_params(to=("one@example.net",))
    params += [(member + str(i + 2 if member.startswith("Destination") else i + 1), "x%d@example.net" % i)
               for i in range(50000)]
    body = form(params)
    assert len(body) < 8 << 20
    before = {x["batch_id"] for x in sesgate_status(b)["recent"]}
    t0 = time.monotonic()
    r = send_raw(b, "POST", "/", body, FORM, creds=b.creds("alice"), timeout=20)
    assert time.monotonic() - t0 < 10
    assert r, "no answer"
    st, hdrs, _ = r[0]
    assert st == 400
    code = re.search(rb"<Code>([^<]*)</Code>", r[0][2]).group(1).decode()
    assert code in ("InvalidParameterValue", "InvalidQueryParameter"), r[0][2]
    assert_ses_error(r[0], 400, code)
    time.sleep(0.3)
    assert b.fake.requests() == []
    assert {x["batch_id"] for x in sesgate_status(b)["recent"]} == before
    assert_alive(b)


@pytest.mark.parametrize("where", ["from", "to", "batch-to"])
def test_megabyte_address_v2(b, where):
    """A 1 MB string as an address in v2 JSON: answered within seconds;
    refused with BadRequestException (nothing forwarded), or forwarded
    unchanged for SES to judge."""
    huge = "a" * 1000000 + "@example.com"
    if where == "from":
        sent = v2_send_body(from_=huge)
    elif where == "to":
        sent = v2_send_body(to=(huge,))
    else:
        sent = v2_send_body(to=("first@example.net", huge))
    body = json.dumps(sent).encode()
    t0 = time.monotonic()
    r = send_raw(b, "POST", V2_SEND, body, JSON_CT, creds=b.creds("alice"), timeout=20)
    assert time.monotonic() - t0 < 10
    assert r, "no answer"
    batch = r[0][1].get("x-sesgate-batch-id")
    if batch:
        settle(b, batch)
    recs = b.fake.requests()
    if r[0][0] == 200:
        assert recs and all(x["verified"] for x in recs)
        if where != "batch-to":
            assert len(recs) == 1 and base64.b64decode(recs[0]["body_b64"]) == body
    else:
        assert_ses_error(r[0], 400, "BadRequestException", "v2")
        assert recs == []
    assert_alive(b)


# ---------------------------------------------------------------- 4. deep JSON


def nest(kind, depth):
    """depth nested arrays, objects, or alternating."""
    if kind == "arrays":
        return b"[" * depth + b"]" * depth
    if kind == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'[{"a":' * (depth // 2) + b"1" + b"}]" * (depth // 2)


@pytest.mark.parametrize("depth", [100, 10000, 100000])
@pytest.mark.parametrize("kind", ["arrays", "objects", "mixed"])
@pytest.mark.parametrize("where", ["body", "field"])
def test_deep_json(gateway, depth, kind, where):
    """Deeply nested v2 JSON, as the whole body or as one member of an
    otherwise valid SendEmail: BadRequestException, promptly, no crash."""
    inner = nest(kind, depth)
    if where == "body":
        body = inner
    else:
        base = json.dumps(v2_send_body()).encode()
        body = base[:-1] + b', "EmailTags": ' + inner + b"}"
    t0 = time.monotonic()
    r = send_raw(gateway, "POST", V2_SEND, body, JSON_CT)
    assert time.monotonic() - t0 < 3
    assert_ses_error(r[0], 400, "BadRequestException", "v2")
    assert gateway.fake.requests() == []
    assert_alive(gateway)


# ---------------------------------------------------------------- 5. replay


def test_replay_within_clock_skew_is_accepted(gateway):
    """The same signed bytes sent twice within clock_skew are both served:
    SES has no replay protection inside its 5-minute window either (a
    signature is valid until it expires), so the gateway mirrors it."""
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    hdrs["Connection"] = "close"
    data = request_bytes("POST", target, hdrs, body)
    r1 = responses(raw(gateway, data))
    r2 = responses(raw(gateway, data))
    assert r1[0][0] == 200 and r2[0][0] == 200, (r1, r2)
    recs = gateway.fake.requests()
    assert len(recs) == 2
    assert all(base64.b64decode(x["body_b64"]) == SEND_BODY and x["verified"] for x in recs)


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("offset,words", [(-400, "Signature expired"), (400, "Signature not yet current")])
def test_signature_outside_clock_skew(gateway, api, offset, words):
    """A request signed more than clock_skew (5 min) ago, or ahead: the SES
    "Signature expired" / "not yet current" refusal, nothing forwarded."""
    with harness.signing_clock_offset(offset):
        if api == "v1":
            _, _, err = boto3_call(gateway, "ses", "get_send_quota")
        else:
            _, _, err = boto3_call(gateway, "sesv2", "get_account")
    want = "SignatureDoesNotMatch" if api == "v1" else "InvalidSignatureException"
    assert err is not None and err[:2] == (want, 403), err
    assert words in err[2], err
    assert gateway.fake.requests() == []


def test_replay_with_one_body_byte_changed(gateway):
    """A replay whose body differs in one byte from the signed one: refused."""
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    hdrs["Connection"] = "close"
    assert responses(raw(gateway, request_bytes("POST", target, hdrs, body)))[0][0] == 200
    changed = body.replace(b"Subject.Data=hi", b"Subject.Data=hj")
    assert changed != body and len(changed) == len(body)
    r = responses(raw(gateway, request_bytes("POST", target, hdrs, changed)))
    assert_ses_error(r[0], 403, "SignatureDoesNotMatch")
    assert len(gateway.fake.requests()) == 1


def test_replay_after_clock_skew_is_refused(tmp_path, gateway):
    """With clock_skew = 2s, the same bytes replayed 3.5 s later are refused
    as expired."""
    policies = {"app": {"creds": gateway.creds("app"), "allow_actions": ["*"], "allow_from": ["*"]}}
    gate = harness.Sesgate(tmp_path / "skew", gateway.fake.url, gateway.upstream, policies,
                           extra={"server": {"clock_skew": "2s"}})
    gate.start()
    try:
        view = harness.Gateway(gate.url, gateway.region, False, gateway.fake, gate, gateway.upstream,
                               gateway.clients, tmp_path)
        target, hdrs, body = signed(view, "POST", "/", SEND_BODY, FORM)
        hdrs["Connection"] = "close"
        data = request_bytes("POST", target, hdrs, body)
        assert responses(raw(view, data))[0][0] == 200
        time.sleep(3.5)
        r = responses(raw(view, data))
        assert_ses_error(r[0], 403, "SignatureDoesNotMatch")
        assert b"Signature expired" in r[0][2], r[0][2]
        assert len(gateway.fake.requests()) == 1
        assert_alive(view)
    finally:
        gate.stop()


# ---------------------------------------------------------------- 6. batches and clients


def make_batch(gw, who, tag):
    """A fanned-out SendEmail by client who; its batch id."""
    resp, hdrs, err = boto3_call(gw, "ses", "send_email", creds=gw.creds(who), Source="sender@example.com",
                                 Destination={"ToAddresses": ["%s.%d@example.net" % (tag, i) for i in range(3)]},
                                 Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}})
    assert err is None, err
    batch = hdrs.get("x-sesgate-batch-id")
    assert batch and BATCH_ID_RE.match(batch), hdrs
    return batch


def assert_no_batch_data(body, batch):
    """body is not batch status JSON and does not name the batch."""
    assert batch.encode() not in body, body[:2000]
    assert b'"recipients"' not in body and b'"batch_id"' not in body, body[:2000]


def test_batches_path_not_served_on_ses_port(b):
    """GET /batches/{id} exists on the admin listener only: on the SES port,
    signed or not and by any client, the answer is an SES error."""
    batch = make_batch(b, "alice", "adm")
    settle(b, batch)
    status, st = admin_batch(b, batch)
    assert status == 200 and st["batch_id"] == batch and st["client"] == "alice"
    b.fake.reset()

    status, hdrs, body = harness.http("GET", b.endpoint + "/batches/" + batch)
    assert status == 403 and b"<Code>MissingAuthenticationToken</Code>" in body, body
    assert_no_batch_data(body, batch)
    for who in ("alice", "bob"):
        for path in ("/batches/" + batch, "//batches/" + batch, "/./batches/" + batch):
            r = send_raw(b, "GET", path, creds=b.creds(who))
            st_, h, body = r[0]
            assert st_ >= 400 and h.get("content-type") == "text/xml" and b"<ErrorResponse" in body, r[0]
            assert h.get("x-amzn-requestid")
            assert_no_batch_data(body, batch)
    assert b.fake.requests() == []


@pytest.mark.parametrize("how", ["v2-path", "v1-parameter", "v1-query"])
def test_batch_id_in_ses_request_returns_no_batch_data(b, how):
    """A batch id in an SES path or parameter is just data for SES: whatever
    the answer, it never carries the batch's status."""
    batch = make_batch(b, "alice", "inreq")
    settle(b, batch)
    b.fake.reset()
    if how == "v2-path":
        r = send_raw(b, "GET", "/v2/email/batches/" + batch, creds=b.creds("bob"))
    elif how == "v1-parameter":
        r = send_raw(b, "POST", "/", form([("Action", "GetBatch"), ("Version", "2010-12-01"),
                                            ("BatchId", batch)]), FORM, creds=b.creds("bob"))
    else:
        t, h, _ = signed(b, "GET", "/", creds=b.creds("bob"),
                         query="Action=GetSendQuota&Version=2010-12-01&BatchId=" + batch)
        h["Connection"] = "close"
        r = responses(raw(b, request_bytes("GET", t, h)))
    assert r, "no answer"
    assert "x-sesgate-batch-id" not in r[0][1]
    assert_no_batch_data(r[0][2], batch)
    # Whatever went upstream went as an ordinary signed SES request.
    assert all(x["verified"] and x["access_key"] == b.upstream.access_key for x in b.fake.requests())
    assert_alive(b)


def test_batch_id_header_only_for_its_creator(b):
    """X-Sesgate-Batch-Id answers the send that created the batch and nothing
    else: not bob's single sends or reads, not a request that offers alice's
    id, not the next request on alice's connection; concurrent batches of two
    clients get their own ids."""
    a_batch = make_batch(b, "alice", "own")

    _, hdrs, err = boto3_call(b, "ses", "send_email", creds=b.creds("bob"), Source="sender@example.com",
                              Destination={"ToAddresses": ["single@example.net"]},
                              Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}})
    assert err is None and "x-sesgate-batch-id" not in hdrs, (err, hdrs)
    _, hdrs, err = boto3_call(b, "ses", "get_send_quota", creds=b.creds("bob"))
    assert err is None and "x-sesgate-batch-id" not in hdrs, (err, hdrs)

    offered = dict(FORM, **{"X-Sesgate-Batch-Id": a_batch})
    r = send_raw(b, "POST", "/", SEND_BODY, offered, creds=b.creds("bob"))
    assert r[0][0] == 200 and "x-sesgate-batch-id" not in r[0][1], r[0]
    r = send_raw(b, "POST", "/", form(v1_send_params(to=("o1@example.net", "o2@example.net"))), offered,
                 creds=b.creds("bob"))
    assert r[0][0] == 200 and r[0][1].get("x-sesgate-batch-id") not in (None, a_batch), r[0][1]
    assert admin_batch(b, r[0][1]["x-sesgate-batch-id"])[1]["client"] == "bob"

    # Pipelined on alice's connection: a batch send, then a single send.
    t1, h1, b1 = signed(b, "POST", "/", form(v1_send_params(to=("p1@example.net", "p2@example.net"))), FORM,
                        creds=b.creds("alice"))
    t2, h2, b2 = signed(b, "POST", "/", SEND_BODY, FORM, creds=b.creds("alice"))
    h2["Connection"] = "close"
    r = responses(raw(b, request_bytes("POST", t1, h1, b1) + request_bytes("POST", t2, h2, b2)))
    assert [x[0] for x in r] == [200, 200], r
    assert BATCH_ID_RE.match(r[0][1].get("x-sesgate-batch-id", "")), r[0][1]
    assert "x-sesgate-batch-id" not in r[1][1], r[1][1]

    # Concurrent batches of both clients: each answer names a batch of its own client.
    got = collections.defaultdict(list)
    errors = []

    def worker(who, k):
        try:
            got[who].append(make_batch(b, who, "conc%s%d" % (who, k)))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(who, k)) for k in range(4) for who in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ids = got["alice"] + got["bob"]
    assert len(ids) == 8 and len(set(ids)) == 8 and a_batch not in ids
    for who, batches in got.items():
        for batch in batches:
            status, st = admin_batch(b, batch)
            assert status == 200 and st["client"] == who, (who, st)
    assert_alive(b)
