"""Real SMTP clients through sesgate's SMTP listeners, end to end.

`sesgate run` (front, workers, managed Redis) with `[smtp] listen`
(STARTTLS) and `tls_listen` (implicit TLS) in front of the fake SES
upstream. Each client is configured the way its documentation says for SES
SMTP, with the client's access key id as user name and the password
`sesgate smtp-password CLIENT` prints:

- Postfix as a relayhost (SASL, smtp_tls_security_level = encrypt): one
  message to 200 recipients (Postfix splits it into transactions of 50)
  and 50 separate messages over its cached connection;
- swaks with STARTTLS and with --tls-on-connect;
- nodemailer's SMTP transport (STARTTLS required, and secure: true);
- msmtp as PHP's sendmail_path (mail() with Cc and Bcc fields);
- Python's smtplib with the Bcc recipients only in the envelope.

Checked at the fake upstream (smtp_clients.check_delivery): one send per
To recipient and every envelope recipient in exactly one send, the Bcc ones
from the envelope and no Bcc field anywhere, every other header byte and
the body as the client sent them apart from the To rewrite (and Postfix's
own Received field on top); and `sesgate batch show --json` reports every
batch complete.
"""

import base64
import re

import pytest

import harness
import smtp_clients as sc
from test_tls import make_pki

pytestmark = pytest.mark.needs_sesgate

SENDER = "app@example.com"
# The answer to the data: "250 2.0.0 Ok <id>" (the enhanced code, since
# sesgate announces ENHANCEDSTATUSCODES).
DATA_OK = re.compile(r"^(2\.0\.0 )?Ok \S+")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("smtp-pki"))


@pytest.fixture(scope="module")
def sgw(tmp_path_factory, pki):
    """The fake upstream and sesgate with both SMTP listeners."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    missing = sc.tools_missing()
    if missing:
        pytest.fail("missing %s: run scripts/deps test" % ", ".join(missing))
    g = sc.SmtpGateway(tmp_path_factory.mktemp("smtp-clients"), pki)
    yield g
    g.stop()


@pytest.fixture
def gw(sgw):
    sgw.fake.reset()
    return sgw


def message(to, subject, cc=(), extra=b"", body=b"Hello.\r\n"):
    """A small message with CRLF line ends, a folded To field naming to,
    and the fields a relay would otherwise add (Message-ID, Date)."""
    lines = [to[i:i + 4] for i in range(0, len(to), 4)]
    to_field = b"To: " + b",\r\n ".join(", ".join(x).encode() for x in lines) + b"\r\n"
    h = b"From: App <%s>\r\n" % SENDER.encode() + to_field
    if cc:
        h += b"Cc: %s\r\n" % ", ".join(cc).encode()
    tag = re.sub(r"[^A-Za-z0-9]+", ".", subject)
    return (h + b"Subject: %s\r\nMessage-ID: <%s@example.com>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n%s\r\n%s" % (subject.encode(), tag.encode(), extra, body))


BODY = ("Gr\u00fc\u00dfe aus dem SMTP-Test.\r\n.a line that starts with a dot\r\n..two dots\r\n"
        "From the start of a line\r\n\r\nlast line\r\n").encode()


def settle_batches(gw, before, want_min):
    """Every batch since before complete, at least want_min of them."""
    return sc.assert_batches_complete(gw, before, want_min=want_min)


# ---------------------------------------------------------------- Postfix


def postfix_for(gw, tmp_path):
    return sc.Postfix(tmp_path / "postfix",
                      relay=(gw.smtp_port, gw.pki.ca, gw.user("app"), gw.password("app"))).start()


def test_postfix_relay_200_recipients_one_message(gw, tmp_path):
    """One message to 200 To recipients and 3 envelope-only (Bcc)
    recipients, submitted with Postfix's sendmail: Postfix relays it in
    transactions of at most 50 recipients over STARTTLS with AUTH; every
    recipient gets exactly one copy."""
    to = ["rcpt%03d@example.net" % i for i in range(200)]
    bcc = ["aaa-bcc%d@example.net" % i for i in range(3)]
    msg = message(to, "Postfix two hundred", body=BODY)
    before = gw.batch_ids()
    pf = postfix_for(gw, tmp_path)
    try:
        pf.sendmail(msg, bcc + to, SENDER)
        pf.wait_empty(120)
        sent = pf.sent_lines()
        assert sum(ln.count("status=sent") for ln in sent) == 203, pf.log_text()[-3000:]
        assert all("relay=127.0.0.1[127.0.0.1]:%d" % gw.smtp_port in ln for ln in sent)
        assert all(re.search(r"status=sent \(250 (2\.0\.0 )?Ok \S+", ln) for ln in sent), sent[:3]
        log = pf.log_text()
        assert re.search(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d" % gw.smtp_port,
                         log), log[-3000:]
    finally:
        pf.stop()
    recs = gw.wait_sends(200, timeout=120)
    assert len(recs) == 200, "the upstream received %d sends for 200 To recipients" % len(recs)
    # Postfix splits the recipients into transactions of at most 50, in its
    # own order; each transaction is the same message.
    sc.check_delivery(gw, recs, [(msg, bcc + to)], prefix_fields=("received",))
    shown = settle_batches(gw, before, want_min=4)
    assert sum(s["total"] for s in shown) >= 196


def test_postfix_relay_50_messages(gw, tmp_path):
    """50 separate messages taken by Postfix's own smtpd and relayed over
    its cached connection (one transaction each, RSET between): odd ones to
    two To recipients (a batch), even ones to one."""
    import smtplib
    before = gw.batch_ids()
    pf = postfix_for(gw, tmp_path)
    transactions = []
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            for i in range(50):
                to = ["m%02d-a@example.net" % i] + (["m%02d-b@example.net" % i] if i % 2 else [])
                msg = message(to, "Postfix message %d" % i, body=BODY)
                s.sendmail(SENDER, to, msg)
                transactions.append((msg, to))
        pf.wait_empty(120)
        assert sum(ln.count("status=sent") for ln in pf.sent_lines()) == 75, pf.log_text()[-3000:]
    finally:
        pf.stop()
    recs = gw.wait_sends(75, timeout=120)
    assert len(recs) == 75
    sc.check_delivery(gw, recs, transactions, prefix_fields=("received",))
    settle_batches(gw, before, want_min=25)


# ---------------------------------------------------------------- swaks


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls-on-connect"])
def test_swaks(gw, implicit):
    """swaks with AUTH LOGIN over STARTTLS and AUTH PLAIN over implicit TLS:
    two To recipients, a Cc and a Bcc field; the Bcc field goes, its
    recipient gets one copy from the envelope."""
    to = ["sw-to1@example.net", "sw-to2@example.net"]
    cc = ["sw-cc@example.net"]
    bcc = ["sw-bcc@example.net"]
    msg = message(to, "swaks %s" % implicit, cc=cc, extra=b"Bcc: %s\r\n" % bcc[0].encode(), body=BODY)
    before = gw.batch_ids()
    port = gw.smtps_port if implicit else gw.smtp_port
    out = sc.run_swaks(port, gw.pki.ca, gw.user(), gw.password(), msg, SENDER, to + cc + bcc,
                       implicit=implicit, auth="PLAIN" if implicit else "LOGIN")
    assert re.search(r"<~ +235 ", out), out
    assert re.search(r"<~ +250 (2\.0\.0 )?Ok \S+", out), out
    recs = gw.wait_sends(2)
    assert len(recs) == 2
    sc.check_delivery(gw, recs, [(msg, to + cc + bcc)])
    settle_batches(gw, before, want_min=1)


# ---------------------------------------------------------------- nodemailer


@pytest.mark.parametrize("secure", [False, True], ids=["starttls", "secure"])
def test_nodemailer_smtp_transport(gw, secure):
    if not harness.js_ready():
        pytest.fail("tests/integration/js/node_modules is missing: run npm ci there (run.sh does)")
    mail = {"from": "App <%s>" % SENDER, "to": ["nm-to1@example.net", "nm-to2@example.net"],
            "cc": "nm-cc@example.net", "bcc": ["nm-bcc1@example.net", "nm-bcc2@example.net"],
            "subject": "nodemailer over SMTP \u00fc", "text": "Hello from nodemailer.\n.dot line\n",
            "html": "<p>Hello from <b>nodemailer</b>.</p>",
            "attachments": [{"filename": "a.bin", "content": "AAECAwQF/w==", "encoding": "base64"}]}
    before = gw.batch_ids()
    res = sc.run_node_smtp({"port": gw.smtps_port if secure else gw.smtp_port, "secure": secure,
                            "ca": str(gw.pki.ca), "user": gw.user(), "pass": gw.password(), "mail": mail})
    assert res["ok"], res
    assert re.match(r"250 (2\.0\.0 )?Ok \S+", res["response"]), res["response"]
    env = res["envelope"]["to"]
    assert sorted(env) == sorted(mail["to"] + [mail["cc"]] + mail["bcc"])
    # nodemailer's SMTP connection sends the composed message with CRLF
    # line ends (its LeWindows stream turns each bare LF of the text into
    # CRLF): those are the bytes on the wire.
    raw = re.sub(rb"(?<!\r)\n", b"\r\n", base64.b64decode(res["raw_b64"]))
    recs = gw.wait_sends(2)
    assert len(recs) == 2
    sc.check_delivery(gw, recs, [(raw, env)])
    settle_batches(gw, before, want_min=1)


# ---------------------------------------------------------------- PHP and msmtp


def test_php_mail_through_msmtp(gw, tmp_path):
    """PHP's mail() with sendmail_path = msmtp -t: msmtp takes the
    recipients from To, Cc and Bcc and removes the Bcc field. The bytes
    msmtp sends are first caught by the tests' own SMTP server, then the
    same call goes to sesgate."""
    args = dict(sender=SENDER, to="php-to1@example.net, php-to2@example.net", subject="PHP mail()",
                body="Hello from PHP.\r\n.dot line\r\nbye",
                headers="From: App <%s>\r\nCc: php-cc@example.net\r\nBcc: php-bcc@example.net\r\n"
                        "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <php.mail@example.com>\r\n"
                        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8" % SENDER)
    sink = sc.SmtpSink(tls=sc.server_context(gw.pki), users={gw.user(): gw.password()})
    try:
        sc.php_mail_via_msmtp(tmp_path / "sink", sink.port, gw.pki.ca, gw.user(), gw.password(), **args)
    finally:
        sink.stop()
    (caught,) = sink.messages
    fields, _, _ = sc.split_header(caught["data"])
    assert "bcc" not in [n for n, _ in fields]
    before = gw.batch_ids()
    log = sc.php_mail_via_msmtp(tmp_path / "gate", gw.smtp_port, gw.pki.ca, gw.user(), gw.password(), **args)
    assert re.search(r"smtpstatus=250 .*exitcode=EX_OK", log), log
    recs = gw.wait_sends(2)
    assert len(recs) == 2
    sc.check_delivery(gw, recs, [(caught["data"], caught["rcpts"])])
    assert sorted(caught["rcpts"]) == sorted(["php-to1@example.net", "php-to2@example.net",
                                              "php-cc@example.net", "php-bcc@example.net"])
    settle_batches(gw, before, want_min=1)


# ---------------------------------------------------------------- smtplib


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
def test_smtplib_bcc_only_in_envelope(gw, implicit):
    """smtplib with two To recipients in the header and two more only in
    the envelope (RCPT TO, no Bcc field): those two are served from the
    envelope, one copy each, riding with the first To copy."""
    to = ["py-to1@example.net", "py-to2@example.net"]
    hidden = ["py-hidden1@example.net", "py-hidden2@example.net"]
    msg = message(to, "smtplib %s" % implicit, body=BODY)
    before = gw.batch_ids()
    port = gw.smtps_port if implicit else gw.smtp_port
    code, text = sc.smtplib_send(port, gw.pki.ca, gw.user(), gw.password(), msg, SENDER, to + hidden,
                                 implicit=implicit)
    assert code == 250 and DATA_OK.match(text), (code, text)
    recs = gw.wait_sends(2)
    assert len(recs) == 2
    sc.check_delivery(gw, recs, [(msg, to + hidden)])
    riders = [sc.parse_send(r)[0] for r in recs]
    assert sorted(len(e) for e in riders) == [1, 3], riders
    settle_batches(gw, before, want_min=1)
    # The id in "250 Ok <id>": a batch's (or its sesgate- MessageId) names
    # the batch just checked.
    ref = text.split()[-1]
    if re.fullmatch(r"(sesgate-)?%s(-\d+)?" % sc.BATCH_ID_RE.pattern, ref):
        assert gw.batch(ref)["complete"]
