"""Redis: the redis-server sesgate manages under data_dir (unix socket only,
AOF, restarted when it dies, stopped with sesgate, adopted when left running),
an external Redis given by [redis] url (outages and recovery, the password
never logged), and /readyz and sesgate_redis_up following both."""

import ctypes
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

REDIS_SERVER = "/usr/bin/redis-server"


def policies(gw):
    """One client that may do everything."""
    return {"app": {"creds": gw.creds("app"), "allow_actions": ["*"], "allow_from": ["*"]}}


def start_sesgate(gw, workdir, redis=None):
    """sesgate in front of the shared fake; redis: the [redis] section
    (default: managed, whatever SESGATE_TEST_REDIS_URL says)."""
    section = {"url": ""}
    section.update(redis or {})
    gate = harness.Sesgate(workdir, gw.fake.url, gw.upstream, policies(gw), extra={"redis": section})
    return gate.start()


def view(gw, gate, workdir):
    """A Gateway that sends the clients to gate."""
    return harness.Gateway(gate.url, gw.region, False, gw.fake, gate, gw.upstream, gw.clients, workdir)


def socket_path(gate):
    """The managed Redis socket under the gate's data_dir."""
    return gate.workdir / "var" / "redis" / "redis.sock"


def cli(*args, sock=None, port=None, password=None, check=True):
    """redis-cli against a socket or a local TCP port; returns stdout stripped."""
    cmd = [harness.REDIS_CLI]
    cmd += ["-s", str(sock)] if sock else ["-h", "127.0.0.1", "-p", str(port)]
    env = dict(os.environ)
    if password:
        env["REDISCLI_AUTH"] = password
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10, env=env)
    if check:
        assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def readyz(gate):
    """(status, body text) of /readyz."""
    status, _, body = harness.http("GET", gate.admin_url + "/readyz", timeout=3)
    return status, body.decode()


def redis_up_metric(gate):
    """The sesgate_redis_up gauge."""
    _, _, body = harness.http("GET", gate.admin_url + "/metrics", timeout=3)
    m = re.search(rb"^sesgate_redis_up (\d)$", body, re.M)
    assert m, "no sesgate_redis_up in /metrics"
    return int(m.group(1))






def server_pids(sock):
    """Pids of the redis-server processes serving sock (from their titles)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("redis-server") and str(sock) in cmd:
            pids.append(int(d.name))
    return pids


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tcp_listen_inodes():
    """Socket inodes of every listening TCP socket (IPv4 and IPv6)."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A":  # LISTEN
                inodes.add(f[9])
    return inodes


def socket_inodes(pid):
    """Socket inodes pid has open."""
    out = set()
    for fd in Path("/proc/%d/fd" % pid).iterdir():
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            out.add(m.group(1))
    return out


def subreaper(on):
    """Make orphaned descendants this process's children (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1 if on else 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def assert_clean_exit(gate):
    """sesgate exited 0 and the sanitizers (when built in) reported nothing."""
    assert gate.proc.returncode == 0, "sesgate exited %s; log:\n%s" % (gate.proc.returncode, gate.log_text()[-3000:])
    assert "Sanitizer" not in gate.log_text(), gate.log_text()[-3000:]


class ExternalRedis:
    """A redis-server of the test's own on a free TCP port, without persistence."""

    def __init__(self, workdir, password=None):
        self.workdir = Path(workdir)
        self.port = harness.free_port()
        self.password = password
        self.proc = None

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
               "--logfile", str(self.workdir / "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        ok = harness.wait_for(lambda: cli("PING", port=self.port, password=self.password, check=False) == "PONG", 10)
        assert ok, "external redis-server did not start"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_managed_redis(tmp_path, gateway):
    """With [redis] url empty sesgate runs redis-server on a unix socket under
    data_dir (mode 0700), AOF on, no TCP port, nothing evicted; /readyz is 200."""
    gate = start_sesgate(gateway, tmp_path / "m")
    try:
        sock = socket_path(gate)
        assert sock.is_socket()
        assert (sock.parent.stat().st_mode & 0o777) == 0o700
        assert (sock.parent.parent.stat().st_mode & 0o777) == 0o700
        assert cli("PING", sock=sock) == "PONG"
        assert cli("CONFIG", "GET", "appendonly", sock=sock).split() == ["appendonly", "yes"]
        assert cli("CONFIG", "GET", "appendfsync", sock=sock).split() == ["appendfsync", "everysec"]
        assert cli("CONFIG", "GET", "maxmemory-policy", sock=sock).split() == ["maxmemory-policy", "noeviction"]
        assert cli("CONFIG", "GET", "port", sock=sock).split() == ["port", "0"]
        save = cli("CONFIG", "GET", "save", sock=sock).splitlines()
        assert save[0] == "save" and (len(save) == 1 or save[1] == ""), save
        pids = server_pids(sock)
        assert len(pids) == 1, pids
        info = cli("INFO", "server", sock=sock)
        assert "process_id:%d" % pids[0] in info
        assert "tcp_port:0" in info
        assert not (socket_inodes(pids[0]) & tcp_listen_inodes()), "the managed redis-server listens on TCP"
        # Its own process group: a Ctrl-C to sesgate's terminal does not reach it.
        assert os.getpgid(pids[0]) == pids[0] and os.getpgid(pids[0]) != os.getpgid(gate.proc.pid)
        # None of sesgate's listening sockets leaked into it.
        assert not (socket_inodes(pids[0]) & socket_inodes(gate.proc.pid))
        status, body = readyz(gate)
        assert status == 200, body
        assert redis_up_metric(gate) == 1
        assert re.search(r"event=redis_started pid=%d " % pids[0], harness.wait_log(gate, "event=redis_started"))
    finally:
        gate.stop()
    assert_clean_exit(gate)


def test_managed_redis_restarted_after_kill(tmp_path, gateway):
    """kill -9 of the managed redis-server: /readyz turns 503 at once, a new
    server runs within 5 s, /readyz is 200 again, and what was written (and
    fsynced) before the kill is still there."""
    gate = start_sesgate(gateway, tmp_path / "k")
    try:
        sock = socket_path(gate)
        assert cli("SET", "sesgate-test-key", "kept across the crash", sock=sock) == "OK"
        time.sleep(1.5)  # appendfsync everysec
        (old,) = server_pids(sock)
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        got = harness.wait_for(lambda: readyz(gate)[0] == 503 and readyz(gate), 3)
        assert got, "/readyz stayed 200 after Redis died"
        assert "redis unreachable" in got[1] and "upstream" not in got[1]
        new = harness.wait_for(lambda: [p for p in server_pids(sock) if p != old and alive(p)], 5)
        assert new, "no new redis-server within 5 s; log:\n%s" % gate.log_text()[-3000:]
        assert time.monotonic() - t0 < 5
        assert harness.wait_for(lambda: readyz(gate)[0] == 200, 10), "/readyz did not recover"
        assert redis_up_metric(gate) == 1
        assert cli("GET", "sesgate-test-key", sock=sock) == "kept across the crash"
        log = harness.wait_log(gate, "event=redis_up")
        assert re.search(r"level=error event=redis_exited pid=%d status=\"killed by SIGKILL\"" % old, log), log
        assert log.count("event=redis_down") == 1 and log.count("event=redis_up") == 1, log
    finally:
        gate.stop()
    assert_clean_exit(gate)


def test_external_redis_outage(tmp_path, gateway):
    """[redis] url names an external Redis (with a password, never logged):
    /readyz follows it down and up again, pass-through keeps working while it
    is down, and the outage is logged once, not per reconnect attempt."""
    password = harness.new_secret()
    ext = ExternalRedis(tmp_path / "ext", password=password).start()
    url = "redis://:%s@127.0.0.1:%d/2" % (urllib.parse.quote(password, safe=""), ext.port)
    gate = None
    try:
        gate = start_sesgate(gateway, tmp_path / "x", {"url": url})
        assert harness.wait_for(lambda: readyz(gate)[0] == 200, 5), readyz(gate)
        assert redis_up_metric(gate) == 1
        assert not socket_path(gate).exists(), "a managed redis-server was started despite [redis] url"
        ses = harness.boto3_client(view(gateway, gate, tmp_path), "ses")
        assert ses.get_send_quota()["ResponseMetadata"]["HTTPStatusCode"] == 200

        ext.stop()
        got = harness.wait_for(lambda: readyz(gate)[0] == 503 and readyz(gate), 3)
        assert got and "redis unreachable" in got[1], "/readyz did not turn 503 within 3 s"
        assert redis_up_metric(gate) == 0
        for _ in range(3):  # pass-through needs no Redis
            assert ses.get_send_quota()["ResponseMetadata"]["HTTPStatusCode"] == 200
            time.sleep(1)  # several reconnect attempts meanwhile

        ExternalRedis.start(ext)
        assert harness.wait_for(lambda: readyz(gate)[0] == 200, 10), "/readyz did not recover"
        assert redis_up_metric(gate) == 1
        log = harness.wait_log(gate, "event=redis_up")
        assert log.count("event=redis_down") == 1, log
        assert log.count("event=redis_up") == 1, log
        assert password not in log and urllib.parse.quote(password, safe="") not in log
        assert "where=redis://127.0.0.1:%d/2" % ext.port in log
    finally:
        if gate:
            gate.stop()
        ext.stop()
    assert_clean_exit(gate)


def test_external_redis_wrong_password(tmp_path, gateway):
    """A refused AUTH keeps /readyz at 503 and is logged once, without the password."""
    ext = ExternalRedis(tmp_path / "ext", password=harness.new_secret()).start()
    wrong = harness.new_secret()
    gate = None
    try:
        gate = start_sesgate(gateway, tmp_path / "w",
                             {"url": "redis://:%s@127.0.0.1:%d" % (urllib.parse.quote(wrong, safe=""), ext.port)})
        time.sleep(2.5)
        status, body = readyz(gate)
        assert status == 503 and "redis unreachable" in body
        log = harness.wait_log(gate, "event=redis_down")
        assert log.count("event=redis_down") == 1 and "AUTH failed" in log, log
        assert wrong not in log and urllib.parse.quote(wrong, safe="") not in log
    finally:
        if gate:
            gate.stop()
        ext.stop()
    assert_clean_exit(gate)


def test_stop_stops_managed_redis(tmp_path, gateway):
    """SIGTERM to sesgate stops its redis-server too: no orphan is left."""
    gate = start_sesgate(gateway, tmp_path / "s")
    sock = socket_path(gate)
    (pid,) = server_pids(sock)
    gate.stop()
    assert_clean_exit(gate)
    assert not alive(pid), "redis-server %d outlived sesgate" % pid
    assert server_pids(sock) == []
    assert re.search(r"event=redis_stopped pid=%d status=\"exit 0\"" % pid, gate.log_text())


def test_sigint_to_process_group_spares_redis_until_stopped(tmp_path, gateway, monkeypatch):
    """A Ctrl-C (SIGINT to sesgate's process group) reaches sesgate only; sesgate
    then stops its redis-server itself, cleanly."""
    workdir = tmp_path / "i"
    gate = harness.Sesgate(workdir, gateway.fake.url, gateway.upstream, policies(gateway),
                           extra={"redis": {"url": ""}})
    # Give sesgate a process group of its own, as a shell job would have.
    real_popen = subprocess.Popen

    def popen_new_group(*args, **kwargs):
        kwargs["start_new_session"] = True
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen_new_group)
    gate.start()
    monkeypatch.undo()
    sock = socket_path(gate)
    (pid,) = server_pids(sock)
    os.killpg(gate.proc.pid, signal.SIGINT)
    gate.proc.wait(timeout=15)
    assert_clean_exit(gate)
    assert not alive(pid)
    log = gate.log_text()
    assert "signal=SIGINT" in log
    assert re.search(r"event=redis_stopped pid=%d status=\"exit 0\"" % pid, log), log


def test_adopts_redis_left_by_a_crashed_sesgate(tmp_path, gateway):
    """After sesgate is killed (-9) its redis-server runs on; the next sesgate
    adopts it instead of failing, leaves it running when it stops, and the
    data is intact."""
    workdir = tmp_path / "a"
    # The orphaned redis-server becomes the test's child (not init's), so the
    # test can reap it and leave no zombie behind.
    subreaper(True)
    first = start_sesgate(gateway, workdir)
    sock = socket_path(first)
    (pid,) = server_pids(sock)
    second = None
    try:
        cli("SET", "adopted-key", "still here", sock=sock)
        first.proc.kill()
        first.proc.wait()
        assert alive(pid)
        second = start_sesgate(gateway, workdir)
        assert harness.wait_for(lambda: readyz(second)[0] == 200, 5)
        log = harness.wait_log(second, "event=redis_adopted")
        assert "event=redis_adopted" in log and "event=redis_started" not in log, log
        assert server_pids(sock) == [pid]
        assert cli("GET", "adopted-key", sock=sock) == "still here"
        second.stop()
        assert_clean_exit(second)
        assert alive(pid), "an adopted redis-server was stopped"
    finally:
        if second:
            second.stop()
        for p in server_pids(sock):
            os.kill(p, signal.SIGTERM)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            harness.wait_for(lambda: not server_pids(sock), 5)
        subreaper(False)


def test_socket_path_too_long(tmp_path, gateway):
    """A data_dir whose socket path cannot fit a unix socket address stops
    sesgate at start-up with a clear message."""
    gate = harness.Sesgate(tmp_path / "l", gateway.fake.url, gateway.upstream, policies(gateway),
                           extra={"redis": {"url": "", "data_dir": str(tmp_path / ("d" * 120))}})
    gate.workdir.mkdir(parents=True, exist_ok=True)
    gate.config_path.write_text(gate.config_text())
    r = subprocess.run([str(harness.sesgate_bin()), "serve", "-c", str(gate.config_path)],
                       capture_output=True, text=True, timeout=30, env=harness.clean_env())
    harness.assert_exit(r, 1)
    assert "unix socket" in r.stderr and "data_dir" in r.stderr, r.stderr
    assert not server_pids(tmp_path / ("d" * 120) / "redis" / "redis.sock")
    # Nothing listens: sesgate never got as far as its ports.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", gate.port)) != 0
