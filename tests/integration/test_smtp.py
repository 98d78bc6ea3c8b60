"""SES's SMTP interface ([smtp] listen and tls_listen) with Python's smtplib,
against `sesgate run` and the fake SES upstream.

A message sent over SMTP must reach the upstream exactly as the API's raw
fan-out sends it: one copy per To recipient, the Cc and Bcc recipients once
each (on copy 0, Bcc from the envelope), no Bcc header on any copy, every
other header byte for byte (X-SES-CONFIGURATION-SET and X-SES-MESSAGE-TAGS
become the send's ConfigurationSetName and Tags and leave the message), and
the batch complete. The session checks are SES's answers: 530 before
STARTTLS, 535 for a wrong password, and commands sent along with STARTTLS
never answered (CVE-2011-0411). Policy refusals are 5xx; the rate never is
a refusal: a single-recipient message past the rate is queued and answered
250.
"""

import base64
import hashlib
import hmac
import json
import re
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.parse

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

SENDER = "sender@example.com"


def smtp_password(secret, region):
    """SES's documented derivation of the SMTP password from a secret key."""
    def sign(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()
    sig = sign(("AWS4" + secret).encode(), "11111111")
    for part in (region, "ses", "aws4_request", "SendRawEmail"):
        sig = sign(sig, part)
    return base64.b64encode(b"\x04" + sig).decode()


def make_cert(d):
    """A self-signed certificate for 127.0.0.1 and localhost (PEM files)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "smtp.key", "-out", "smtp.pem", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   cwd=str(d), check=True, capture_output=True)
    return d / "smtp.pem", d / "smtp.key"


def start_smtp_gateway(workdir, send=None, smtp=None, redis=None):
    """`sesgate run` with both SMTP listeners, in front of the fake; clients
    "app" (everything) and "limited" (senders *@allowed.example only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = make_cert(workdir)
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(workdir, upstream).start()
    creds = {
        "app": harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret()),
        "limited": harness.Creds("limited", harness.new_access_key("SGLIM"), harness.new_secret()),
    }
    policies = {
        "app": {"creds": creds["app"], "allow_actions": ["*"], "allow_from": ["*"]},
        "limited": {"creds": creds["limited"], "allow_actions": ["SendRawEmail"],
                    "allow_from": ["*@allowed.example"]},
    }
    sport, tport = harness.free_port(), harness.free_port()
    extra = {
        "server": {"tls_cert": str(cert), "tls_key": str(key)},
        "smtp": {"listen": "127.0.0.1:%d" % sport, "tls_listen": "127.0.0.1:%d" % tport,
                 "read_timeout": "3s", "idle_timeout": "20s"},
    }
    if send:
        extra["send"] = send
    extra["smtp"].update(smtp or {})
    if redis:
        extra["redis"] = redis
    gate = harness.RunSesgate(workdir, fake.url, upstream, policies, extra=extra)
    try:
        gate.start()
    except Exception:
        fake.stop()
        raise
    gw = harness.Gateway(gate.url, harness.REGION, False, fake, gate, upstream, creds, workdir)
    gw.smtp_port, gw.smtps_port, gw.cert = sport, tport, cert
    return gw


@pytest.fixture(scope="module")
def sgw(tmp_path_factory):
    gw = start_smtp_gateway(tmp_path_factory.mktemp("smtp"))
    yield gw
    harness.stop_run_gateway(gw)
    log = gw.sesgate.log_text()
    for c in gw.clients.values():
        assert c.secret not in log and smtp_password(c.secret, gw.region) not in log


@pytest.fixture
def gw(sgw):
    sgw.fake.reset()
    return sgw


def tls_context(gw):
    ctx = ssl.create_default_context(cafile=str(gw.cert))
    return ctx


def login(gw, name="app", implicit=False):
    """An smtplib session over STARTTLS (or implicit TLS), authenticated."""
    c = gw.clients[name]
    if implicit:
        s = smtplib.SMTP_SSL("127.0.0.1", gw.smtps_port, context=tls_context(gw), timeout=10)
    else:
        s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
        s.starttls(context=tls_context(gw))
    s.ehlo("client.example")
    s.login(c.access_key, smtp_password(c.secret, gw.region))
    return s


def send(s, mail_from, rcpts, msg):
    """MAIL, RCPT..., DATA by hand: (code, text) of DATA's final reply."""
    code, text = s.mail(mail_from)
    assert code == 250, (code, text)
    for r in rcpts:
        code, text = s.rcpt(r)
        assert code == 250, (r, code, text)
    return s.data(msg)


def form(rec):
    return urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode(), keep_blank_values=True)


def header_block(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def batch_of(text):
    m = re.match(r"^2\.0\.0 Ok sesgate-([0-9a-f-]{36})$", text.decode())
    assert m, text
    return m.group(1)


def batch_status(gw, batch):
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + batch)
    assert status == 200, body
    return json.loads(body)


MESSAGE = (
    "From: Sender <sender@example.com>\r\n"
    "To: Ann <a@example.org>, b@example.org\r\n"
    "Cc: c@example.org\r\n"
    "Bcc: hidden@example.org\r\n"
    "Subject: hello over SMTP\r\n"
    "X-SES-CONFIGURATION-SET: cs-smtp\r\n"
    "X-SES-MESSAGE-TAGS: campaign=spring, team=ops\r\n"
    "Message-ID: <smtp-1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "\r\n"
    "line one\r\n"
    ".leading dot\r\n"
    "last line\r\n"
)


def test_one_message_fans_out_per_recipient(gw):
    rcpts = ["a@example.org", "b@example.org", "c@example.org", "hidden@example.org", "envonly@example.org"]
    s = login(gw)
    code, text = send(s, SENDER, rcpts, MESSAGE.encode())
    s.quit()
    assert code == 250, (code, text)
    batch = batch_of(text)
    recs = harness.wait_records(gw.fake, 2, settle=0.5)
    assert len(recs) == 2, harness._summary(recs)
    orig_head, orig_body = header_block(MESSAGE.encode())
    kept = [h for h in orig_head if not h.lower().startswith((b"x-ses-", b"bcc:"))]
    seen = []
    for rec in recs:
        assert rec["verified"] and rec["status"] == 200, rec
        p = form(rec)
        d = dict(p)
        assert d["Action"] == "SendRawEmail"
        assert d["Source"] == SENDER
        assert d["ConfigurationSetName"] == "cs-smtp"
        tags = {d["Tags.member.%d.Name" % i]: d["Tags.member.%d.Value" % i] for i in (1, 2)}
        assert tags == {"campaign": "spring", "team": "ops"}
        dests = [v for k, v in p if k.startswith("Destinations.member.")]
        seen += dests
        head, body = header_block(base64.b64decode(d["RawMessage.Data"]))
        assert body == orig_body
        assert not any(h.lower().startswith((b"bcc:", b"x-ses-")) for h in head), head
        to = [h for h in head if h.lower().startswith(b"to:")]
        assert len(to) == 1
        first = dests[0] == "a@example.org"
        # byte for byte but the To field (one recipient) and Cc on copy 0 only
        want = [h for h in kept if first or not h.lower().startswith(b"cc:")]
        want = [to[0] if h.lower().startswith(b"to:") else h for h in want]
        assert head == want, (head, want)
        assert to[0] == b"To: " + dests[0].encode()
    # every envelope recipient got exactly one copy
    assert sorted(seen) == sorted(rcpts)
    st = harness.wait_for(lambda: (lambda b: b if b["complete"] else None)(batch_status(gw, batch)), 15)
    assert st and st["complete"] and st["sent"] == 2, st
    status, _, metrics = harness.http("GET", gw.sesgate.admin_url + "/metrics")
    assert 'sesgate_smtp_messages_total{client="app",outcome="accepted"}' in metrics.decode()
    line = [ln for ln in gw.sesgate.log_text().splitlines() if "smtp_message" in ln and batch in ln]
    assert line and "recipients=5" in line[-1] and "outcome=accepted" in line[-1], line
    assert "@" not in line[-1], line


def test_implicit_tls_single_recipient(gw):
    s = login(gw, implicit=True)
    msg = harness.raw_message(to="one@example.org")
    code, text = send(s, SENDER, ["one@example.org"], msg)
    s.quit()
    assert code == 250, (code, text)
    recs = harness.wait_records(gw.fake, 1, settle=0.3)
    assert len(recs) == 1
    d = dict(form(recs[0]))
    assert d["Destinations.member.1"] == "one@example.org"
    assert base64.b64decode(d["RawMessage.Data"]) == msg


def test_ehlo_before_and_after_tls(gw):
    s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
    code, banner = s.ehlo("client.example")
    assert code == 250
    assert s.has_extn("starttls") and not s.has_extn("auth")
    for ext in ("size", "8bitmime", "pipelining", "enhancedstatuscodes", "smtputf8"):
        assert s.has_extn(ext), ext
    assert int(s.esmtp_features["size"]) == 1024 * 1024  # [server] max_body = 1m
    s.starttls(context=tls_context(gw))
    s.ehlo("client.example")
    assert s.has_extn("auth") and not s.has_extn("starttls")
    assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
    s.quit()


def test_auth_and_mail_before_starttls_530(gw):
    s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
    s.ehlo("client.example")
    c = gw.clients["app"]
    token = base64.b64encode(b"\0" + c.access_key.encode() + b"\0" + smtp_password(c.secret, gw.region).encode())
    code, text = s.docmd("AUTH", "PLAIN " + token.decode())
    assert code == 530 and b"Must issue a STARTTLS command first" in text, (code, text)
    code, text = s.mail(SENDER)
    assert code == 530 and b"Must issue a STARTTLS command first" in text, (code, text)
    s.quit()
    assert harness.upstream_records(gw) == []


def test_wrong_password_535(gw):
    c = gw.clients["app"]
    for user, pw in ((c.access_key, smtp_password(c.secret + "x", gw.region)),
                     (c.access_key, smtp_password(c.secret, "eu-west-1")),
                     ("SGNOSUCHKEY", smtp_password(c.secret, gw.region))):
        s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
        s.starttls(context=tls_context(gw))
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login(user, pw)
        assert ei.value.smtp_code == 535 and b"Authentication Credentials Invalid" in ei.value.smtp_error
        # and not authenticated afterwards
        code, text = s.mail(SENDER)
        assert code == 530, (code, text)
        s.quit()


def test_auth_login_works(gw):
    c = gw.clients["app"]
    s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
    s.starttls(context=tls_context(gw))
    s.ehlo("client.example")
    s.user, s.password = c.access_key, smtp_password(c.secret, gw.region)
    code, text = s.auth("LOGIN", s.auth_login)
    assert code == 235, (code, text)
    s.quit()


def read_reply(sock, timeout=5.0):
    """One complete SMTP reply (all its lines) from sock."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and re.match(rb"^\d{3} ", lines[-2]):
            return data


def test_starttls_injection_discarded(gw):
    raw = socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=5)
    assert read_reply(raw).startswith(b"220 ")
    raw.sendall(b"EHLO client.example\r\n")
    assert b"STARTTLS" in read_reply(raw)
    # the injected RSET travels in the same write as STARTTLS, in plain text
    raw.sendall(b"STARTTLS\r\nRSET\r\n")
    assert read_reply(raw).startswith(b"220 ")
    tls = tls_context(gw).wrap_socket(raw, server_hostname="localhost")
    # nothing may be answered for the RSET: it never came over TLS
    tls.settimeout(1.0)
    with pytest.raises(socket.timeout):
        got = tls.recv(4096)
        pytest.fail("answered after the handshake: %r" % got)
    tls.sendall(b"NOOP\r\n")
    reply = read_reply(tls)
    assert reply.startswith(b"250 ") and reply.count(b"\r\n") == 1, reply
    # and the session started over: AUTH is now offered, and EHLO is needed
    tls.sendall(b"EHLO client.example\r\n")
    assert b"AUTH PLAIN LOGIN" in read_reply(tls)
    tls.sendall(b"QUIT\r\n")
    assert read_reply(tls).startswith(b"221")
    tls.close()
    harness.wait_log(gw.sesgate, r"smtp_starttls_discarded .*bytes=6")


def test_allow_from_refused_554(gw):
    s = login(gw, "limited")
    # MAIL FROM outside allow_from
    code, text = send(s, "x@other.example", ["r@example.org"],
                      harness.raw_message(from_="ok@allowed.example", to="r@example.org"))
    assert code == 554 and text.startswith(b"5.7.1 "), (code, text)
    assert b"not authorized to send from 'x@other.example'" in text
    # the From header outside allow_from
    code, text = send(s, "ok@allowed.example", ["r@example.org"],
                      harness.raw_message(from_="boss@other.example", to="r@example.org"))
    assert code == 554 and b"boss@other.example" in text, (code, text)
    # allowed: accepted
    code, text = send(s, "ok@allowed.example", ["r@example.org"],
                      harness.raw_message(from_="ok@allowed.example", to="r@example.org"))
    assert code == 250, (code, text)
    s.quit()
    recs = harness.wait_records(gw.fake, 1, settle=0.5)
    assert len(recs) == 1 and dict(form(recs[0]))["Source"] == "ok@allowed.example"


def test_suppressed_only_550(gw):
    cmd = [str(harness.sesgate_bin()), "suppression", "add", "gone@example.org", "--reason", "bounce",
           "-c", str(gw.sesgate.config_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=harness.clean_env(gw.sesgate.env),
                       cwd=str(gw.workdir))
    assert r.returncode == 0, r.stderr
    s = login(gw)
    code, text = send(s, SENDER, ["gone@example.org"], harness.raw_message(to="gone@example.org"))
    assert code == 550 and text.startswith(b"5.1.1 "), (code, text)
    assert b"suppression list" in text
    # the session goes on
    code, text = s.noop()
    assert code == 250
    s.quit()
    time.sleep(0.5)
    assert harness.upstream_records(gw) == []


def test_bare_lf_message_refused(gw):
    s = login(gw)
    s.mail(SENDER)
    s.rcpt("r@example.org")
    code, _ = s.docmd("DATA")
    assert code == 354
    s.send(b"From: sender@example.com\r\nTo: r@example.org\r\nSubject: x\r\n\r\nbare\nline\r\n.\r\n")
    code, text = s.getreply()
    assert code == 554 and text.startswith(b"5.6.0") and b"bare CR or LF" in text, (code, text)
    s.quit()
    time.sleep(0.3)
    assert harness.upstream_records(gw) == []


def test_single_recipient_past_the_rate_is_queued(tmp_path):
    gw = start_smtp_gateway(tmp_path / "rate", send={"rate": "1", "max_wait": "100ms"})
    try:
        s = login(gw)
        n = 5
        t0 = time.monotonic()
        for i in range(n):
            msg = harness.raw_message(to="r%d@example.org" % i, subject="rate %d" % i)
            code, text = send(s, SENDER, ["r%d@example.org" % i], msg)
            assert code == 250, (i, code, text)
            batch_of(text)
        took = time.monotonic() - t0
        s.quit()
        # answered as soon as queued, not at the rate's pace
        assert took < n - 1.5, took
        recs = harness.wait_records(gw.fake, n, timeout=30, settle=0.5)
        got = sorted(dict(form(r))["Destinations.member.1"] for r in recs)
        assert got == ["r%d@example.org" % i for i in range(n)]
    finally:
        harness.stop_run_gateway(gw)


def test_message_not_queued_waits_for_its_turn(tmp_path):
    """With fan-out off a message goes to SES whole, at its turn of the
    rate: past max_wait it still waits (the SMTP client waits for the
    answer to its data) and is answered 250, never 454."""
    gw = start_smtp_gateway(tmp_path / "wait", send={"rate": "1", "max_wait": "100ms", "fanout": "off"})
    try:
        s = login(gw)
        n = 4
        t0 = time.monotonic()
        for i in range(n):
            msg = harness.raw_message(to="w%d@example.org" % i, subject="wait %d" % i)
            code, text = send(s, SENDER, ["w%d@example.org" % i], msg)
            assert code == 250, (i, code, text)
        took = time.monotonic() - t0
        s.quit()
        # sent at the rate (1/s) one after another: the last one waited
        # far longer than max_wait for its turn
        assert took >= n - 1 - 0.5, took
        recs = harness.wait_records(gw.fake, n, timeout=30, settle=0.5)
        got = sorted(dict(form(r))["Destinations.member.1"] for r in recs)
        assert got == ["w%d@example.org" % i for i in range(n)]
        assert "Throttling" not in gw.sesgate.log_text()
    finally:
        harness.stop_run_gateway(gw)


def tls_session(gw, name="app"):
    """A raw TLS socket after STARTTLS, EHLO and AUTH PLAIN."""
    c = gw.clients[name]
    raw = socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=5)
    assert read_reply(raw).startswith(b"220 ")
    raw.sendall(b"EHLO client.example\r\n")
    assert read_reply(raw).startswith(b"250")
    raw.sendall(b"STARTTLS\r\n")
    assert read_reply(raw).startswith(b"220 ")
    tls = tls_context(gw).wrap_socket(raw, server_hostname="localhost")
    token = base64.b64encode(b"\0" + c.access_key.encode() + b"\0" + smtp_password(c.secret, gw.region).encode())
    tls.sendall(b"EHLO client.example\r\n")
    assert b"AUTH PLAIN LOGIN" in read_reply(tls)
    tls.sendall(b"AUTH PLAIN " + token + b"\r\n")
    assert read_reply(tls).startswith(b"235 ")
    return tls


def read_lines(sock, n, timeout=10.0):
    """n complete reply lines from sock."""
    sock.settimeout(timeout)
    data = b""
    while data.count(b"\r\n") < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[:n]


def test_pipelining_replies_in_order(gw):
    tls = tls_session(gw)
    msg = harness.raw_message(to="p@example.org", subject="pipelined")
    # the whole transaction and the next commands in two writes
    tls.sendall(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<p@example.org>\r\nRCPT TO:<q@example.org>\r\nDATA\r\n")
    got = read_lines(tls, 4)
    assert [g[:3] for g in got] == [b"250", b"250", b"250", b"354"], got
    tls.sendall(msg + b".\r\nNOOP\r\nRSET\r\nQUIT\r\n")
    got = read_lines(tls, 4)
    assert got[0].startswith(b"250 2.0.0 Ok sesgate-"), got
    assert [g[:3] for g in got[1:]] == [b"250", b"250", b"221"], got
    tls.close()
    recs = harness.wait_records(gw.fake, 1, settle=0.5)
    assert len(recs) == 1
    d = dict(form(recs[0]))
    assert sorted(v for k, v in form(recs[0]) if k.startswith("Destinations.")) == ["p@example.org", "q@example.org"]
    assert base64.b64decode(d["RawMessage.Data"]) == msg


def test_slow_data_cut_at_read_timeout(gw):
    tls = tls_session(gw)
    tls.sendall(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<slow@example.org>\r\nDATA\r\n")
    assert [g[:3] for g in read_lines(tls, 3)] == [b"250", b"250", b"354"]
    # a byte every 0.7 s: each read is on time, the whole DATA is not (3 s)
    t0 = time.monotonic()
    reply = b""
    tls.settimeout(0.7)
    for i in range(14):
        try:
            tls.sendall(b"x")
        except OSError:
            break
        try:
            reply += tls.recv(4096)
        except socket.timeout:
            continue
        if b"\r\n" in reply or not reply:
            break
    took = time.monotonic() - t0
    assert reply.startswith(b"421 4.4.2"), reply
    assert 2.0 < took < 6.0, took
    tls.close()
    time.sleep(0.3)
    assert harness.upstream_records(gw) == []


def test_certificate_reloaded_on_sighup(tmp_path):
    gw = start_smtp_gateway(tmp_path / "reload")
    try:
        def served():
            s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            s.starttls(context=ctx)
            der = s.sock.getpeercert(binary_form=True)
            s.quit()
            return der
        before = served()
        old = gw.cert.read_bytes()
        make_cert(tmp_path / "reload")  # new key and certificate over the same files
        assert gw.cert.read_bytes() != old
        gw.sesgate.proc.send_signal(1)  # SIGHUP
        harness.wait_log(gw.sesgate, r"event=tls_reloaded listener=smtp")
        after = served()
        assert after != before
        assert after == ssl.PEM_cert_to_DER_cert(gw.cert.read_text())
    finally:
        harness.stop_run_gateway(gw)


def test_max_connections_refused(tmp_path):
    gw = start_smtp_gateway(tmp_path / "conns", smtp={"max_connections": "2"})
    try:
        held = [socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=5) for _ in range(2)]
        for h in held:
            assert read_reply(h).startswith(b"220 ")
        extra = socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=5)
        assert read_reply(extra).startswith(b"421 4.7.0"), "a third connection was served"
        extra.close()
        held[0].sendall(b"QUIT\r\n")
        assert read_reply(held[0]).startswith(b"221")
        held[0].close()
        # a place is free again
        again = harness.wait_for(lambda: (lambda s: s if read_reply(s).startswith(b"220 ") else s.close())(
            socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=5)), 5)
        assert again, "no connection served after one closed"
        again.close()
        held[1].close()
        status, _, metrics = harness.http("GET", gw.sesgate.admin_url + "/metrics")
        assert 'sesgate_smtp_connections_refused_total{reason="max_connections"}' in metrics.decode()
    finally:
        harness.stop_run_gateway(gw)
