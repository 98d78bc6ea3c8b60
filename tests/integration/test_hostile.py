"""Hostile and broken input at the HTTP and SES layers: every case gets a
clear SES-shaped error or a timely close, never a crash, a hang or a request
forwarded unauthenticated. Also: upstream failures, and the admin listener."""

import base64
import http.client
import json
import re
import socket
import time
import urllib.parse

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate


def signed(gw, method, path, body=b"", headers=None, creds=None, query=""):
    """A request signed with botocore for creds (default: the app client):
    returns (path?query, headers dict, body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = creds or gw.creds("app")
    url = gw.endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(creds.access_key, creds.secret), "ses", gw.region).add_auth(req)
    target = path + ("?" + query if query else "")
    out = dict(req.headers.items())
    out["Host"] = urllib.parse.urlsplit(gw.endpoint).netloc
    return target, out, body


def raw(gw, data, timeout=5.0, pause=None, port=None):
    """Send raw bytes to sesgate; return everything read until close or timeout."""
    port = port or gw.sesgate.port
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if pause:
            time.sleep(pause)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                return out + b"<<timeout>>"
            except ConnectionResetError:
                return out + b"<<reset>>"
            if not d:
                return out
            out += d
    finally:
        s.close()


def request_bytes(method, target, headers, body=b""):
    """Serialize one HTTP/1.1 request (Content-Length added for a body)."""
    headers = dict(headers)
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["Content-Length"] = str(len(body))
    lines = ["%s %s HTTP/1.1" % (method, target)] + ["%s: %s" % (k, v) for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def responses(data):
    """Split raw bytes into (status, headers, body) responses."""
    out = []
    while data.startswith(b"HTTP/1.1 "):
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


def assert_ses_error(resp, status, code, api="v1"):
    """resp is an SES-shaped error with this status and code."""
    st, hdrs, body = resp
    assert st == status, (st, body)
    assert re.match(r"^[0-9a-f-]{36}$", hdrs.get("x-amzn-requestid", "")), hdrs
    assert hdrs.get("date", "").endswith("GMT"), hdrs
    if api == "v1":
        assert hdrs["content-type"] == "text/xml"
        assert ("<Code>%s</Code>" % code).encode() in body, body
        assert b"<RequestId>" in body
    else:
        assert hdrs["content-type"] == "application/json"
        assert hdrs["x-amzn-errortype"] == code
        assert "message" in json.loads(body)


SEND_BODY = (b"Action=SendEmail&Version=2010-12-01&Source=a%40example.com"
             b"&Destination.ToAddresses.member.1=b%40example.com"
             b"&Message.Subject.Data=hi&Message.Body.Text.Data=x")
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_signed_raw_request_passes(gateway):
    """The raw-socket helpers themselves: a signed request goes through."""
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    r = responses(raw(gateway, request_bytes("POST", target, hdrs, body)))
    assert r and r[0][0] == 200, r
    assert b"<MessageId>" in r[0][2]
    assert len(gateway.fake.requests()) == 1


@pytest.mark.parametrize("path,api", [("/", "v1"), ("/v2/email/outbound-emails", "v2")])
def test_body_over_max_body(gateway, path, api):
    """A body over max_body (1 MiB here) is refused with a 413 before it is read."""
    big = b"a" * (2 << 20)
    data = request_bytes("POST", path, {"Host": "x", "Content-Length": str(len(big))})
    r = responses(raw(gateway, data + big[:65536]))
    assert_ses_error(r[0], 413, "RequestEntityTooLarge" if api == "v1" else "RequestEntityTooLargeException", api)
    assert r[0][1].get("connection") == "close"
    assert gateway.fake.requests() == []


def test_expect_continue_too_large(gateway):
    """Expect: 100-continue with a too-large Content-Length: 413, no 100."""
    data = request_bytes("POST", "/", {"Host": "x", "Content-Length": str(3 << 20), "Expect": "100-continue"})
    out = raw(gateway, data)
    assert not out.startswith(b"HTTP/1.1 100")
    assert_ses_error(responses(out)[0], 413, "RequestEntityTooLarge")


def test_expect_continue_accepted(gateway):
    """Expect: 100-continue is answered, then the signed request goes through."""
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    hdrs["Expect"] = "100-continue"
    hdrs["Connection"] = "close"
    hdrs["Content-Length"] = str(len(body))
    s = socket.create_connection(("127.0.0.1", gateway.sesgate.port), timeout=5)
    s.sendall(request_bytes("POST", target, hdrs))
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        d = s.recv(1)
        assert d, interim
        interim += d
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    r = responses(out)
    assert r and r[0][0] == 200 and b"<MessageId>" in r[0][2], out


@pytest.mark.parametrize("data", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
], ids=["cl-and-te", "two-cl", "te-not-chunked", "garbage", "bad-header-line", "nul-in-header"])
def test_malformed_http(gateway, data):
    """Smuggling attempts and malformed HTTP: a 400 SES error and a close."""
    out = raw(gateway, data)
    r = responses(out)
    assert r, out
    assert_ses_error(r[0], 400, "InvalidParameterValue")
    assert r[0][1].get("connection") == "close"
    assert gateway.fake.requests() == []


def test_oversized_and_too_many_headers(gateway):
    """Headers over max_header_size or more than 100 of them: refused."""
    big = request_bytes("GET", "/", {"Host": "x", "X-A": "a" * 100000})
    assert_ses_error(responses(raw(gateway, big))[0], 400, "InvalidParameterValue")
    many = request_bytes("GET", "/", dict([("Host", "x")] + [("X-%d" % i, "1") for i in range(200)]))
    assert_ses_error(responses(raw(gateway, many))[0], 400, "InvalidParameterValue")


def test_slow_client_times_out(gateway):
    """A request that does not arrive within read_timeout (2 s here) is
    answered with an error and closed, not held forever."""
    t0 = time.monotonic()
    out = raw(gateway, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab", timeout=10)
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed < 6, elapsed
    assert_ses_error(responses(out)[0], 400, "InvalidParameterValue")


def test_slowloris_drip(gateway):
    """Dripping a header byte by byte does not extend the read deadline."""
    s = socket.create_connection(("127.0.0.1", gateway.sesgate.port), timeout=10)
    t0 = time.monotonic()
    closed = False
    try:
        s.sendall(b"GET / HTTP/1.1\r\n")
        for _ in range(40):
            time.sleep(0.25)
            s.sendall(b"X-a: b\r\n")
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        # sesgate may answer before it closes: read to the end of the stream
        # (a timeout means the connection is still open).
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass
            closed = True
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
    s.close()
    assert closed and time.monotonic() - t0 < 8


def test_idle_connections(gateway):
    """Thousands of idle connections do not stop sesgate from serving others."""
    socks = []
    try:
        for _ in range(2000):
            socks.append(socket.create_connection(("127.0.0.1", gateway.sesgate.port), timeout=5))
        target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
        r = responses(raw(gateway, request_bytes("POST", target, hdrs, body)))
        assert r[0][0] == 200
        status, _, metrics = harness.http("GET", gateway.sesgate.admin_url + "/metrics")
        m = re.search(rb"^sesgate_connections (\d+)$", metrics, re.M)
        assert m and int(m.group(1)) >= 2000
    finally:
        for s in socks:
            s.close()


def test_pipelined_requests(gateway):
    """Pipelined requests on one connection are answered in order."""
    t1, h1, b1 = signed(gateway, "POST", "/", SEND_BODY, FORM)
    t2, h2, b2 = signed(gateway, "GET", "/v2/email/account")
    data = request_bytes("POST", t1, h1, b1) + request_bytes("GET", t2, h2)
    r = responses(raw(gateway, data, timeout=3))
    assert [x[0] for x in r] == [200, 200]
    assert b"<MessageId>" in r[0][2] and b"SendQuota" in r[1][2]


@pytest.mark.parametrize("body,code", [
    (b"Action=SendEmail&Version=2010-12-01&Source=a%4", "MalformedQueryString"),
    (b"Action=SendEmail&Version=2010-12-01&Source=a%ZZb", "MalformedQueryString"),
    (b"Action=SendEmail&Version=2010-12-01&Source=a&Source=b", "InvalidQueryParameter"),
    (b"Action=SendEmail&Version=2010-12-01&Source=%FF%FE", "InvalidParameterValue"),
    (b"Version=2010-12-01", "MissingAction"),
    (b"Action=GetSendQuota&Version=2009-10-16", "InvalidAction"),
    (b"Action=SendRawEmail&Version=2010-12-01&RawMessage.Data=%21%21%21", "InvalidParameterValue"),
], ids=["truncated-escape", "bad-escape", "repeated", "bad-utf8", "no-action", "bad-version",
        "bad-base64"])
def test_bad_v1_parameters(gateway, body, code):
    """Broken v1 parameters from an authenticated client: the SES error, nothing forwarded."""
    status = 404 if code == "MalformedQueryString" else 400
    target, hdrs, b = signed(gateway, "POST", "/", body, FORM)
    r = responses(raw(gateway, request_bytes("POST", target, hdrs, b)))
    assert_ses_error(r[0], status, code)
    assert gateway.fake.requests() == []


@pytest.mark.parametrize("body", [
    b"{not json",
    b"[1,2,3]",
    b'{"Content": {"Simple": {}}, "Content": {}}',
    b"[" * 100000 + b"]" * 100000,
    b'{"FromEmailAddress": "a@example.com", "Content": {"Raw": {"Data": "!!!"}}}',
], ids=["not-json", "not-object", "duplicate-key", "deep-nesting", "bad-base64"])
def test_bad_v2_json(gateway, body):
    """Broken v2 JSON: BadRequestException, nothing forwarded."""
    target, hdrs, b = signed(gateway, "POST", "/v2/email/outbound-emails", body,
                             {"Content-Type": "application/json"})
    r = responses(raw(gateway, request_bytes("POST", target, hdrs, b)))
    assert_ses_error(r[0], 400, "BadRequestException", "v2")
    assert gateway.fake.requests() == []


def test_unknown_actions_are_forwarded(gateway):
    """Actions sesgate does not know (a new SES action, a v2 path not in its
    table) are forwarded as they are, for fully unrestricted clients only."""
    t1, h1, b1 = signed(gateway, "POST", "/", b"Action=SomeFutureAction&Version=2010-12-01&X=1", FORM)
    t2, h2, _ = signed(gateway, "GET", "/v2/email/some-future-thing", query="a=1")
    r = responses(raw(gateway, request_bytes("POST", t1, h1, b1) + request_bytes("GET", t2, h2), timeout=3))
    assert len(r) == 2
    fwd = gateway.fake.requests()
    assert [(x["method"], x["path"]) for x in fwd] == [("POST", "/"), ("GET", "/v2/email/some-future-thing")]
    assert base64.b64decode(fwd[0]["body_b64"]) == b1 and fwd[1]["query"] == "a=1"
    assert all(x["verified"] for x in fwd)
    gateway.fake.reset()
    for name in ("senders", "limited"):
        t1, h1, b1 = signed(gateway, "POST", "/", b"Action=sendemail&Version=2010-12-01&Source=x%40evil.example",
                            FORM, creds=gateway.creds(name))
        t2, h2, b2 = signed(gateway, "POST", "/v2/email/outbound-emails/", b'{"FromEmailAddress":"x@evil.example"}',
                            {"Content-Type": "application/json"}, creds=gateway.creds(name))
        r = responses(raw(gateway, request_bytes("POST", t1, h1, b1) + request_bytes("POST", t2, h2, b2), timeout=3))
        assert_ses_error(r[0], 403, "AccessDenied")
        assert_ses_error(r[1], 403, "AccessDeniedException", "v2")
    assert gateway.fake.requests() == []


def test_presigned_get(gateway):
    """A presigned GET (query-string signature) is accepted and forwarded without
    its X-Amz-* parameters; one with a wrong signature is refused."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = gateway.creds("app")
    req = AWSRequest(method="GET", url=gateway.endpoint + "/?Action=GetSendQuota&Version=2010-12-01")
    SigV4QueryAuth(Credentials(creds.access_key, creds.secret), "ses", gateway.region, expires=60).add_auth(req)
    status, _, body = harness.http("GET", req.url)
    assert status == 200 and b"<Max24HourSend>" in body
    fwd = gateway.fake.requests()
    assert len(fwd) == 1 and "X-Amz" not in fwd[0]["query"] and "Action=GetSendQuota" in fwd[0]["query"]
    bad = re.sub(r"X-Amz-Signature=[0-9a-f]{4}", "X-Amz-Signature=0000", req.url)
    status, hdrs, body = harness.http("GET", bad)
    assert status == 403 and b"SignatureDoesNotMatch" in body


@pytest.mark.parametrize("header", ["X-Amzn-Authorization", "Authorization"])
def test_legacy_and_foreign_schemes(gateway, header):
    """AWS3-HTTPS and SigV4a are refused, never forwarded."""
    value = ("AWS3-HTTPS AWSAccessKeyId=%s, Algorithm=HmacSHA256, Signature=abc" % gateway.creds("app").access_key
             if header == "X-Amzn-Authorization" else
             "AWS4-ECDSA-P256-SHA256 Credential=%s/20260101/ses/aws4_request, SignedHeaders=host, Signature=ab"
             % gateway.creds("app").access_key)
    data = request_bytes("POST", "/", {"Host": "x", header: value, "Content-Length": str(len(SEND_BODY))}, SEND_BODY)
    r = responses(raw(gateway, data))
    assert r[0][0] in (400, 403)
    assert gateway.fake.requests() == []


def test_session_token_from_client_refused(gateway):
    """A client key with a session token is not one of ours: refused."""
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, dict(FORM, **{"X-Amz-Security-Token": "tok"}))
    assert_ses_error(responses(raw(gateway, request_bytes("POST", target, hdrs, body)))[0], 403,
                     "InvalidClientTokenId")


def test_content_sha256_mismatch(gateway):
    """x-amz-content-sha256 that does not match the body: refused."""
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY,
                                dict(FORM, **{"X-Amz-Content-Sha256": "0" * 64}))
    assert_ses_error(responses(raw(gateway, request_bytes("POST", target, hdrs, body)))[0], 403,
                     "SignatureDoesNotMatch")
    assert gateway.fake.requests() == []


def test_wrong_region_scope(gateway):
    """A signature scoped to another region is refused."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = gateway.creds("app")
    req = AWSRequest(method="POST", url=gateway.endpoint + "/", data=SEND_BODY, headers=dict(FORM))
    SigV4Auth(Credentials(creds.access_key, creds.secret), "ses", "eu-west-1").add_auth(req)
    hdrs = dict(req.headers.items(), Host=urllib.parse.urlsplit(gateway.endpoint).netloc)
    r = responses(raw(gateway, request_bytes("POST", "/", hdrs, SEND_BODY)))
    assert_ses_error(r[0], 403, "SignatureDoesNotMatch")


def test_upstream_failures_are_ses_errors(gateway):
    """Upstream 5xx is relayed; a dropped connection becomes a 503 SES error."""
    gateway.fake.control(mode="status", status=500, code="InternalFailure", message="boom", count=1)
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    r = responses(raw(gateway, request_bytes("POST", target, hdrs, body)))
    assert r[0][0] == 500 and b"InternalFailure" in r[0][2]
    # sesgate does not let libcurl resend on its own: one dropped connection
    # is one SES-shaped 503 (the SDK decides whether to send again).
    gateway.fake.control(drop=True, count=1)
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    r = responses(raw(gateway, request_bytes("POST", target, hdrs, body)))
    assert_ses_error(r[0], 503, "ServiceUnavailable")


def test_upstream_unreachable_and_slow(tmp_path, gateway):
    """An unreachable upstream gives a prompt 503, a slow one a 504 after the
    upstream timeout; /readyz reports the unreachable upstream."""
    gw = gateway
    closed_port = harness.free_port()
    policies = {"app": {"creds": gw.creds("app"), "allow_actions": ["*"], "allow_from": ["*"]}}
    dead = harness.Sesgate(tmp_path / "dead", "http://127.0.0.1:%d" % closed_port, gw.upstream, policies)
    dead.start()
    try:
        view = harness.Gateway(dead.url, gw.region, False, gw.fake, dead, gw.upstream, gw.clients, tmp_path)
        target, hdrs, body = signed(view, "POST", "/", SEND_BODY, FORM)
        hdrs["Connection"] = "close"
        t0 = time.monotonic()
        r = responses(raw(view, request_bytes("POST", target, hdrs, body), port=dead.port))
        assert time.monotonic() - t0 < 5
        assert_ses_error(r[0], 503, "ServiceUnavailable")
        status, _, _ = harness.http("GET", dead.admin_url + "/readyz")
        assert status == 503
    finally:
        dead.stop()

    slow = harness.Sesgate(tmp_path / "slow", gw.fake.url, gw.upstream, policies,
                           extra={"upstream": {"timeout": "1s"}})
    slow.start()
    try:
        gw.fake.control(delay_ms=3000, count=1)
        view = harness.Gateway(slow.url, gw.region, False, gw.fake, slow, gw.upstream, gw.clients, tmp_path)
        target, hdrs, body = signed(view, "POST", "/v2/email/outbound-emails",
                                    b'{"FromEmailAddress":"a@example.com","Destination":{"ToAddresses":["b@example.com"]},'
                                    b'"Content":{"Simple":{"Subject":{"Data":"s"},"Body":{"Text":{"Data":"t"}}}}}',
                                    {"Content-Type": "application/json"})
        hdrs["Connection"] = "close"
        t0 = time.monotonic()
        r = responses(raw(view, request_bytes("POST", target, hdrs, body), port=slow.port))
        assert 0.8 < time.monotonic() - t0 < 5
        assert_ses_error(r[0], 504, "RequestTimeoutException", "v2")
    finally:
        slow.stop()


def test_admin_endpoints(gateway):
    """/healthz, /readyz and /metrics answer; metrics count requests and refusals."""
    base = gateway.sesgate.admin_url
    assert harness.http("GET", base + "/healthz")[0] == 200
    assert harness.http("GET", base + "/readyz")[0] == 200
    harness.http("GET", gateway.endpoint + "/v2/email/account")  # unauthenticated
    status, hdrs, body = harness.http("GET", base + "/metrics")
    assert status == 200 and hdrs["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert re.search(r'^sesgate_auth_failures_total\{reason="missing_auth"\} [1-9]', text, re.M)
    assert re.search(r'^sesgate_requests_total\{action="[A-Za-z]+",status="200"\} [1-9]', text, re.M)
    assert re.search(r'^sesgate_upstream_seconds_bucket\{outcome="ok",le="\+Inf"\} [1-9]', text, re.M)
    assert "sesgate_inflight_requests" in text
    assert harness.http("GET", base + "/nope")[0] == 404


def test_no_crash_after_all_this(gateway):
    """After every hostile case above, the same sesgate process still serves."""
    assert gateway.sesgate.proc.poll() is None
    target, hdrs, body = signed(gateway, "POST", "/", SEND_BODY, FORM)
    assert responses(raw(gateway, request_bytes("POST", target, hdrs, body)))[0][0] == 200


def test_connection_cap_and_idle_timeout(tmp_path, gateway):
    """At max_connections sesgate stops accepting (the kernel queues the
    rest) and serves them once others close; idle keep-alive connections are
    closed after idle_timeout. read_timeout (the deadline for a request
    to arrive) is set far beyond idle_timeout, and the idle connections have
    each been answered once, so only the after-response idle timer can
    close them in time."""
    policies = {"app": {"creds": gateway.creds("app"), "allow_actions": ["*"], "allow_from": ["*"]}}
    gate = harness.Sesgate(tmp_path / "cap", gateway.fake.url, gateway.upstream, policies,
                           extra={"server": {"max_connections": "20", "idle_timeout": "5s",
                                             "read_timeout": "30s"}})
    gate.start()
    try:
        view = harness.Gateway(gate.url, gateway.region, False, gateway.fake, gate, gateway.upstream,
                               gateway.clients, tmp_path)
        held = [socket.create_connection(("127.0.0.1", gate.port), timeout=5) for _ in range(20)]
        target, hdrs, body = signed(view, "POST", "/", SEND_BODY, FORM)
        hdrs["Connection"] = "close"
        late = socket.create_connection(("127.0.0.1", gate.port), timeout=5)
        late.sendall(request_bytes("POST", target, hdrs, body))
        late.settimeout(1.0)
        with pytest.raises(socket.timeout):
            late.recv(100)  # not accepted yet: over the cap
        for s in held[:5]:
            s.close()
        late.settimeout(5.0)
        out = b""
        while True:
            d = late.recv(65536)
            if not d:
                break
            out += d
        late.close()
        assert responses(out)[0][0] == 200
        # One keep-alive request on each remaining connection, answered.
        for s in held[5:]:
            target, hdrs, body = signed(view, "POST", "/", SEND_BODY, FORM)
            s.sendall(request_bytes("POST", target, hdrs, body))
            resp = http.client.HTTPResponse(s)
            resp.begin()
            resp.read()
            assert resp.status == 200 and not resp.will_close, (resp.status, resp.getheaders())
        answered = time.monotonic()
        # Idle after their answer: closed by sesgate after idle_timeout
        # (5 s: also the time a fresh connection may wait for its first
        # request, which the 15 sequential requests above must fit in on a
        # loaded machine), long before read_timeout (30 s).
        for s in held[5:]:
            s.settimeout(max(0.1, answered + 8.0 - time.monotonic()))
            assert s.recv(10) == b""
            s.close()
        assert time.monotonic() - answered < 8.0
    finally:
        gate.stop()


def test_sigterm_finishes_requests_in_flight(tmp_path, gateway):
    """SIGTERM stops accepting but lets a request in flight get its answer."""
    import signal as sig
    import threading

    policies = {"app": {"creds": gateway.creds("app"), "allow_actions": ["*"], "allow_from": ["*"]}}
    gate = harness.Sesgate(tmp_path / "term", gateway.fake.url, gateway.upstream, policies)
    gate.start()
    view = harness.Gateway(gate.url, gateway.region, False, gateway.fake, gate, gateway.upstream,
                           gateway.clients, tmp_path)
    gateway.fake.control(delay_ms=1500, count=1)
    target, hdrs, body = signed(view, "POST", "/", SEND_BODY, FORM)
    hdrs["Connection"] = "close"
    result = {}
    t = threading.Thread(target=lambda: result.update(out=raw(view, request_bytes("POST", target, hdrs, body),
                                                              timeout=10, port=gate.port)))
    t.start()
    time.sleep(0.5)
    gate.proc.send_signal(sig.SIGTERM)
    t.join(10)
    gate.proc.wait(timeout=15)
    r = responses(result["out"])
    assert r and r[0][0] == 200 and b"<MessageId>" in r[0][2]
    assert gate.proc.returncode == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", gate.port), timeout=1)
