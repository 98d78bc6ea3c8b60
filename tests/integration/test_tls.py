"""TLS on the SES listener ([server] tls_cert and tls_key).

A private PKI is made with the openssl command line: a root CA, an
intermediate CA, and two server certificates for 127.0.0.1 and localhost
(different serials) whose files hold the leaf and the intermediate. Clients
trust the root only, so the chain in the certificate file is exercised too.
Covered: boto3 (SES v1 and v2), the AWS CLI and the JS SDK over HTTPS; the
protocol versions and TLS 1.2 suites accepted; plain HTTP and stalled
handshakes; the HTTP features (pipelining, keep-alive, Expect, limits) over
TLS; certificate reload on SIGHUP, good and bad; bad files at start.
"""

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

import harness
from test_hostile import FORM, SEND_BODY, assert_ses_error, request_bytes, responses, signed

pytestmark = pytest.mark.needs_sesgate

SERIAL_1 = 0x5E5A7E01
SERIAL_2 = 0x5E5A7E02
QUOTA_BODY = b"Action=GetSendQuota&Version=2010-12-01"
V1_SEND = {
    "Source": harness.SENDER,
    "Destination": {"ToAddresses": [harness.RCPT]},
    "Message": {"Subject": {"Data": "Hello over TLS"}, "Body": {"Text": {"Data": "text body"}}},
}
# The TLS 1.2 suites sesgate may choose: ECDHE key exchange, AEAD only.
TLS12_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
}


# ---------------------------------------------------------------- PKI


def openssl(*args, cwd):
    """Run the openssl command line in cwd; fail the test on error."""
    proc = subprocess.run(["openssl"] + list(args), cwd=str(cwd), capture_output=True, text=True)
    assert proc.returncode == 0, "openssl %s: %s" % (" ".join(args), proc.stderr)


def make_pki(d):
    """A root CA, an intermediate CA and two server certificates under d."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.ext").write_text(
        "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
    )
    (d / "server.ext").write_text(
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "3",
            "-subj", "/CN=sesgate test root CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=sesgate test intermediate",
            cwd=d)
    openssl("x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "100",
            "-days", "3", "-extfile", "ca.ext", "-out", "inter.pem", cwd=d)
    for name, serial in (("server1", SERIAL_1), ("server2", SERIAL_2)):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=localhost", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "inter.pem", "-CAkey", "inter.key",
                "-set_serial", str(serial), "-days", "3", "-extfile", "server.ext", "-out", name + ".leaf", cwd=d)
        (d / (name + ".pem")).write_text((d / (name + ".leaf")).read_text() + (d / "inter.pem").read_text())
    return SimpleNamespace(
        dir=d, ca=d / "root.pem",
        cert1=d / "server1.pem", key1=d / "server1.key",
        cert2=d / "server2.pem", key2=d / "server2.key",
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The test PKI (see make_pki)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


# ---------------------------------------------------------------- instances


def https_gateway(workdir, fake, cert, key):
    """Start sesgate with TLS in front of fake; returns a harness.Gateway
    whose endpoint is the https:// URL."""
    policies = {"app": {"creds": harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret()),
                        "allow_actions": ["*"], "allow_from": ["*"]}}
    gate = harness.Sesgate(workdir, fake.url, fake.creds, policies,
                           extra={"server": {"tls_cert": str(cert), "tls_key": str(key)}})
    gate.start()
    clients = {"app": policies["app"]["creds"]}
    endpoint = "https://127.0.0.1:%d" % gate.port
    return harness.Gateway(endpoint=endpoint, region=harness.REGION, direct=False, fake=fake, sesgate=gate,
                           upstream=fake.creds, clients=clients, workdir=Path(workdir))


def assert_clean_log(text):
    """No sanitizer report and no key material in a sesgate log."""
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error", "PRIVATE KEY"):
        assert bad not in text, "%r in the sesgate log:\n%s" % (bad, text[-4000:])


def key_lines(path):
    """The base64 lines of a PEM key file (none may appear in a log)."""
    return [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith("-----")]


@pytest.fixture(scope="module")
def tls_gw(tmp_path_factory, pki):
    """The fake upstream and one sesgate serving HTTPS with server1."""
    work = tmp_path_factory.mktemp("tls")
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(work, upstream).start()
    try:
        gw = https_gateway(work, fake, pki.cert1, pki.key1)
    except Exception:
        fake.stop()
        raise
    yield gw
    gw.sesgate.stop()
    fake.stop()
    text = gw.sesgate.log_text()
    assert_clean_log(text)
    for ln in key_lines(pki.key1):
        assert ln not in text


@pytest.fixture
def tgw(tls_gw):
    """tls_gw with the fake's record cleared."""
    tls_gw.fake.reset()
    return tls_gw


# ---------------------------------------------------------------- helpers


def client_context(pki, maximum=None, ciphers=None, tls11=False):
    """A verifying client context that trusts the test root CA. tls11: offer
    TLS 1.1 only (the client's own security level lowered so that it does)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if tls11:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def rejected(gw, reason):
    """sesgate_connections_rejected_total for reason, from /metrics."""
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/metrics")
    assert status == 200
    m = re.search(r'sesgate_connections_rejected_total\{[^}]*"%s"\} (\d+)' % re.escape(reason), body.decode())
    return int(m.group(1)) if m else 0


def tls_socket(port, ctx, timeout=5.0):
    """A TLS connection to 127.0.0.1:port, handshake done."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    except Exception:
        sock.close()
        raise


def read_responses(s, want, timeout=5.0):
    """Read from s until want complete responses arrived, or close, or timeout."""
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = responses(out)
        if len(got) >= want and sum(len(b) for _, _, b in got) >= sum(
                int(h.get("content-length", "0")) for _, h, _ in got):
            return got
        try:
            d = s.recv(65536)
        except (socket.timeout, ssl.SSLError, ConnectionResetError):
            break
        if not d:
            break
        out += d
    return responses(out)


def served_serial(gw, pki):
    """The serial number of the certificate a new connection is served."""
    with tls_socket(gw.sesgate.port, client_context(pki)) as s:
        return int(s.getpeercert()["serialNumber"], 16)




def boto3_client(gw, service, pki):
    """A boto3 client for service that verifies sesgate against the test CA."""
    import boto3
    from botocore.config import Config

    creds = gw.creds("app")
    session = boto3.session.Session(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret,
                                    region_name=gw.region)
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return session.client(service, endpoint_url=gw.endpoint, config=cfg, verify=str(pki.ca))


# ---------------------------------------------------------------- clients


def test_boto3_ses_v1_send_email(tgw, pki):
    """boto3 SES v1 SendEmail over HTTPS reaches the upstream once."""
    resp = boto3_client(tgw, "ses", pki).send_email(**V1_SEND)
    assert harness.MESSAGE_ID_RE.match(resp["MessageId"])
    rec = harness.assert_forwarded(tgw, None, resp["MessageId"])
    assert rec["action"] == "SendEmail"


def test_boto3_sesv2_send_email(tgw, pki):
    """boto3 SES v2 SendEmail over HTTPS reaches the upstream once."""
    resp = boto3_client(tgw, "sesv2", pki).send_email(
        FromEmailAddress=harness.SENDER, Destination={"ToAddresses": [harness.RCPT]},
        Content={"Simple": {"Subject": {"Data": "v2 over TLS"}, "Body": {"Text": {"Data": "body"}}}},
    )
    assert harness.MESSAGE_ID_RE.match(resp["MessageId"])
    rec = harness.assert_forwarded(tgw, None, resp["MessageId"])
    assert rec["path"] == "/v2/email/outbound-emails"


def test_boto3_refuses_untrusted_certificate(tgw, pki, tmp_path):
    """Without the test CA, boto3 refuses the certificate: verification is real."""
    import botocore.exceptions

    other = make_pki(tmp_path / "other")
    client = boto3_client(tgw, "ses", other)
    with pytest.raises(botocore.exceptions.SSLError):
        client.get_send_quota()
    assert tgw.fake.requests() == []


def test_awscli_send_email(tgw, pki):
    """aws ses send-email with AWS_CA_BUNDLE."""
    home = tgw.workdir / "awscli-tls"
    home.mkdir(exist_ok=True)
    empty = home / "empty"
    empty.write_text("")
    env = harness.clean_env(dict(tgw.creds("app").env(), AWS_CA_BUNDLE=str(pki.ca), AWS_CONFIG_FILE=str(empty),
                                 AWS_SHARED_CREDENTIALS_FILE=str(empty), AWS_DEFAULT_REGION=tgw.region,
                                 AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1", AWS_PAGER="",
                                 HOME=str(home)))
    cmd = [harness.AWS, "--endpoint-url", tgw.endpoint, "--region", tgw.region, "--output", "json",
           "ses", "send-email", "--from", harness.SENDER, "--destination", "ToAddresses=%s" % harness.RCPT,
           "--message", "Subject={Data=Hello from the cli over TLS},Body={Text={Data=text body}}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mid = json.loads(proc.stdout)["MessageId"]
    harness.assert_forwarded(tgw, None, mid)


@pytest.mark.needs_node
def test_js_sdk_send_email(tgw, pki, monkeypatch):
    """@aws-sdk/client-ses SendEmail with NODE_EXTRA_CA_CERTS."""
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(pki.ca))
    r = harness.run_node(tgw, "ses_v1.mjs", {"op": "SendEmail", "input": V1_SEND}, tgw.creds("app"))
    assert r["ok"], r
    assert harness.MESSAGE_ID_RE.match(r["MessageId"])
    harness.assert_forwarded(tgw, r["sent"][-1], r["MessageId"])


# ---------------------------------------------------------------- protocol


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls12_and_tls13_accepted(tgw, pki, version, name):
    """TLS 1.2 (with an ECDHE AEAD suite) and TLS 1.3 both serve requests."""
    ctx = client_context(pki)
    ctx.minimum_version = ctx.maximum_version = version
    with tls_socket(tgw.sesgate.port, ctx) as s:
        assert s.version() == name
        if version == ssl.TLSVersion.TLSv1_2:
            assert s.cipher()[0] in TLS12_SUITES, s.cipher()
        assert s.compression() is None
        target, hdrs, body = signed(tgw, "POST", "/", QUOTA_BODY, FORM)
        s.sendall(request_bytes("POST", target, hdrs, body))
        r = read_responses(s, 1)
    assert r and r[0][0] == 200, r
    assert b"<Max24HourSend>" in r[0][2]


def test_tls11_refused(tgw, pki):
    """A client that offers at most TLS 1.1 is refused by sesgate."""
    ctx = client_context(pki, tls11=True)
    with pytest.raises(ssl.SSLError) as exc:
        tls_socket(tgw.sesgate.port, ctx).close()
    assert "PROTOCOL_VERSION" in str(exc.value).upper(), exc.value
    text = harness.wait_log(tgw.sesgate, r"event=tls_handshake_failed [^\n]*unsupported protocol")
    assert re.search(r"event=tls_handshake_failed [^\n]*unsupported protocol", text)


def test_weak_tls12_suites_refused(tgw, pki):
    """TLS 1.2 without ECDHE or without AEAD finds no shared suite."""
    ctx = client_context(pki, maximum=ssl.TLSVersion.TLSv1_2,
                         ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError) as exc:
        tls_socket(tgw.sesgate.port, ctx).close()
    assert "HANDSHAKE_FAILURE" in str(exc.value).upper(), exc.value


def test_plain_http_gets_no_http_answer(tgw, pki):
    """Plain HTTP to the TLS port: the connection is closed without an HTTP
    answer, counted as a failed handshake; sesgate keeps serving."""
    before = rejected(tgw, "tls_handshake")
    target, hdrs, body = signed(tgw, "POST", "/", QUOTA_BODY, FORM)
    out = harness.raw_exchange(tgw.sesgate.port, request_bytes("POST", target, hdrs, body), timeout=5,
                               timeout_ends=False)
    assert b"HTTP/" not in out, out
    assert tgw.fake.requests() == []
    assert rejected(tgw, "tls_handshake") == before + 1
    assert served_serial(tgw, pki) == SERIAL_1


def test_stalled_handshake_closed_after_read_timeout(tgw):
    """A client that connects and never sends a ClientHello is closed after
    read_timeout (2 s here), not after the longer idle timeout."""
    before = rejected(tgw, "tls_handshake_timeout")
    s = socket.create_connection(("127.0.0.1", tgw.sesgate.port), timeout=15)
    start = time.monotonic()
    try:
        try:
            d = s.recv(1)
        except ConnectionResetError:
            d = b""
    finally:
        s.close()
    took = time.monotonic() - start
    assert d == b""
    assert 1.5 <= took < 6, took
    assert rejected(tgw, "tls_handshake_timeout") == before + 1


def test_pipelining_keepalive_and_expect_over_tls(tgw, pki):
    """On one TLS connection: two pipelined requests get two answers, the
    connection stays open, Expect: 100-continue is answered, and a body over
    max_body gets the SES 413 and a close."""
    with tls_socket(tgw.sesgate.port, client_context(pki)) as s:
        reqs = b""
        for _ in range(2):
            target, hdrs, body = signed(tgw, "POST", "/", QUOTA_BODY, FORM)
            reqs += request_bytes("POST", target, hdrs, body)
        s.sendall(reqs)
        r = read_responses(s, 2)
        assert [x[0] for x in r] == [200, 200], r
        assert all(x[1].get("connection") != "close" for x in r)

        target, hdrs, body = signed(tgw, "POST", "/", SEND_BODY, FORM)
        hdrs["Expect"] = "100-continue"
        hdrs["Content-Length"] = str(len(body))
        s.sendall(request_bytes("POST", target, hdrs))
        s.settimeout(5)
        interim = s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        rest = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        s.sendall(body)
        r = responses(rest) if rest else read_responses(s, 1)
        assert r and r[0][0] == 200 and b"<MessageId>" in r[0][2], r

        big = 2 << 20
        s.sendall(request_bytes("POST", "/", {"Host": "x", "Content-Length": str(big)}) + b"a" * 65536)
        r = read_responses(s, 1)
        assert_ses_error(r[0], 413, "RequestEntityTooLarge")
        assert r[0][1].get("connection") == "close"
    records = tgw.fake.requests()
    assert [x["action"] for x in records] == ["GetSendQuota", "GetSendQuota", "SendEmail"]


# ---------------------------------------------------------------- reload


@pytest.fixture
def reload_gw(tmp_path, pki):
    """A sesgate of its own, serving copies of server1's files (which the
    test rewrites), and the paths of those copies."""
    work = tmp_path / "reload"
    work.mkdir()
    cert, key = work / "tls.pem", work / "tls.key"
    cert.write_bytes(pki.cert1.read_bytes())
    key.write_bytes(pki.key1.read_bytes())
    os.chmod(key, 0o600)
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(work, upstream).start()
    try:
        gw = https_gateway(work, fake, cert, key)
    except Exception:
        fake.stop()
        raise
    yield SimpleNamespace(gw=gw, cert=cert, key=key)
    gw.sesgate.stop()
    fake.stop()
    text = gw.sesgate.log_text()
    assert_clean_log(text)
    for ln in key_lines(pki.key1) + key_lines(pki.key2):
        assert ln not in text


def quota_on(conn, gw):
    """GetSendQuota through an open http.client connection; returns the status."""
    target, hdrs, body = signed(gw, "POST", "/", QUOTA_BODY, FORM)
    hdrs.pop("Content-Length", None)
    conn.request("POST", target, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    assert b"<Max24HourSend>" in data, data
    assert resp.getheader("Connection") != "close"
    return resp.status


def test_reload_serves_new_certificate(reload_gw, pki):
    """After the files are replaced and SIGHUP sent, new connections get the
    new certificate while a keep-alive connection opened before goes on."""
    gw = reload_gw.gw
    assert served_serial(gw, pki) == SERIAL_1
    conn = http.client.HTTPSConnection("127.0.0.1", gw.sesgate.port, context=client_context(pki), timeout=10)
    assert quota_on(conn, gw) == 200
    sock = conn.sock
    assert int(sock.getpeercert()["serialNumber"], 16) == SERIAL_1

    reload_gw.cert.write_bytes(pki.cert2.read_bytes())
    reload_gw.key.write_bytes(pki.key2.read_bytes())
    gw.sesgate.proc.send_signal(signal.SIGHUP)
    text = harness.wait_log(gw.sesgate, r"event=tls_reloaded")
    assert "event=tls_reloaded" in text, text[-2000:]
    assert served_serial(gw, pki) == SERIAL_2

    assert quota_on(conn, gw) == 200
    assert conn.sock is sock, "the keep-alive connection was reopened"
    assert int(conn.sock.getpeercert()["serialNumber"], 16) == SERIAL_1
    conn.close()
    assert len(gw.fake.requests()) == 2


def test_reload_with_broken_certificate_keeps_old(reload_gw, pki):
    """A broken certificate file on SIGHUP: tls_reload_failed is logged with
    the file's name, and the old certificate goes on being served."""
    gw = reload_gw.gw
    reload_gw.cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    reload_gw.key.write_bytes(pki.key2.read_bytes())
    gw.sesgate.proc.send_signal(signal.SIGHUP)
    text = harness.wait_log(gw.sesgate, r"event=tls_reload_failed")
    line = [ln for ln in text.splitlines() if "event=tls_reload_failed" in ln]
    assert line and str(reload_gw.cert) in line[0], text[-2000:]
    assert "level=error" in line[0]
    assert served_serial(gw, pki) == SERIAL_1

    # A matching pair that is not the pair of the served certificate: the
    # key is checked against the new certificate, and refused.
    reload_gw.cert.write_bytes(pki.cert1.read_bytes())
    gw.sesgate.proc.send_signal(signal.SIGHUP)
    text = harness.wait_log(gw.sesgate, r"event=tls_reload_failed", count=2)
    assert "does not match" in text, text[-2000:]
    assert served_serial(gw, pki) == SERIAL_1
    assert gw.sesgate.proc.poll() is None


# ---------------------------------------------------------------- start-up


def start_fails(tmp_path, pki, cert, key):
    """Run sesgate serve with cert and key; returns (exit code, output)."""
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    policies = {"app": {"creds": harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())}}
    gate = harness.Sesgate(tmp_path, "http://127.0.0.1:9", upstream, policies,
                           extra={"server": {"tls_cert": str(cert), "tls_key": str(key)}})
    tmp_path.mkdir(parents=True, exist_ok=True)
    gate.config_path.write_text(gate.config_text())
    proc = subprocess.run([str(harness.sesgate_bin()), "serve", "-c", str(gate.config_path)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          env=harness.clean_env(), cwd=str(tmp_path))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", ["missing_key", "broken_cert", "mismatched_key"])
def test_bad_files_at_start(tmp_path, pki, case):
    """sesgate serve exits non-zero, naming the file, when the key is
    missing, the certificate is not PEM, or the key is not the certificate's."""
    cert, key = pki.cert1, pki.key1
    if case == "missing_key":
        key = tmp_path / "no-such.key"
        named = key
    elif case == "broken_cert":
        cert = tmp_path / "broken.pem"
        cert.write_text("not a certificate\n")
        named = cert
    else:
        key = pki.key2
        named = key
    rc, out = start_fails(tmp_path / "run", pki, cert, key)
    harness.assert_exit((rc, out), 1)
    assert str(named) in out, out
    if case == "mismatched_key":
        assert "does not match" in out, out
    assert_clean_log(out)
    for ln in key_lines(pki.key1) + key_lines(pki.key2):
        assert ln not in out

