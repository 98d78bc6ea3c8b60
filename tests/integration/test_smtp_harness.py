"""The SMTP test harness on its own (smtp_clients.py), without sesgate:
each real client and a private Postfix relay, configured as for SES SMTP,
deliver to the tests' own SMTP server (SmtpSink: STARTTLS or implicit TLS,
AUTH required after TLS), which records what arrived. What the SMTP
listener's tests assert on is thereby known to come from the clients as
configured: the envelope, the bytes, TLS and the authenticated user."""

import base64

import pytest

import harness
import smtp_clients as sc
from test_tls import make_pki

USER = "AKIASMTPHARNESSTEST0"
SENDER = "app@example.com"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("smtp-pki"))


@pytest.fixture(scope="module")
def password():
    return sc.ses_smtp_password("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1")


@pytest.fixture
def sink(pki, password):
    s = sc.SmtpSink(tls=sc.server_context(pki), users={USER: password})
    yield s
    s.stop()


@pytest.fixture
def tls_sink(pki, password):
    s = sc.SmtpSink(tls=sc.server_context(pki), implicit=True, users={USER: password})
    yield s
    s.stop()


def message(to, subject, cc=(), extra=b""):
    h = b"From: App <%s>\r\nTo: %s\r\n" % (SENDER.encode(), ", ".join(to).encode())
    if cc:
        h += b"Cc: %s\r\n" % ", ".join(cc).encode()
    return (h + b"Subject: %s\r\nMessage-ID: <%s@example.com>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n%s\r\n"
            b"Hello.\r\n.leading dot\r\nbye\r\n" % (subject.encode(), subject.replace(" ", ".").encode(), extra))


# terraform-provider-aws's published vectors
# (internal/service/iam/access_key_test.go,
# TestSESSMTPPasswordFromSecretKeySigV4), whose implementation authenticates
# against SES.
PASSWORD_VECTORS = [
    ("some+secret+key", "eu-central-1", "BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2"),
    ("another+secret+key", "eu-central-1", "BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh"),
    ("some+secret+key", "us-west-1", "BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj"),
    ("another+secret+key", "us-west-1", "BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF"),
]


@pytest.mark.parametrize("secret,region,want", PASSWORD_VECTORS)
def test_ses_smtp_password_vectors(secret, region, want):
    """The tests' SES SMTP password (what sesgate's smtp-password output is
    compared with) against published vectors: 44 base64 characters of the
    version byte 0x04 and a 32-byte HMAC-SHA256."""
    got = sc.ses_smtp_password(secret, region)
    assert got == want
    assert len(got) == 44 and base64.b64decode(got)[0] == 4


def test_smtplib_starttls_and_implicit(sink, tls_sink, pki, password):
    msg = message(["a@example.net"], "smtplib one")
    code, _ = sc.smtplib_send(sink.port, pki.ca, USER, password, msg, SENDER, ["a@example.net", "b@example.net"])
    assert code == 250
    code, _ = sc.smtplib_send(tls_sink.port, pki.ca, USER, password, msg, SENDER, ["c@example.net"],
                              implicit=True)
    assert code == 250
    (m1,), (m2,) = sink.messages, tls_sink.messages
    assert m1["rcpts"] == ["a@example.net", "b@example.net"] and m1["data"] == msg and m1["tls"]
    assert m1["user"] == USER and m2["user"] == USER and m2["data"] == msg


def test_wrong_password_and_auth_before_tls(sink, pki):
    conn = sc.SmtpConn(sink.port, sc.client_context(pki))
    assert conn.reply()[0] == 220
    assert conn.cmd("EHLO x")[0] == 250
    assert conn.cmd("AUTH PLAIN " + base64.b64encode(b"\0u\0p").decode())[0] == 530
    conn.starttls()
    assert conn.cmd("EHLO x")[0] == 250
    assert conn.cmd("AUTH PLAIN " + base64.b64encode(b"\0%s\0wrong" % USER.encode()).decode())[0] == 535
    conn.close()


def test_swaks_both_ways(sink, tls_sink, pki, password):
    msg = message(["s@example.net"], "swaks one", extra=b"Bcc: hidden@example.net\r\n")
    out = sc.run_swaks(sink.port, pki.ca, USER, password, msg, SENDER, ["s@example.net", "hidden@example.net"])
    assert "250 Ok sink-1" in out
    sc.run_swaks(tls_sink.port, pki.ca, USER, password, msg, SENDER, ["s@example.net"], implicit=True,
                 auth="PLAIN")
    assert sink.messages[0]["data"] == msg and tls_sink.messages[0]["data"] == msg
    assert sink.messages[0]["rcpts"] == ["s@example.net", "hidden@example.net"]
    assert sink.messages[0]["tls"] and tls_sink.messages[0]["user"] == USER


def test_php_mail_through_msmtp(sink, pki, password, tmp_path):
    log = sc.php_mail_via_msmtp(tmp_path, sink.port, pki.ca, USER, password, SENDER, "p1@example.net",
                                "PHP mail", "Hello from PHP.\r\nSecond line.",
                                "From: App <%s>\r\nCc: p2@example.net\r\nBcc: p3@example.net" % SENDER)
    assert "exitcode=EX_OK" in log, log
    (m,) = sink.messages
    assert sorted(m["rcpts"]) == ["p1@example.net", "p2@example.net", "p3@example.net"]
    assert m["mail_from"] == SENDER and m["tls"] and m["user"] == USER
    fields, body, eol = sc.split_header(m["data"])
    names = [n for n, _ in fields]
    assert eol == b"\r\n" and "bcc" not in names and "cc" in names and "to" in names
    assert body == b"Hello from PHP.\r\nSecond line.\r\n", body


def test_nodemailer_smtp(sink, tls_sink, pki, password):
    if not harness.js_ready():
        pytest.fail("tests/integration/js/node_modules is missing: run npm ci there (run.sh does)")
    mail = {"from": "App <%s>" % SENDER, "to": ["n1@example.net", "n2@example.net"], "bcc": "n3@example.net",
            "subject": "nodemailer", "text": "Hello from nodemailer."}
    for s, secure in ((sink, False), (tls_sink, True)):
        res = sc.run_node_smtp({"port": s.port, "secure": secure, "ca": str(pki.ca), "user": USER,
                                "pass": password, "mail": mail})
        assert res["ok"], res
        (m,) = s.messages
        assert m["rcpts"] == ["n1@example.net", "n2@example.net", "n3@example.net"] and m["user"] == USER
        assert m["data"] == base64.b64decode(res["raw_b64"])
        assert b"\r\nBcc:" not in m["data"] and not m["data"].startswith(b"Bcc:")


def test_postfix_relays_with_sasl_and_tls(sink, pki, password, tmp_path):
    """A private Postfix configured as AWS documents for SES relays a
    message submitted with sendmail and one taken by its own smtpd, each
    to many recipients, to the sink over STARTTLS with AUTH."""
    pf = sc.Postfix(tmp_path / "postfix", relay=(sink.port, pki.ca, USER, password)).start()
    master = pf.master_pid()
    assert master and sc.pid_alive(master)
    try:
        rcpts = ["r%03d@example.net" % i for i in range(60)]
        msg = message(rcpts[:3], "postfix relay")
        pf.sendmail(msg, rcpts, SENDER)
        smtp_msg = message(["q@example.net"], "postfix smtpd")
        import smtplib
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.sendmail(SENDER, ["q@example.net"], smtp_msg)
        pf.wait_empty(60)
        assert len(pf.sent_lines()) == 61, pf.log_text()[-3000:]
        assert "TLS connection established to 127.0.0.1[127.0.0.1]:%d" % sink.port in pf.log_text()
    finally:
        pf.stop()
    assert not sc.pid_alive(master), "postfix's master still runs after stop"
    got = sorted(r for m in sink.messages for r in m["rcpts"])
    assert got == sorted(rcpts + ["q@example.net"])
    # Postfix splits a message into transactions of at most 50 recipients
    # (default_destination_recipient_limit) and adds its Received field on
    # top; the rest is the original.
    for m in sink.messages:
        assert m["tls"] and m["user"] == USER and m["mail_from"] == SENDER
        assert len(m["rcpts"]) <= 50
        fields, body, _ = sc.split_header(m["data"])
        assert fields[0][0] == "received", fields[0]
        rest = b"".join(f for n, f in fields if n != "received") + b"\r\n" + body
        assert rest in (msg, smtp_msg), rest[:1000]
