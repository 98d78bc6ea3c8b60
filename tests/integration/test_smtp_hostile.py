"""Hostile SMTP sessions against sesgate's SMTP listeners.

- SMTP smuggling as the 2023 reports (SEC Consult, "SMTP Smuggling -
  Spoofing E-Mails Worldwide") tested servers: a message whose body holds
  a false end of data (`\\n.\\n`, `\\n.\\r\\n`, `\\r.\\r`, `\\r\\n.\\r`,
  `\\r\\n.\\n`) followed by a second MAIL / RCPT / DATA, then the true
  end. The message is refused with a 5xx, nothing reaches the upstream,
  and no second message is taken: the only replies after the true end are
  the refusal and those of the commands the client sends next. Bare LF and
  bare CR in command lines are errors too.
- Pipelined garbage (binary lines, NULs, an over-long line) is answered
  line by line and leaves the session and the gateway working.
- 10,000 RCPT with `[send] max_recipients = 100`: the first 100 are taken,
  every other one is refused with 452 4.5.3 (or 552, RFC 5321 4.5.3.1.10).
- A slow-loris DATA is cut at `[smtp] read_timeout`, a slow command line
  within the session's timeouts, however steadily the bytes trickle; a
  stalled DATA or command line and an idle session are answered 421 4.4.2
  and closed (an idle one at `idle_timeout`, not before).
- AUTH before STARTTLS (530), MAIL before AUTH (530), a wrong password and
  an unknown user (535), as SES answers.
- STARTTLS injection (CVE-2011-0411): "STARTTLS\\r\\nRSET\\r\\n" in one
  packet; the RSET, sent in clear text, must not be answered inside TLS.
"""

import base64
import re
import socket
import ssl
import time

import pytest

import harness
import smtp_clients as sc
from test_tls import make_pki

pytestmark = pytest.mark.needs_sesgate

SENDER = "app@example.com"
READ_TIMEOUT = 2.0
IDLE_TIMEOUT = 4.0
MAX_RCPT = 100


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("smtp-pki"))


@pytest.fixture(scope="module")
def hgw(tmp_path_factory, pki):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    g = sc.SmtpGateway(tmp_path_factory.mktemp("smtp-hostile"), pki,
                       extra={"smtp": {"read_timeout": "%ds" % READ_TIMEOUT, "idle_timeout": "%ds" % IDLE_TIMEOUT},
                              "send": {"max_recipients": str(MAX_RCPT)}})
    yield g
    g.stop()


@pytest.fixture
def gw(hgw):
    hgw.fake.reset()
    yield hgw
    assert hgw.gate.proc.poll() is None, "sesgate exited with %s" % hgw.gate.proc.returncode
    status, _, _ = harness.http("GET", hgw.gate.admin_url + "/healthz", timeout=5)
    assert status == 200
    harness.assert_no_sanitizer(hgw.gate.log_text())


def session(gw, implicit=False):
    """An authenticated session (STARTTLS, or TLS from the first byte)."""
    ctx = sc.client_context(gw.pki)
    conn = sc.SmtpConn(gw.smtps_port if implicit else gw.smtp_port, ctx, implicit=implicit)
    return conn.login(gw.user(), gw.password())


def replies_until_close(conn, timeout=5.0):
    """Every reply the server sends until it closes the connection."""
    conn.sock.settimeout(timeout)
    out = []
    try:
        while True:
            out.append(conn.reply())
    except (EOFError, ConnectionResetError, ssl.SSLError):
        pass
    except socket.timeout:
        raise AssertionError("the server neither answered nor closed within %s s; replies %s" % (timeout, out))
    return out


def assert_nothing_sent(gw, settle=1.5):
    time.sleep(settle)
    recs = gw.records()
    assert recs == [], "the upstream received %d send(s): %s" % (len(recs), [r.get("action") for r in recs])


def msg(subject, body=b"Hello.\r\n", to="victim@example.net"):
    return (b"From: App <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n"
            b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n" % (SENDER.encode(), to.encode(), subject.encode(),
                                                                 subject.replace(" ", ".").encode()) + body)


def test_control_message_is_taken(gw):
    """The same session shape without anything hostile: 250 and one send
    (so that the refusals below are the listener's doing)."""
    conn = session(gw)
    assert conn.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert conn.cmd("RCPT TO:<victim@example.net>")[0] == 250
    assert conn.cmd("DATA")[0] == 354
    conn.send(msg("control") + b".\r\n")
    code, lines = conn.reply()
    assert code == 250 and re.match(r"250 (2\.0\.0 )?Ok \S+", lines[-1]), lines
    assert conn.cmd("QUIT")[0] == 221
    conn.close()
    recs = gw.wait_sends(1, timeout=30)
    assert len(recs) == 1
    sc.check_delivery(gw, recs, [(msg("control"), ["victim@example.net"])])


# ---------------------------------------------------------------- smuggling

SMUGGLE_ENDS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-cr": b"\r\n.\r",
    "crlf-dot-lf": b"\r\n.\n",
}


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
@pytest.mark.parametrize("end", sorted(SMUGGLE_ENDS), ids=sorted(SMUGGLE_ENDS))
def test_smuggling_refused(gw, end, implicit):
    """A false end of data followed by a smuggled transaction, then the
    true end, all in one write: one 5xx refusal, then only the answers to
    the client's next commands; nothing reaches the upstream."""
    smuggled = (b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
                b"From: Admin <admin@example.com>\r\nTo: victim@example.net\r\nSubject: smuggled\r\n\r\n"
                b"smuggled body\r\n")
    conn = session(gw, implicit)
    assert conn.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert conn.cmd("RCPT TO:<victim@example.net>")[0] == 250
    assert conn.cmd("DATA")[0] == 354
    conn.send(msg("carrier %s" % end, b"first body\r\nmore") + SMUGGLE_ENDS[end] + smuggled + b".\r\n")
    code, lines = conn.reply()
    assert 500 <= code < 600, "the message with %r was not refused: %s" % (SMUGGLE_ENDS[end], lines)
    conn.send(b"NOOP\r\nQUIT\r\n")
    rest = replies_until_close(conn)
    assert [c for c, _ in rest] == [250, 221], "replies after the refusal: %s" % rest
    conn.close()
    assert_nothing_sent(gw)


@pytest.mark.parametrize("line", [
    b"MAIL FROM:<%s>\nRCPT TO:<victim@example.net>\r\n" % SENDER.encode(),
    b"MAIL FROM:<%s>\rRCPT TO:<victim@example.net>\r\n" % SENDER.encode(),
    b"MAIL FROM:<%s>\n" % SENDER.encode(),
], ids=["bare-lf", "bare-cr", "lf-ended"])
def test_bare_line_ends_in_commands_refused(gw, line):
    """A command line with a bare LF or CR is an error, never a command;
    with no MAIL taken, DATA is refused and nothing is sent."""
    conn = session(gw)
    conn.send(line + b"NOOP\r\n")
    replies = []
    while True:
        code, lines = conn.reply()
        replies.append(code)
        if lines[-1].startswith("250") and len(replies) > 1 or len(replies) > 4:
            break
    assert replies[0] >= 500, "a command line with a bare CR/LF was taken: %s" % replies
    assert all(c >= 500 for c in replies[:-1]) and replies[-1] == 250, replies
    code, lines = conn.cmd("DATA")
    assert code == 503 or code == 554, lines
    assert conn.cmd("QUIT")[0] == 221
    conn.close()
    assert_nothing_sent(gw)


# ---------------------------------------------------------------- garbage


def test_pipelined_garbage(gw):
    """Binary lines, NULs and an over-long line in one write: every line is
    answered (5xx), the next command is answered in turn, and a message
    still goes through on the same session."""
    garbage = [b"\x00\x01\x02\xff\xfe binary", b"\x80\x81 \xc3\x28 MAIL FROM:<x@example.com>",
               b"MAIL", b"RCPT TO:<>", b"AUTH PLAIN !!!notbase64", b"DATA", b"X" * 2000, b"\x00" * 50]
    conn = session(gw)
    conn.send(b"".join(g + b"\r\n" for g in garbage) + b"NOOP\r\n")
    codes = []
    while True:
        code, _ = conn.reply()
        codes.append(code)
        if code == 250 or len(codes) > 3 * len(garbage):
            break
    assert codes[-1] == 250 and all(c >= 500 for c in codes[:-1]), codes
    assert len(codes) >= len(garbage), "lines not answered: %s" % codes
    assert conn.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert conn.cmd("RCPT TO:<victim@example.net>")[0] == 250
    assert conn.cmd("DATA")[0] == 354
    conn.send(msg("after garbage") + b".\r\n")
    assert conn.reply()[0] == 250
    conn.cmd("QUIT")
    conn.close()
    assert len(gw.wait_sends(1, timeout=30)) == 1


def test_10000_rcpt(gw):
    """10,000 pipelined RCPT: the first max_recipients are taken, the rest
    refused with 452 4.5.3 or 552 and counted exactly; RSET clears them."""
    conn = session(gw)
    assert conn.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    n = 10000
    codes = []
    texts = set()
    for start in range(0, n, 500):
        conn.send(b"".join(b"RCPT TO:<r%05d@example.net>\r\n" % i for i in range(start, min(n, start + 500))))
        for _ in range(start, min(n, start + 500)):
            code, lines = conn.reply()
            codes.append(code)
            if code != 250:
                texts.add(lines[-1][:9])
    assert codes[:MAX_RCPT] == [250] * MAX_RCPT, codes[:MAX_RCPT + 1]
    refused = codes[MAX_RCPT:]
    assert len(refused) == n - MAX_RCPT and set(refused) <= {452, 552}, sorted(set(refused))
    assert texts <= {"452 4.5.3", "552 5.5.3", "552 5.3.4"}, texts
    assert conn.cmd("RSET")[0] == 250
    assert conn.cmd("QUIT")[0] == 221
    conn.close()
    assert_nothing_sent(gw)


# ---------------------------------------------------------------- slow clients


def trickle(conn, data, every, until):
    """Send data a byte every `every` seconds until the server closes or
    `until` seconds pass; returns (seconds taken, whether it closed)."""
    t0 = time.monotonic()
    conn.sock.settimeout(every)
    for b in data:
        if time.monotonic() - t0 > until:
            return time.monotonic() - t0, False
        try:
            conn.sock.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            took = time.monotonic() - t0
            conn.closed(1)  # what the server wrote before it closed
            return took, True
        try:
            d = conn.sock.recv(4096)
            if not d:
                return time.monotonic() - t0, True
            conn.buf += d
        except socket.timeout:
            pass
        except (ConnectionResetError, ssl.SSLError, OSError):
            return time.monotonic() - t0, True
    return time.monotonic() - t0, False


def open_data(gw):
    """An authenticated session inside DATA (after 354)."""
    conn = session(gw)
    assert conn.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert conn.cmd("RCPT TO:<victim@example.net>")[0] == 250
    assert conn.cmd("DATA")[0] == 354
    return conn


def assert_cut_reply(conn):
    """What a cut client read: a 421, or nothing when the server's close
    met bytes still arriving (a reset may drop the 421 in flight)."""
    assert conn.buf == b"" or conn.buf.startswith(b"421 4.4.2"), conn.buf


def test_slow_loris_data_cut_at_read_timeout(gw):
    """DATA trickling a byte every 0.3 s is cut once the whole DATA has
    taken read_timeout, not kept alive by each byte."""
    conn = open_data(gw)
    took, closed = trickle(conn, msg("slow", b"x" * 200) + b".\r\n", 0.3, READ_TIMEOUT + 6)
    if not closed:
        closed = conn.closed(3)
    assert closed, "a DATA trickling for %.1f s was not cut (read_timeout %s s)" % (took, READ_TIMEOUT)
    assert took < READ_TIMEOUT + 4, took
    assert_cut_reply(conn)
    conn.close()
    assert_nothing_sent(gw)


def test_stalled_data_answered_421(gw):
    """Part of a message, then silence: 421 4.4.2 and close at
    read_timeout; nothing is sent."""
    conn = open_data(gw)
    conn.send(msg("stalled", b"half a body"))
    t0 = time.monotonic()
    closed = conn.closed(READ_TIMEOUT + 5)
    took = time.monotonic() - t0
    assert closed and READ_TIMEOUT - 0.5 <= took < READ_TIMEOUT + 3, (closed, took)
    assert conn.buf.startswith(b"421 4.4.2"), conn.buf
    conn.close()
    assert_nothing_sent(gw)


def test_slow_command_line_cut(gw):
    """A command line trickling a byte every 0.3 s is cut within the
    session's timeouts, not kept alive by each byte."""
    conn = session(gw)
    bound = max(READ_TIMEOUT, IDLE_TIMEOUT) + 3
    took, closed = trickle(conn, b"MAIL FROM:<%s>" % SENDER.encode() + b" " * 100 + b"\r\n", 0.3, bound + 3)
    if not closed:
        closed = conn.closed(3)
    assert closed and took < bound, (took, closed)
    assert_cut_reply(conn)
    conn.close()


def test_stalled_command_line_answered_421(gw):
    """Half a command line, then silence: 421 4.4.2 and close within the
    session's timeouts."""
    conn = session(gw)
    conn.send(b"MAIL FROM:<")
    t0 = time.monotonic()
    closed = conn.closed(max(READ_TIMEOUT, IDLE_TIMEOUT) + 5)
    took = time.monotonic() - t0
    assert closed and took < max(READ_TIMEOUT, IDLE_TIMEOUT) + 3, (closed, took)
    assert conn.buf.startswith(b"421 4.4.2"), conn.buf
    conn.close()


def test_idle_session_closed(gw):
    """A session that sends nothing after AUTH is answered 421 4.4.2 and
    closed at idle_timeout, not before."""
    conn = session(gw)
    t0 = time.monotonic()
    closed = conn.closed(IDLE_TIMEOUT + 5)
    took = time.monotonic() - t0
    assert closed, "an idle session stayed open %.1f s (idle_timeout %s s)" % (took, IDLE_TIMEOUT)
    assert IDLE_TIMEOUT - 0.5 <= took < IDLE_TIMEOUT + 3, took
    assert conn.buf.startswith(b"421 4.4.2"), conn.buf
    conn.close()


# ---------------------------------------------------------------- authentication


def test_auth_before_starttls(gw):
    """AUTH in clear text: 530 as SES answers it; MAIL without AUTH: 530."""
    conn = sc.SmtpConn(gw.smtp_port, sc.client_context(gw.pki))
    assert conn.reply()[0] == 220
    assert conn.cmd("EHLO client.sesgate.test")[0] == 250
    creds = base64.b64encode(b"\0%s\0%s" % (gw.user().encode(), gw.password().encode())).decode()
    code, lines = conn.cmd("AUTH PLAIN " + creds)
    assert code == 530 and "Must issue a STARTTLS command first" in lines[-1], lines
    code, lines = conn.cmd("AUTH LOGIN")
    assert code == 530, lines
    code, lines = conn.cmd("MAIL FROM:<%s>" % SENDER)
    assert code == 530, lines
    conn.starttls()
    assert conn.cmd("EHLO client.sesgate.test")[0] == 250
    code, lines = conn.cmd("MAIL FROM:<%s>" % SENDER)
    assert code == 530, "MAIL without AUTH: %s" % lines
    conn.cmd("QUIT")
    conn.close()
    assert_nothing_sent(gw, settle=0.5)


@pytest.mark.parametrize("case", ["wrong-password", "unknown-user", "login-wrong-password",
                                  "other-region-password"])
def test_wrong_credentials(gw, case):
    """535 Authentication Credentials Invalid; the session may try again
    and nothing is sent without a good AUTH."""
    conn = sc.SmtpConn(gw.smtp_port, sc.client_context(gw.pki))
    assert conn.reply()[0] == 220
    assert conn.cmd("EHLO c")[0] == 250
    conn.starttls()
    assert conn.cmd("EHLO c")[0] == 250
    user, pw = gw.user(), gw.password()
    if case == "wrong-password":
        pw = pw[:-3] + ("AAA" if pw[-3:] != "AAA" else "BBB")
    elif case == "unknown-user":
        user = harness.new_access_key("SGNOBODY")
    elif case == "other-region-password":
        pw = sc.ses_smtp_password(gw.creds["app"].secret, "eu-west-1")
    if case == "login-wrong-password":
        assert conn.cmd("AUTH LOGIN")[0] == 334
        assert conn.cmd(base64.b64encode(user.encode()).decode())[0] == 334
        code, lines = conn.cmd(base64.b64encode(b"not the password").decode())
    else:
        code, lines = conn.cmd("AUTH PLAIN " + base64.b64encode(
            b"\0%s\0%s" % (user.encode(), pw.encode())).decode())
    assert code == 535 and "Authentication Credentials Invalid" in lines[-1], lines
    assert conn.cmd("MAIL FROM:<%s>" % SENDER)[0] == 530
    conn.cmd("QUIT")
    conn.close()
    assert_nothing_sent(gw, settle=0.5)
    assert gw.password() not in gw.gate.log_text()


# ---------------------------------------------------------------- STARTTLS injection


def test_starttls_injection(gw):
    """"STARTTLS\\r\\nRSET\\r\\n" in one packet (CVE-2011-0411): the server
    answers 220 and then, inside TLS, only what the client sends after
    the handshake; the clear-text RSET is discarded."""
    conn = sc.SmtpConn(gw.smtp_port, sc.client_context(gw.pki))
    assert conn.reply()[0] == 220
    assert conn.cmd("EHLO client.sesgate.test")[0] == 250
    conn.send(b"STARTTLS\r\nRSET\r\n")
    code, lines = conn.reply()
    assert code == 220, lines
    assert conn.buf == b"", "a reply to the injected command came in clear text: %r" % conn.buf
    conn.sock = conn.ctx.wrap_socket(conn.sock, server_hostname="localhost")
    conn.send(b"QUIT\r\n")
    replies = replies_until_close(conn)
    assert [c for c, _ in replies] == [221], "replies inside TLS: %s" % replies
    conn.close()


def test_starttls_injection_of_auth(gw):
    """Credentials pipelined with STARTTLS in clear text are not used
    inside TLS: MAIL after the handshake is refused for want of AUTH."""
    conn = sc.SmtpConn(gw.smtp_port, sc.client_context(gw.pki))
    assert conn.reply()[0] == 220
    assert conn.cmd("EHLO client.sesgate.test")[0] == 250
    creds = base64.b64encode(b"\0%s\0%s" % (gw.user().encode(), gw.password().encode()))
    conn.send(b"STARTTLS\r\nAUTH PLAIN " + creds + b"\r\nMAIL FROM:<%s>\r\n" % SENDER.encode())
    code, _ = conn.reply()
    assert code == 220 and conn.buf == b""
    conn.sock = conn.ctx.wrap_socket(conn.sock, server_hostname="localhost")
    assert conn.cmd("EHLO client.sesgate.test")[0] == 250
    code, lines = conn.cmd("MAIL FROM:<%s>" % SENDER)
    assert code == 530, "MAIL accepted inside TLS without AUTH there: %s" % lines
    conn.cmd("QUIT")
    conn.close()
    assert_nothing_sent(gw, settle=0.5)
