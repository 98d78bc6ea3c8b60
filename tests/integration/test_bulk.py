"""SES's bulk calls through the queue: v1 SendBulkTemplatedEmail and v2
SendBulkEmail with more destinations than SES takes in one call.

Each test sends 120 destinations (some with Cc and Bcc, each with its own
replacement data and tags) through `sesgate run` with a real client (boto3
ses and sesv2, the aws command line, the JavaScript SDK's
SendBulkEmailCommand) and checks at the fake SES upstream: bulk calls of at
most 50 destinations, every destination exactly once with its own
recipients, data and tags, and the defaults as the client sent them; the
client's answer has one entry per destination in order, SES's own results
for the destinations sent before the answer and sesgate-<batch>-<i> for the
queued ones, which GET /batches/{id} (and the id itself) resolve to the
MessageIds the upstream gave.

The fake decides a destination's fate by its first To address
(fakeses.py bulk_entries): bulk-reject-* is refused, bulk-throttle-* and
bulk-transient-* fail once; the queue must dead-letter the first with SES's
status, send the others again alone, and never resend a destination SES
accepted.
"""

import collections
import re
import subprocess
import json
import time

import botocore.exceptions
import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

N = 120
SENDER = "news@example.com"


def destinations(tag, n=N, fates=()):
    """n destinations: every 7th with a Cc, every 11th with a Bcc, each with
    its own replacement data and a tag. fates: {index: address prefix}."""
    out = []
    for i in range(n):
        to = ["%s%s%03d@example.net" % (dict(fates).get(i, ""), tag, i)]
        d = {"to": to, "cc": [], "bcc": [], "data": json.dumps({"n": i, "who": to[0]}),
             "tags": {"seq": "s%d" % i}}
        if i % 7 == 3:
            d["cc"] = ["cc-%s%03d@example.org" % (tag, i)]
        if i % 11 == 5:
            d["bcc"] = ["bcc-%s%03d@example.org" % (tag, i)]
        out.append(d)
    return out


def v1_destinations(dests):
    """boto3 ses Destinations."""
    out = []
    for d in dests:
        dest = {"ToAddresses": d["to"]}
        if d["cc"]:
            dest["CcAddresses"] = d["cc"]
        if d["bcc"]:
            dest["BccAddresses"] = d["bcc"]
        out.append({"Destination": dest, "ReplacementTemplateData": d["data"],
                    "ReplacementTags": [{"Name": k, "Value": v} for k, v in d["tags"].items()]})
    return out


def v2_entries(dests):
    """sesv2 BulkEmailEntries."""
    out = []
    for d in dests:
        dest = {"ToAddresses": d["to"]}
        if d["cc"]:
            dest["CcAddresses"] = d["cc"]
        if d["bcc"]:
            dest["BccAddresses"] = d["bcc"]
        out.append({"Destination": dest,
                    "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": d["data"]}},
                    "ReplacementTags": [{"Name": k, "Value": v} for k, v in d["tags"].items()]})
    return out


@pytest.fixture(scope="module")
def gateways(tmp_path_factory):
    """`sesgate run` with first_recipient = sync and = queue, rate 1000 (so a
    worker's bulk calls carry up to 20 destinations, LIMITER_BUNDLE_MS)."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gws = {}
    try:
        for mode in ("sync", "queue"):
            gws[mode] = harness.run_gateway(
                tmp_path_factory.mktemp("bulk-" + mode),
                extra={"send": {"first_recipient": mode, "rate": "1000", "concurrency": "4",
                                "max_attempts": "3"}},
                fake_args=("--max-send-rate", "1000"))
        yield gws
    finally:
        logs = []
        for gw in gws.values():
            gw.sesgate.stop()
            gw.fake.stop()
            logs.append(gw.sesgate.log_text())
        for log in logs:
            assert not harness.SANITIZER_RE.search(log), log[-4000:]


def batch_view(gw, ref):
    """GET /batches/{ref} on the admin listener, decoded."""
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + ref)
    assert status == 200, body
    return json.loads(body)


def settle(gw, batch, timeout=60.0):
    """Wait until the batch is complete; return its view and the upstream's
    bulk calls. Nothing reaches the upstream after that."""
    deadline = time.monotonic() + timeout
    st = batch_view(gw, batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.1)
        st = batch_view(gw, batch)
    assert st["complete"], "batch not complete after %.0f s: %s" % (
        timeout, {k: st[k] for k in ("total", "sent", "dead", "retrying", "queued")})
    recs = gw.fake.requests()
    time.sleep(0.3)
    assert len(gw.fake.requests()) == len(recs), "requests reached the upstream after the batch completed"
    return st, [r for r in recs if r.get("entries") is not None]


def check_calls(calls, dests):
    """Every bulk call holds at most 50 destinations; each destination arrives
    with its own recipients, data and tags and the call's defaults. Returns
    {first To address: [entries the upstream saw for it]}."""
    seen = collections.defaultdict(list)
    for c in calls:
        assert 1 <= len(c["entries"]) <= 50, len(c["entries"])
        assert c["status"] == 200
        for e in c["entries"]:
            seen[e["To"][0]].append(e)
    want = {d["to"][0]: d for d in dests}
    assert set(seen) == set(want), set(seen) ^ set(want)
    for addr, es in seen.items():
        d = want[addr]
        for e in es:
            assert (e["To"], sorted(e["Cc"]), sorted(e["Bcc"])) == (d["to"], d["cc"], d["bcc"]), (e, d)
            assert e["data"] == d["data"] and e["tags"] == d["tags"], (e, d)
    return seen


def check_answer(gw, batch, results, dests, seen, mode, ok="Success"):
    """One answer entry per destination in order; SES's results for those sent
    before the answer, sesgate ids resolving to the upstream's MessageIds for
    the queued ones; the batch view agrees."""
    assert len(results) == len(dests)
    st, _ = settle(gw, batch)
    queued = [r for r in results if r.get("MessageId", "").startswith("sesgate-")]
    synced = [r for r in results if not r.get("MessageId", "").startswith("sesgate-")]
    if mode == "queue":
        assert not synced, synced[:3]
    else:
        assert synced, "first_recipient = sync sent nothing before the answer"
        # the first destinations went first, with SES's own results
        for i, r in enumerate(results[:len(synced)]):
            addr = dests[i]["to"][0]
            assert r["Status"] == ok and r["MessageId"] == seen[addr][0]["message_id"], (r, seen[addr])
    assert st["total"] == len(queued)
    by_index = {r["index"]: r for r in st["recipients"]}
    offset = len(results) - len(queued)
    for k, r in enumerate(results[offset:]):
        assert r["Status"] == ok and r["MessageId"] == "sesgate-%s-%d" % (batch, k), r
        v = by_index[k]
        addr = dests[offset + k]["to"][0]
        assert v["state"] == "sent", v
        assert v["address"] == addr, v
        sent = [e["message_id"] for e in seen[addr] if e.get("message_id")]
        assert v["message_id"] in sent, (v, sent)
    # the id of one destination resolves to its MessageId on its own
    one = batch_view(gw, results[-1]["MessageId"])
    assert [r["index"] for r in one["recipients"]] == [len(queued) - 1]
    assert one["recipients"][0]["message_id"] == by_index[len(queued) - 1]["message_id"]
    return st


def sesgate_json(gw, *args):
    """`sesgate ARGS --json -c CONFIG`, parsed (the command must succeed)."""
    cmd = [str(harness.sesgate_bin())] + list(args) + ["--json", "-c", str(gw.sesgate.config_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                       env=harness.clean_env(gw.sesgate.env), cwd=str(gw.workdir))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def boto3_call(gw, service, method, **kwargs):
    """Call method with the app's key; returns (response, X-Sesgate-Batch-Id)."""
    client = harness.boto3_client(gw, service)
    headers = {}
    client.meta.events.register(
        "after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
    return getattr(client, method)(**kwargs), headers.get("x-sesgate-batch-id")


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_boto3_v1_send_bulk_templated_email(gateways, mode):
    gw = gateways[mode]
    gw.fake.reset()
    dests = destinations("v1" + mode)
    resp, batch = boto3_call(
        gw, "ses", "send_bulk_templated_email", Source=SENDER, Template="welcome",
        DefaultTemplateData='{"n": 0}', DefaultTags=[{"Name": "campaign", "Value": "c1"}],
        Destinations=v1_destinations(dests))
    assert batch, "no X-Sesgate-Batch-Id"
    results = [{"Status": r["Status"], **({"MessageId": r["MessageId"]} if "MessageId" in r else {})}
               for r in resp["Status"]]
    st, calls = settle(gw, batch)
    seen = check_calls(calls, dests)
    for c in calls:
        assert c["defaults"] == {"Action": "SendBulkTemplatedEmail", "Version": "2010-12-01",
                                 "Source": SENDER, "Template": "welcome", "DefaultTemplateData": '{"n": 0}',
                                 "DefaultTags.member.1.Name": "campaign",
                                 "DefaultTags.member.1.Value": "c1"}, c["defaults"]
    assert all(len(v) == 1 for v in seen.values()), "a destination was sent twice"
    check_answer(gw, batch, results, dests, seen, mode)


def v2_template_content():
    """SendBulkEmail's DefaultContent: a stored template and its default data."""
    return {"Template": {"TemplateName": "welcome", "TemplateData": '{"n": 0, "who": "you"}'}}


def v2_defaults_ok(c):
    """The call's defaults at the upstream are the client's."""
    assert c["defaults"]["FromEmailAddress"] == SENDER, c["defaults"]
    assert c["defaults"]["DefaultContent"] == v2_template_content(), c["defaults"]
    assert c["defaults"]["DefaultEmailTags"] == [{"Name": "campaign", "Value": "c2"}], c["defaults"]


def v2_results(entries):
    """BulkEmailEntryResults as (Status, MessageId) dicts."""
    return [{"Status": r["Status"], **({"MessageId": r["MessageId"]} if r.get("MessageId") else {})}
            for r in entries]


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_boto3_v2_send_bulk_email(gateways, mode):
    gw = gateways[mode]
    gw.fake.reset()
    dests = destinations("v2" + mode)
    resp, batch = boto3_call(
        gw, "sesv2", "send_bulk_email", FromEmailAddress=SENDER, DefaultContent=v2_template_content(),
        DefaultEmailTags=[{"Name": "campaign", "Value": "c2"}], BulkEmailEntries=v2_entries(dests))
    assert batch, "no X-Sesgate-Batch-Id"
    st, calls = settle(gw, batch)
    seen = check_calls(calls, dests)
    for c in calls:
        v2_defaults_ok(c)
    assert all(len(v) == 1 for v in seen.values()), "a destination was sent twice"
    check_answer(gw, batch, v2_results(resp["BulkEmailEntryResults"]), dests, seen, mode, ok="SUCCESS")


def test_aws_cli_send_bulk_templated_email(gateways):
    gw = gateways["sync"]
    gw.fake.reset()
    dests = destinations("cli")
    spec = gw.workdir / "bulk-cli.json"
    spec.write_text(json.dumps({"Source": SENDER, "Template": "welcome", "DefaultTemplateData": '{"n": 0}',
                                "DefaultTags": [{"Name": "campaign", "Value": "c1"}],
                                "Destinations": v1_destinations(dests)}))
    res = harness.run_aws(gw, ["ses", "send-bulk-templated-email", "--cli-input-json", "file://%s" % spec],
                          gw.creds("app"), debug=True)
    assert res.rc == 0, res.stderr[-3000:]
    m = re.findall(r"""['"]x-sesgate-batch-id['"]:\s*['"]([^'"]*)['"]""", res.stderr, re.I)
    assert m, "no X-Sesgate-Batch-Id in the CLI's debug log"
    batch = m[-1]
    st, calls = settle(gw, batch)
    seen = check_calls(calls, dests)
    assert all(len(v) == 1 for v in seen.values()), "a destination was sent twice"
    results = [{"Status": r["Status"], **({"MessageId": r["MessageId"]} if "MessageId" in r else {})}
               for r in res.json["Status"]]
    check_answer(gw, batch, results, dests, seen, "sync")


def test_js_sdk_send_bulk_email_command(gateways):
    if not harness.js_ready():
        pytest.fail("tests/integration/js/node_modules is missing: run npm ci there (run.sh does)")
    gw = gateways["queue"]
    gw.fake.reset()
    dests = destinations("js")
    r = harness.run_node(gw, "fanout_send.mjs", {
        "client": "sesv2", "op": "SendBulkEmail",
        "input": {"FromEmailAddress": SENDER, "DefaultContent": v2_template_content(),
                  "DefaultEmailTags": [{"Name": "campaign", "Value": "c2"}],
                  "BulkEmailEntries": v2_entries(dests)}}, gw.creds("app"))
    assert r["ok"], r
    batch = r["responses"][0]["headers"].get("x-sesgate-batch-id")
    assert batch, r["responses"]
    st, calls = settle(gw, batch)
    seen = check_calls(calls, dests)
    for c in calls:
        v2_defaults_ok(c)
    check_answer(gw, batch, v2_results(r["output"]["BulkEmailEntryResults"]), dests, seen, "queue",
                 ok="SUCCESS")


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_mixed_entry_results(gateways, api):
    """One upstream call answers rejected, throttled, transient and accepted
    destinations: the rejected one is a dead letter with SES's status, the
    throttled and transient ones go again alone, the accepted ones never
    again."""
    gw = gateways["queue"]
    gw.fake.reset()
    fates = {2: "bulk-reject-", 3: "bulk-throttle-", 4: "bulk-transient-"}
    dests = destinations("mix" + api, n=8, fates=fates)
    if api == "v1":
        resp, batch = boto3_call(gw, "ses", "send_bulk_templated_email", Source=SENDER, Template="welcome",
                                 DefaultTemplateData="{}", Destinations=v1_destinations(dests))
        assert len(resp["Status"]) == 8
    else:
        resp, batch = boto3_call(gw, "sesv2", "send_bulk_email", FromEmailAddress=SENDER,
                                 DefaultContent=v2_template_content(), BulkEmailEntries=v2_entries(dests))
        assert len(resp["BulkEmailEntryResults"]) == 8
    st, calls = settle(gw, batch)
    assert max(len(c["entries"]) for c in calls) > 1, "the worker sent no destinations together"
    first = [c for c in calls if any(e["To"][0] == dests[2]["to"][0] for e in c["entries"])]
    assert len(first) == 1, "the rejected destination was sent again"
    assert {e["status"] for e in first[0]["entries"]} >= {"Success" if api == "v1" else "SUCCESS"}
    seen = collections.defaultdict(list)
    for c in calls:
        for e in c["entries"]:
            seen[e["To"][0]].append(e)
    for i, d in enumerate(dests):
        got = seen[d["to"][0]]
        if i in (3, 4):
            assert len(got) == 2 and "message_id" not in got[0] and got[1].get("message_id"), got
            # the second try went alone or with other retries, never with a sent neighbour
            again = [c for c in calls if any(e is got[1] for e in c["entries"])][0]
            assert all(e["To"][0] in (dests[3]["to"][0], dests[4]["to"][0]) for e in again["entries"])
        else:
            assert len(got) == 1, (i, got)
    rows = {r["index"]: r for r in st["recipients"]}
    rejected = rows[2]
    assert rejected["state"] == "dead", rejected
    assert rejected["code"] == ("MessageRejected" if api == "v1" else "MESSAGE_REJECTED"), rejected
    for i in (0, 1, 3, 4, 5, 6, 7):
        assert rows[i]["state"] == "sent" and rows[i]["message_id"] == [
            e for e in seen[dests[i]["to"][0]] if e.get("message_id")][0]["message_id"], rows[i]
    assert (st["sent"], st["dead"]) == (7, 1)
    # the dead letter names the destination's index and SES's status
    letters = [d for d in sesgate_json(gw, "dlq", "list") if d["batch_id"] == batch]
    assert [(d["index"], d["code"], d["address"]) for d in letters] == [
        (2, rejected["code"], dests[2]["to"][0])], letters
    # `sesgate batch show` resolves a queued destination's id to its MessageId
    one = sesgate_json(gw, "batch", "show", "sesgate-%s-1" % batch)
    assert [(r["index"], r["message_id"]) for r in one["recipients"]] == [(1, rows[1]["message_id"])]


def test_fanout_off_passes_a_bulk_call_through(gateways):
    """sesgate-fanout=off (stripped before SES): a call of at most 50
    destinations goes to SES as it is, and SES's answer comes back."""
    gw = gateways["sync"]
    gw.fake.reset()
    dests = destinations("off", n=5)
    tags = [{"Name": "sesgate-fanout", "Value": "off"}, {"Name": "campaign", "Value": "c1"}]
    resp, batch = boto3_call(gw, "ses", "send_bulk_templated_email", Source=SENDER, Template="welcome",
                             DefaultTemplateData="{}", DefaultTags=tags, Destinations=v1_destinations(dests))
    assert batch is None
    calls = [r for r in gw.fake.requests() if r.get("entries") is not None]
    assert len(calls) == 1 and len(calls[0]["entries"]) == 5
    assert calls[0]["defaults"]["DefaultTags.member.1.Name"] == "campaign"
    assert "DefaultTags.member.2.Name" not in calls[0]["defaults"], "the opt-out tag reached SES"
    assert [r["MessageId"] for r in resp["Status"]] == [e["message_id"] for e in calls[0]["entries"]]


@pytest.mark.parametrize("case", ["51 recipients", "bad address", "no recipient"])
def test_a_bad_destination_refuses_the_call(gateways, case):
    """A destination SES would refuse refuses the whole call before anything
    is sent or queued, with SES's error (invalid_recipients = refuse)."""
    gw = gateways["sync"]
    gw.fake.reset()
    dests = v1_destinations(destinations("bad", n=60))
    if case == "51 recipients":
        dests[55]["Destination"]["CcAddresses"] = ["c%02d@example.org" % i for i in range(50)]
    elif case == "bad address":
        dests[55]["Destination"]["ToAddresses"] = ["not-an-address"]
    else:
        dests[55]["Destination"] = {}
    client = harness.boto3_client(gw, "ses")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        client.send_bulk_templated_email(Source=SENDER, Template="welcome", DefaultTemplateData="{}",
                                         Destinations=dests)
    err = ei.value.response["Error"]
    assert err["Code"] == "InvalidParameterValue", err
    if case == "51 recipients":
        assert err["Message"] == "Recipient count exceeds 50."
    time.sleep(0.2)
    assert [r for r in gw.fake.requests() if r.get("entries") is not None] == []


def test_cancel_a_bulk_batch_mid_drain(gateways):
    """`sesgate batch cancel` on a bulk batch whose calls carry several
    destinations: no destination goes upstream in a call that started after
    the command returned, beyond the in_flight it reported; the batch ends
    with every destination sent or cancelled."""
    gw = gateways["queue"]
    gw.fake.reset()
    gw.fake.control(mode="normal", delay_ms=300, count=1000000)  # calls stay in flight a while
    try:
        dests = destinations("cx", n=400)
        _, batch = boto3_call(gw, "sesv2", "send_bulk_email", FromEmailAddress=SENDER,
                              DefaultContent=v2_template_content(), BulkEmailEntries=v2_entries(dests))
        assert harness.wait_for(lambda: [r for r in gw.fake.requests() if r.get("entries")], 10.0)
        ans = sesgate_json(gw, "batch", "cancel", batch)
        returned = time.monotonic()
        assert ans["state"] == "cancelled", ans
        st = settle(gw, batch)[0]
        calls = [r for r in gw.fake.requests() if r.get("entries") is not None]
        late = [e for c in calls if c["t"] > returned for e in c["entries"]]
        sent = [e for c in calls for e in c["entries"]]
        print("\nbulk cancel: %d destinations in %d calls before, in_flight %d, %d after"
              % (len(sent) - len(late), len(calls), ans["in_flight"], len(late)))
        assert len(late) <= ans["in_flight"], (len(late), ans)
        assert max(len(c["entries"]) for c in calls) > 1, "no call carried several destinations"
        assert st["state"] == "cancelled" and st["cancelled"] > 0, st
        assert st["sent"] == len(sent) and st["sent"] + st["cancelled"] == st["total"] == 400, st
    finally:
        gw.fake.reset()
