"""Helpers for the SMTP tests: sesgate with its SMTP listeners, real SMTP
clients configured the way their documentation says for SES, a private
Postfix instance, a small SMTP server of the tests' own, and the checks of
what reached the fake SES upstream.

- SmtpGateway: the fake upstream and `sesgate run` with `[smtp] listen`
  (STARTTLS) and `tls_listen` (implicit TLS), the certificate of
  `[server] tls_cert` / `tls_key` from a private PKI (test_tls.make_pki);
  each client's SMTP password is what `sesgate smtp-password CLIENT` prints,
  checked against SES's documented algorithm (ses_smtp_password).
- Postfix: a private instance (its own config, queue and data directories
  under the test's directory, `postfix -c DIR start` as root, a free loopback
  port for its smtpd) relaying through a relayhost with SASL and TLS as
  AWS's "Integrating Amazon SES with Postfix" says.
- SmtpSink: a plain SMTP server in Python (STARTTLS, implicit TLS, AUTH
  PLAIN and LOGIN) that records every message, so the clients and Postfix
  are checked on their own.
- swaks, msmtp as PHP's sendmail_path, nodemailer's SMTP transport
  (js/smtp_send.mjs) and Python's smtplib.
- SmtpConn: a raw SMTP session (bytes in, replies out) for hostile input.
"""

import base64
import collections
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from pathlib import Path

import harness

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
MSMTP = shutil.which("msmtp") or "/usr/bin/msmtp"
PHP = shutil.which("php") or "/usr/bin/php"
POSTFIX = "/usr/sbin/postfix"
POSTMAP = "/usr/sbin/postmap"
POSTQUEUE = "/usr/sbin/postqueue"
SENDMAIL = "/usr/sbin/sendmail"
SMTP_SOURCE = "/usr/sbin/smtp-source"
PREFIX = "sesgate-it"
BATCH_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def ses_smtp_password(secret, region):
    """The SES SMTP password of a secret access key in region, by SES's
    documented algorithm: HMAC-SHA256 chain from "AWS4" + secret over
    "11111111", region, "ses", "aws4_request", "SendRawEmail"; base64 of
    the version byte 0x04 and the signature."""
    sig = ("AWS4" + secret).encode()
    for part in ("11111111", region, "ses", "aws4_request", "SendRawEmail"):
        sig = hmac.new(sig, part.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"\x04" + sig).decode()


def tools_missing():
    """The SMTP test tools that are not installed (scripts/deps test installs them)."""
    tools = [SWAKS, MSMTP, PHP, POSTFIX, POSTMAP, SENDMAIL, SMTP_SOURCE]
    return [t for t in tools if not os.access(t, os.X_OK)]


# ---------------------------------------------------------------- sesgate


class SmtpGateway:
    """The fake upstream and `sesgate run` with both SMTP listeners.

    clients: {name: {"allow_from": [...], ...}}; every client may do every
    action unless its policy says otherwise. extra: more configuration
    sections (merged)."""

    def __init__(self, workdir, pki, clients=None, extra=None, fake_args=()):
        self.workdir = Path(workdir)
        self.pki = pki
        self.smtp_port = harness.free_port()
        self.smtps_port = harness.free_port()
        upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
        self.fake = harness.FakeSES(self.workdir, upstream, extra_args=fake_args)
        clients = clients or {"app": {}}
        self.creds = {}
        policies = {}
        for name, pol in clients.items():
            creds = harness.Creds(name, harness.new_access_key("SG" + name.upper()[:5]), harness.new_secret())
            self.creds[name] = creds
            policies[name] = {"creds": creds, "allow_actions": pol.get("allow_actions", ["*"]),
                              "allow_from": pol.get("allow_from", ["*"])}
        cfg = {
            "server": {"tls_cert": str(pki.cert1), "tls_key": str(pki.key1)},
            "smtp": {"listen": "127.0.0.1:%d" % self.smtp_port, "tls_listen": "127.0.0.1:%d" % self.smtps_port},
            "send": {"rate": "1000", "concurrency": "4"},
        }
        for section, values in (extra or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.fake.start()
        self.gate = harness.RunSesgate(self.workdir, self.fake.url, upstream, policies, extra=cfg)
        try:
            self.gate.start()
            if not harness.wait_port(self.smtp_port, 10) or not harness.wait_port(self.smtps_port, 10):
                raise RuntimeError("the SMTP listeners did not open; log:\n%s" % self.gate.log_text()[-4000:])
        except Exception:
            self.gate.stop()
            self.fake.stop()
            raise
        self.upstream = upstream
        self.passwords = {}

    @property
    def region(self):
        return self.gate.region

    def password(self, name="app"):
        """The SMTP password of client name as `sesgate smtp-password NAME`
        prints it; it must be SES's for the client's secret."""
        if name not in self.passwords:
            r = subprocess.run([str(harness.sesgate_bin()), "smtp-password", name, "-c", str(self.gate.config_path)],
                               capture_output=True, text=True, timeout=30, env=harness.clean_env(),
                               cwd=str(self.workdir))
            out = harness.assert_exit(r, 0)
            found = re.findall(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{44}(?![A-Za-z0-9+/=])", r.stdout)
            want = ses_smtp_password(self.creds[name].secret, self.region)
            assert found == [want], "smtp-password %s printed %r, SES's algorithm gives %s" % (name, out, want)
            self.passwords[name] = want
        return self.passwords[name]

    def user(self, name="app"):
        """The SMTP user name of client name: its access key id."""
        return self.creds[name].access_key

    def stop(self):
        self.gate.stop()
        self.fake.stop()
        log = self.gate.log_text()
        harness.assert_no_sanitizer(log)
        for c in self.creds.values():
            assert c.secret not in log, "a client secret in the log"
        for p in self.passwords.values():
            assert p not in log, "an SMTP password in the log"

    def records(self):
        """Every send the fake upstream recorded since its last reset."""
        return [r for r in self.fake.requests() if _is_send(r)]

    def wait_sends(self, n, timeout=60.0, settle=1.0):
        """The upstream's send records once there are n (or after timeout),
        read again after settle seconds so that extra ones show."""
        return harness.wait_records(self.fake, n, timeout,
                                    pred=_is_send, settle=settle)

    def batch_ids(self):
        """The batch ids in the recent set, oldest first."""
        out = self.gate.redis("ZRANGE", "%s:{%s}:recent" % (PREFIX, PREFIX), 0, -1)
        return [x for x in out.split() if BATCH_ID_RE.fullmatch(x)]

    def batch(self, ref):
        """`sesgate batch show REF --json` (a batch id or a sesgate- MessageId)."""
        return harness.sesgate_json(self.gate.config_path, self.workdir, "batch", "show", ref)


def _is_send(rec):
    return rec.get("action") in ("SendRawEmail", "SendEmail") or rec["path"].startswith("/v2/email/outbound")


def assert_batches_complete(gw, before, want_min=1, timeout=60.0):
    """Every batch created since the ids in before is complete with every
    recipient sent and none dead; at least want_min of them. Returns them."""
    deadline = time.monotonic() + timeout
    while True:
        ids = [b for b in gw.batch_ids() if b not in before]
        shown = [gw.batch(b) for b in ids]
        if len(shown) >= want_min and all(s.get("complete") for s in shown):
            break
        if time.monotonic() > deadline:
            raise AssertionError("batches not complete in %s s: %s" % (timeout, json.dumps(
                [{k: s.get(k) for k in ("batch_id", "state", "total", "sent", "dead", "queued", "retrying")}
                 for s in shown])))
        time.sleep(0.3)
    for s in shown:
        assert s["dead"] == 0 and s["sent"] + s.get("suppressed", 0) == s["total"], s
        for r in s.get("recipients", []):
            assert r.get("state") == "sent", r
    return shown


# ---------------------------------------------------------------- what reached the upstream


def split_header(data):
    """A message as ([(name, exact field bytes)], body, eol): a line starting
    with a space or tab continues the field before it."""
    eol = b"\r\n" if data.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    head, found, body = data.partition(eol + eol)
    assert found, "no empty line after the header: %r" % data[:300]
    fields = []
    for line in (head + eol).splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        else:
            fields.append((line.split(b":", 1)[0].strip().decode("latin-1").lower(), line))
    return fields, body, eol


def expected_copy(original, own, first):
    """The copy of original (bytes) for To recipient own: the first To field
    becomes "To: own", other To fields and every Bcc field go, Cc fields stay
    on the first copy only; every other byte is the original's."""
    fields, body, eol = split_header(original)
    out = []
    to_done = False
    for name, raw in fields:
        if name == "to":
            if not to_done:
                out.append(b"To: " + own.encode() + eol)
                to_done = True
            continue
        if name == "bcc" or (name == "cc" and not first):
            continue
        out.append(raw)
    assert to_done, "the original has no To field"
    return b"".join(out) + eol + body


def parse_send(rec):
    """(envelope destinations, raw message bytes) of a recorded send."""
    body = base64.b64decode(rec["body_b64"])
    if rec["path"].startswith("/v2/"):
        obj = json.loads(body)
        dest = obj.get("Destination") or {}
        env = dest.get("ToAddresses", []) + dest.get("CcAddresses", []) + dest.get("BccAddresses", [])
        raw = obj.get("Content", {}).get("Raw", {}).get("Data")
        assert raw is not None, "an SMTP message became a formatted send: %s" % obj
        return env, base64.b64decode(raw)
    import urllib.parse
    params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    assert params.get("Action") == "SendRawEmail", params.get("Action")
    pat = re.compile(r"Destinations\.member\.(\d+)$")
    found = sorted((int(m.group(1)), v) for k, v in params.items() for m in [pat.match(k)] if m)
    assert [i for i, _ in found] == list(range(1, len(found) + 1)), "Destinations not numbered 1..n"
    return [v for _, v in found], base64.b64decode(params["RawMessage.Data"])


def header_addrs(values):
    """The addr-specs of header values (address lists)."""
    import email.utils
    return [a.lower() for _, a in email.utils.getaddresses(values) if a]


def check_delivery(gw, recs, transactions, *, prefix_fields=()):
    """Check the upstream's records of SMTP messages.

    transactions: [(original message bytes as the client sent it, envelope
    recipients)] (a relay may split one message into several transactions:
    give each); prefix_fields: names of header fields a relay puts on top
    (Postfix's Received), allowed before the original's fields.

    Every envelope recipient is a destination of exactly one upstream send;
    every send is verified and signed with the upstream key, its raw
    message the original with one "To: <own>" field (own: its first
    destination, named in the To field), no Bcc field, the Cc field only on
    the send carrying the riders, and every other byte unchanged; no client
    credential reached the upstream."""
    want = collections.Counter()
    by_rcpt = {}
    for original, rcpts in transactions:
        for r in rcpts:
            want[r.lower()] += 1
            by_rcpt[r.lower()] = original
    got = collections.Counter()
    for rec in recs:
        assert rec["verified"], "the upstream refused a signature: %s" % rec.get("verify_error")
        assert rec["access_key"] == gw.upstream.access_key
        assert rec["status"] == 200, "the upstream answered %s" % rec["status"]
        blob = json.dumps(rec["headers"]) + base64.b64decode(rec["body_b64"]).decode("latin-1")
        for c in gw.creds.values():
            assert c.access_key not in blob and c.secret not in blob, "client credentials reached the upstream"
        env, raw = parse_send(rec)
        assert env, "a send without destinations"
        got.update(a.lower() for a in env)
        own = env[0].lower()
        assert own in by_rcpt, "a send to %s, not an envelope recipient" % own
        original = by_rcpt[own]
        ofields, _, _ = split_header(original)
        to_addrs = header_addrs([raw.decode("latin-1").split(":", 1)[1] for n, raw in ofields if n == "to"])
        assert own in to_addrs, "the copy's own recipient %s is not in the To field %s" % (own, to_addrs)
        fields, _, eol = split_header(raw)
        names = [n for n, _ in fields]
        assert "bcc" not in names, "a copy carries a Bcc field: %r" % raw[:2000]
        assert names.count("to") == 1, "the copy for %s has To fields %s" % (own, names.count("to"))
        lead = 0
        while lead < len(fields) and fields[lead][0] in prefix_fields:
            lead += 1
        rest = b"".join(f for _, f in fields[lead:]) + raw[len(b"".join(f for _, f in fields)):]
        want_copy = expected_copy(original, own, first=len(env) > 1)
        assert rest == want_copy, "the copy for %s differs from the original:\nwant %r\ngot  %r" % (
            own, want_copy[:3000], rest[:3000])
    extra = got - want
    missing = want - got
    assert not extra and not missing, "recipients: missing %s, more than once or unknown %s" % (
        sorted(missing)[:10], sorted(extra)[:10])


# ---------------------------------------------------------------- a test SMTP server


class SmtpSink:
    """A small SMTP server on 127.0.0.1 recording every message it takes
    ({"mail_from", "rcpts", "data", "tls", "user"}). tls: an
    ssl.SSLContext offered with STARTTLS (implicit: TLS from the first
    byte); users: {user: password} for AUTH PLAIN and LOGIN, offered and
    required (530) only once TLS is on when a context is given."""

    def __init__(self, tls=None, implicit=False, users=None):
        self.messages = []
        self.lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                sink._session(self.request, tls, implicit, users or {})

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _session(self, sock, tls, implicit, users):
        sock.settimeout(30)
        if implicit:
            sock = tls.wrap_socket(sock, server_side=True)
        rd = sock.makefile("rb")
        on_tls = implicit
        user = None
        mail_from, rcpts = None, []

        def say(text):
            sock.sendall(text.encode() + b"\r\n")

        say("220 sink ESMTP")
        while True:
            line = rd.readline(4096)
            if not line:
                return
            if not line.endswith(b"\r\n"):
                say("500 5.5.2 line not ending with CRLF")
                continue
            cmd = line[:-2].decode("latin-1")
            verb = cmd.split(" ", 1)[0].upper()
            arg = cmd[len(verb) + 1:]
            if verb in ("EHLO", "HELO"):
                ext = ["PIPELINING", "8BITMIME", "SIZE 41943040"]
                if tls and not on_tls:
                    ext.append("STARTTLS")
                if users and (on_tls or not tls):
                    ext.append("AUTH PLAIN LOGIN")
                say("\r\n".join(["250-sink"] + ["250-" + e for e in ext[:-1]] + ["250 " + ext[-1]]))
            elif verb == "STARTTLS" and tls and not on_tls:
                say("220 2.0.0 Ready to start TLS")
                rd.close()  # anything sent along with STARTTLS is dropped with the reader
                sock = tls.wrap_socket(sock, server_side=True)
                rd = sock.makefile("rb")
                on_tls, user, mail_from, rcpts = True, None, None, []
            elif verb == "AUTH":
                if tls and not on_tls:
                    say("530 Must issue a STARTTLS command first")
                    continue
                parts = arg.split(" ")
                mech = parts[0].upper()
                if mech == "PLAIN":
                    resp = parts[1] if len(parts) > 1 else None
                    if resp is None:
                        say("334 ")
                        resp = rd.readline(4096).strip().decode()
                    try:
                        _, u, p = base64.b64decode(resp).decode().split("\0")
                    except ValueError:
                        say("501 5.5.2 bad PLAIN")
                        continue
                elif mech == "LOGIN":
                    if len(parts) > 1:
                        u = base64.b64decode(parts[1]).decode()
                    else:
                        say("334 VXNlcm5hbWU6")
                        u = base64.b64decode(rd.readline(4096).strip()).decode()
                    say("334 UGFzc3dvcmQ6")
                    p = base64.b64decode(rd.readline(4096).strip()).decode()
                else:
                    say("504 5.5.4 unknown mechanism")
                    continue
                if users.get(u) == p:
                    user = u
                    say("235 Authentication successful.")
                else:
                    say("535 Authentication Credentials Invalid")
            elif verb == "MAIL":
                if users and user is None:
                    say("530 Authentication required")
                    continue
                m = re.match(r"(?i)FROM:<([^>]*)>", arg)
                mail_from, rcpts = m.group(1) if m else "", []
                say("250 Ok")
            elif verb == "RCPT":
                m = re.match(r"(?i)TO:<([^>]*)>", arg)
                if mail_from is None or not m:
                    say("503 5.5.1 bad sequence")
                    continue
                rcpts.append(m.group(1))
                say("250 Ok")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    say("503 5.5.1 bad sequence")
                    continue
                say("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    ln = rd.readline()
                    if not ln or ln == b".\r\n":
                        break
                    data.append(ln[1:] if ln.startswith(b".") else ln)
                with self.lock:
                    self.messages.append({"mail_from": mail_from, "rcpts": rcpts, "data": b"".join(data),
                                          "tls": on_tls, "user": user})
                    n = len(self.messages)
                mail_from, rcpts = None, []
                say("250 Ok sink-%d" % n)
            elif verb == "RSET":
                mail_from, rcpts = None, []
                say("250 Ok")
            elif verb == "NOOP":
                say("250 Ok")
            elif verb == "QUIT":
                say("221 Bye")
                return
            else:
                say("502 5.5.2 unknown command")


def server_context(pki):
    """A server TLS context with the test PKI's first certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.cert1), str(pki.key1))
    return ctx


def client_context(pki):
    """A client TLS context trusting the test PKI's root only."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    return ctx


# ---------------------------------------------------------------- Postfix


def pid_alive(pid):
    """True while process pid exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix instance under workdir (as root).

    relay: (port, ca file, user, password) to relay every message through
    [127.0.0.1]:port with SASL and mandatory TLS, set up as AWS documents
    for SES (relayhost, smtp_sasl_auth_enable, smtp_sasl_security_options =
    noanonymous, smtp_sasl_password_maps = hash:sasl_passwd, smtp_use_tls,
    smtp_tls_security_level = encrypt, smtp_tls_note_starttls_offer,
    smtp_tls_CAfile); None: mail stays in the queue (deferred), for the
    benchmark's receiving side (defer_transports). Its own smtpd listens on
    127.0.0.1:self.port."""

    def __init__(self, workdir, relay=None, main=None):
        self.dir = Path(workdir)
        self.conf = self.dir / "etc"
        self.queue = self.dir / "spool"
        self.data = self.dir / "data"
        self.logfile = self.dir / "maillog"
        self.port = harness.free_port()
        self.relay = relay
        self.main = main or {}
        self.started = False
        self.data_real = None

    def main_cf(self):
        c = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data_real),
            "myhostname": "postfix.sesgate.test",
            "mydomain": "sesgate.test",
            "myorigin": "$myhostname",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "local_transport": "error:local delivery is off",
            "alias_maps": "",
            "alias_database": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "maillog_file": str(self.logfile),
            "maillog_file_prefixes": str(self.dir),
            "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C",
            "smtputf8_enable": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
            "master_service_disable": "",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        if self.relay:
            port, ca, _, _ = self.relay
            c.update({
                "relayhost": "[127.0.0.1]:%d" % port,
                "smtp_sasl_auth_enable": "yes",
                "smtp_sasl_security_options": "noanonymous",
                "smtp_sasl_password_maps": "hash:%s" % (self.conf / "sasl_passwd"),
                "smtp_use_tls": "yes",
                "smtp_tls_security_level": "encrypt",
                "smtp_tls_note_starttls_offer": "yes",
                "smtp_tls_CAfile": str(ca),
                "smtp_tls_loglevel": "1",
            })
        else:
            c["defer_transports"] = "smtp"
            c["relayhost"] = "[127.0.0.1]:9"
        c.update(self.main)
        return "".join("%s = %s\n" % kv for kv in c.items())

    def postfix(self, *args, check=True, timeout=60):
        r = subprocess.run([POSTFIX, "-c", str(self.conf)] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        if check:
            assert r.returncode == 0, "postfix %s: %s%s\n%s" % (" ".join(args), r.stdout, r.stderr,
                                                                self.log_text()[-3000:])
        return r

    def start(self):
        """Write the configuration and start the instance; waits for its smtpd."""
        self.conf.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(parents=True, exist_ok=True)
        # The master opens its lock in data_directory as the postfix user,
        # who may not pass the directories above the test's (pytest makes
        # its base directory private again whenever a session starts):
        # data_directory is a directory of its own under /tmp, removed by
        # stop(), and self.data a link to it.
        import pwd
        import tempfile
        owner = pwd.getpwnam("postfix")
        self.data_real = Path(tempfile.mkdtemp(prefix="sesgate-postfix-data.", dir="/tmp"))
        os.chown(self.data_real, owner.pw_uid, owner.pw_gid)
        if self.data.is_symlink() or self.data.exists():
            self.data.unlink()
        self.data.symlink_to(self.data_real)
        (self.conf / "main.cf").write_text(self.main_cf())
        (self.conf / "master.cf").write_text(MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        if self.relay:
            port, _, user, password = self.relay
            pw = self.conf / "sasl_passwd"
            pw.write_text("[127.0.0.1]:%d %s:%s\n" % (port, user, password))
            os.chmod(pw, 0o600)
            r = subprocess.run([POSTMAP, "-c", str(self.conf), "hash:%s" % pw], capture_output=True, text=True,
                               timeout=30)
            assert r.returncode == 0, r.stderr
        self.postfix("start")
        self.started = True
        if not harness.wait_port(self.port, 20):
            raise RuntimeError("postfix's smtpd did not open; log:\n%s" % self.log_text()[-4000:])
        return self

    def stop(self):
        """Stop the instance: postfix stop, then abort if it lingers."""
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        self.postfix("stop", check=False)
        deadline = time.monotonic() + 15
        while pid and time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid and pid_alive(pid):
            self.postfix("abort", check=False)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.data_real is None and self.data.is_symlink():
            self.data_real = self.data.resolve()  # an instance started by another process
        if self.data_real is not None and self.data_real.name.startswith("sesgate-postfix-data."):
            shutil.rmtree(self.data_real, ignore_errors=True)

    def master_pid(self):
        """The pid of this instance's master process, or None."""
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def sendmail(self, message, rcpts, sender, timeout=60):
        """Submit message (bytes) with Postfix's sendmail -C DIR."""
        r = subprocess.run([SENDMAIL, "-C", str(self.conf), "-i", "-f", sender, "--"] + list(rcpts),
                           input=message, capture_output=True, timeout=timeout)
        assert r.returncode == 0, "sendmail: %s %s" % (r.stdout, r.stderr)

    def queue_ids(self):
        """The ids of the messages in the queue (postqueue -j)."""
        r = subprocess.run([POSTQUEUE, "-c", str(self.conf), "-j"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return [json.loads(ln)["queue_id"] for ln in r.stdout.splitlines() if ln.strip()]

    def flush(self):
        subprocess.run([POSTQUEUE, "-c", str(self.conf), "-f"], capture_output=True, timeout=30)

    def wait_empty(self, timeout=120.0):
        """Wait until the queue is empty; fails with the log's tail if not."""
        deadline = time.monotonic() + timeout
        while self.queue_ids():
            if time.monotonic() > deadline:
                raise AssertionError("postfix's queue is not empty after %s s:\n%s" % (
                    timeout, self.log_text()[-4000:]))
            time.sleep(0.3)

    def log_text(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def sent_lines(self):
        """The log's "status=sent" lines of the smtp client."""
        return [ln for ln in self.log_text().splitlines() if "postfix/smtp[" in ln and "status=sent" in ln]


# ---------------------------------------------------------------- clients


def smtplib_send(port, ca, user, password, message, sender, rcpts, implicit=False, timeout=30):
    """Send one message with Python's smtplib (STARTTLS, or TLS from the first
    byte), AUTH with user and password; returns the DATA reply (code, text)."""
    import smtplib
    ctx = ssl.create_default_context(cafile=str(ca))
    if implicit:
        s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=timeout, context=ctx)
    else:
        s = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    try:
        s.ehlo("client.sesgate.test")
        if not implicit:
            s.starttls(context=ctx)
            s.ehlo("client.sesgate.test")
        s.login(user, password)
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(message)
        return code, text.decode("latin-1")
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def run_swaks(port, ca, user, password, data, sender, rcpts, *, implicit=False, auth="LOGIN", timeout=60):
    """swaks with STARTTLS (--tls) or --tls-on-connect, AUTH, the message from
    a file; returns the transcript. The DATA reply must be 250. swaks ends
    what it sends with CRLF "." CRLF after the file's last byte, so the file
    holds data without its final CRLF: the wire carries data exactly."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    path = tmp / ("swaks-%d-%d.eml" % (os.getpid(), time.monotonic_ns()))
    assert data.endswith(b"\r\n")
    path.write_bytes(data[:-2])
    try:
        cmd = [SWAKS, "--server", "127.0.0.1", "--port", str(port), "--from", sender,
               "--to", ",".join(rcpts), "--ehlo", "client.sesgate.test",
               "--tls-on-connect" if implicit else "--tls", "--tls-verify", "--tls-ca-path", str(ca),
               "--tls-sni", "localhost",
               "--auth", auth, "--auth-user", user, "--auth-password", password,
               "--data", "@%s" % path, "--timeout", "30", "--hide-informational"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=harness.clean_env())
    finally:
        path.unlink()
    out = r.stdout + r.stderr
    assert r.returncode == 0, "swaks failed (%d):\n%s" % (r.returncode, out[-3000:])
    return out


def php_mail_via_msmtp(workdir, port, ca, user, password, sender, to, subject, body, headers, timeout=60):
    """PHP's mail() with sendmail_path = msmtp (STARTTLS, AUTH on, the
    settings of msmtp's documentation for an SMTP relay); msmtp reads the
    recipients from To, Cc and Bcc (-t) and removes the Bcc field.
    Returns msmtp's log."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    log = d / ("msmtp-%d.log" % time.monotonic_ns())
    conf = d / ("msmtprc-%d" % time.monotonic_ns())
    conf.write_text("\n".join([
        "defaults", "auth on", "tls on", "tls_starttls on", "tls_trust_file %s" % ca, "logfile %s" % log, "",
        "account sesgate", "host 127.0.0.1", "port %d" % port, "tls_host_override localhost",
        "from %s" % sender, "user %s" % user, "password %s" % password, "",
        "account default : sesgate", ""]))
    os.chmod(conf, 0o600)
    code = ("$ok = mail(%s, %s, %s, %s, %s); echo $ok ? 'sent' : 'failed';" % tuple(
        "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'" for s in (to, subject, body, headers, "-f" + sender)))
    r = subprocess.run([PHP, "-n", "-d", "sendmail_path=%s -C %s -t -i" % (MSMTP, conf), "-r", code],
                       capture_output=True, text=True, timeout=timeout, env=harness.clean_env())
    text = log.read_text() if log.exists() else ""
    assert r.returncode == 0 and r.stdout.strip() == "sent", "php mail(): %s %s\nmsmtp log: %s" % (
        r.stdout, r.stderr, text)
    return text


def run_node_smtp(spec, timeout=60):
    """js/smtp_send.mjs with spec; returns its JSON result."""
    env = harness.clean_env({"NODE_NO_WARNINGS": "1"})
    r = subprocess.run([harness.NODE, str(harness.JS_DIR / "smtp_send.mjs"), json.dumps(spec)], env=env,
                       cwd=str(harness.JS_DIR), capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert r.returncode == 0 and lines, "node smtp_send.mjs failed (%d):\n%s\n%s" % (r.returncode, r.stdout,
                                                                                       r.stderr)
    return json.loads(lines[-1])


# ---------------------------------------------------------------- raw sessions


class SmtpConn:
    """A raw SMTP session to 127.0.0.1:port: send exact bytes, read replies
    (each a list of lines, the last one "NNN text"). tls: a client context
    for starttls() or, with implicit, TLS from the first byte."""

    def __init__(self, port, ctx=None, implicit=False, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.ctx = ctx
        if implicit:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("the server closed the connection")
        self.buf += d

    def reply(self):
        """The next reply: (code, [lines]). EOFError when the server closed."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("latin-1")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def cmd(self, line):
        """Send one command line (CRLF added); its reply."""
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def starttls(self):
        """STARTTLS and the handshake; nothing may be buffered unread."""
        code, lines = self.cmd("STARTTLS")
        assert code == 220, lines
        assert self.buf == b"", "bytes after the STARTTLS reply: %r" % self.buf
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")

    def login(self, user, password, ehlo="client.sesgate.test"):
        """EHLO, STARTTLS (unless on TLS already), EHLO, AUTH PLAIN."""
        code, _ = self.reply()
        assert code == 220
        code, lines = self.cmd("EHLO " + ehlo)
        assert code == 250, lines
        if not isinstance(self.sock, ssl.SSLSocket):
            self.starttls()
            code, lines = self.cmd("EHLO " + ehlo)
            assert code == 250, lines
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        code, lines = self.cmd("AUTH PLAIN " + resp)
        assert code == 235, lines
        return self

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout (the
        bytes it sends first are kept in buf)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
