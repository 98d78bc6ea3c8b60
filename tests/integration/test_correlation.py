"""Correlation: every MessageId sesgate obtains from SES is indexed in Redis
({P}:m:<MessageId> = "<client>\\t<batch or ->\\t<index or ->", PX [feedback]
index_ttl) so that SES's events about it find the client, the batch and the
unit: the front's pass-through sends (SendEmail, SendRawEmail,
SendTemplatedEmail, v2 SendEmail, and a bulk call passed through whole, each
destination under its position), copy 0 of a sync batch, the queued copies
the workers send, and a bulk batch's units (the first ones sent before the
answer under their position in the call, the queued ones under their batch
and index).

`sesgate run` in front of the fake SES upstream (fakeses.py, which gives
MessageIds in SES's format), with [feedback] topics set (SES events reach
sesgate) and without (nothing is indexed).

The views: each recipient's delivery state and the batch's event counters
in `sesgate batch show` (text, --json), GET /batches/{id}, the --watch
progress line and `sesgate status`. The states are written here by running
src/lua/events.lua itself on the gateway's Redis with the arguments
src/events.c gives it; the way there (an SNS POST verified by the feedback
endpoint, sesevent_parse, events_apply) is exercised by the feedback
endpoint's own tests."""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

SENDER = "news@example.com"
PFX = "sesgate-it:{sesgate-it}:"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"


def start(tmp_path_factory, name, feedback):
    extra = {"send": {"first_recipient": "sync", "rate": "200", "concurrency": "4"}}
    if feedback:
        extra["feedback"] = {"topics": TOPIC, "index_ttl": "2h"}
    return harness.run_gateway(tmp_path_factory.mktemp(name), extra=extra, fake_args=("--max-send-rate", "1000"))


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    g = start(tmp_path_factory, "corr", True)
    try:
        yield g
    finally:
        harness.stop_run_gateway(g)


def index_of(gw, mid):
    """The index entry of MessageId mid: (client, batch, index, ms to live),
    None when absent."""
    v = gw.sesgate.redis("GET", PFX + "m:" + mid)
    if v == "":
        return None
    ttl = int(gw.sesgate.redis("PTTL", PFX + "m:" + mid))
    client, batch, index = v.split("\t")
    return client, batch, index, ttl


def wait_index(gw, mid, timeout=5.0):
    """The index entry of mid once the front's write is in (it is sent after
    the answer)."""
    harness.wait_for(lambda: index_of(gw, mid) is not None, timeout=timeout)
    return index_of(gw, mid)


def call(gw, service, method, **kwargs):
    """method with the app's key: (response, X-Sesgate-Batch-Id or None)."""
    client = harness.boto3_client(gw, service)
    headers = {}
    client.meta.events.register(
        "after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
    return getattr(client, method)(**kwargs), headers.get("x-sesgate-batch-id")


def batch_view(gw, ref):
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + ref)
    assert status == 200, body
    return json.loads(body)


def settle(gw, batch, timeout=60.0):
    deadline = time.monotonic() + timeout
    st = batch_view(gw, batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.1)
        st = batch_view(gw, batch)
    assert st["complete"], st
    return st


def simple(to):
    return dict(Source=SENDER, Destination={"ToAddresses": to},
                Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})


def test_pass_through_sends_are_indexed_under_the_client(gw):
    mids = []
    resp, batch = call(gw, "ses", "send_email", **simple(["one@example.net"]))
    assert batch is None
    mids.append(resp["MessageId"])
    raw = harness.raw_message(to="raw@example.net")
    resp, _ = call(gw, "ses", "send_raw_email", RawMessage={"Data": raw})
    mids.append(resp["MessageId"])
    resp, _ = call(gw, "ses", "send_templated_email", Source=SENDER,
                   Destination={"ToAddresses": ["tpl@example.net"]}, Template="welcome", TemplateData="{}")
    mids.append(resp["MessageId"])
    resp, _ = call(gw, "sesv2", "send_email", FromEmailAddress=SENDER,
                   Destination={"ToAddresses": ["v2@example.net"]},
                   Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}})
    mids.append(resp["MessageId"])
    upstream = {r["message_id"] for r in gw.fake.requests() if r.get("message_id")}
    for mid in mids:
        assert mid in upstream and len(mid) == 60, mid
        client, batch, index, ttl = wait_index(gw, mid)
        assert (client, batch, index) == ("app", "-", "-")
        assert 2 * 3600000 - 60000 < ttl <= 2 * 3600000


def test_bulk_call_passed_through_indexes_each_destination_by_position(gw):
    tags = [{"Name": "sesgate-fanout", "Value": "off"}]
    dests = [{"Destination": {"ToAddresses": ["pt%d@example.net" % i]}, "ReplacementTemplateData": "{}"}
             for i in range(3)]
    resp, batch = call(gw, "ses", "send_bulk_templated_email", Source=SENDER, Template="welcome",
                       DefaultTemplateData="{}", DefaultTags=tags, Destinations=dests)
    assert batch is None
    assert [s["Status"] for s in resp["Status"]] == ["Success"] * 3
    for pos, s in enumerate(resp["Status"]):
        assert wait_index(gw, s["MessageId"])[:3] == ("app", "-", str(pos))


def test_batch_copies_are_indexed_under_batch_and_index(gw):
    to = ["b%d@example.net" % i for i in range(5)]
    resp, batch = call(gw, "ses", "send_email", **simple(to))
    assert batch
    # copy 0 went before the answer: indexed by enqueue.lua with the batch
    assert index_of(gw, resp["MessageId"])[:3] == ("app", batch, "0")
    st = settle(gw, batch)
    assert len(st["recipients"]) == 5
    for r in st["recipients"]:
        client, b, index, ttl = index_of(gw, r["message_id"])
        assert (client, b, index) == ("app", batch, str(r["index"])), r
        assert 0 < ttl <= 2 * 3600000


def test_bulk_batch_units_are_indexed(gw):
    entries = [{"Destination": {"ToAddresses": ["u%d@example.net" % i]}} for i in range(6)]
    resp, batch = call(gw, "sesv2", "send_bulk_email", FromEmailAddress=SENDER,
                       DefaultContent={"Template": {"TemplateName": "welcome", "TemplateData": "{}"}},
                       BulkEmailEntries=entries)
    assert batch
    results = resp["BulkEmailEntryResults"]
    synced = [r for r in results if not r["MessageId"].startswith("sesgate-")]
    assert synced, "first_recipient = sync sent no unit before the answer"
    # the units sent before the answer are not part of the batch: indexed
    # under their position in the call
    for pos, r in enumerate(results[:len(synced)]):
        assert wait_index(gw, r["MessageId"])[:3] == ("app", "-", str(pos))
    st = settle(gw, batch)
    assert st["total"] == len(results) - len(synced)
    for r in st["recipients"]:
        assert index_of(gw, r["message_id"])[:3] == ("app", batch, str(r["index"])), r


def test_nothing_is_indexed_without_feedback(tmp_path_factory):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    g = start(tmp_path_factory, "nofeedback", False)
    try:
        resp, _ = call(g, "ses", "send_email", **simple(["solo@example.net"]))
        _, batch = call(g, "ses", "send_email", **simple(["x%d@example.net" % i for i in range(3)]))
        st = settle(g, batch)
        assert [r["state"] for r in st["recipients"]] == ["sent"] * 3
        time.sleep(0.3)
        assert g.sesgate.redis("KEYS", PFX + "m:*") == ""
        assert index_of(g, resp["MessageId"]) is None
    finally:
        harness.stop_run_gateway(g)


EVENTS_LUA = Path(__file__).resolve().parents[2] / "src" / "lua" / "events.lua"


def apply_event(gw, mid, state, at, recipients):
    """Run events.lua for an SES event about MessageId mid that sets state at
    time at (ms) for recipients [(lowercased address, detail JSON text)],
    with the arguments src/events.c passes (no suppression, no relay)."""
    sock = gw.workdir / "var" / "redis" / "redis.sock"
    keys = [PFX + "sns:" + str(uuid.uuid4()), PFX + "m:" + mid, PFX + "sup", PFX + "relay", PFX]
    args = [int(time.time() * 1000), 3600000, state, at, "", 0, 86400000, "", TOPIC, "Notification",
            str(uuid.uuid4()), "", "{}", len(recipients)]
    for addr, detail in recipients:
        args += [addr, detail]
    out = subprocess.run([harness.REDIS_CLI, "-s", str(sock), "--eval", str(EVENTS_LUA)] + keys + [","]
                         + [str(a) for a in args], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "ERR" not in out.stdout, out.stdout + out.stderr
    return out.stdout


def cli(gw, *args, timeout=30):
    return subprocess.run([str(harness.sesgate_bin())] + list(args) + ["-c", str(gw.sesgate.config_path)],
                          capture_output=True, text=True, timeout=timeout,
                          env=harness.clean_env(gw.sesgate.env), cwd=str(gw.workdir))


def cli_json(gw, *args):
    r = cli(gw, *(list(args) + ["--json"]))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


T0 = 1765000000000  # 2025-12-06T05:46:40Z


def test_views_show_each_recipients_delivery_state(gw):
    to = ["V%d@example.net" % i for i in range(4)]
    resp, batch = call(gw, "ses", "send_email", Source=SENDER,
                       Destination={"ToAddresses": to, "CcAddresses": ["Rider@example.org"]},
                       Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    st = settle(gw, batch)
    mid = {r["index"]: r["message_id"] for r in st["recipients"]}
    assert all(r["delivery"] == [] for r in st["recipients"])
    assert (st["delivered"], st["bounced"], st["complained"], st["delayed"], st["rejected"],
            st["suppressed"]) == (0, 0, 0, 0, 0, 0)
    # copy 0 (To and Cc) delivered; 1 bounced; 2 delivered then complained;
    # 3 delayed; a late Delivery after 1's bounce changes nothing
    apply_event(gw, mid[0], "delivered", T0, [("v0@example.net", '{"smtp_response":"250 ok"}'),
                                               ("rider@example.org", '{"smtp_response":"250 ok"}')])
    bounce = '{"action":"failed","diagnostic":"smtp; 550 5.1.1 user unknown","status":"5.1.1",' \
             '"subtype":"General","type":"Permanent"}'
    apply_event(gw, mid[1], "bounced", T0 + 1000, [("v1@example.net", bounce)])
    apply_event(gw, mid[1], "delivered", T0 + 2000, [("v1@example.net", "{}")])
    apply_event(gw, mid[2], "delivered", T0 + 3000, [("v2@example.net", "{}")])
    apply_event(gw, mid[2], "complained", T0 + 4000, [("v2@example.net", '{"feedback_type":"abuse"}')])
    apply_event(gw, mid[3], "delayed", T0 + 5000, [("v3@example.net", '{"type":"MailboxFull"}')])

    st = cli_json(gw, "batch", "show", batch)
    assert (st["delivered"], st["bounced"], st["complained"], st["delayed"], st["rejected"],
            st["suppressed"]) == (2, 1, 1, 1, 0, 0)
    by = {r["index"]: r for r in st["recipients"]}
    assert by[0]["delivery"] == [
        {"address": "rider@example.org", "state": "delivered", "time": "2025-12-06T05:46:40Z",
         "time_ms": T0, "smtp_response": "250 ok"},
        {"address": "v0@example.net", "state": "delivered", "time": "2025-12-06T05:46:40Z",
         "time_ms": T0, "smtp_response": "250 ok"}]
    assert by[1]["delivery"] == [
        {"address": "v1@example.net", "state": "bounced", "time": "2025-12-06T05:46:41Z", "time_ms": T0 + 1000,
         "type": "Permanent", "subtype": "General", "diagnostic": "smtp; 550 5.1.1 user unknown",
         "action": "failed", "status": "5.1.1"}]
    assert [(d["state"], d["feedback_type"]) for d in by[2]["delivery"]] == [("complained", "abuse")]
    assert [(d["state"], d["type"], d["time"]) for d in by[3]["delivery"]] == [
        ("delayed", "MailboxFull", "2025-12-06T05:46:45Z")]
    assert all(by[i]["state"] == "sent" for i in range(4))
    # GET /batches/{id} and one unit by its reference: the same
    assert batch_view(gw, batch) == st
    assert batch_view(gw, "sesgate-%s-1" % batch)["recipients"] == [by[1]]

    text = cli(gw, "batch", "show", batch)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    for want in ("delivered 2", "bounced 1", "complained 1", "delayed 1", "rejected 0", "suppressed 0"):
        assert want in lines, (want, lines)
    assert "  v1@example.net bounced 2025-12-06T05:46:41Z Permanent General smtp; 550 5.1.1 user unknown" \
        in lines, lines
    assert "  v2@example.net complained 2025-12-06T05:46:44Z abuse" in lines
    assert "  v3@example.net delayed 2025-12-06T05:46:45Z MailboxFull" in lines
    assert "  rider@example.org delivered 2025-12-06T05:46:40Z" in lines
    # each state line follows its recipient's line
    k = next(i for i, ln in enumerate(lines) if ln.startswith("1 V1@example.net sent "))
    assert lines[k + 1].startswith("  v1@example.net bounced ")

    s = cli_json(gw, "status")
    row = next(b for b in s["recent"] if b["batch_id"] == batch)
    assert (row["delivered"], row["bounced"], row["complained"], row["delayed"], row["rejected"],
            row["suppressed"], row["pending"]) == (2, 1, 1, 1, 0, 0, 0)
    t = cli(gw, "status")
    line = next(ln for ln in t.stdout.splitlines() if ln.startswith("batch %s " % batch))
    assert " delivered 2 bounced 1 complained 1 delayed 1 rejected 0 suppressed 0 " in line, line


def test_watch_progress_line_counts_delivery_states(gw):
    # every send takes 2.5 s at the upstream: the batch stays incomplete
    # while --watch prints its progress line
    gw.fake.control({"delay_ms": 2500, "count": 3})
    try:
        resp, batch = call(gw, "ses", "send_email", **simple(["w%d@example.net" % i for i in range(3)]))
        apply_event(gw, resp["MessageId"], "delivered", T0, [("w0@example.net", "{}")])
        try:
            out = cli(gw, "batch", "show", batch, "--watch", timeout=1.8).stdout
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        first = out.splitlines()[0]
        assert first.startswith("progress 1/3 dead 0 cancelled 0 delivered 1 bounced 0 complained 0 "
                                "delayed 0 rejected 0 suppressed 0 rate "), out
        st = settle(gw, batch)
        assert st["delivered"] == 1 and st["recipients"][0]["delivery"][0]["address"] == "w0@example.net"
    finally:
        gw.fake.reset()
