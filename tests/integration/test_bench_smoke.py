"""Every benchmark script in bench/ runs small (its short mode, as
bench/all.sh and `make bench` run it) against the binary under test, so that
a script that stops working fails the suite; the figures are not judged.
bench/passthrough.sh and bench/fanout.sh run without the seed-php baseline
(sesgate, nginx and the fake upstream of bench/nginx-upstream.conf.in);
bench/enqueue_stall.sh with 2,000 recipients (`sesgate run` with the sandbox
upstream); bench/feedback_ingest.sh with 300 signed SNS notifications
(`sesgate serve`, its managed Redis); bench/smtp.sh with 4 SMTP sessions for
2 s a run against sesgate and a private Postfix; bench/million.sh with 2,000
recipients; bench/bigmsg.py with one small case; bench/connections.py with
200 connections; bench/soak.py for 20 s; bench/wait_replicas.py with 20
batches."""

import os
import re
import subprocess
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate


def test_enqueue_stall_smoke(tmp_path):
    env = harness.clean_env({"SMOKE": "1", "SESGATE_BIN": str(harness.sesgate_bin()),
                             "TMPDIR": str(tmp_path)})
    r = subprocess.run([str(harness.REPO / "bench" / "enqueue_stall.sh")], capture_output=True, text=True,
                       timeout=120, env=env, cwd=str(tmp_path))
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "enqueue_stall: 2000 recipients" in out, out
    assert "the big request answered 200" in out, out
    m = re.search(r"probe sends, all: (\d+) sends, p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms", out)
    assert m and int(m.group(1)) >= 50, out
    assert "probe sends not answered 200: 0" in out, out
    assert re.search(r"Redis commands over 1 ms: \d+", out), out
    assert "LATENCY LATEST" in out, out
    # the work directory went with the run
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-stall.")]


def test_feedback_ingest_smoke(tmp_path):
    """bench/feedback_ingest.sh with 300 signed SNS notifications: every one
    applied, none refused, a rate printed with its ratios."""
    env = harness.clean_env({"SMOKE": "1", "SESGATE_BIN": str(harness.sesgate_bin()),
                             "TMPDIR": str(tmp_path)})
    r = subprocess.run([str(harness.REPO / "bench" / "feedback_ingest.sh")], capture_output=True, text=True,
                       timeout=180, env=env, cwd=str(tmp_path))
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    m = re.search(r"(\d+) notifications \(SignatureVersion 1 and 2, certificate cached, 8 connections\)[^\n]*? "
                  r"(\d+) answered 200, 0 other, 0 socket errors; applied (\d+), refused 0", out)
    assert m and int(m.group(3)) >= 295, out
    m = re.search(r"([\d.]+) events/s = ([\d.]+) x a 14/s account's events, ([\d.]+) x a 500/s account's", out)
    assert m and float(m.group(1)) > 0, out
    assert abs(float(m.group(2)) - float(m.group(1)) / 14) < 0.1, out
    # the work directory went with the run
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-feedback.")]


def test_smtp_smoke(tmp_path):
    """bench/smtp.sh with 4 sessions for 2 s a run: sesgate's SMTP listener
    (STARTTLS, AUTH) and a private Postfix's smtpd took messages of 1 and
    20 recipients with no error, each with a rate and p99, and the ratio
    printed; smtp-source's reference run into Postfix; nothing left behind."""
    env = harness.clean_env({"SMOKE": "1", "SESGATE_BIN": str(harness.sesgate_bin()),
                             "TMPDIR": str(tmp_path)})
    r = subprocess.run([str(harness.REPO / "bench" / "smtp.sh")], capture_output=True, text=True,
                       timeout=240, env=env, cwd=str(tmp_path))
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    for rcpts in (1, 20):
        for who in (r"sesgate \(STARTTLS, AUTH\)", r"postfix smtpd \(STARTTLS\)"):
            m = re.search(r"smtp: %s, %d recipient\(s\) a message: (\d+) messages in 2 s = ([\d.]+) messages/s, "
                          r"p50 [\d.]+ ms, p99 ([\d.]+) ms, max [\d.]+ ms, errors 0," % (who, rcpts), out)
            assert m and int(m.group(1)) > 0 and float(m.group(2)) > 0 and float(m.group(3)) > 0, out
        m = re.search(r"smtp: ratio sesgate/postfix, %d recipient\(s\) a message: ([\d.]+) x" % rcpts, out)
        assert m and float(m.group(1)) > 0, out
        assert re.search(r"smtp: reference: smtp-source -s 4 -r %d .*: 40 messages in [\d.]+ s" % rcpts, out), out
    # the work directory (and the Postfix instance in it) went with the run
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-smtp.")]


BENCH = harness.REPO / "bench"


def run_bench(tmp_path, cmd, timeout, extra=None):
    """Run one benchmark command (a path under bench/ and its arguments) with
    the binary under test, its temp files under tmp_path; returns stdout and
    stderr together after asserting it succeeded."""
    env = harness.clean_env({"SESGATE_BIN": str(harness.sesgate_bin()), "TMPDIR": str(tmp_path),
                             "SEED_PHP": "", **(extra or {})})
    r = subprocess.run([str(BENCH / cmd[0])] + cmd[1:], capture_output=True, text=True, timeout=timeout,
                       env=env, cwd=str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out


def test_every_benchmark_is_run_here_and_by_make_bench():
    """The benchmark scripts (bench/*.sh, and bench/*.py that no other script
    runs) are exactly bench/all.sh's list, and each has a test in this file."""
    helpers = set()
    files = [f for f in BENCH.iterdir() if f.is_file()]
    for f in files:
        if f.name in ("all.sh", "README.md", "RESULTS.md"):
            continue
        text = f.read_text()
        helpers |= {g.stem for g in files if g.suffix == ".py" and g != f and g.name in text}
    scripts = {f.stem for f in files if f.suffix == ".sh" and f.name != "all.sh"}
    scripts |= {f.stem for f in files if f.suffix == ".py" and f.stem not in helpers}
    listed = re.search(r'^ALL="([^"]*)"', (BENCH / "all.sh").read_text(), re.M).group(1).split()
    assert sorted(listed) == sorted(scripts)
    tested = set(re.findall(r"^def test_(\w+)_smoke\(", Path(__file__).read_text(), re.M))
    assert tested == scripts
    assert "\nbench: " in (harness.REPO / "Makefile").read_text()
    assert "bench/all.sh" in (harness.REPO / "Makefile").read_text()


def test_passthrough_smoke(tmp_path):
    """bench/passthrough.sh, one round of 1 s runs: the fake upstream alone,
    nginx proxy_pass and sesgate (rate off) each answered with no error and
    one upstream request per client request (the script checks each run and
    stops otherwise); the table has each target's req/s and CPU per request,
    and the ratios against nginx."""
    out = run_bench(tmp_path, ["passthrough.sh"], 300, {"SMOKE": "1", "RESULTS_DIR": str(tmp_path / "res")})
    assert "SEED_PHP unset: no PHP target" in out, out
    assert "checks passed: nginx proxy and sesgate answer 200" in out, out
    for label in ("fake SES upstream alone (reference)", "nginx proxy_pass (keepalive)", "sesgate serve"):
        m = re.search(r"^\| %s \| 16 \| \*\*([\d,]+)\*\* \([\d,]+\) \| [\d.]+ \| [\d.]+ \| ([\d.]+) \| 0 / 0 \|"
                      % re.escape(label), out, re.M)
        assert m and int(m.group(1).replace(",", "")) > 0 and float(m.group(2)) > 0, (label, out)
    assert re.search(r"^\| sesgate / nginx proxy_pass req/s \| 16 \| \*\*[\d.]+\*\*", out, re.M), out
    assert re.search(r"^\| sesgate / nginx proxy_pass CPU per request \| 16 \| \*\*[\d.]+\*\*", out, re.M), out
    assert (tmp_path / "res" / "table.md").read_text() in out
    # every process it started is gone with its temp directory
    tmp = re.search(r"tmp=(/tmp/sesgate-passthrough\.\w+)", out).group(1)
    assert not os.path.exists(tmp), out


def test_fanout_smoke(tmp_path):
    """bench/fanout.sh, 1 s enqueue runs of 50 recipients, a drain of 400 and
    the memory of 20 requests, sesgate alone: each run passed the script's
    checks (queue growth, upstream requests, nothing left, pending or dead)
    and the table has each figure."""
    out = run_bench(tmp_path, ["fanout.sh"], 300, {"SMOKE": "1", "RESULTS_DIR": str(tmp_path / "res")})
    assert "SEED_PHP unset: sesgate alone" in out, out
    assert "checks passed: sesgate (sync) answers" in out, out
    for row in (r"enqueue 50 recipients/request, recipients queued/s", r"enqueue 50 recipients/request, "
                r"recipients queued/s \(sesgate with first_recipient = queue\)",
                r"drain, recipients sent/s \(no rate limit\)"):
        m = re.search(r"^\| %s \| - \| ([\d,.]+) \|" % row, out, re.M)
        assert m and float(m.group(1).replace(",", "")) > 0, (row, out)
    assert re.search(r"sesgate drain run 1 \(1 sesgate work, concurrency 64 each\): 400 queued, 400 sent in "
                     r"[\d.]+ s = [\d,]+/s, left 0, pending 0, dead 0", out), out
    assert re.search(r"sesgate mem run 1: 1000 queued, \d+ keys, [\d.]+ B/recipient queued", out), out
    tmp = re.search(r"tmp=(/tmp/sesgate-fanout\.\w+)", out).group(1)
    assert not os.path.exists(tmp), out


def test_million_smoke(tmp_path):
    """bench/million.sh with 2,000 recipients: every recipient sent once, to
    its own address, nothing dead."""
    out = run_bench(tmp_path, ["million.sh"], 120, {"SMOKE": "1"})
    assert "million: 2000 recipients" in out, out
    assert re.search(r"^sent 2000$", out, re.M) and re.search(r"^dead 0$", out, re.M), out
    assert "million: 2000 .eml files in the outbox" in out, out
    assert "million: 2000 distinct recipients, 0 twice or more, 0 addressed to someone else" in out, out
    assert "million: every recipient accounted for" in out, out
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-million.")]


def test_bigmsg_smoke(tmp_path):
    """bench/bigmsg.py with a 256 KiB message to 20 recipients (run, and serve
    plus work) and the front taking a 1 MiB message to 50: every drain
    finished, the table written."""
    res = tmp_path / "bigmsg.md"
    out = run_bench(tmp_path, ["bigmsg.py", "--cases", "256k:20:v1", "--modes", "run,work", "--front", "1m:50:v2",
                               "--out", str(res)], 200)
    table = res.read_text()
    for mode in ("run", "work"):
        m = re.search(r"^\| 256k:20:v1 \| %s \| this build \| [\d.]+ \| [\d.]+ \| (\d+) \| [\d.]+ \|" % mode, table,
                      re.M)
        assert m and int(m.group(1)) > 0, (mode, out)
    assert re.search(r"^\| 1m:50:v2 \| this build \| [\d.]+ \| [\d.]+ \|", table, re.M), out
    assert "not finished" not in table, out


def test_connections_smoke(tmp_path):
    """bench/connections.py with 200 connections held 1 s: every request of
    both rounds answered 200 on its own connection, /metrics counted them."""
    out = run_bench(tmp_path, ["connections.py", "200", "1"], 120)
    assert re.search(r"connections: 200 opened in [\d.]+ s; first request on each: 200 answered 200 in [\d.]+ s; "
                     r"held 1 s; second request on each: 200 answered 200", out), out
    assert "connections: /metrics sesgate_connections 200" in out, out
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-conns-")]


def test_soak_smoke(tmp_path):
    """bench/soak.py for 20 s, sampled every 2 s: no request failed, every
    queued recipient delivered, memory and descriptors flat."""
    # ASan keeps freed memory in a quarantine of up to 256 MB, which a 20 s
    # run reads as growth; a 4 MB one still catches a use after free here.
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=4"]))
    out = run_bench(tmp_path, ["soak.py", "20", "2"], 180, {"ASAN_OPTIONS": asan})
    for load in ("pass-through GetSendQuota", "single sends", "bulk sends of 50"):
        m = re.search(r"soak: %s +(\d+) ok, 0 failed" % load, out)
        assert m and int(m.group(1)) > 0, (load, out)
    m = re.search(r"soak: (\d+) recipients accepted, (\d+) \.eml files in the outbox", out)
    assert m and int(m.group(1)) > 0 and m.group(1) == m.group(2), out
    assert "soak: flat, nothing failed, every recipient delivered" in out, out
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-soak-")]


def test_wait_replicas_smoke(tmp_path):
    """bench/wait_replicas.py, 20 batches by one client with wait_replicas 0
    and 1 against a master and its replica: a latency line for each."""
    # a replica's acknowledgement may take over a second on a loaded machine
    # with the sanitizer build: the answers are timed, not judged, here
    out = run_bench(tmp_path, ["wait_replicas.py", "20", "1"], 120, {"WAIT_TIMEOUT": "10s"})
    for wait in (0, 1):
        m = re.search(r"wait_replicas=%d clients=1 batches=(\d+): p50 ([\d.]+) ms, p90 [\d.]+ ms, p99 [\d.]+ ms, "
                      r"max [\d.]+ ms, (\d+) batches/s" % wait, out)
        assert m and int(m.group(1)) == 20 and float(m.group(2)) > 0 and int(m.group(3)) > 0, (wait, out)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sesgate-bench-wait-")]


def test_limiter_smoke(tmp_path):
    """bench/limiter.sh, one 1 s run of each target (limiter off, on at a
    rate it never reaches) on free ports: a table row for each, with the
    requests, CPU and Redis commands per request measured."""
    env = harness.clean_env({"SESGATE_BIN": str(harness.sesgate_bin()), "TMPDIR": str(tmp_path),
                             "RUNS": "1", "DUR": "1s", "WARM": "1s",
                             "UP_PORT": str(harness.free_port()), "SG_PORT": str(harness.free_port()),
                             "REDIS_PORT": str(harness.free_port())})
    r = subprocess.run([str(harness.REPO / "bench" / "limiter.sh")], capture_output=True, text=True,
                       timeout=120, env=env, cwd=str(tmp_path))
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    for target in ("off", "on"):
        m = re.search(r"^run 1 %s +(\d+) req/s +([\d.]+) us CPU/req" % target, out, re.M)
        assert m and int(m.group(1)) > 0 and float(m.group(2)) > 0, (target, out)
