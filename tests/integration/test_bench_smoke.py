"""The benchmark scripts run small (SMOKE=1), so that they keep working:
bench/enqueue_stall.sh with 2,000 recipients against the binary under test
(`sesgate run` with the sandbox upstream); bench/feedback_ingest.sh with 300
signed SNS notifications (`sesgate serve`, its managed Redis); bench/smtp.sh with 4
SMTP sessions for 2 s a run against sesgate and a private Postfix."""

import os
import re
import subprocess

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
