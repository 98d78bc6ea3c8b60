"""A 10,000-recipient SendEmail from the AWS command line through sesgate:
`sesgate run` (front, workers, managed Redis, first_recipient = sync) and a
second worker process, `sesgate work`. Mid-batch the second worker is killed
with SIGKILL and later the managed redis-server too (sesgate restarts it from
its append-only file). Every recipient must reach the fake upstream in a
message of its own, duplicates may only be sends that were in flight, and
`sesgate batch show` must account for every recipient with the MessageId the
upstream gave it."""

import json
import os
import signal
import subprocess
import time
from collections import defaultdict

import pytest

import harness
from test_queue_faults import (LEASE_S, Rig, WorkSesgate, accepted, duplicates, managed_redis_pid,
                               rcpt, wait_all, wait_count, wait_drained, DLQ)

pytestmark = pytest.mark.needs_sesgate

N = 10000
CONCURRENCY = 8


def test_10000_from_aws_cli_survive_worker_crash_and_redis_restart(tmp_path):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    r = Rig(tmp_path / "10k", send={"first_recipient": "sync", "concurrency": str(CONCURRENCY)})
    try:
        r.start()
        worker = WorkSesgate(r.workdir, r.fake.url, r.upstream, r.gate.clients, extra=r.gate.extra)
        worker.port, worker.config_path = r.gate.port, r.gate.config_path
        worker.admin_port = harness.free_port()
        worker.log_path = r.gate.log_path.with_name("sesgate-work-%d.log" % worker.admin_port)
        r.others.append(worker)
        # The second process needs its own admin listener: write it a config of its own.
        worker.config_path = r.workdir / "work.ini"
        text = r.gate.config_path.read_text().replace(
            "admin_listen = 127.0.0.1:%d" % r.gate.admin_port, "admin_listen = 127.0.0.1:%d" % worker.admin_port)
        assert text != r.gate.config_path.read_text()
        worker.config_path.write_text(text)
        os.chmod(worker.config_path, 0o600)
        worker.start()

        to = ["p%05d@example.net" % i for i in range(N)]
        (r.workdir / "dest.json").write_text(json.dumps({"ToAddresses": to}))
        (r.workdir / "message.json").write_text(json.dumps({
            "Subject": {"Data": "Ten thousand", "Charset": "UTF-8"},
            "Body": {"Text": {"Data": "One private copy each.", "Charset": "UTF-8"}},
        }))
        t0 = time.monotonic()
        res = harness.run_aws(r.gw, ["ses", "send-email", "--from", harness.SENDER,
                                     "--destination", "file://%s" % (r.workdir / "dest.json"),
                                     "--message", "file://%s" % (r.workdir / "message.json")],
                              r.app, timeout=120)
        answered = time.monotonic() - t0
        assert res.rc == 0, res.stderr[-2000:]
        copy0 = res.json["MessageId"]

        wait_count(r.fake, 2000, timeout=120)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait()
        at_worker_kill = sum(accepted(r.fake.requests()).values())
        wait_count(r.fake, 5000, timeout=120)
        redis_pid = managed_redis_pid(r.gate)
        os.kill(redis_pid, signal.SIGKILL)
        at_redis_kill = sum(accepted(r.fake.requests()).values())

        got = wait_all(r.fake, to, timeout=240)
        drained = wait_drained(r.redis, timeout=LEASE_S + 30)
        took = time.monotonic() - t0
        time.sleep(0.5)
        recs = r.fake.requests()
        got = accepted(recs)
        missing = sorted(set(to) - set(got))
        dup = duplicates(got)
        singles = [x for x in recs if x.get("verified") and x.get("status") == 200]
        print("\n10,000 from the aws cli: answered in %.2f s; worker killed after %d sends, Redis after %d; "
              "all %d delivered and drained in %.1f s; %d duplicate sends %s"
              % (answered, at_worker_kill, at_redis_kill, len(got), took, dup,
                 sorted(a for a, n in got.items() if n > 1)))
        assert not missing, "%d addresses never delivered, e.g. %s" % (len(missing), missing[:10])
        assert set(got) == set(to) and len(got) == N
        for x in singles:
            assert rcpt(x) is not None, "a message with no single To recipient reached the upstream"
        # At most the sends in flight in the killed worker, plus those whose
        # outcome the append-only file had not yet written when Redis died.
        assert dup <= 2 * CONCURRENCY, dup
        assert drained == (0, 0, 0), "stream length, delay set size, pending entries"
        assert int(r.redis("XLEN", DLQ) or 0) == 0

        ids = defaultdict(set)
        for x in singles:
            if x.get("message_id"):
                ids[rcpt(x)].add(x["message_id"])
        assert copy0 in ids[to[0]], "the CLI's MessageId is not the upstream's id for the first recipient"

        batches = harness.sesgate_json(r.gate.config_path, r.gate.workdir, "status", env=r.gate.env)["recent"]
        assert len(batches) == 1, batches
        batch = batches[0]["batch_id"]
        st = harness.sesgate_json(r.gate.config_path, r.gate.workdir, "batch", "show", batch, env=r.gate.env)
        assert st["complete"] and st["first_recipient"] == "sync", {k: st[k] for k in st if k != "recipients"}
        assert (st["total"], st["sent"], st["dead"], st["queued"], st["retrying"]) == (N, N, 0, 0, 0)
        assert len(st["recipients"]) == N
        for rec in st["recipients"]:
            assert rec["state"] == "sent" and rec["address"] == to[rec["index"]], rec
            assert rec["message_id"] in ids[rec["address"]], rec
        text = subprocess.run([str(harness.sesgate_bin()), "batch", "show", batch, "-c", str(r.gate.config_path)],
                              capture_output=True, text=True, timeout=60, env=harness.clean_env(r.gate.env),
                              cwd=str(r.workdir))
        assert text.returncode == 0, text.stderr
        assert "total %d" % N in text.stdout.splitlines() and "sent %d" % N in text.stdout.splitlines()
        assert "redis_exited" in r.gate.log_text()
    finally:
        logs = r.close()
        assert not harness.SANITIZER_RE.search(logs), logs[-4000:]
