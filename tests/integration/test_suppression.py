"""The suppression list end to end: `sesgate suppression` and the admin
listener's /suppression, the workers' skip before the limiter (a suppressed
copy or bulk destination is recorded `suppressed`, takes no rate and is no
dead letter), the front's refusal of a send whose every recipient is
suppressed, and recipients left out of what goes upstream. `sesgate run`
with the managed Redis in front of the fake SES."""

import base64
import json
import subprocess
import time
import urllib.parse

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

PREFIX = "sesgate-it"
SUP = "%s:{%s}:sup" % (PREFIX, PREFIX)
DAY = "%s:{%s}:day" % (PREFIX, PREFIX)
DLQ = "%s:{%s}:dlq" % (PREFIX, PREFIX)


def start(tmp_path_factory, name, first):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp(name), extra={"send": {
        "first_recipient": first, "rate": "1000", "concurrency": "4"}})
    return gw


@pytest.fixture(scope="module")
def sq(tmp_path_factory):
    """first_recipient = queue: every copy goes through the workers."""
    gw = start(tmp_path_factory, "supq", "queue")
    yield gw
    harness.stop_run_gateway(gw)


@pytest.fixture(scope="module")
def ss(tmp_path_factory):
    """first_recipient = sync: copy 0 goes from the front."""
    gw = start(tmp_path_factory, "sups", "sync")
    yield gw
    harness.stop_run_gateway(gw)


def cli(gw, *args, stdin=None):
    cmd = [str(harness.sesgate_bin()), "suppression"] + list(args) + ["-c", str(gw.sesgate.config_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=stdin,
                          env=harness.clean_env(gw.sesgate.env), cwd=str(gw.workdir))


def ops_json(gw, *args):
    cmd = [str(harness.sesgate_bin())] + list(args) + ["--json", "-c", str(gw.sesgate.config_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=harness.clean_env(gw.sesgate.env), cwd=str(gw.workdir))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def params(rec):
    return dict(urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode(), keep_blank_values=True))


def day_sum(gw):
    """Recipients the limiter counted in the rolling day (limit.lua's window)."""
    return int(gw.sesgate.redis("HGET", DAY, "sum") or 0)


def wait_complete(gw, batch, timeout=30.0):
    deadline = time.monotonic() + timeout
    st = ops_json(gw, "batch", "show", batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.2)
        st = ops_json(gw, "batch", "show", batch)
    assert st["complete"], st
    return st


def send(gw, to, cc=(), bcc=(), api=1):
    """SendEmail (v1) or v2 SendEmail; (response, X-Sesgate-Batch-Id)."""
    seen = {}
    dest = {"ToAddresses": list(to)}
    if cc:
        dest["CcAddresses"] = list(cc)
    if bcc:
        dest["BccAddresses"] = list(bcc)
    if api == 1:
        client = harness.boto3_client(gw, "ses")
        client.meta.events.register("after-call.ses.SendEmail", lambda http_response, **kw: seen.update(
            h={k.lower(): v for k, v in http_response.headers.items()}))
        resp = client.send_email(Source=harness.SENDER, Destination=dest, Message={
            "Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "Hello"}}})
    else:
        client = harness.boto3_client(gw, "sesv2")
        client.meta.events.register("after-call.sesv2.SendEmail", lambda http_response, **kw: seen.update(
            h={k.lower(): v for k, v in http_response.headers.items()}))
        resp = client.send_email(FromEmailAddress=harness.SENDER, Destination=dest, Content={
            "Simple": {"Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "Hello"}}}})
    return resp, seen.get("h", {}).get("x-sesgate-batch-id")


def test_cli_add_list_remove(sq):
    r = cli(sq, "add", "Gone@Example.NET", "--reason", "bounce")
    assert r.returncode == 0 and r.stdout.split() == ["added", "gone@example.net", "BOUNCE"], (r.stdout, r.stderr)
    r = cli(sq, "add", "Some One <gone@example.net>", "--reason", "COMPLAINT", "--json")
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    assert (o["address"], o["reason"], o["source"], o["new"]) == ("gone@example.net", "COMPLAINT", "cli", False)
    assert o["added"].endswith("Z") and o["added_ms"] > 0
    r = cli(sq, "add", "not-an-address")
    assert r.returncode == 1 and "Missing final '@domain'" in r.stderr
    r = cli(sq, "add", "a@example.net", "--reason", "SPAM")
    assert r.returncode == 2 and "SPAM" in r.stderr
    assert cli(sq, "add", "also@example.net").returncode == 0
    listed = json.loads(cli(sq, "list", "--json").stdout)
    assert {e["address"]: e["reason"] for e in listed} == {"gone@example.net": "COMPLAINT",
                                                          "also@example.net": "MANUAL"}
    text = sorted(cli(sq, "list").stdout.splitlines())
    assert [ln.split()[0:2] for ln in text] == [["also@example.net", "MANUAL"], ["gone@example.net", "COMPLAINT"]]
    assert all(ln.split()[3] == "cli" for ln in text)
    # the stored value is the documented one
    v = sq.sesgate.redis("HGET", SUP, "gone@example.net")
    v = v.decode() if isinstance(v, bytes) else v
    reason, ms, source = v.split("\t")
    assert (reason, source) == ("COMPLAINT", "cli") and int(ms) == o["added_ms"]
    r = cli(sq, "remove", "ALSO@example.net")
    assert r.returncode == 0 and r.stdout.split() == ["removed", "also@example.net"]
    r = cli(sq, "remove", "also@example.net", "--json")
    assert r.returncode == 1 and json.loads(r.stdout) == {"address": "also@example.net", "removed": False}
    assert cli(sq, "remove").returncode == 2


def test_batch_skips_suppressed(sq):
    """A batch to a list with suppressed addresses: those are `suppressed`,
    take no rate, are no dead letter, and the batch completes."""
    sq.fake.reset()
    for a in ("s1@example.net", "S2@example.net", "cc-gone@example.net"):
        assert cli(sq, "add", a, "--reason", "BOUNCE").returncode == 0
    to = ["ok1@example.net", "s1@example.net", "ok2@example.net", "s2@EXAMPLE.net",
          "Name <gone@example.net>", "ok3@example.net"]
    before = day_sum(sq)
    _, batch = send(sq, to, cc=["cc-gone@example.net", "cc-ok@example.net"])
    assert batch
    st = wait_complete(sq, batch)
    states = {r["address"]: r["state"] for r in st["recipients"]}
    assert states == {"ok1@example.net": "sent", "s1@example.net": "suppressed", "ok2@example.net": "sent",
                      "s2@EXAMPLE.net": "suppressed", "Name <gone@example.net>": "suppressed",
                      "ok3@example.net": "sent"}, states
    assert (st["total"], st["sent"], st["suppressed"], st["dead"], st["progress"]) == (6, 3, 3, 0, 100)
    recs = harness.wait_records(sq.fake, 3)
    time.sleep(0.5)
    recs = sq.fake.requests()
    assert sorted(params(r)["Destination.ToAddresses.member.1"] for r in recs) == \
        ["ok1@example.net", "ok2@example.net", "ok3@example.net"]
    # copy 0 (ok1) keeps its riders that are not suppressed
    first = [params(r) for r in recs if params(r)["Destination.ToAddresses.member.1"] == "ok1@example.net"][0]
    assert first.get("Destination.CcAddresses.member.1") == "cc-ok@example.net"
    assert "Destination.CcAddresses.member.2" not in first
    # the limiter counted the sent copies only: 3 + copy 0's one rider
    assert day_sum(sq) - before == 4
    assert int(sq.sesgate.redis("XLEN", DLQ) or 0) == 0
    stat = ops_json(sq, "status")
    row = [b for b in stat["recent"] if b["batch_id"] == batch][0]
    assert (row["suppressed"], row["pending"], row["dead"]) == (3, 0, 0)
    t = subprocess.run([str(harness.sesgate_bin()), "batch", "show", batch, "-c", str(sq.sesgate.config_path)],
                       capture_output=True, text=True, timeout=30, env=harness.clean_env(sq.sesgate.env),
                       cwd=str(sq.workdir))
    assert "suppressed 3" in t.stdout.splitlines()
    assert any(ln.startswith("1 s1@example.net suppressed") for ln in t.stdout.splitlines())


def test_batch_all_suppressed_completes(sq):
    sq.fake.reset()
    to = ["s1@example.net", "s2@example.net"]
    before = day_sum(sq)
    _, batch = send(sq, to)
    st = wait_complete(sq, batch)
    assert (st["suppressed"], st["sent"], st["complete"]) == (2, 0, True)
    time.sleep(0.5)
    assert sq.fake.requests() == [] and day_sum(sq) == before
    # its keys got their time to live, as any completed batch's
    assert int(sq.sesgate.redis("PTTL", "%s:{%s}:b:%s" % (PREFIX, PREFIX, batch))) > 0


def put(gw, *addrs):
    for a in addrs:
        r = cli(gw, "add", a, "--reason", "COMPLAINT")
        assert r.returncode == 0, r.stderr


def test_single_send_all_suppressed_refused(ss):
    """v1 and v2: MessageRejected, nothing goes upstream, no rate taken."""
    put(ss, "nobody@example.net", "nobody2@example.net")
    ss.fake.reset()
    before = day_sum(ss)
    with pytest.raises(Exception) as ei:
        send(ss, ["Nobody@example.net"], bcc=["nobody2@example.net"])
    assert harness.client_error(ei) == (
        "MessageRejected", 400, "Every recipient of this message is on the suppression list: 2 addresses.")
    with pytest.raises(Exception) as ei:
        send(ss, ["nobody@example.net"], api=2)
    assert harness.client_error(ei) == (
        "MessageRejected", 400, "Every recipient of this message is on the suppression list: 1 address.")
    raw = harness.boto3_client(ss, "ses")
    with pytest.raises(Exception) as ei:
        raw.send_raw_email(RawMessage={"Data": harness.raw_message(to="nobody@example.net")})
    assert harness.client_error(ei)[0:2] == ("MessageRejected", 400)
    time.sleep(0.3)
    assert ss.fake.requests() == [] and day_sum(ss) == before


def test_single_send_partly_suppressed(ss):
    """The upstream receives the send without its suppressed recipients."""
    put(ss, "nobody@example.net")
    ss.fake.reset()
    before = day_sum(ss)
    resp, batch = send(ss, ["ok@example.net"], cc=["nobody@example.net", "cc@example.net"],
                       bcc=["NOBODY@example.net"])
    assert batch is None and resp["MessageId"]
    resp2, _ = send(ss, ["ok@example.net"], cc=["nobody@example.net"], api=2)
    recs = harness.wait_records(ss.fake, 2)
    p = params(recs[0])
    dests = sorted((k, v) for k, v in p.items() if k.startswith("Destination."))
    assert dests == [("Destination.CcAddresses.member.1", "cc@example.net"),
                     ("Destination.ToAddresses.member.1", "ok@example.net")]
    assert p["Message.Subject.Data"] == "Hi" and p["Source"] == harness.SENDER
    body = json.loads(base64.b64decode(recs[1]["body_b64"]))
    assert body["Destination"] == {"ToAddresses": ["ok@example.net"]}
    assert body["Content"]["Simple"]["Subject"]["Data"] == "Hi"
    assert [r["message_id"] for r in recs] == [resp["MessageId"], resp2["MessageId"]]
    assert day_sum(ss) - before == 3


def test_raw_send_partly_suppressed(ss):
    """A raw message: sent with explicit Destinations, its bytes unchanged."""
    put(ss, "nobody@example.net")
    ss.fake.reset()
    msg = harness.raw_message(to="ok@example.net").replace(b"To: ok@example.net\r\n",
                                                          b"To: ok@example.net\r\nCc: Nobody <nobody@example.net>\r\n")
    client = harness.boto3_client(ss, "ses")
    client.send_raw_email(RawMessage={"Data": msg})
    client.send_raw_email(RawMessage={"Data": msg}, Destinations=["nobody@example.net", "other@example.net"])
    v2 = harness.boto3_client(ss, "sesv2")
    v2.send_email(Content={"Raw": {"Data": msg}})
    recs = harness.wait_records(ss.fake, 3)
    p = params(recs[0])
    assert [(k, v) for k, v in p.items() if k.startswith("Destination")] == [
        ("Destinations.member.1", "ok@example.net")]
    assert base64.b64decode(p["RawMessage.Data"]) == msg
    p = params(recs[1])
    assert [(k, v) for k, v in p.items() if k.startswith("Destination")] == [
        ("Destinations.member.1", "other@example.net")]
    body = json.loads(base64.b64decode(recs[2]["body_b64"]))
    assert body["Destination"] == {"ToAddresses": ["ok@example.net"]}
    assert base64.b64decode(body["Content"]["Raw"]["Data"]) == msg


def test_sync_batch_copy0_suppressed(ss):
    """first_recipient = sync, copy 0's recipient suppressed: it is recorded
    suppressed and the batch goes on through the queue."""
    put(ss, "nobody@example.net")
    ss.fake.reset()
    before = day_sum(ss)
    resp, batch = send(ss, ["nobody@example.net", "b1@example.net", "b2@example.net"])
    assert batch and resp["MessageId"] == "sesgate-" + batch
    st = wait_complete(ss, batch)
    assert [r["state"] for r in st["recipients"]] == ["suppressed", "sent", "sent"]
    assert (st["sent"], st["suppressed"], st["dead"]) == (2, 1, 0)
    recs = harness.wait_records(ss.fake, 2)
    assert sorted(params(r)["Destination.ToAddresses.member.1"] for r in recs) == ["b1@example.net", "b2@example.net"]
    assert day_sum(ss) - before == 2
    # a rider suppressed: copy 0 still goes first, before the answer, without it
    ss.fake.reset()
    before = day_sum(ss)
    resp, batch = send(ss, ["c0@example.net", "c1@example.net"], cc=["cc@example.net"],
                       bcc=["nobody@example.net"])
    st = wait_complete(ss, batch)
    assert [r["state"] for r in st["recipients"]] == ["sent", "sent"]
    recs = harness.wait_records(ss.fake, 2)
    c0 = [r for r in recs if params(r)["Destination.ToAddresses.member.1"] == "c0@example.net"][0]
    assert resp["MessageId"] == c0["message_id"] == st["recipients"][0]["message_id"]
    assert not any(k.startswith("Destination.BccAddresses") for k in params(c0))
    assert params(c0)["Destination.CcAddresses.member.1"] == "cc@example.net"
    assert day_sum(ss) - before == 3  # c0, its Cc rider, c1


def bulk_entries(recs):
    """Every destination the upstream received in v2 SendBulkEmail calls."""
    out = []
    for r in recs:
        out += json.loads(base64.b64decode(r["body_b64"]))["BulkEmailEntries"]
    return out


@pytest.mark.parametrize("mode", ["queue", "sync"])
def test_bulk_units(sq, ss, mode):
    """A destination whose every recipient is suppressed is recorded
    suppressed; one with some goes without them."""
    gw = sq if mode == "queue" else ss
    put(gw, "s1@example.net", "s2@example.net")
    gw.fake.reset()
    before = day_sum(gw)
    entries = [
        {"Destination": {"ToAddresses": ["s1@example.net"]}},
        {"Destination": {"ToAddresses": ["ok1@example.net", "s2@example.net"],
                         "BccAddresses": ["S1@example.net"]},
         "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": '{"n": 1}'}}},
        {"Destination": {"ToAddresses": ["ok2@example.net"], "CcAddresses": ["s2@example.net"]}},
        {"Destination": {"ToAddresses": ["ok3@example.net"]}},
    ]
    client = harness.boto3_client(gw, "sesv2")
    seen = {}
    client.meta.events.register("after-call", lambda http_response, **kw: seen.update(
        {k.lower(): v for k, v in http_response.headers.items()}))
    resp = client.send_bulk_email(FromEmailAddress=harness.SENDER, DefaultContent={
        "Template": {"TemplateName": "welcome", "TemplateData": "{}"}}, BulkEmailEntries=entries)
    batch = seen["x-sesgate-batch-id"]
    # with suppressed recipients among the first units, nothing goes before the answer
    assert all(r["MessageId"].startswith("sesgate-") for r in resp["BulkEmailEntryResults"])
    st = wait_complete(gw, batch)
    assert [r["state"] for r in st["recipients"]] == ["suppressed", "sent", "sent", "sent"]
    assert (st["suppressed"], st["sent"], st["dead"]) == (1, 3, 0)
    time.sleep(0.3)
    got = sorted(bulk_entries(gw.fake.requests()), key=lambda e: e["Destination"]["ToAddresses"][0])
    assert [e["Destination"] for e in got] == [
        {"ToAddresses": ["ok1@example.net"]}, {"ToAddresses": ["ok2@example.net"]},
        {"ToAddresses": ["ok3@example.net"]}]
    assert got[0]["ReplacementEmailContent"] == entries[1]["ReplacementEmailContent"]
    assert day_sum(gw) - before == 3


def test_bulk_v1_unit_rewritten(sq):
    put(sq, "s1@example.net")
    sq.fake.reset()
    client = harness.boto3_client(sq, "ses")
    client.send_bulk_templated_email(Source=harness.SENDER, Template="welcome", DefaultTemplateData="{}",
                                     Destinations=[
                                         {"Destination": {"ToAddresses": ["s1@example.net", "v1ok@example.net"],
                                                          "CcAddresses": ["v1cc@example.net"]},
                                          "ReplacementTemplateData": '{"a": 1}'},
                                         {"Destination": {"ToAddresses": ["s1@example.net"]}}])
    recs = harness.wait_records(sq.fake, 1)
    time.sleep(0.5)
    recs = sq.fake.requests()
    p = {}
    for r in recs:
        p.update(params(r))
    dests = {k: v for k, v in p.items() if k.startswith("Destinations.")}
    assert dests == {"Destinations.member.1.Destination.ToAddresses.member.1": "v1ok@example.net",
                     "Destinations.member.1.Destination.CcAddresses.member.1": "v1cc@example.net",
                     "Destinations.member.1.ReplacementTemplateData": '{"a": 1}'}, dests


def admin(gw, method, path, body=None):
    status, headers, data = harness.http(method, gw.sesgate.admin_url + path, body=body)
    headers = {k.lower(): v for k, v in headers.items()}
    if headers.get("content-type") != "application/json":
        return status, headers, data
    return status, headers, json.loads(data)


def test_admin_round_trip(sq):
    st, _, o = admin(sq, "PUT", "/suppression/Adm%40Example.net", {"reason": "bounce"})
    assert st == 200 and (o["address"], o["reason"], o["source"], o["new"]) == ("adm@example.net", "BOUNCE", "admin", True)
    st, _, o = admin(sq, "PUT", "/suppression/adm@example.net")
    assert st == 200 and (o["reason"], o["new"]) == ("MANUAL", False)
    st, _, g = admin(sq, "GET", "/suppression/ADM@example.net")
    assert st == 200 and g == {k: v for k, v in o.items() if k != "new"}
    # the CLI sees what the admin wrote, and the other way round
    assert "adm@example.net" in {e["address"] for e in json.loads(cli(sq, "list", "--json").stdout)}
    assert cli(sq, "add", "fromcli@example.net").returncode == 0
    st, _, g = admin(sq, "GET", "/suppression/fromcli@example.net")
    assert st == 200 and g["source"] == "cli"
    # errors are SES-shaped (v2: JSON message, x-amzn-ErrorType)
    st, h, e = admin(sq, "GET", "/suppression/nope@example.net")
    assert (st, h["x-amzn-errortype"]) == (404, "NotFoundException") and e["message"]
    st, h, e = admin(sq, "PUT", "/suppression/not-an-address")
    assert (st, h["x-amzn-errortype"], e["message"]) == (400, "BadRequestException", "Missing final '@domain'")
    st, h, e = admin(sq, "PUT", "/suppression/a@example.net", {"reason": "SPAM"})
    assert (st, h["x-amzn-errortype"]) == (400, "BadRequestException")
    st, h, e = admin(sq, "PUT", "/suppression/a@example.net", b"[1]")
    assert (st, h["x-amzn-errortype"]) == (400, "BadRequestException")
    assert "x-amzn-requestid" in h
    st, _, o = admin(sq, "DELETE", "/suppression/adm@example.net")
    assert st == 200 and o == {"address": "adm@example.net", "removed": True}
    st, h, _ = admin(sq, "DELETE", "/suppression/adm@example.net")
    assert (st, h["x-amzn-errortype"]) == (404, "NotFoundException")
    st, _, _ = admin(sq, "PATCH", "/suppression/adm@example.net")
    assert st == 405


def test_import_export_100k(sq):
    """100,000 lines through the CLI and the admin listener; export and the
    paged list give them back."""
    sq.sesgate.redis("DEL", SUP)
    lines = ["address,reason"] + ["user%06d@Bulk.example,%s" % (i, "BOUNCE" if i % 2 else "COMPLAINT")
                                  for i in range(100000)]
    lines += ["bad line", "x@example.net,SPAM"]
    path = sq.workdir / "sup-import.csv"
    path.write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    r = cli(sq, "import", str(path), "--json")
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stderr  # two bad lines
    o = json.loads(r.stdout)
    assert (o["imported"], o["invalid_lines"]) == (100000, 2)
    assert [i["line"] for i in o["invalid"]] == [100002, 100003]
    assert int(sq.sesgate.redis("HLEN", SUP)) == 100000
    print("cli import of 100,000 lines: %.2f s" % took)
    r = cli(sq, "export")
    assert r.returncode == 0
    out = r.stdout.splitlines()
    assert out[0] == "address,reason" and len(out) == 100001
    assert sorted(out[1:]) == sorted(ln.lower().replace("bulk.example,bounce", "bulk.example,BOUNCE")
                                     .replace("bulk.example,complaint", "bulk.example,COMPLAINT")
                                     for ln in lines[1:100001])
    # export's output imports again as it is (SES's CSV)
    sq.sesgate.redis("DEL", SUP)
    path.write_text(r.stdout)
    assert cli(sq, "import", str(path)).returncode == 0
    assert int(sq.sesgate.redis("HLEN", SUP)) == 100000
    # the admin listener: POST the lines, then page through GET /suppression
    sq.sesgate.redis("DEL", SUP)
    st, _, o = admin(sq, "POST", "/suppression", ("\n".join(lines) + "\n").encode())
    assert st == 200 and (o["imported"], o["invalid_lines"]) == (100000, 2), o
    seen, cursor, pages = {}, "0", 0
    while True:
        st, _, page = admin(sq, "GET", "/suppression?cursor=" + cursor)
        assert st == 200
        pages += 1
        for e in page["entries"]:
            seen[e["address"]] = e["reason"]
        cursor = page["cursor"]
        if cursor == "0":
            break
    assert len(seen) == 100000 and pages > 10
    assert seen["user000001@bulk.example"] == "BOUNCE" and seen["user000002@bulk.example"] == "COMPLAINT"
    sq.sesgate.redis("DEL", SUP)


# ---------------------------------------------------------------- sync_ses


@pytest.fixture(scope="module")
def sy(tmp_path_factory):
    """[suppression] sync_ses = on: every change is mirrored to the fake's
    account-level list."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("supsync"), extra={
        "send": {"first_recipient": "queue", "rate": "1000"}, "suppression": {"sync_ses": "on"}})
    yield gw
    harness.stop_run_gateway(gw)


def upstream_v2(gw):
    """A boto3 SES v2 client of the fake itself, with the upstream's key."""
    import boto3
    session = boto3.session.Session(aws_access_key_id=gw.upstream.access_key,
                                    aws_secret_access_key=gw.upstream.secret, region_name=gw.region)
    return session.client("sesv2", endpoint_url=gw.fake.url)


def ses_list(gw):
    """The fake's account-level suppression list, every page, as {address: reason}."""
    c, out, token = upstream_v2(gw), {}, None
    while True:
        page = c.list_suppressed_destinations(PageSize=2, **({"NextToken": token} if token else {}))
        out.update({d["EmailAddress"]: d["Reason"] for d in page["SuppressedDestinationSummaries"]})
        token = page.get("NextToken")
        if not token:
            return out


def wait_ses(gw, want, timeout=20.0):
    deadline = time.monotonic() + timeout
    got = ses_list(gw)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = ses_list(gw)
    return got


def test_fake_suppression_api(sy):
    """The fake SES's suppression operations as botocore calls them."""
    c = upstream_v2(sy)
    c.put_suppressed_destination(EmailAddress="Direct@example.org", Reason="BOUNCE")
    got = c.get_suppressed_destination(EmailAddress="direct@example.org")["SuppressedDestination"]
    assert (got["EmailAddress"], got["Reason"]) == ("Direct@example.org", "BOUNCE")
    with pytest.raises(Exception) as ei:
        c.put_suppressed_destination(EmailAddress="direct@example.org", Reason="SPAM")
    assert harness.client_error(ei)[0:2] == ("BadRequestException", 400)
    assert [d["EmailAddress"] for d in c.list_suppressed_destinations(Reasons=["COMPLAINT"])[
        "SuppressedDestinationSummaries"]] == []
    c.delete_suppressed_destination(EmailAddress="direct@example.org")
    with pytest.raises(Exception) as ei:
        c.delete_suppressed_destination(EmailAddress="direct@example.org")
    assert harness.client_error(ei)[0:2] == ("NotFoundException", 404)


def test_sync_adds_and_removes(sy):
    for a, r in (("b1@example.org", "BOUNCE"), ("c1@example.org", "COMPLAINT"), ("t1@example.org", "TRANSIENT")):
        assert cli(sy, "add", a, "--reason", r).returncode == 0
    st, _, _ = admin(sy, "PUT", "/suppression/a1@example.org", {"reason": "COMPLAINT"})
    assert st == 200
    want = {"b1@example.org": "BOUNCE", "c1@example.org": "COMPLAINT", "t1@example.org": "BOUNCE",
            "a1@example.org": "COMPLAINT"}
    assert wait_ses(sy, want) == want
    # every call SES received was signed with the upstream's key (the fake
    # verifies each signature with botocore)
    calls = [r for r in sy.fake.requests() if r["path"].startswith("/v2/email/suppression/addresses")]
    assert calls and all(r["verified"] for r in calls)
    assert cli(sy, "remove", "b1@example.org").returncode == 0
    st, _, _ = admin(sy, "DELETE", "/suppression/a1@example.org")
    assert st == 200
    want = {"c1@example.org": "COMPLAINT", "t1@example.org": "BOUNCE"}
    assert wait_ses(sy, want) == want
    # a change of reason goes too
    assert cli(sy, "add", "c1@example.org", "--reason", "BOUNCE").returncode == 0
    want["c1@example.org"] = "BOUNCE"
    assert wait_ses(sy, want) == want
    ss_key = "%s:{%s}:ss" % (PREFIX, PREFIX)
    assert harness.wait_for(lambda: int(sy.sesgate.redis("XLEN", ss_key)) == 0, timeout=10)


def test_sync_survives_upstream_failures(sy):
    """SES failing for a while: the change stays queued in Redis and is
    applied once SES answers again."""
    before = ses_list(sy)
    sy.fake.control({"mode": "status", "status": 503, "count": 3})
    assert cli(sy, "add", "later@example.org", "--reason", "BOUNCE").returncode == 0
    want = dict(before, **{"later@example.org": "BOUNCE"})
    assert wait_ses(sy, want, timeout=30) == want
    failed = [r for r in sy.fake.requests() if r["path"].startswith("/v2/email/suppression") and r["status"] == 503]
    assert len(failed) >= 1
    assert "supsync_retry" in sy.sesgate.log_text()


def test_sync_adds_from_events(tmp_path_factory):
    """An address SES's events add (a permanent bounce, a complaint) is
    mirrored to SES's account-level list as the operator's adds are; a
    transient bounce, which adds nothing yet, is not."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    import fakesns
    work = tmp_path_factory.mktemp("supsync-events")
    sns = fakesns.FakeSNS(work).start()
    topic = fakesns.topic_arn("ses-sync")
    gw = harness.run_gateway(work, extra={
        "send": {"first_recipient": "queue", "rate": "1000"}, "suppression": {"sync_ses": "on"},
        "feedback": {"topics": topic, "test_trust": sns.test_trust}})
    try:
        for mid, addr, kind in (("m-1", "hard@example.org", "Permanent"),
                                ("m-2", "soft@example.org", "Transient")):
            msg = sns.notification(topic, fakesns.ses_bounce(mid, addr, kind))
            assert fakesns.post(gw.endpoint + "/sesgate/sns", msg)[0] == 200
        complaint = json.loads(fakesns.ses_bounce("m-3", "angry@example.org"))
        del complaint["bounce"]
        complaint["notificationType"] = "Complaint"
        complaint["complaint"] = {"complainedRecipients": [{"emailAddress": "angry@example.org"}],
                                  "timestamp": "2016-01-27T14:59:38.237Z", "feedbackId": "f-3",
                                  "complaintFeedbackType": "abuse"}
        msg = sns.notification(topic, json.dumps(complaint))
        assert fakesns.post(gw.endpoint + "/sesgate/sns", msg)[0] == 200
        want = {"hard@example.org": "BOUNCE", "angry@example.org": "COMPLAINT"}
        assert wait_ses(gw, want) == want
    finally:
        harness.stop_run_gateway(gw)
        sns.stop()
