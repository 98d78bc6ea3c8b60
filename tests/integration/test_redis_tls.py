"""Redis as production runs it: an ACL user (redis://user:password@host,
the default user disabled) and TLS (rediss://, [redis] tls_ca_file) to a
real redis-server with a TLS port only, certificates made here with openssl.
The daemon's connection and the operator commands (sesgate status, batch
show) both go through it; a wrong CA or a wrong host name is refused with a
clear log line and nothing is acknowledged; a restart, a stall and the
health PING behave as over plain TCP."""

import json
import os
import signal
import stat
import subprocess
import time
import urllib.parse
from pathlib import Path

import botocore.exceptions
import pytest

import harness
from test_big_messages import big_raw
from test_fanout_clients import check_batch, check_copies, settle
from test_queue import params, send

pytestmark = pytest.mark.needs_sesgate

REDIS_SERVER = "/usr/bin/redis-server"
USER = "sesgate-app"


def openssl(*args, cwd):
    """Run openssl ARGS in cwd; fail the test on an error."""
    r = subprocess.run(["openssl"] + list(args), cwd=str(cwd), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


class Pki:
    """A CA of the test's own, a server certificate for localhost and
    127.0.0.1 from it, one for another name from it, and a second CA that
    signed nothing sesgate is shown."""

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self._ca("ca", "sesgate test CA")
        self.other_ca = self._ca("other-ca", "another CA")
        self.server = self._leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1")
        self.wrong_name = self._leaf("wrong-name", "redis.example.net", "DNS:redis.example.net")

    def _ca(self, name, cn):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                name + ".pem", "-days", "2", "-subj", "/CN=" + cn,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                cwd=self.dir)
        return self.dir / (name + ".pem")

    def _leaf(self, name, cn, san):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + cn, cwd=self.dir)
        (self.dir / (name + ".ext")).write_text("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=self.dir)
        return (self.dir / (name + ".pem"), self.dir / (name + ".key"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The module's certificates."""
    return Pki(tmp_path_factory.mktemp("pki"))


class AclRedis:
    """A redis-server of the test's own with the default user disabled and
    one ACL user; TLS only (no plain port) when cert is given; with
    persist, a stop (SIGTERM) saves the data and the next start loads it
    (RDB: Redis 7.0 cannot replay an append-only file's MULTI blocks while
    the default user is off)."""

    def __init__(self, workdir, password, cert=None, ca=None, persist=False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = harness.free_port()
        self.password = password
        self.cert = cert
        self.ca = ca
        self.persist = persist
        self.proc = None

    def start(self):
        save = "3600 1" if self.persist else ""
        cmd = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", save, "--appendonly", "no",
               "--dir", str(self.workdir), "--daemonize", "no", "--logfile", str(self.workdir / "redis.log"),
               "--user", "default", "off", "--user", USER, "on", ">" + self.password, "~*", "&*", "+@all"]
        if self.cert:
            cmd += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.cert[0]),
                    "--tls-key-file", str(self.cert[1]), "--tls-ca-cert-file", str(self.ca),
                    "--tls-auth-clients", "no"]
        else:
            cmd += ["--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        assert harness.wait_for(lambda: self.cli("PING", check=False) == "PONG", 10), "redis-server did not start"
        return self

    def cli(self, *args, check=True):
        """redis-cli as the ACL user (over TLS when the server has it)."""
        cmd = [harness.REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--user", USER, "--no-auth-warning"]
        if self.cert:
            cmd += ["--tls", "--cacert", str(self.ca)]
        env = dict(os.environ, REDISCLI_AUTH=self.password)
        r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=10, env=env)
        if check:
            assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            if self.proc.returncode is None:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def url(scheme, password, port, host="localhost", db=3):
    """A [redis] url for the ACL user."""
    return "%s://%s:%s@%s:%d/%d" % (scheme, USER, urllib.parse.quote(password, safe=""), host, port, db)


class Rig:
    """The fake SES and `sesgate run` on a Redis of the test's own; the TLS
    relay's private directory goes under the rig's own TMPDIR."""

    def __init__(self, tmp_path, redis_section, server=None, env=None):
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        workdir = tmp_path / "gate"
        upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
        self.fake = harness.FakeSES(tmp_path / "fake", upstream).start()
        creds = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
        policies = {"app": {"creds": creds, "allow_actions": ["*"], "allow_from": ["*"]}}
        extra = {"redis": dict(redis_section), "server": dict(server or {}),
                 "send": {"first_recipient": "queue", "rate": "1000", "concurrency": "4"}}
        self.gate = harness.RunSesgate(workdir, self.fake.url, upstream, policies, extra=extra,
                                       env=dict(env or {}, TMPDIR=str(self.tmpdir)))
        self.gw = harness.Gateway(self.gate.url, harness.REGION, False, self.fake, self.gate, upstream,
                                  {"app": creds}, workdir)

    def start(self):
        try:
            self.gate.start()
        except Exception:
            self.fake.stop()
            raise
        return self

    def stop(self):
        self.gate.stop()
        self.fake.stop()
        log = self.gate.log_text()
        assert not harness.SANITIZER_RE.search(log), log[-4000:]

    def readyz(self):
        status, _, body = harness.http("GET", self.gate.admin_url + "/readyz", timeout=3)
        return status, body.decode()

    def cli(self, *args):
        """`sesgate ARGS -c CONFIG` (the operator commands): CompletedProcess."""
        cmd = [str(harness.sesgate_bin())] + list(args) + ["-c", str(self.gate.config_path)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                              env=harness.clean_env({"TMPDIR": str(self.tmpdir)}), cwd=str(self.gate.workdir))

    def wait_ready(self, timeout=10):
        assert harness.wait_for(lambda: self.readyz()[0] == 200, timeout), (self.readyz(),
                                                                           self.gate.log_text()[-3000:])

    def deliver(self, to):
        """A batch to the addresses in to, all of them delivered once; its id."""
        self.fake.reset()
        resp, batch = send(self.gw, to)
        assert resp.get("MessageId") and batch, resp
        recs = harness.wait_records(self.fake, len(to), settle=0.3)
        got = sorted(params(r)["Destination.ToAddresses.member.1"] for r in recs if r["status"] == 200)
        assert got == sorted(to), got
        return batch


def no_secret(text, *secrets):
    """None of secrets (nor their URL-encoded forms) is in text."""
    for s in secrets:
        assert s not in text and urllib.parse.quote(s, safe="") not in text


def relay_dirs(rig):
    """The TLS relays' private directories under the rig's TMPDIR."""
    return sorted(rig.tmpdir.glob("sesgate-redistls-*"))


def test_acl_user(tmp_path):
    """redis://user:password@host: the daemon and the operator commands
    authenticate as the ACL user (the default user is disabled), a batch is
    delivered; a wrong password is refused with one clear log line, /readyz
    503, and neither the log nor the operator's error names the password."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password).start()
    rig = Rig(tmp_path / "ok", {"url": url("redis", password, redis.port, host="127.0.0.1")}).start()
    try:
        rig.wait_ready()
        batch = rig.deliver(["acl%d@example.net" % i for i in range(4)])
        assert harness.wait_for(lambda: json.loads(rig.cli("batch", "show", batch, "--json").stdout or "{}")
                                .get("complete"), 10)
        st = json.loads(rig.cli("batch", "show", batch, "--json").stdout)
        assert (st["total"], st["sent"]) == (4, 4), st
        r = rig.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        assert int(redis.cli("DBSIZE")) == 0, "sesgate wrote outside its database (db 3)"
        assert int(redis.cli("-n", "3", "DBSIZE")) > 0
        clients = redis.cli("CLIENT", "LIST")
        assert "user=%s" % USER in clients and "user=default" not in clients, clients
        no_secret(rig.gate.log_text(), password)
    finally:
        rig.stop()

    wrong = harness.new_secret()
    bad = Rig(tmp_path / "bad", {"url": url("redis", wrong, redis.port, host="127.0.0.1")}).start()
    try:
        time.sleep(2.5)
        status, body = bad.readyz()
        assert status == 503 and "redis unreachable" in body, body
        log = harness.wait_log(bad.gate, "event=redis_down")
        assert log.count("event=redis_down") == 1, log
        assert "AUTH failed: WRONGPASS" in log, log
        no_secret(log, wrong, password)
        r = bad.cli("status")
        harness.assert_exit(r, 1)
        assert "AUTH failed: WRONGPASS" in r.stderr, r.stderr
        no_secret(r.stderr + r.stdout, wrong)
    finally:
        bad.stop()
        redis.stop()


def test_tls_batch_and_operator_commands(tmp_path, pki):
    """rediss:// with tls_ca_file to a TLS-only Redis as an ACL user: /readyz
    200, a batch delivered, sesgate status and batch show over TLS; the
    relay's socket is in a 0700 directory of its own, removed at exit."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password, cert=pki.server, ca=pki.ca).start()
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port), "tls_ca_file": str(pki.ca)}).start()
    try:
        rig.wait_ready()
        dirs = relay_dirs(rig)
        assert len(dirs) == 1, dirs
        assert stat.S_IMODE(dirs[0].stat().st_mode) == 0o700
        assert (dirs[0] / "redis.sock").is_socket()
        to = ["tls%d@example.net" % i for i in range(6)]
        batch = rig.deliver(to)
        assert harness.wait_for(lambda: json.loads(rig.cli("batch", "show", batch, "--json").stdout or "{}")
                                .get("complete"), 10)
        r = rig.cli("batch", "show", batch, "--json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert (st["total"], st["sent"], st["dead"]) == (6, 6, 0), st
        assert sorted(x["address"] for x in st["recipients"]) == sorted(to)
        r = rig.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        assert batch in json.dumps(json.loads(r.stdout))
        r = rig.cli("status")
        assert r.returncode == 0 and "depth 0" in r.stdout, r.stdout + r.stderr
        # What sesgate wrote is in Redis (reached over TLS only: no plain port).
        assert int(redis.cli("-n", "3", "DBSIZE")) > 0
        assert "event=redis_connected where=rediss://localhost:%d/3" % redis.port in rig.gate.log_text()
        no_secret(rig.gate.log_text(), password)
    finally:
        rig.stop()
        redis.stop()
    assert relay_dirs(rig) == [], "the relay's directory outlived sesgate"


def test_tls_large_message(tmp_path, pki):
    """A 4 MB message through the relay both ways (the template written at
    enqueue, read back by the worker), with the relay stopping to read one
    side whenever 1 KB waits for the other (1 MB in production): every copy
    byte for byte."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password, cert=pki.server, ca=pki.ca).start()
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port), "tls_ca_file": str(pki.ca)},
              server={"max_body": "20m"}, env={"TEST_SESGATE_REDISTLS_HIGH_WATER": "1024"}).start()
    try:
        rig.wait_ready()
        to = ["large%d@x.example" % i for i in range(3)]
        raw = big_raw(to, [], [], 3 << 20)
        headers = {}
        c = harness.boto3_client(rig.gw, "ses")
        c.meta.events.register("after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
        resp = c.send_raw_email(RawMessage={"Data": raw.data()})
        batch = headers["x-sesgate-batch-id"]
        st, recs = settle(rig.gw, batch, timeout=120)
        by_addr = check_copies(rig.gw, recs, to, rest={"Action": "SendRawEmail", "Version": "2010-12-01"},
                               raw=raw)
        check_batch(rig.gw, "queue", batch, resp["MessageId"], st, to, by_addr)
    finally:
        rig.stop()
        redis.stop()


def test_tls_wrong_ca(tmp_path, pki):
    """A server certificate from a CA that tls_ca_file does not hold is
    refused: one log line says why, /readyz stays 503, a send is answered
    ServiceUnavailable and nothing is sent; the operator commands say why."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password, cert=pki.server, ca=pki.ca).start()
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port),
                               "tls_ca_file": str(pki.other_ca)}).start()
    try:
        time.sleep(2.5)
        status, body = rig.readyz()
        assert status == 503 and "redis unreachable" in body, body
        log = harness.wait_log(rig.gate, "event=redis_down")
        assert log.count("event=redis_down") == 1, log
        assert "reason=\"TLS certificate verify failed: self-signed certificate in certificate chain\"" in log \
            or "reason=\"TLS certificate verify failed: unable to get local issuer certificate\"" in log, log
        assert "event=redis_connected" not in log
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            send(rig.gw, ["nope%d@example.net" % i for i in range(3)])
        assert ei.value.response["Error"]["Code"] == "ServiceUnavailable", ei.value.response
        time.sleep(1.0)
        assert rig.fake.requests() == [], "something was sent while Redis was refused"
        r = rig.cli("status")
        harness.assert_exit(r, 1)
        assert "rediss://localhost:%d/3: TLS certificate verify failed" % redis.port in r.stderr, r.stderr
        assert int(redis.cli("-n", "3", "DBSIZE")) == 0, "something reached Redis"
        no_secret(rig.gate.log_text() + r.stderr, password)
    finally:
        rig.stop()
        redis.stop()


def test_tls_wrong_host_name(tmp_path, pki):
    """A certificate from the right CA for another host name is refused
    (the name is checked, and sent as SNI), by the daemon and the operator
    commands alike; the same server by an address its certificate does not
    name is refused too."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password, cert=pki.wrong_name, ca=pki.ca).start()
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port), "tls_ca_file": str(pki.ca)}).start()
    try:
        time.sleep(2.5)
        status, body = rig.readyz()
        assert status == 503 and "redis unreachable" in body, body
        log = harness.wait_log(rig.gate, "event=redis_down")
        assert "reason=\"TLS certificate verify failed: hostname mismatch\"" in log, log
        assert log.count("event=redis_down") == 1, log
        r = rig.cli("batch", "show", "0" * 32)
        harness.assert_exit(r, 1)
        assert "TLS certificate verify failed: hostname mismatch" in r.stderr, r.stderr
    finally:
        rig.stop()
    # An IP address is checked against the certificate's IP addresses.
    rig = Rig(tmp_path / "ip", {"url": url("rediss", password, redis.port, host="127.0.0.1"),
                                "tls_ca_file": str(pki.ca)}).start()
    try:
        log = harness.wait_log(rig.gate, "event=redis_down")
        assert "reason=\"TLS certificate verify failed: IP address mismatch\"" in log, log
    finally:
        rig.stop()
        redis.stop()


def test_tls_redis_started_after_sesgate(tmp_path, pki):
    """Nothing listens yet: the refused connect is the logged reason (and the
    operator commands'); once the TLS Redis starts, sesgate is ready and
    delivers."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password, cert=pki.server, ca=pki.ca)
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port), "tls_ca_file": str(pki.ca)}).start()
    try:
        log = harness.wait_log(rig.gate, "event=redis_down")
        assert "reason=\"Connection refused\"" in log, log
        assert rig.readyz()[0] == 503
        r = rig.cli("status")
        harness.assert_exit(r, 1)
        assert "cannot connect to rediss://localhost:%d/3: Connection refused" % redis.port in r.stderr, r.stderr
        redis.start()
        rig.wait_ready(10)
        rig.deliver(["late%d@example.net" % i for i in range(3)])
        log = rig.gate.log_text()
        assert log.count("event=redis_down") == 1 and log.count("event=redis_up") == 1, log
    finally:
        rig.stop()
        redis.stop()


def test_tls_to_a_redis_without_tls(tmp_path):
    """rediss:// to a Redis that speaks no TLS (it waits for the end of an
    inline command that never comes): the connect bound ends each attempt,
    logged once as an unanswered handshake, and nothing is written."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password).start()
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port, host="127.0.0.1")}).start()
    try:
        time.sleep(2.5)
        status, body = rig.readyz()
        assert status == 503 and "redis unreachable" in body, body
        log = harness.wait_log(rig.gate, "event=redis_down")
        assert log.count("event=redis_down") == 1, log
        assert "reason=\"no answer to the TLS handshake\"" in log, log
        assert int(redis.cli("-n", "3", "DBSIZE")) == 0
        r = rig.cli("status")
        harness.assert_exit(r, 1)
        assert ": no answer to the TLS handshake within 3000 ms" in r.stderr, r.stderr
    finally:
        rig.stop()
        redis.stop()


def test_tls_restart_stall_and_ip(tmp_path, pki):
    """Through TLS, as over TCP: Redis stopped and started again (same port,
    its data kept) is reconnected to (one redis_down, one redis_up) and a batch is then
    delivered; a stopped (SIGSTOP) Redis turns /readyz 503 within the stall
    bound and 200 once it runs again; an IP address that the certificate
    names is accepted."""
    password = harness.new_secret()
    redis = AclRedis(tmp_path / "redis", password, cert=pki.server, ca=pki.ca, persist=True).start()
    rig = Rig(tmp_path / "g", {"url": url("rediss", password, redis.port, host="127.0.0.1"),
                               "tls_ca_file": str(pki.ca)}).start()
    try:
        rig.wait_ready()
        rig.deliver(["before%d@example.net" % i for i in range(3)])

        redis.stop()
        got = harness.wait_for(lambda: rig.readyz()[0] == 503 and rig.readyz(), 3)
        assert got and "redis unreachable" in got[1], "/readyz did not turn 503 within 3 s"
        time.sleep(1.5)  # reconnect attempts meanwhile, refused
        redis.start()
        rig.wait_ready(10)
        log = harness.wait_log(rig.gate, "event=redis_up")
        assert log.count("event=redis_down") == 1 and log.count("event=redis_up") == 1, log
        assert "event=redis_data_lost" not in log, log
        rig.deliver(["after%d@example.net" % i for i in range(3)])

        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert harness.wait_for(lambda: rig.readyz()[0] == 503, 9), "/readyz stayed 200 with Redis stopped"
            assert time.monotonic() - t0 >= 4.0  # the last PONG is recent for 5 s
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        rig.wait_ready(5)
        rig.deliver(["resumed%d@example.net" % i for i in range(3)])
        no_secret(rig.gate.log_text(), password)
    finally:
        rig.stop()
        redis.stop()


def test_tls_configuration_errors(tmp_path, pki):
    """A tls_ca_file that holds no certificate, or one set for a plain
    redis:// url, stops sesgate at start with a clear message."""
    cases = [
        ({"url": "rediss://127.0.0.1:1", "tls_ca_file": str(tmp_path / "missing.pem")},
         "[redis] tls_ca_file %s: no CA certificate could be read" % (tmp_path / "missing.pem")),
        ({"url": "redis://127.0.0.1:1", "tls_ca_file": str(pki.ca)},
         "[redis] tls_ca_file is set but [redis] url is not rediss://"),
    ]
    for i, (section, message) in enumerate(cases):
        creds = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
        upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
        gate = harness.RunSesgate(tmp_path / ("c%d" % i), "http://127.0.0.1:1", upstream,
                                  {"app": {"creds": creds, "allow_actions": ["*"], "allow_from": ["*"]}},
                                  extra={"redis": section})
        gate.workdir.mkdir(parents=True, exist_ok=True)
        gate.config_path.write_text(gate.config_text())
        r = subprocess.run([str(harness.sesgate_bin()), "run", "-c", str(gate.config_path)],
                           capture_output=True, text=True, timeout=30, env=harness.clean_env())
        harness.assert_exit(r, 1)
        assert message in r.stderr, r.stderr
