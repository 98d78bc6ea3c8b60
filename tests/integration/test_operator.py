"""The operator commands end to end: `sesgate batch show`, `sesgate dlq
list | retry | purge`, `sesgate status`, GET /batches/{id} and the queue
metrics, against `sesgate run` with the managed Redis and first_recipient =
queue in front of the fake SES."""

import json
import re
import subprocess
import time

import pytest

import harness
from test_queue import params, send

pytestmark = pytest.mark.needs_sesgate

REJECT = {"mode": "status", "status": 400, "code": "MessageRejected",
          "message": "Email address is not verified.", "count": 3}


@pytest.fixture(scope="module")
def og(tmp_path_factory):
    """The fake upstream and `sesgate run` with first_recipient = queue."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("operator"), extra={"send": {
        "first_recipient": "queue", "max_attempts": "5", "rate": "1000",
        "concurrency": "4"}})
    gw.state = {}
    yield gw
    harness.stop_run_gateway(gw)


def cli(gw, *args, config=None):
    """Run `sesgate ARGS -c CONFIG`; the CompletedProcess (text)."""
    cmd = [str(harness.sesgate_bin())] + list(args) + ["-c", str(config or gw.sesgate.config_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                          env=harness.clean_env(gw.sesgate.env), cwd=str(gw.workdir))


def cli_json(gw, *args):
    """Run a command with --json; its parsed output (the command must succeed)."""
    r = cli(gw, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def show(gw, batch):
    """`sesgate batch show ID --json`."""
    return cli_json(gw, "batch", "show", batch)


def wait_batch(gw, batch, pred, timeout=20.0):
    """Poll the batch status until pred(status) holds; the last status."""
    deadline = time.monotonic() + timeout
    st = show(gw, batch)
    while not pred(st) and time.monotonic() < deadline:
        time.sleep(0.2)
        st = show(gw, batch)
    return st


def admin_get(gw, path):
    """GET path on the admin listener: (status, body text)."""
    status, _, body = harness.http("GET", gw.sesgate.admin_url + path)
    return status, body.decode() if isinstance(body, bytes) else body


def metrics(gw):
    """The /metrics samples without labels, as {name: float}."""
    status, body = admin_get(gw, "/metrics")
    assert status == 200
    out = {}
    for line in body.splitlines():
        m = re.match(r"^([a-z_]+) ([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_batch_show_after_rejections(og):
    og.fake.reset()
    og.fake.control(REJECT)
    to = ["op%d@example.net" % i for i in range(10)]
    _, batch = send(og, to)
    assert batch
    og.state["batch"] = batch
    st = wait_batch(og, batch, lambda s: s["complete"])
    assert st["complete"], st
    recs = og.fake.requests()
    sent = {params(r)["Destination.ToAddresses.member.1"]: r["message_id"] for r in recs if r["status"] == 200}
    rejected = {params(r)["Destination.ToAddresses.member.1"] for r in recs if r["status"] == 400}
    assert len(sent) == 7 and len(rejected) == 3
    assert (st["total"], st["sent"], st["dead"], st["retrying"], st["queued"]) == (10, 7, 3, 0, 0)
    assert st["progress"] == 100 and st["batch_id"] == batch and st["action"] == "SendEmail"
    assert [r["index"] for r in st["recipients"]] == list(range(10))
    for r in st["recipients"]:
        assert r["address"] == to[r["index"]]
        if r["address"] in sent:
            assert r["state"] == "sent" and r["message_id"] == sent[r["address"]], r
        else:
            assert r["address"] in rejected
            assert r["state"] == "dead" and r["code"] == "MessageRejected", r
            assert r["message"] == "Email address is not verified."

    # The text form: "key value" lines, then "index address state detail".
    t = cli(og, "batch", "show", batch)
    assert t.returncode == 0, t.stderr
    lines = t.stdout.splitlines()
    assert "total 10" in lines and "sent 7" in lines and "dead 3" in lines and "queued 0" in lines
    rows = [ln.split(" ", 3) for ln in lines if re.match(r"^\d+ ", ln)]
    assert len(rows) == 10
    for i, addr, state, detail in rows:
        r = st["recipients"][int(i)]
        assert (addr, state) == (r["address"], r["state"])
        assert detail == (r["message_id"] if state == "sent" else "%s %s" % (r["code"], r["message"]))

    status, body = admin_get(og, "/batches/" + batch)
    assert status == 200
    assert json.loads(body) == st


def test_dlq_list_and_retry(og):
    batch = og.state["batch"]
    letters = cli_json(og, "dlq", "list")
    assert len(letters) == 3
    st = show(og, batch)
    dead = {r["index"]: r for r in st["recipients"] if r["state"] == "dead"}
    for d in letters:
        assert d["batch_id"] == batch and d["index"] in dead
        assert d["address"] == dead[d["index"]]["address"]
        assert d["code"] == "MessageRejected" and d["message"] == "Email address is not verified."
        assert d["attempts"] == 1
    t = cli(og, "dlq", "list")
    assert t.returncode == 0 and len(t.stdout.splitlines()) == 3
    assert all(ln.split(" ")[0] in {d["id"] for d in letters} for ln in t.stdout.splitlines())

    og.fake.reset()  # back to normal: the retried copies are delivered
    r = cli(og, "dlq", "retry")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "3", r.stdout
    st = wait_batch(og, batch, lambda s: s["sent"] == 10)
    assert (st["sent"], st["dead"], st["queued"], st["complete"]) == (10, 0, 0, True), st
    delivered = {params(x)["Destination.ToAddresses.member.1"] for x in og.fake.requests() if x["status"] == 200}
    assert delivered == {d["address"] for d in letters}
    assert cli_json(og, "dlq", "list") == []
    t = cli(og, "batch", "show", batch)
    assert "sent 10" in t.stdout.splitlines()


def test_dlq_retry_by_id_and_purge(og):
    og.fake.reset()
    og.fake.control(dict(REJECT, count=2))
    _, batch = send(og, ["purge%d@example.net" % i for i in range(3)])
    og.state["batch2"] = batch
    st = wait_batch(og, batch, lambda s: s["complete"])
    assert st["dead"] == 2, st
    letters = cli_json(og, "dlq", "list")
    assert len(letters) == 2
    og.fake.reset()
    r = cli(og, "dlq", "retry", letters[0]["id"], "0-1")
    assert r.returncode == 0 and r.stdout.split()[0] == "1", (r.stdout, r.stderr)
    st = wait_batch(og, batch, lambda s: s["sent"] == 2)
    assert (st["sent"], st["dead"]) == (2, 1), st
    r = cli(og, "dlq", "purge")
    assert r.returncode == 0 and r.stdout.split()[0] == "1", (r.stdout, r.stderr)
    assert cli_json(og, "dlq", "list") == []
    r = cli(og, "dlq", "purge")
    assert r.stdout.split()[0] == "0"


def test_status_and_metrics(og):
    s = cli_json(og, "status")
    assert s["depth"] == 0 and s["inflight"] == 0 and s["retrying"] == 0 and s["dead_letters"] == 0
    recent = {b["batch_id"]: b for b in s["recent"]}
    b1 = recent[og.state["batch"]]
    assert (b1["total"], b1["sent"], b1["dead"], b1["pending"]) == (10, 10, 0, 0)
    assert recent[og.state["batch2"]]["dead"] == 1
    assert s["recent"][0]["batch_id"] == og.state["batch2"]  # newest first
    t = cli(og, "status")
    assert t.returncode == 0
    assert "depth 0" in t.stdout.splitlines() and "dead_letters 0" in t.stdout.splitlines()
    assert any(ln.startswith("batch %s " % og.state["batch"]) for ln in t.stdout.splitlines())

    deadline = time.monotonic() + 5
    m = metrics(og)
    while m.get("sesgate_dead_letters", -1) != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        m = metrics(og)
    assert m["sesgate_queue_depth"] == 0 and m["sesgate_queue_inflight"] == 0
    assert m["sesgate_queue_retrying"] == 0 and m["sesgate_dead_letters"] == 0
    assert m["sesgate_queue_oldest_seconds"] == 0
    assert m["sesgate_sent_total"] == 12  # 7 + 3 retried, then 1 + 1 retried by id
    assert m["sesgate_dead_lettered_total"] == 5  # 3 + 2
    assert m["sesgate_retried_total"] == 0


def test_unknown_and_malformed_batch(og):
    unknown = "00000000-0000-4000-8000-000000000000"
    r = cli(og, "batch", "show", unknown)
    harness.assert_exit(r, 1)
    assert "batch %s not found" % unknown in r.stderr
    r = cli(og, "batch", "show", "nope")
    harness.assert_exit(r, 1)
    assert "not found" in r.stderr
    status, body = admin_get(og, "/batches/" + unknown)
    assert status == 404 and json.loads(body) == {"message": "batch not found"}
    status, body = admin_get(og, "/batches/not-a-batch")
    assert status == 400 and "message" in json.loads(body)


def test_redis_not_running(og, tmp_path):
    cfg = tmp_path / "cfg.ini"
    cfg.write_text("[redis]\ndata_dir = %s\n" % (tmp_path / "var"))
    r = cli(og, "status", config=cfg)
    harness.assert_exit(r, 1)
    assert "redis is not running at %s: start sesgate first" % (tmp_path / "var" / "redis" / "redis.sock") in r.stderr
