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
import json
import time

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
