"""Helpers shared by sesgate's integration tests.

Processes: FakeSES (tests/integration/fakeses.py, the fake SES upstream) and
Sesgate (build/sesgate serve -c FILE, or $SESGATE_BIN). Clients: boto3 in
process, the aws command line and the Node scripts under js/. Assertions on
what the fake upstream received.

With SESGATE_DIRECT=1 no sesgate is started: clients talk to the fake
directly with the upstream credentials, which checks the harness and the
fake's signature verification on their own.
"""

import base64
import contextlib
import dataclasses
import datetime
import email.utils
import json
import os
import re
import secrets
import shutil
import signal
import socket
import socketserver
import string
import subprocess
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = "/usr/bin/python3"
AWS = "/usr/bin/aws"
NODE = shutil.which("node") or "/usr/bin/node"
REGION = "us-east-1"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
JS_DIR = HERE / "js"
AWSCLI_PLUGIN_DIR = HERE / "awscli_plugin"

# A direct opener: the tests talk to loopback only and must ignore proxies.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Expected (code, HTTP status) per refusal, for the v1 and v2 APIs.
REFUSALS = {
    "v1": {
        "wrong_secret": ("SignatureDoesNotMatch", 403),
        "unknown_key": ("InvalidClientTokenId", 403),
        "expired": ("SignatureDoesNotMatch", 403),
        "tampered": ("SignatureDoesNotMatch", 403),
        "missing_auth": ("MissingAuthenticationToken", 403),
        "denied_action": ("AccessDenied", 403),
        "denied_sender": ("AccessDenied", 403),
    },
    "v2": {
        "wrong_secret": ("InvalidSignatureException", 403),
        "unknown_key": ("UnrecognizedClientException", 403),
        "expired": ("InvalidSignatureException", 403),
        "tampered": ("InvalidSignatureException", 403),
        "missing_auth": ("MissingAuthenticationTokenException", 403),
        "denied_action": ("AccessDeniedException", 403),
        "denied_sender": ("AccessDeniedException", 403),
    },
}
# Refusals that only sesgate's client policy produces.
POLICY_REFUSALS = ("denied_action", "denied_sender")
# Refusals whose message must say so.
REFUSAL_MESSAGES = {"expired": "Signature expired"}


def direct_mode():
    """True when the tests run against the fake upstream without sesgate."""
    return os.environ.get("SESGATE_DIRECT", "") not in ("", "0")


def sesgate_bin():
    """The sesgate binary under test."""
    return Path(os.environ.get("SESGATE_BIN") or REPO / "build" / "sesgate")


def sesgate_json(config_path, workdir, *args, env=None, timeout=60):
    """Run `sesgate ARGS -c CONFIG --json` (an operator command) in workdir
    on the real clock; asserts it succeeded and returns its parsed output."""
    cmd = [str(sesgate_bin())] + list(args) + ["-c", str(config_path), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(env),
                       cwd=str(workdir))
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return json.loads(r.stdout)


def outbox(directory, pattern="*.eml"):
    """The files of the sandbox's outbox matching pattern, without the
    temporary ones (".tmp-...") a file is written to before its rename."""
    return sorted(p for p in Path(directory).glob(pattern) if not p.name.startswith("."))


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    """Wait until 127.0.0.1:port accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_for(pred, timeout=10.0, step=0.05):
    """Poll pred until it returns a true value (returned) or timeout seconds
    pass (then pred's last value is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def wait_log(gate, pattern, count=1, timeout=10.0):
    """Wait until the log of gate (anything with log_text()) matches the
    regular expression pattern count times; returns the log. Raises
    AssertionError with the log's tail when it does not in time."""
    text = wait_for(lambda: (lambda t: t if len(re.findall(pattern, t)) >= count else None)(gate.log_text()),
                    timeout)
    if text is None:
        tail = gate.log_text()[-3000:]
        raise AssertionError("%r not %d time(s) in the log within %s s:\n%s" % (pattern, count, timeout, tail))
    return text


# A report of AddressSanitizer, LeakSanitizer or UBSan.
SANITIZER_RE = re.compile(r"ERROR: \w+Sanitizer|SUMMARY: \w+Sanitizer|runtime error:")
# The exit status tests/run gives AddressSanitizer (ASAN_OPTIONS exitcode=23).
ASAN_EXIT = 23


def assert_no_sanitizer(text):
    """No sanitizer report in text."""
    m = SANITIZER_RE.search(text or "")
    assert not m, "sanitizer report:\n%s" % text[max(0, m.start() - 200):m.start() + 3000]


def assert_exit(proc, code):
    """proc (a CompletedProcess, or (returncode, output)) exited with exactly
    code and printed no sanitizer report; returns its output (stdout + stderr).
    A sanitizer exit (23 under tests/run) is never "failed as expected"."""
    rc, out = proc if isinstance(proc, tuple) else (proc.returncode, (proc.stdout or "") + (proc.stderr or ""))
    assert_no_sanitizer(out)
    assert rc == code, "exit status %s, want %s%s:\n%s" % (
        rc, code, " (a sanitizer's)" if rc == ASAN_EXIT else "", out[-3000:])
    return out


def wait_records(fake, n, timeout=20.0, pred=lambda r: True, settle=0.0):
    """The fake's records matching pred once there are at least n of them
    (or whatever there is after timeout); with settle, wait that much longer
    and read them again, so that extra records show."""
    recs = wait_for(lambda: (lambda got: got if len(got) >= n else None)(
        [r for r in fake.requests() if pred(r)]), timeout, 0.1)
    if recs and settle:
        time.sleep(settle)
        recs = [r for r in fake.requests() if pred(r)]
    return recs if recs is not None else [r for r in fake.requests() if pred(r)]


class RedisClient:
    """A minimal Redis protocol (RESP2) client on a TCP port or unix socket."""

    class Error(Exception):
        """An error reply."""

    def __init__(self, port=None, unix=None, timeout=10.0):
        if unix is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(unix))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.rd = self.sock.makefile("rb")

    def close(self):
        self.rd.close()
        self.sock.close()

    def _reply(self):
        line = self.rd.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed mid-reply: %r" % line)
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisClient.Error(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.rd.read(n + 2)[:-2].decode("utf-8", "surrogateescape")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def cmd(self, *args):
        """One command; the reply decoded (an error reply raises RedisClient.Error)."""
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode("utf-8", "surrogateescape")
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._reply()


def raw_exchange(port, data, *, more=(), timeout=5.0, timeout_ends=True):
    """Send data to 127.0.0.1:port over a plain TCP socket, then each chunk of
    more until the peer refuses one (broken pipe or reset), and read the answer
    until the peer closes or resets the connection. When a read waits longer
    than timeout, the reading ends there if timeout_ends, else socket.timeout
    is raised. Returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    ends = (socket.timeout, ConnectionResetError) if timeout_ends else (ConnectionResetError,)
    out = b""
    try:
        s.sendall(data)
        try:
            for chunk in more:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                d = s.recv(65536)
            except ends:
                break
            if not d:
                break
            out += d
    finally:
        s.close()
    return out


def http(method, url, body=None, headers=None, timeout=10.0):
    """A plain HTTP request; returns (status, headers, body bytes)."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def new_access_key(prefix="SG"):
    """A fresh access key id in AWS's shape ([A-Z0-9], 20 characters). With
    $SESGATE_LOG_DIR set, a client's key (prefix SG) is also noted in
    client-keys.txt there: tests/run checks that none reached an upstream."""
    alphabet = string.ascii_uppercase + string.digits
    key = prefix + "".join(secrets.choice(alphabet) for _ in range(20 - len(prefix)))
    d = log_dir()
    if d and prefix.startswith("SG"):
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "client-keys.txt", "a") as f:
            f.write(key + "\n")
    return key


def log_dir():
    """Where sesgate logs go when the whole suite runs ($SESGATE_LOG_DIR), or None."""
    d = os.environ.get("SESGATE_LOG_DIR")
    return Path(d) if d else None


def new_secret():
    """A fresh 40-character secret access key. With $SESGATE_LOG_DIR set it is
    also noted in secrets.txt there, so the suite can check that no log line
    ever contains it."""
    alphabet = string.ascii_letters + string.digits + "+/"
    secret = "".join(secrets.choice(alphabet) for _ in range(40))
    d = log_dir()
    if d:
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "secrets.txt", "a") as f:
            f.write(secret + "\n")
    return secret


@dataclasses.dataclass
class Creds:
    """One access key: a sesgate client's, the upstream's or an unknown one."""

    name: str
    access_key: str
    secret: str

    def env(self):
        """The AWS_* variables that hand these credentials to a client."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret}


def clean_env(extra=None):
    """os.environ without AWS_* and SESGATE_* variables, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SESGATE_"))}
    env.update(extra or {})
    return env


# Every FakeSES made in this process: the `fakes_signatures` fixture
# (conftest.py) checks each one's record after every test.
FAKES = []


class FakeSES:
    """The fake SES upstream (fakeses.py) as a child process.

    Every request it refuses for its signature fails the test that caused it
    (at teardown, conftest.py), unless the test took the refusal with
    take_refused() and asserted on it."""

    def __init__(self, workdir, creds, region=REGION, port=0, extra_args=()):
        self.workdir = Path(workdir)
        self.creds = creds
        self.region = region
        self.port = port
        self.extra_args = list(extra_args)
        self.proc = None
        # With $SESGATE_LOG_DIR the record goes there, where tests/run scans
        # it for client credentials that must never reach an upstream.
        d = log_dir()
        self.record_path = (d / ("fakeses-%d-%d.jsonl" % (os.getpid(), len(FAKES))) if d
                            else self.workdir / "fakeses-requests.jsonl")
        self.log_path = self.workdir / "fakeses.log"
        # How far into the record file refusals have been checked or taken.
        self._checked = 0
        FAKES.append(self)

    def _new_records(self):
        """Records appended to the record file since the last check (the
        file keeps every request, /__reset does not truncate it)."""
        if not self.record_path.exists():
            return []
        with open(self.record_path, "rb") as f:
            f.seek(self._checked)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next check
        self._checked += end
        return [json.loads(x) for x in data[:end].splitlines() if x.strip()]

    def take_refused(self):
        """The requests the fake refused for their signature since the last
        check; the caller asserts on them, and they no longer fail the test."""
        return [r for r in self._new_records() if not r["verified"]]

    def check_signatures(self):
        """Fail on any request refused for its signature since the last check."""
        bad = self.take_refused()
        assert not bad, "the upstream at %s refused %d signature(s) nobody expected; first: %s" % (
            self.workdir, len(bad), json.dumps({k: bad[0].get(k) for k in ("seq", "method", "path", "action",
                                                                            "access_key", "verify_error")}))

    @property
    def url(self):
        """The fake's base URL."""
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        """Start the fake and wait for its "listening" line."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            PYTHON, str(HERE / "fakeses.py"), "--port", str(self.port), "--record", str(self.record_path),
            "--access-key", self.creds.access_key,
            "--region", self.region, "--verbose",
        ] + self.extra_args
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                     env=clean_env({"FAKESES_SECRET": self.creds.secret}), cwd=str(HERE))
        log.close()
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            chunk = self.proc.stdout.readline()
            if not chunk and self.proc.poll() is not None:
                break
            line += chunk
        m = re.match(rb"listening (\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError("fakeses did not start: %r; log:\n%s" % (line, self.log_path.read_text()))
        self.port = int(m.group(1))
        return self

    def stop(self):
        """Stop the fake."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def _control(self, method, path, body=None):
        status, _, out = http(method, self.url + path, body)
        if status != 200:
            raise RuntimeError("fakeses %s %s: %d %s" % (method, path, status, out[:300]))
        return json.loads(out)

    def control(self, *rules, **rule):
        """Set the fault rules: control(mode="status", status=503, count=1),
        or control(rule1, rule2, ...) for a sequence; control() = normal."""
        spec = list(rules) if rules else [rule or {"mode": "normal"}]
        return self._control("POST", "/__control", spec)

    def throttle(self, count=1):
        """Answer the next count requests with SES's throttling error."""
        return self.control(
            mode="status", status=400, code="Throttling", message="Maximum sending rate exceeded.",
            v2={"status": 429, "code": "TooManyRequestsException", "message": "Maximum sending rate exceeded."},
            count=count,
        )

    def set_quota(self, **quota):
        """Set what GetSendQuota / GetAccount report."""
        return self._control("POST", "/__quota", quota)

    def quota(self):
        """The fake's quota, whether it is enforced, and the recipients it
        accepted in the last second (GET /__quota)."""
        return self._control("GET", "/__quota")

    def add_key(self, access_key, secret, session_token=None, expiration=None):
        """Accept one more key from now on (POST /__keys): temporary
        credentials a fake in fakeaws.py issued, refused after expiration
        (epoch seconds, None: never)."""
        return self._control("POST", "/__keys", {"access_key": access_key, "secret": secret,
                                                 "session_token": session_token, "expiration": expiration})

    def requests(self, since=0):
        """The recorded requests (seq >= since)."""
        return self._control("GET", "/__requests?since=%d" % since)

    def reset(self):
        """Forget the recorded requests and the fault rules."""
        return self._control("POST", "/__reset")


class Sesgate:
    """sesgate serve, with a generated configuration, as a child process."""

    command = "serve"  # the sesgate command this process runs
    writes_config = True  # start() writes the configuration (False: it is there)
    serves = True  # the SES listener comes up (False: workers only)

    def __init__(self, workdir, upstream_url, upstream, clients, region=REGION, extra=None, env=None):
        self.workdir = Path(workdir)
        self.upstream_url = upstream_url
        self.upstream = upstream
        self.clients = clients
        self.region = region
        self.extra = extra or {}
        self.env = env or {}
        self.port = free_port()
        self.admin_port = free_port()
        self.proc = None
        self.config_path = self.workdir / "sesgate.ini"
        self.log_path = (log_dir() or self.workdir) / ("sesgate-%d.log" % self.port)

    @property
    def url(self):
        """The SES endpoint sesgate serves."""
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_url(self):
        """The admin listener's base URL."""
        return "http://127.0.0.1:%d" % self.admin_port

    def config_text(self):
        """The INI configuration for this instance."""
        sections = {
            "server": {
                "listen": "127.0.0.1:%d" % self.port,
                "admin_listen": "127.0.0.1:%d" % self.admin_port,
                "clock_skew": "5m",
                # Small limits so the hostile-input tests reach them quickly.
                "max_body": "1m",
                "read_timeout": "2s",
            },
            "upstream": {
                "endpoint": self.upstream_url,
                "region": self.region,
                "timeout": "10s",
            },
            "redis": {"data_dir": str(self.workdir / "var"), "prefix": "sesgate-it"},
            # A fixed rate: sesgate then makes no quota calls of its own, so
            # every request the fake records comes from a test's client.
            "send": {"rate": "100", "max_wait": "2s"},
        }
        # upstream None: no static keys, sesgate takes the AWS credential chain
        if self.upstream is not None:
            sections["upstream"]["access_key_id"] = self.upstream.access_key
            sections["upstream"]["secret_access_key"] = self.upstream.secret
        if os.environ.get("SESGATE_TEST_REDIS_URL"):
            sections["redis"]["url"] = os.environ["SESGATE_TEST_REDIS_URL"]
        for name, policy in self.clients.items():
            creds = policy["creds"]
            sec = {"access_key_id": creds.access_key, "secret_access_key": creds.secret}
            for key in ("allow_actions", "allow_from"):
                if key in policy:
                    sec[key] = ", ".join(policy[key])
            sections["client." + name] = sec
        for section, values in self.extra.items():
            sections.setdefault(section, {}).update(values)
        out = []
        for section, values in sections.items():
            out.append("[%s]" % section)
            out.extend("%s = %s" % (k, v) for k, v in values.items())
            out.append("")
        return "\n".join(out)

    def start(self, timeout=20.0, binary=None):
        """Write the configuration, start sesgate (binary, or the one under
        test) and wait until it is healthy."""
        binary = Path(binary) if binary else sesgate_bin()
        if not binary.exists():
            raise RuntimeError("%s does not exist (build it with make, or set SESGATE_DIRECT=1)" % binary)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.writes_config:
            self.config_path.write_text(self.config_text())
            os.chmod(self.config_path, 0o600)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(binary), self.command, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env(self.env), cwd=str(self.workdir),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "sesgate exited with %s; log:\n%s" % (self.proc.returncode, self.log_text()[-4000:])
                )
            try:
                status, _, _ = http("GET", self.admin_url + "/healthz", timeout=1.0)
                if status == 200 and (not self.serves or wait_port(self.port, 1.0)):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("sesgate did not become healthy; log:\n%s" % self.log_text()[-4000:])

    def stop(self):
        """Stop sesgate (SIGTERM, then SIGKILL)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def redis(self, *args):
        """redis-cli on the managed Redis; the reply as text."""
        sock = self.workdir / "var" / "redis" / "redis.sock"
        out = subprocess.run([REDIS_CLI, "-s", str(sock)] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()

    def log_text(self):
        """Everything sesgate wrote on stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RunSesgate(Sesgate):
    """Sesgate started as `sesgate run` (the front plus workers)."""

    command = "run"


@dataclasses.dataclass
class Gateway:
    """What a test talks to: the endpoint, the credentials and the fake."""

    endpoint: str
    region: str
    direct: bool
    fake: FakeSES
    sesgate: object
    upstream: Creds
    clients: dict
    workdir: Path

    def creds(self, name):
        """The credentials of client name (app, limited, readonly, unknown)."""
        return self.clients[name]


def start_gateway(workdir, direct=None):
    """Start the fake upstream and (unless direct) sesgate in front of it.

    Clients: "app" may do everything; "limited" may only SendEmail,
    SendRawEmail and GetSendQuota, from *@allowed.example or
    boss@example.com; "senders" may use every action, but only send from
    *@allowed.example; "readonly" may only read (GetSendQuota, GetAccount,
    ListIdentities, ListEmailIdentities); "unknown" is a key sesgate does not
    know. In direct mode every known client uses the upstream key.
    """
    direct = direct_mode() if direct is None else direct
    workdir = Path(workdir)
    upstream = Creds("upstream", new_access_key("AKIA"), new_secret())
    fake = FakeSES(workdir, upstream).start()
    unknown = Creds("unknown", new_access_key("SGUNKNOWN"), new_secret())
    if direct:
        clients = {n: dataclasses.replace(upstream, name=n) for n in ("app", "limited", "senders", "readonly")}
        clients["unknown"] = unknown
        return Gateway(fake.url, REGION, True, fake, None, upstream, clients, workdir)
    policies = {
        "app": {"creds": Creds("app", new_access_key("SGAPP"), new_secret()),
                "allow_actions": ["*"], "allow_from": ["*"]},
        "limited": {"creds": Creds("limited", new_access_key("SGLIM"), new_secret()),
                    "allow_actions": ["SendEmail", "SendRawEmail", "GetSendQuota"],
                    "allow_from": ["*@allowed.example", "boss@example.com"]},
        "senders": {"creds": Creds("senders", new_access_key("SGSND"), new_secret()),
                    "allow_actions": ["*"], "allow_from": ["*@allowed.example"]},
        "readonly": {"creds": Creds("readonly", new_access_key("SGRO"), new_secret()),
                     "allow_actions": ["GetSendQuota", "GetAccount", "ListIdentities", "ListEmailIdentities"],
                     "allow_from": ["*"]},
    }
    gate = Sesgate(workdir, fake.url, upstream, policies)
    try:
        gate.start()
    except Exception:
        fake.stop()
        raise
    clients = {n: p["creds"] for n, p in policies.items()}
    clients["unknown"] = unknown
    return Gateway(gate.url, REGION, False, fake, gate, upstream, clients, workdir)


def run_gateway(workdir, extra=None, clients=("app",), fake_args=()):
    """The fake upstream (started with fake_args) and `sesgate run` in front
    of it, with one client per name allowed every action and sender; returns
    a Gateway. Stop it with stop_run_gateway."""
    workdir = Path(workdir)
    upstream = Creds("upstream", new_access_key("AKIA"), new_secret())
    fake = FakeSES(workdir, upstream, extra_args=fake_args).start()
    creds = {n: Creds(n, new_access_key("SG" + n.upper()[:5]), new_secret()) for n in clients}
    policies = {n: {"creds": c, "allow_actions": ["*"], "allow_from": ["*"]} for n, c in creds.items()}
    gate = RunSesgate(workdir, fake.url, upstream, policies, extra=extra)
    try:
        gate.start()
    except Exception:
        fake.stop()
        raise
    return Gateway(gate.url, REGION, False, fake, gate, upstream, creds, workdir)


def stop_run_gateway(gw):
    """Stop sesgate and the fake; fail on a sanitizer report in sesgate's log."""
    gw.sesgate.stop()
    gw.fake.stop()
    log = gw.sesgate.log_text()
    assert not SANITIZER_RE.search(log), log[-4000:]


def stop_gateway(gw):
    """Stop sesgate and the fake."""
    if gw.sesgate:
        gw.sesgate.stop()
    gw.fake.stop()


# ---------------------------------------------------------------- boto3


@contextlib.contextmanager
def signing_clock_offset(seconds):
    """Make botocore sign with a clock moved by seconds (negative: the past).

    Both of botocore's SigV4 signers read datetime.datetime.utcnow(): the
    pure-Python one (botocore.auth) and the CRT one (botocore.crt.auth, used
    when awscrt is installed); both modules' datetime is replaced.
    """
    import importlib

    class _Shifted(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)

    shifted_module = types.SimpleNamespace(**dict(vars(datetime), datetime=_Shifted))
    saved = []
    for name in ("botocore.auth", "botocore.crt.auth"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        saved.append((mod, mod.datetime))
        mod.datetime = shifted_module
    try:
        yield
    finally:
        for mod, real in saved:
            mod.datetime = real


def tamper_bytes(body):
    """body with its last ASCII letter changed to another letter."""
    b = bytearray(body.encode() if isinstance(body, str) else body)
    for i in range(len(b) - 1, -1, -1):
        c = b[i]
        if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
            b[i] = c + 1 if c in (0x58, 0x78) else (c & 0x20) | 0x58
            return bytes(b)
    raise ValueError("no letter to tamper with")


def boto3_client(gw, service, creds=None, *, unsigned=False, max_attempts=1, capture=None, tamper=False):
    """A boto3 client for service ("ses" or "sesv2") pointed at gw.

    max_attempts: attempts in all (1: no retry); capture: a list that
    receives every request as sent (after signing); tamper: change one body
    byte after signing.
    """
    import boto3
    import botocore
    from botocore.config import Config

    creds = creds or gw.creds("app")
    cfg = Config(
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=5, read_timeout=30,
        signature_version=botocore.UNSIGNED if unsigned else None,
    )
    session = boto3.session.Session(
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret, region_name=gw.region
    )
    client = session.client(service, endpoint_url=gw.endpoint, config=cfg)

    def before_send(request, **kwargs):
        if tamper:
            request.body = tamper_bytes(request.body)
        if capture is not None:
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode()
            elif hasattr(body, "read"):
                body = body.read()
            parts = urllib.parse.urlsplit(request.url)
            capture.append({
                "method": request.method, "path": parts.path, "query": parts.query,
                "headers": {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()},
                "body_b64": base64.b64encode(body).decode(),
            })
        return None

    client.meta.events.register("before-send", before_send)
    return client


def client_error(excinfo):
    """(code, HTTP status, message) of a botocore ClientError."""
    err = excinfo.value.response
    return err["Error"].get("Code"), err["ResponseMetadata"].get("HTTPStatusCode"), err["Error"].get("Message", "")


# ---------------------------------------------------------------- aws cli


@dataclasses.dataclass
class CliResult:
    """The outcome of one aws command."""

    rc: int
    stdout: str
    stderr: str
    json: object
    code: str
    message: str
    status: int
    captured: list


def run_aws(gw, args, creds, *, fault=None, capture=False, unsigned=False, debug=False, timeout=60):
    """Run /usr/bin/aws with creds in the environment (never on argv).

    fault ("expired" or "tampered") and capture load a small CLI plugin
    (awscli_plugin/) through a generated config file; otherwise the config
    and credentials files are empty. debug adds --debug, whose log gives the
    HTTP status of the answer (CliResult.status).
    """
    tmp = gw.workdir / "awscli"
    tmp.mkdir(exist_ok=True)
    token = secrets.token_hex(4)
    config = tmp / ("config-%s" % token)
    credfile = tmp / ("credentials-%s" % token)
    credfile.write_text("")
    capture_path = tmp / ("capture-%s.jsonl" % token)
    env = clean_env({
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credfile),
        "AWS_DEFAULT_REGION": gw.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_PAGER": "",
        "HOME": str(tmp),
    })
    if creds is not None:
        env.update(creds.env())
    if fault or capture:
        config.write_text(
            "[plugins]\ncli_legacy_plugin_path = %s\nsesgate_test = sesgate_test_plugin\n" % AWSCLI_PLUGIN_DIR
        )
        if fault:
            env["SESGATE_TEST_FAULT"] = fault
        if capture:
            env["SESGATE_TEST_CAPTURE"] = str(capture_path)
    else:
        config.write_text("")
    cmd = [AWS, "--endpoint-url", gw.endpoint, "--region", gw.region, "--output", "json"]
    if debug:
        cmd.append("--debug")
    if unsigned:
        cmd.append("--no-sign-request")
    proc = subprocess.run(cmd + list(args), env=env, capture_output=True, text=True, timeout=timeout)
    out = None
    if proc.stdout.strip():
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            out = None
    code = message = None
    found = re.findall(r"An error occurred \(([^)]*)\) when calling the \w+ operation(?: \([^)]*\))?: (.*)", proc.stderr)
    if found:
        code, message = found[-1][0], found[-1][1].strip()
    statuses = re.findall(r'"(?:GET|POST|PUT|DELETE|PATCH) [^"]*" (\d{3})', proc.stderr)
    status = int(statuses[-1]) if statuses else None
    captured = []
    if capture_path.exists():
        captured = [json.loads(line) for line in capture_path.read_text().splitlines() if line.strip()]
    return CliResult(proc.returncode, proc.stdout, proc.stderr, out, code, message, status, captured)


# ---------------------------------------------------------------- node


def js_ready():
    """True when the Node dependencies are installed."""
    return (JS_DIR / "node_modules" / "@aws-sdk" / "client-sesv2").is_dir() and (
        JS_DIR / "node_modules" / "nodemailer"
    ).is_dir()


def run_node(gw, script, spec, creds, timeout=60):
    """Run js/<script> with spec (endpoint and region filled in); returns its JSON."""
    spec = dict(spec)
    spec.setdefault("endpoint", gw.endpoint)
    spec.setdefault("region", gw.region)
    tmp = gw.workdir / "node"
    tmp.mkdir(exist_ok=True)
    empty = tmp / "empty"
    empty.write_text("")
    env = clean_env({
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NODE_NO_WARNINGS": "1",
        "HOME": str(tmp),
    })
    if creds is not None:
        env.update(creds.env())
    proc = subprocess.run(
        [NODE, str(JS_DIR / script), json.dumps(spec)], env=env, cwd=str(JS_DIR),
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError("node %s failed (%d):\n%s\n%s" % (script, proc.returncode, proc.stdout, proc.stderr))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise AssertionError("node %s printed no result:\n%s\n%s" % (script, proc.stdout, proc.stderr))
    result = json.loads(lines[-1])
    result["stderr"] = proc.stderr
    return result


def b64(data):
    """Base64 text of bytes or str."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


# ---------------------------------------------------------------- assertions


def upstream_records(gw):
    """Every request the fake upstream recorded since the last reset."""
    return gw.fake.requests()


def assert_forwarded(gw, sent, message_id=None, *, compare="bytes", path=None):
    """Check the one request the upstream received for a client call.

    sent: the client's request as captured (dict with method, path, query,
    headers, body_b64), or None when the client's bytes are not available.
    compare: "bytes" (body byte-for-byte), "raw" (the decoded raw message is
    identical; other parameters too) or None. Returns the upstream record.
    """
    records = [r for r in upstream_records(gw)]
    verified = [r for r in records if r["verified"]]
    if gw.direct:
        # The fake may have refused earlier attempts (a JS clock correction):
        # a client's own retry, not a signature of sesgate's.
        assert verified, "upstream received no verified request: %s" % _summary(records)
        gw.fake.take_refused()
        rec = verified[-1]
    else:
        assert len(records) == 1, "upstream expected exactly one request, got %s" % _summary(records)
        rec = records[0]
    assert rec["verified"], "upstream refused the signature: %s" % json.dumps(rec.get("verify_error"), indent=1)
    assert rec["access_key"] == gw.upstream.access_key
    assert rec["status"] == 200, "upstream answered %s" % rec["status"]
    if not gw.direct:
        blob = json.dumps(rec["headers"]) + rec["path"] + rec["query"] + base64.b64decode(rec["body_b64"]).decode(
            "latin-1"
        )
        for name, c in gw.clients.items():
            assert c.access_key not in blob, "client key of %s reached the upstream" % name
            assert c.secret not in blob, "client secret of %s reached the upstream" % name
    if sent is not None:
        assert rec["method"] == sent["method"]
        assert rec["path"] == (path or sent["path"])
        got = base64.b64decode(rec["body_b64"])
        want = base64.b64decode(sent["body_b64"])
        if compare == "bytes":
            assert got == want, "body changed:\nclient:   %r\nupstream: %r" % (want[:2000], got[:2000])
        elif compare == "raw":
            assert decoded_body(rec) == decoded_body(sent), "raw message or parameters changed"
    if message_id is not None:
        assert message_id == rec["message_id"], "client got %r, upstream gave %r" % (message_id, rec["message_id"])
    return rec


def decoded_body(req):
    """A request body as comparable data: v1 form parameters or v2 JSON, with
    the raw message (RawMessage.Data / Content.Raw.Data) base64-decoded."""
    body = base64.b64decode(req["body_b64"])
    if req["path"].startswith("/v2/"):
        obj = json.loads(body) if body else None
        raw = ((obj or {}).get("Content") or {}).get("Raw")
        if raw and "Data" in raw:
            raw["Data"] = base64.b64decode(raw["Data"])
        return obj
    params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    if "RawMessage.Data" in params:
        params["RawMessage.Data"] = base64.b64decode(params["RawMessage.Data"])
    return params


def assert_not_forwarded(gw):
    """The upstream accepted nothing: via sesgate it received nothing at all;
    in direct mode whatever reached the fake was refused by it."""
    records = upstream_records(gw)
    if gw.direct:
        assert all(not r["verified"] for r in records), "upstream accepted: %s" % _summary(records)
        gw.fake.take_refused()  # the refusals asserted on just above
    else:
        assert records == [], "a refused request reached the upstream: %s" % _summary(records)


def check_refusal(gw, api, case, code, status, message=""):
    """Assert that a refused call got the SES error of case and reached no upstream."""
    want_code, want_status = REFUSALS[api][case]
    assert (code, status) == (want_code, want_status), "%s: got %s/%s, want %s/%s (%s)" % (
        case, code, status, want_code, want_status, message)
    if case in REFUSAL_MESSAGES:
        assert REFUSAL_MESSAGES[case] in (message or ""), "%s: message %r" % (case, message)
    assert_not_forwarded(gw)


def _summary(records):
    return json.dumps(
        [{k: r.get(k) for k in ("seq", "method", "path", "action", "access_key", "verified", "status", "verify_error")}
         for r in records], indent=1)



# ---------------------------------------------------------------- samples


SENDER = "sender@example.com"
RCPT = "rcpt@example.net"
MESSAGE_ID_RE = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{6}$")


def raw_message(from_=SENDER, to=RCPT, subject="Raw hello", body="raw body \u00fc"):
    """A small raw MIME message (CRLF line ends) as bytes."""
    return (
        "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"
        % (from_, to, subject, body)
    ).encode()


def check_response_headers(headers, api, error=False):
    """Check the SES response headers every answer carries (lower-case names)."""
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers.get("x-amzn-requestid"), "no x-amzn-RequestId header: %s" % headers
    assert "date" in headers, "no Date header: %s" % headers
    when = email.utils.parsedate_to_datetime(headers["date"])
    skew = abs((when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    assert skew < 120, "Date header is %d s off: %s" % (skew, headers["date"])
    ctype = headers.get("content-type", "")
    if api == "v1":
        assert ctype.startswith("text/xml"), "v1 content type %r" % ctype
    else:
        assert ctype.startswith("application/json"), "v2 content type %r" % ctype
        if error:
            assert headers.get("x-amzn-errortype"), "v2 error without x-amzn-ErrorType"


class SnsSink:
    """An HTTP server recording every POST (path, headers, body); answers
    the first `fail` POSTs with 503, the rest with 200."""

    def __init__(self, port=None, fail=0):
        self.posts = []
        self.answers = []
        self.fail = fail
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with sink.lock:
                    status = 503 if sink.fail > 0 else 200
                    sink.fail -= 1 if sink.fail > 0 else 0
                    sink.answers.append(status)
                    if status == 200:
                        sink.posts.append(types.SimpleNamespace(path=self.path, headers=dict(self.headers.items()),
                                                                body=body, at=time.monotonic()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Server(socketserver.ThreadingMixIn, HTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port or 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/sns-sink" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self):
        with self.lock:
            return [json.loads(p.body) for p in self.posts]
