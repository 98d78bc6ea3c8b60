"""Bulk fan-out through every client family and send action, end to end.

Each test sends one message to 120 To recipients (plus Cc and Bcc where the
action allows) through `sesgate run` (front and workers, managed Redis) with
a real client: boto3 (ses and sesv2), the aws command line, the AWS SDK for
JavaScript v3 (client-ses, client-sesv2) and nodemailer's SES transport. It
then checks what the fake SES upstream received:

- one verified request per To recipient, each naming that recipient alone
  as its To destination;
- the Cc and Bcc recipients in exactly one request (copy 0, the one for the
  first To recipient), as its envelope;
- every other parameter (subject, bodies, charsets, template and its data,
  tags, configuration set, reply-to) as the client sent it;
- raw messages: each copy is the original message with one "To: <own
  address>" field where the first To field was, no other To field, no Bcc
  field, the Cc field on copy 0 only, and every other byte (other fields,
  folding, line ends, MIME body, attachment) unchanged
  (rfc5322_rewrite_for_copy);

and that the client got a MessageId (copy 0's real one with first_recipient
= sync, "sesgate-<batch>" with first_recipient = queue) and the
X-Sesgate-Batch-Id header, and that GET /batches/{id} on the admin listener
reports the batch complete, every recipient sent with the MessageId the
upstream gave it.
"""

import base64
import collections
import dataclasses
import email.parser
import email.policy
import json
import random
import re
import time
import urllib.parse

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

N = 120
SENDER = "news@example.com"
CC = ["cc.one@example.net"]
BCC = ["bcc.one@example.net"]
BATCH_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
V2_SEND_PATH = "/v2/email/outbound-emails"


def rcpts(tag, n=N):
    """n distinct To addresses."""
    return ["%s%03d@example.net" % (tag, i) for i in range(n)]


# ---------------------------------------------------------------- fixtures


def _start(tmp_path_factory, name, first_recipient):
    """The fake upstream and `sesgate run` with the given first_recipient."""
    return harness.run_gateway(tmp_path_factory.mktemp(name),
                               extra={"send": {"first_recipient": first_recipient, "rate": "1000",
                                               # the fake's listen backlog is 5
                                               "concurrency": "4"}})


@pytest.fixture(scope="module")
def gateways(tmp_path_factory):
    """Two gateways: first_recipient = sync (the default) and = queue."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gws = {}
    try:
        gws["sync"] = _start(tmp_path_factory, "fanout-sync", "sync")
        gws["queue"] = _start(tmp_path_factory, "fanout-queue", "queue")
        yield gws
    finally:
        logs = []
        for gw in gws.values():
            gw.sesgate.stop()
            gw.fake.stop()
            logs.append(gw.sesgate.log_text())
    for log in logs:
        assert not harness.SANITIZER_RE.search(log), log[-4000:]


def fresh(gateways, mode):
    """The gateway of mode with the fake's records and rules cleared."""
    gw = gateways[mode]
    gw.fake.reset()
    return gw


def need_node():
    """Fail (not skip) when the Node clients are not installed."""
    if not harness.js_ready():
        pytest.fail("tests/integration/js/node_modules is missing: run npm ci there (run.sh does)")


# ---------------------------------------------------------------- raw messages


@dataclasses.dataclass
class Raw:
    """A raw message as its header fields (name, exact bytes with line ends and
    continuation lines) and its body; builds the copy sesgate must send to
    each recipient."""

    fields: list
    body: bytes
    eol: bytes = b"\r\n"

    def data(self):
        """The message as sent."""
        return b"".join(f for _, f in self.fields) + self.eol + self.body

    def copy_for(self, addr, first):
        """The message copy for To recipient addr: the first To field becomes
        "To: addr", other To fields and every Bcc field go, Cc fields stay on
        copy 0 only, every other byte is the original's."""
        out = []
        to_done = False
        for name, raw in self.fields:
            n = name.lower()
            if n == "to":
                if not to_done:
                    out.append(b"To: " + addr.encode() + self.eol)
                    to_done = True
                continue
            if n == "bcc" or (n == "cc" and not first):
                continue
            out.append(raw)
        assert to_done, "the message has no To field"
        return b"".join(out) + self.eol + self.body


def field(name, *lines, eol=b"\r\n", cont=b" "):
    """A header field: name, its first value line, and continuation lines
    (each folded with eol then cont)."""
    first = ("%s: %s" % (name, lines[0])).encode()
    rest = b"".join(eol + cont + ln.encode() for ln in lines[1:])
    return (name, first + rest + eol)


def fold_list(entries, per_line=4):
    """An address list as value lines, per_line entries a line."""
    lines = []
    for i in range(0, len(entries), per_line):
        chunk = ", ".join(entries[i:i + per_line])
        lines.append(chunk + ("," if i + per_line < len(entries) else ""))
    return lines


def split_fields(data):
    """Split a message built elsewhere (nodemailer) into a Raw: a line that
    starts with a space or tab continues the field before it."""
    eol = b"\r\n" if b"\r\n" in data.split(b"\n", 1)[0] + b"\n" else b"\n"
    sep = eol + eol
    head, found, body = data.partition(sep)
    assert found, "no empty line after the header"
    fields = []
    for line in (head + eol).splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
        else:
            fields.append((line.split(b":", 1)[0].strip().decode(), line))
    return Raw(fields, body, eol)


def attachment_bytes(seed):
    """A few KB of binary data (every byte value) for an attachment."""
    rnd = random.Random(seed)
    return bytes(range(256)) + bytes(rnd.randrange(256) for _ in range(3000))


def mime_body(boundary, attachment, eol=b"\r\n"):
    """A multipart/mixed body: a text part and a base64 attachment."""
    b64 = base64.b64encode(attachment).decode()
    lines = [
        "This is a multi-part message in MIME format.",
        "--" + boundary,
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Hello from the fan-out test \u00fc\u00df.",
        "To: this line is body text, not a header",
        "",
        "--" + boundary,
        "Content-Type: application/octet-stream; name=\"report.bin\"",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment; filename=\"report.bin\"",
        "",
    ] + [b64[i:i + 76] for i in range(0, len(b64), 76)] + ["--" + boundary + "--", ""]
    return eol.join(ln.encode() for ln in lines)


def mime_message(to, cc=(), bcc=(), subject="Bulk raw", eol=b"\r\n"):
    """A multipart/mixed raw message with a folded To field naming every
    address of to, and Cc / Bcc fields when given."""
    boundary = "=_sesgate_fanout_boundary_42"
    f = [field("From", "Newsletter <%s>" % SENDER, eol=eol),
         field("To", *fold_list(to), eol=eol)]
    if cc:
        f.append(field("Cc", ", ".join(cc), eol=eol))
    if bcc:
        f.append(field("Bcc", ", ".join(bcc), eol=eol))
    f += [
        field("Subject", subject, eol=eol),
        field("Message-ID", "<fanout.%s@example.com>" % subject.replace(" ", "."), eol=eol),
        field("Date", "Thu, 01 Jan 2026 10:00:00 +0000", eol=eol),
        field("MIME-Version", "1.0", eol=eol),
        field("Content-Type", "multipart/mixed;", 'boundary="%s"' % boundary, eol=eol, cont=b"\t"),
    ]
    return Raw(f, mime_body(boundary, attachment_bytes(subject), eol), eol)


# ---------------------------------------------------------------- upstream records


@dataclasses.dataclass
class Copy:
    """One send as the upstream received it (or as a client sent it)."""

    rec: dict
    to: list   # To destinations; for raw messages the whole envelope
    cc: list
    bcc: list
    rest: object  # every other parameter (raw data left out)
    raw: bytes    # the decoded raw message, or None


def _v1_list(params, prefix):
    """The values of v1 list parameters prefix.N in index order."""
    pat = re.compile(re.escape(prefix) + r"(\d+)$")
    found = sorted((int(m.group(1)), v) for k, v in params.items() for m in [pat.match(k)] if m)
    assert [i for i, _ in found] == list(range(1, len(found) + 1)), "list %s not numbered 1..n" % prefix
    return [v for _, v in found]


def parse_copy(rec):
    """A recorded (or captured) send as a Copy."""
    body = base64.b64decode(rec["body_b64"])
    if rec["path"].startswith("/v2/"):
        assert rec["path"] == V2_SEND_PATH, rec["path"]
        obj = json.loads(body)
        dest = obj.pop("Destination", None) or {}
        assert set(dest) <= {"ToAddresses", "CcAddresses", "BccAddresses"}, dest
        raw = None
        if "Raw" in obj.get("Content", {}):
            raw = base64.b64decode(obj["Content"]["Raw"]["Data"])
            obj["Content"]["Raw"]["Data"] = None
        return Copy(rec, dest.get("ToAddresses", []), dest.get("CcAddresses", []),
                    dest.get("BccAddresses", []), obj, raw)
    pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
    params = dict(pairs)
    assert len(params) == len(pairs), "a parameter appears twice"
    if params.get("Action") == "SendRawEmail":
        env = _v1_list(params, "Destinations.member.")
        raw = base64.b64decode(params.pop("RawMessage.Data"))
        rest = {k: v for k, v in params.items() if not k.startswith("Destinations.")}
        return Copy(rec, env, [], [], rest, raw)
    to = _v1_list(params, "Destination.ToAddresses.member.")
    cc = _v1_list(params, "Destination.CcAddresses.member.")
    bcc = _v1_list(params, "Destination.BccAddresses.member.")
    rest = {k: v for k, v in params.items() if not k.startswith("Destination.")}
    return Copy(rec, to, cc, bcc, rest, None)


def header_values(msg_bytes, name):
    """Every value of header field name in a raw message."""
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(msg_bytes)
    return [str(v) for v in (msg.get_all(name) or [])]


def check_copies(gw, recs, to, cc=(), bcc=(), *, rest, raw=None):
    """Check the upstream's records of one fanned-out send.

    to: the To recipients in order (addr-specs, each once: a duplicate gets
    one copy); cc, bcc: the riders of copy 0; rest: the parameters every
    copy must carry unchanged; raw: the Raw the client sent, for raw
    messages. Returns {address: [records]}.
    """
    cc, bcc = list(cc), list(bcc)
    assert len(recs) == len(to), "upstream received %d requests for %d To recipients" % (len(recs), len(to))
    assert to.count(to[0]) == 1, "the test needs a unique first To recipient"
    by_addr = collections.defaultdict(list)
    copy0 = []
    riders_seen = collections.Counter()
    for rec in recs:
        assert rec["verified"], "upstream refused the signature: %s" % rec.get("verify_error")
        assert rec["access_key"] == gw.upstream.access_key
        assert rec["status"] == 200, "upstream answered %s" % rec["status"]
        assert rec["message_id"], rec
        c = parse_copy(rec)
        assert c.to, "a copy without a To destination"
        own = c.to[0]
        by_addr[own].append(rec)
        first = own == to[0]
        if first:
            copy0.append(c)
        if raw is not None:
            # The envelope: its own address, and on copy 0 the riders.
            assert c.raw is not None, "a raw send became a formatted one"
            assert c.cc == [] and c.bcc == [], (c.cc, c.bcc)
            assert c.to == ([own] + cc + bcc if first else [own]), "envelope of %s: %s" % (own, c.to)
            riders_seen.update(c.to[1:])
            assert header_values(c.raw, "To") == [own], "To of the copy for %s: %s" % (
                own, header_values(c.raw, "To"))
            assert header_values(c.raw, "Bcc") == [], "a copy kept a Bcc field"
            if not first:
                assert header_values(c.raw, "Cc") == [], "copy for %s kept the Cc field" % own
            want = raw.copy_for(own, first)
            assert c.raw.endswith(raw.body), "the body (attachment) of the copy for %s changed" % own
            assert c.raw == want, "copy for %s differs from the original:\nwant %r\ngot  %r" % (
                own, want[:1500], c.raw[:1500])
        else:
            assert c.to == [own], "copy for %s names To %s" % (own, c.to)
            assert (c.cc, c.bcc) == ((cc, bcc) if first else ([], [])), (own, c.cc, c.bcc)
            riders_seen.update(c.cc + c.bcc)
        assert c.rest == rest, "parameters of the copy for %s changed:\nwant %r\ngot  %r" % (own, rest, c.rest)
    got = collections.Counter({a: len(v) for a, v in by_addr.items()})
    assert got == collections.Counter(to), "To recipients differ: missing %s, extra %s" % (
        list((collections.Counter(to) - got).elements())[:5], list((got - collections.Counter(to)).elements())[:5])
    assert len(copy0) == 1
    assert riders_seen == collections.Counter(cc + bcc), "riders: %s" % riders_seen
    if raw is not None and cc:
        assert header_values(copy0[0].raw, "Cc") != [], "copy 0 lost the Cc field"
    return by_addr


# ---------------------------------------------------------------- batches


def batch_status(gw, batch):
    """GET /batches/{id} on the admin listener, decoded."""
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/batches/" + batch)
    assert status == 200, body
    return json.loads(body)


def settle(gw, batch, timeout=40.0):
    """Wait until batch is complete; return (status, upstream records). Checks
    that nothing more reaches the upstream after that."""
    deadline = time.monotonic() + timeout
    st = batch_status(gw, batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.1)
        st = batch_status(gw, batch)
    assert st["complete"], "batch not complete after %.0f s: sent %s of %s" % (timeout, st["sent"], st["total"])
    recs = gw.fake.requests()
    time.sleep(0.3)
    assert len(gw.fake.requests()) == len(recs), "requests reached the upstream after the batch completed"
    return st, recs


def check_batch(gw, mode, batch, message_id, st, to, by_addr):
    """The client's MessageId and the batch status match what the upstream did."""
    assert batch and BATCH_ID_RE.match(batch), "X-Sesgate-Batch-Id: %r" % batch
    assert st["batch_id"] == batch and st["client"] == "app"
    assert st["first_recipient"] == mode, st["first_recipient"]
    assert (st["total"], st["sent"], st["dead"], st["retrying"], st["queued"]) == (len(to), len(to), 0, 0, 0), {
        k: st[k] for k in ("total", "sent", "dead", "retrying", "queued")}
    assert [r["address"] for r in st["recipients"]] == list(to)
    assert [r["index"] for r in st["recipients"]] == list(range(len(to)))
    upstream_ids = collections.defaultdict(set)
    for addr, recs in by_addr.items():
        upstream_ids[addr] = {r["message_id"] for r in recs}
    for r in st["recipients"]:
        assert r["state"] == "sent", r
        assert r["message_id"] in upstream_ids[r["address"]], "status %s, upstream %s" % (
            r, upstream_ids[r["address"]])
    assert len({r["message_id"] for r in st["recipients"]}) == len(to), "a MessageId was recorded twice"
    if mode == "sync":
        # copy 0 went first and its real SES answer came back
        assert message_id == by_addr[to[0]][0]["message_id"], message_id
        assert st["recipients"][0]["message_id"] == message_id
    else:
        assert message_id == "sesgate-" + batch, message_id


# ---------------------------------------------------------------- clients


def boto3_send(gw, service, method, **kwargs):
    """Call method on a boto3 client; returns (response, batch id, captured request)."""
    sent = []
    client = harness.boto3_client(gw, service, capture=sent)
    headers = {}
    client.meta.events.register(
        "after-call", lambda http_response, **kw: headers.update(
            {k.lower(): v for k, v in http_response.headers.items()}))
    resp = getattr(client, method)(**kwargs)
    assert len(sent) == 1, "boto3 sent %d requests" % len(sent)
    return resp, headers.get("x-sesgate-batch-id"), sent[0]


def node_send(gw, spec):
    """Run js/fanout_send.mjs; returns (result, batch id, captured request)."""
    need_node()
    r = harness.run_node(gw, "fanout_send.mjs", spec, gw.creds("app"))
    assert r["ok"], "call failed: %s" % json.dumps({k: v for k, v in r.items() if k not in ("sent", "raw_b64")})
    assert len(r["sent"]) == 1 and len(r["responses"]) == 1, (len(r["sent"]), r["responses"])
    assert r["responses"][0]["statusCode"] == 200
    return r, r["responses"][0]["headers"].get("x-sesgate-batch-id"), r["sent"][0]


def cli_send(gw, args):
    """Run aws with the app's key, capturing the request and the debug log;
    returns (JSON output, batch id, captured request)."""
    res = harness.run_aws(gw, args, gw.creds("app"), capture=True, debug=True)
    assert res.rc == 0, "aws failed (%d): %s" % (res.rc, res.stderr[-3000:])
    assert res.json is not None, res.stdout
    assert len(res.captured) == 1, "aws sent %d requests" % len(res.captured)
    m = re.findall(r"""['"]x-sesgate-batch-id['"]:\s*['"]([^'"]*)['"]""", res.stderr, re.I)
    return res.json, (m[-1] if m else None), res.captured[0]


def expect_request(sent, to, cc=(), bcc=(), raw=None):
    """The parameters the client sent besides the destinations, after checking
    that it sent the recipients and message the test gave it."""
    c = parse_copy(sent)
    if raw is None:
        assert (c.to, c.cc, c.bcc) == (list(to), list(cc), list(bcc))
    else:
        assert c.raw == raw.data(), "the client changed the raw message"
    return c.rest


def run_case(gw, mode, send, to, cc=(), bcc=(), raw=None):
    """send() -> (MessageId, batch id, captured request); check everything."""
    message_id, batch, sent = send()
    assert message_id, "the client got no MessageId"
    assert batch, "the answer carried no X-Sesgate-Batch-Id header"
    rest = expect_request(sent, to, cc, bcc, raw)
    st, recs = settle(gw, batch)
    by_addr = check_copies(gw, recs, list(to), cc, bcc, rest=rest, raw=raw)
    check_batch(gw, mode, batch, message_id, st, list(to), by_addr)
    return recs


# ---------------------------------------------------------------- boto3 ses (v1)


V1_MESSAGE = {
    "Subject": {"Data": "Bulk news \u00fc", "Charset": "UTF-8"},
    "Body": {"Text": {"Data": "Plain body, line 1\nline 2 \u00e9", "Charset": "UTF-8"},
             "Html": {"Data": "<p>Html <b>body</b> &amp; \u00e9</p>", "Charset": "ISO-8859-1"}},
}
TAGS = [{"Name": "campaign", "Value": "spring-2026"}, {"Name": "kind", "Value": "news"}]


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_boto3_v1_send_email(gateways, mode):
    gw = fresh(gateways, mode)
    to = rcpts("b1se" + mode[0])

    def send():
        resp, batch, sent = boto3_send(
            gw, "ses", "send_email", Source="News <%s>" % SENDER,
            Destination={"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
            Message=V1_MESSAGE, ReplyToAddresses=["reply@example.com"], Tags=TAGS,
            ConfigurationSetName="bulk-set")
        return resp["MessageId"], batch, sent

    recs = run_case(gw, mode, send, to, CC, BCC)
    p = parse_copy(recs[-1]).rest
    assert p["Action"] == "SendEmail" and p["Source"] == "News <%s>" % SENDER
    assert p["Message.Subject.Data"] == "Bulk news \u00fc" and p["Message.Body.Html.Charset"] == "ISO-8859-1"
    assert p["Message.Body.Text.Data"] == "Plain body, line 1\nline 2 \u00e9"
    assert p["ConfigurationSetName"] == "bulk-set"
    assert (p["Tags.member.1.Name"], p["Tags.member.2.Value"]) == ("campaign", "news")


def test_boto3_v1_send_templated_email(gateways):
    gw = fresh(gateways, "queue")
    to = rcpts("b1te")
    data = json.dumps({"name": "Ana \u00fc", "items": [1, 2, 3], "quote": "a \"b\", c"})

    def send():
        resp, batch, sent = boto3_send(
            gw, "ses", "send_templated_email", Source=SENDER,
            Destination={"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
            Template="monthly-news", TemplateData=data, Tags=TAGS, ConfigurationSetName="bulk-set")
        return resp["MessageId"], batch, sent

    recs = run_case(gw, "queue", send, to, CC, BCC)
    p = parse_copy(recs[0]).rest
    assert p["Action"] == "SendTemplatedEmail" and p["Template"] == "monthly-news"
    assert p["TemplateData"] == data and p["Tags.member.1.Value"] == "spring-2026"


def test_boto3_v1_send_raw_email_with_destinations(gateways):
    # The destinations are the envelope: those the To field names get a copy
    # each, the Cc one and the blind one ride with copy 0.
    gw = fresh(gateways, "sync")
    to = rcpts("b1rd")
    raw = mime_message(to, cc=CC, bcc=BCC, subject="Raw with destinations")

    def send():
        resp, batch, sent = boto3_send(gw, "ses", "send_raw_email", Source=SENDER,
                                       Destinations=to + CC + BCC, RawMessage={"Data": raw.data()})
        return resp["MessageId"], batch, sent

    recs = run_case(gw, "sync", send, to, CC, BCC, raw=raw)
    assert parse_copy(recs[0]).rest["Source"] == SENDER


def test_boto3_v1_send_raw_email_from_headers(gateways):
    # No Destinations: the recipients come from the To, Cc and Bcc fields.
    gw = fresh(gateways, "queue")
    to = rcpts("b1rh")
    raw = mime_message(to, cc=CC, bcc=BCC, subject="Raw from headers")

    def send():
        resp, batch, sent = boto3_send(gw, "ses", "send_raw_email", RawMessage={"Data": raw.data()})
        return resp["MessageId"], batch, sent

    recs = run_case(gw, "queue", send, to, CC, BCC, raw=raw)
    assert parse_copy(recs[0]).rest == {"Action": "SendRawEmail", "Version": "2010-12-01"}


# ---------------------------------------------------------------- boto3 sesv2


V2_TAGS = [{"Name": "campaign", "Value": "spring-2026"}, {"Name": "kind", "Value": "news"}]
V2_SIMPLE = {"Simple": {
    "Subject": {"Data": "Bulk v2 \u00fc", "Charset": "UTF-8"},
    "Body": {"Text": {"Data": "v2 text body", "Charset": "UTF-8"},
             "Html": {"Data": "<p>v2 html</p>", "Charset": "UTF-8"}}}}


def test_boto3_v2_simple(gateways):
    gw = fresh(gateways, "sync")
    to = rcpts("b2si")

    def send():
        resp, batch, sent = boto3_send(
            gw, "sesv2", "send_email", FromEmailAddress=SENDER,
            Destination={"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
            ReplyToAddresses=["reply@example.com"], Content=V2_SIMPLE, EmailTags=V2_TAGS,
            ConfigurationSetName="bulk-set")
        return resp["MessageId"], batch, sent

    recs = run_case(gw, "sync", send, to, CC, BCC)
    body = parse_copy(recs[0]).rest
    assert body["Content"] == V2_SIMPLE and body["EmailTags"] == V2_TAGS
    assert body["ConfigurationSetName"] == "bulk-set" and body["FromEmailAddress"] == SENDER


def test_boto3_v2_template(gateways):
    gw = fresh(gateways, "queue")
    to = rcpts("b2tp")
    content = {"Template": {"TemplateName": "monthly-news",
                            "TemplateData": json.dumps({"name": "Ana", "n": 3})}}

    def send():
        resp, batch, sent = boto3_send(
            gw, "sesv2", "send_email", FromEmailAddress=SENDER,
            Destination={"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
            Content=content, EmailTags=V2_TAGS)
        return resp["MessageId"], batch, sent

    recs = run_case(gw, "queue", send, to, CC, BCC)
    body = parse_copy(recs[-1]).rest
    assert body["Content"] == content and body["EmailTags"] == V2_TAGS


def test_boto3_v2_raw(gateways):
    gw = fresh(gateways, "sync")
    to = rcpts("b2rw")
    raw = mime_message(to, cc=CC, bcc=BCC, subject="Raw v2")

    def send():
        resp, batch, sent = boto3_send(gw, "sesv2", "send_email", Content={"Raw": {"Data": raw.data()}},
                                       EmailTags=V2_TAGS)
        return resp["MessageId"], batch, sent

    recs = run_case(gw, "sync", send, to, CC, BCC, raw=raw)
    assert parse_copy(recs[0]).rest == {"Content": {"Raw": {"Data": None}}, "EmailTags": V2_TAGS}


# ---------------------------------------------------------------- aws command line


def test_awscli_ses_send_email(gateways, tmp_path):
    # --cli-input-json keeps 120 addresses off argv.
    gw = fresh(gateways, "sync")
    to = rcpts("clv1")
    spec = {"Source": SENDER, "Destination": {"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
            "Message": V1_MESSAGE, "Tags": TAGS, "ConfigurationSetName": "bulk-set"}
    path = tmp_path / "send-email.json"
    path.write_text(json.dumps(spec))

    def send():
        out, batch, sent = cli_send(gw, ["ses", "send-email", "--cli-input-json", "file://%s" % path])
        return out["MessageId"], batch, sent

    recs = run_case(gw, "sync", send, to, CC, BCC)
    p = parse_copy(recs[0]).rest
    assert p["Message.Subject.Data"] == "Bulk news \u00fc" and p["ConfigurationSetName"] == "bulk-set"
    assert p["Message.Body.Html.Data"] == "<p>Html <b>body</b> &amp; \u00e9</p>"


def test_awscli_sesv2_send_email(gateways, tmp_path):
    # --destination file:// (and the content and tags from files too).
    gw = fresh(gateways, "queue")
    to = rcpts("clv2")
    files = {"dest": {"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
             "content": V2_SIMPLE, "tags": V2_TAGS}
    for name, obj in files.items():
        (tmp_path / (name + ".json")).write_text(json.dumps(obj))

    def send():
        out, batch, sent = cli_send(gw, [
            "sesv2", "send-email", "--from-email-address", SENDER,
            "--destination", "file://%s" % (tmp_path / "dest.json"),
            "--content", "file://%s" % (tmp_path / "content.json"),
            "--email-tags", "file://%s" % (tmp_path / "tags.json"),
            "--configuration-set-name", "bulk-set"])
        return out["MessageId"], batch, sent

    recs = run_case(gw, "queue", send, to, CC, BCC)
    body = parse_copy(recs[0]).rest
    assert body["Content"] == V2_SIMPLE and body["EmailTags"] == V2_TAGS
    assert body["ConfigurationSetName"] == "bulk-set"


# ---------------------------------------------------------------- JavaScript SDK v3 and nodemailer


def test_js_ses_send_email(gateways):
    gw = fresh(gateways, "sync")
    to = rcpts("jsv1")
    spec = {"client": "ses", "op": "SendEmail", "input": {
        "Source": SENDER, "Destination": {"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
        "Message": V1_MESSAGE, "Tags": TAGS, "ConfigurationSetName": "bulk-set"}}

    def send():
        r, batch, sent = node_send(gw, spec)
        return r["MessageId"], batch, sent

    recs = run_case(gw, "sync", send, to, CC, BCC)
    p = parse_copy(recs[0]).rest
    assert p["Message.Subject.Data"] == "Bulk news \u00fc" and p["Tags.member.2.Name"] == "kind"


def test_js_ses_send_raw_email(gateways):
    gw = fresh(gateways, "queue")
    to = rcpts("jsrw")
    raw = mime_message(to, cc=CC, bcc=BCC, subject="Raw from JS")
    spec = {"client": "ses", "op": "SendRawEmail",
            "input": {"RawMessage": {"Data": {"$b64": harness.b64(raw.data())}}}}

    def send():
        r, batch, sent = node_send(gw, spec)
        return r["MessageId"], batch, sent

    run_case(gw, "queue", send, to, CC, BCC, raw=raw)


def test_js_sesv2_simple(gateways):
    gw = fresh(gateways, "queue")
    to = rcpts("js2s")
    spec = {"client": "sesv2", "op": "SendEmail", "input": {
        "FromEmailAddress": SENDER, "Destination": {"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
        "Content": V2_SIMPLE, "EmailTags": V2_TAGS}}

    def send():
        r, batch, sent = node_send(gw, spec)
        return r["MessageId"], batch, sent

    recs = run_case(gw, "queue", send, to, CC, BCC)
    assert parse_copy(recs[0]).rest["Content"] == V2_SIMPLE


def test_js_sesv2_raw_with_destination(gateways):
    # Destination given: classified by the message's To and Cc fields.
    gw = fresh(gateways, "sync")
    to = rcpts("js2r")
    raw = mime_message(to, cc=CC, subject="Raw v2 from JS")
    spec = {"client": "sesv2", "op": "SendEmail", "input": {
        "Destination": {"ToAddresses": to, "CcAddresses": CC, "BccAddresses": BCC},
        "Content": {"Raw": {"Data": {"$b64": harness.b64(raw.data())}}}}}

    def send():
        r, batch, sent = node_send(gw, spec)
        return r["MessageId"], batch, sent

    run_case(gw, "sync", send, to, CC, BCC, raw=raw)


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_nodemailer(gateways, mode):
    # nodemailer's SES transport calls SESv2 SendEmail with Content.Raw and
    # every envelope recipient (To, Cc and Bcc) in Destination.ToAddresses;
    # its message carries To and Cc fields but no Bcc field.
    gw = fresh(gateways, mode)
    to = rcpts("nm" + mode[0])
    attachment = attachment_bytes("nodemailer")
    mail = {"from": "Newsletter <%s>" % SENDER, "to": to, "cc": CC, "bcc": BCC,
            "subject": "Nodemailer bulk \u00fc", "text": "plain text body", "html": "<p>html body</p>",
            "attachments": [{"filename": "report.bin", "content": harness.b64(attachment),
                             "encoding": "base64", "contentType": "application/octet-stream"}]}
    result = {}

    def send():
        r, batch, sent = node_send(gw, {"client": "nodemailer", "mail": mail})
        result.update(r)
        assert sent["method"] == "POST" and sent["path"] == V2_SEND_PATH
        c = parse_copy(sent)
        assert c.to == to + CC + BCC and c.cc == [] and c.bcc == []
        assert c.raw == base64.b64decode(r["raw_b64"])
        assert header_values(c.raw, "Bcc") == []
        return r["MessageId"], batch, sent

    message_id, batch, sent = send()
    raw = split_fields(base64.b64decode(result["raw_b64"]))
    assert raw.eol == b"\r\n"
    assert any(b"\r\n " in f or b"\r\n\t" in f for n, f in raw.fields if n.lower() == "to"), "To not folded"
    assert base64.b64encode(attachment).decode()[:76].encode() in raw.body
    rest = parse_copy(sent).rest
    assert rest["FromEmailAddress"] == "Newsletter <%s>" % SENDER
    st, recs = settle(gw, batch)
    by_addr = check_copies(gw, recs, to, CC, BCC, rest=rest, raw=raw)
    check_batch(gw, mode, batch, message_id, st, to, by_addr)
    assert result["messageIdHeader"].startswith("<" + message_id + "@")


# ---------------------------------------------------------------- address lists end to end

# (text in the To field, the addr-specs it names)
TRICKY_TO = [
    ('"Doe, Jane" <jane.doe@example.org>', ["jane.doe@example.org"]),
    ("bob@example.org (Bob, at work)", ["bob@example.org"]),
    ("(the boss) Dave Boss <dave@example.org>", ["dave@example.org"]),
    ("Erin <erin(home)@example.org>", ["erin@example.org"]),
    ("=?UTF-8?B?w4lsb2TDqWU=?= <elodie@example.org>", ["elodie@example.org"]),
    ("=?ISO-8859-1?Q?Andr=E9_M=FCller?= <andre@example.org>", ["andre@example.org"]),
    ('"O\\"Neil, Pat" <pat@example.org>', ["pat@example.org"]),
    ('undisclosed: g1@example.org,{FOLD}"Grp, Two" <g2@example.org>;', ["g1@example.org", "g2@example.org"]),
    ("team:;", []),
    ("Carl <carl@example.org>", ["carl@example.org"]),
    ("<angle.only@example.org>", ["angle.only@example.org"]),
    # a duplicate (its case changed): one copy only
    ("CARL@example.org", ["CARL@example.org"]),
]
TRICKY_CC = [("=?UTF-8?Q?Ops_=C3=A9quipe?= <ops@example.org>", "ops@example.org"),
             ('"Team, Ops" <team.ops@example.org>', "team.ops@example.org")]
TRICKY_BCC = [("(audit) <audit@example.org>", "audit@example.org")]


def tricky_message(eol):
    """A raw message whose To list (two To fields, folded with spaces and
    tabs) holds every tricky form, then plain addresses up to N recipients;
    with tricky Cc and Bcc fields, and fields whose names only start with
    "To" or "Cc". Returns (Raw, To addr-specs in order)."""
    entries, to = [], []
    fold = eol.decode() + "\t"
    for text, addrs in TRICKY_TO:
        entries.append(text.replace("{FOLD}", fold))
        to.extend(addrs)
    i = 0
    while len(to) < N:
        a = "plain%03d@example.com" % i
        entries.append(a if i % 3 else "Plain %d <%s>" % (i, a))
        to.append(a)
        i += 1
    first, second = entries[:40], entries[40:]
    f = [
        field("Return-Path", "<bounces@example.com>", eol=eol),
        field("From", '"News, Letter" <%s>' % SENDER, eol=eol),
        field("To", *fold_list(first, 3), eol=eol),
        field("Reply-To", '"Doe, Jane" <jane.doe@example.org>', eol=eol),
        field("Cc", *fold_list([t for t, _ in TRICKY_CC], 1), eol=eol, cont=b"\t"),
        field("Subject", "=?UTF-8?Q?Tricky_=C3=BC?= addresses", eol=eol),
        field("To-Do", "keep this field, it is not To", eol=eol),
        field("Bcc", *fold_list([t for t, _ in TRICKY_BCC] + ["undisclosed-recipients:;"], 1), eol=eol),
        field("To", *fold_list(second, 4), eol=eol, cont=b"    "),
        field("Ccx", "not a Cc field", eol=eol),
        field("MIME-Version", "1.0", eol=eol),
        field("Content-Type", "multipart/mixed;", 'boundary="tricky-boundary"', eol=eol),
    ]
    raw = Raw(f, mime_body("tricky-boundary", attachment_bytes("tricky"), eol), eol)
    assert len(to) == N
    return raw, to


@pytest.mark.parametrize("api,eol,mode", [
    ("v1", b"\r\n", "sync"),
    ("v2", b"\n", "queue"),
], ids=["v1-crlf-sync", "v2-lf-queue"])
def test_raw_tricky_address_lists(gateways, api, eol, mode):
    gw = fresh(gateways, mode)
    raw, to = tricky_message(eol)
    data = raw.data()
    if eol == b"\n":
        assert b"\r" not in data
    cc = [a for _, a in TRICKY_CC]
    bcc = [a for _, a in TRICKY_BCC]
    # carl@ is named twice in To (in two spellings): one copy, to the first
    assert "carl@example.org" in to and "CARL@example.org" in to
    to = [a for a in to if a != "CARL@example.org"]

    def send():
        if api == "v1":
            resp, batch, sent = boto3_send(gw, "ses", "send_raw_email", RawMessage={"Data": data})
        else:
            resp, batch, sent = boto3_send(gw, "sesv2", "send_email", Content={"Raw": {"Data": data}})
        return resp["MessageId"], batch, sent

    message_id, batch, sent = send()
    rest = expect_request(sent, to, raw=raw)
    st, recs = settle(gw, batch)
    by_addr = check_copies(gw, recs, to, cc, bcc, rest=rest, raw=raw)
    check_batch(gw, mode, batch, message_id, st, to, by_addr)
    assert len(by_addr["carl@example.org"]) == 1 and "CARL@example.org" not in by_addr
    # every copy keeps the fields whose names only start with To / Cc
    for rec in recs:
        c = parse_copy(rec)
        assert header_values(c.raw, "To-Do") == ["keep this field, it is not To"]
        assert header_values(c.raw, "Ccx") == ["not a Cc field"]
        assert (b"\r" in c.raw) == (eol == b"\r\n"), "line ends changed"
    cc_field = [f for n, f in raw.fields if n == "Cc"]
    assert len(cc_field) == 1
    assert cc_field[0] in parse_copy(by_addr[to[0]][0]).raw, "copy 0 lost its Cc field as sent"
