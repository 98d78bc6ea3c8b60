"""The fan-out switches end to end, with `sesgate run` in front of the fake
SES: a send to one To recipient is not a batch; the `sesgate-fanout=off`
message tag (v1 Tags, v2 EmailTags, the X-SES-MESSAGE-TAGS header of a raw
message) opts a send out and never reaches SES; a client with `fanout = off`
is never fanned out; `max_recipients` bounds the To recipients of a batch
with SES's own error."""

import base64
import json
import time
import urllib.parse

import botocore.exceptions
import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

MAX = 30


@pytest.fixture(scope="module")
def fgw(tmp_path_factory):
    """`sesgate run` with two clients: app (fan-out on) and whole (fanout = off)."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    gw = harness.run_gateway(tmp_path_factory.mktemp("fanout-rules"), clients=("app", "whole"),
                             extra={"send": {"rate": "1000", "concurrency": "4", "max_recipients": str(MAX)},
                                    "client.whole": {"fanout": "off"}})
    yield gw
    harness.stop_run_gateway(gw)


def client(gw, service, name="app"):
    """A boto3 client that records the response headers of its last call in .seen."""
    c = harness.boto3_client(gw, service, creds=gw.creds(name))
    c.seen = {}

    def after(http_response, **kw):
        c.seen.clear()
        c.seen.update({k.lower(): v for k, v in http_response.headers.items()})

    c.meta.events.register("after-call", after)
    return c


def settled(fake, wait=1.0):
    """The fake's records once nothing new arrived for a while."""
    n, last = -1, time.monotonic()
    while time.monotonic() - last < wait:
        got = len(fake.requests())
        if got != n:
            n, last = got, time.monotonic()
        time.sleep(0.1)
    return fake.requests()


def form(rec):
    """The form parameters of a recorded v1 request, in order."""
    return urllib.parse.parse_qsl(base64.b64decode(rec["body_b64"]).decode(), keep_blank_values=True)


def to_list(n, tag):
    return ["%s%02d@example.org" % (tag, i) for i in range(n)]


def test_one_recipient_is_not_a_batch(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    sent = ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": ["one@example.org"],
                                                               "CcAddresses": ["cc@example.org"]},
                          Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    assert "x-sesgate-batch-id" not in ses.seen
    recs = settled(fgw.fake)
    assert len(recs) == 1 and recs[0]["verified"]
    assert recs[0]["message_id"] == sent["MessageId"]
    p = dict(form(recs[0]))
    assert p["Destination.ToAddresses.member.1"] == "one@example.org"
    assert p["Destination.CcAddresses.member.1"] == "cc@example.org"


def test_v1_tag_off_sends_whole_and_strips_tag(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    to = to_list(5, "v1off")
    ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": to},
                   Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}},
                   Tags=[{"Name": "campaign", "Value": "x"}, {"Name": "sesgate-fanout", "Value": "off"},
                         {"Name": "team", "Value": "y"}])
    assert "x-sesgate-batch-id" not in ses.seen
    recs = settled(fgw.fake)
    assert len(recs) == 1, harness._summary(recs)
    p = form(recs[0])
    d = dict(p)
    assert [d["Destination.ToAddresses.member.%d" % (i + 1)] for i in range(5)] == to
    # the tag is gone and the others renumbered without a gap
    assert "sesgate-fanout" not in base64.b64decode(recs[0]["body_b64"]).decode()
    assert (d["Tags.member.1.Name"], d["Tags.member.1.Value"]) == ("campaign", "x")
    assert (d["Tags.member.2.Name"], d["Tags.member.2.Value"]) == ("team", "y")
    assert "Tags.member.3.Name" not in d


def test_v2_tag_off_sends_whole_and_strips_tag(fgw):
    fgw.fake.reset()
    v2 = client(fgw, "sesv2")
    to = to_list(4, "v2off")
    v2.send_email(FromEmailAddress=harness.SENDER, Destination={"ToAddresses": to},
                  Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
                  EmailTags=[{"Name": "sesgate-fanout", "Value": "off"}, {"Name": "k", "Value": "v"}])
    assert "x-sesgate-batch-id" not in v2.seen
    recs = settled(fgw.fake)
    assert len(recs) == 1
    body = json.loads(base64.b64decode(recs[0]["body_b64"]))
    assert body["Destination"]["ToAddresses"] == to
    assert body["EmailTags"] == [{"Name": "k", "Value": "v"}]


def test_raw_header_tag_off(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    raw = ("From: %s\r\nTo: a@example.org, b@example.org\r\n"
           "X-SES-MESSAGE-TAGS: sesgate-fanout=off\r\nSubject: whole\r\n\r\nbody\r\n" % harness.SENDER).encode()
    ses.send_raw_email(RawMessage={"Data": raw})
    assert "x-sesgate-batch-id" not in ses.seen
    recs = settled(fgw.fake)
    assert len(recs) == 1
    msg = base64.b64decode(dict(form(recs[0]))["RawMessage.Data"])
    assert b"To: a@example.org, b@example.org\r\n" in msg
    assert b"sesgate-fanout" not in msg


def test_tag_with_other_value_still_stripped_and_fans_out(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    to = to_list(3, "tagon")
    ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": to},
                   Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}},
                   Tags=[{"Name": "sesgate-fanout", "Value": "on"}])
    assert len(ses.seen.get("x-sesgate-batch-id", "")) == 36
    deadline = time.monotonic() + 10
    while len(fgw.fake.requests()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    recs = settled(fgw.fake)
    assert sorted(dict(form(r))["Destination.ToAddresses.member.1"] for r in recs) == sorted(to)
    for r in recs:
        assert "sesgate-fanout" not in base64.b64decode(r["body_b64"]).decode()


def test_client_with_fanout_off(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses", "whole")
    to = to_list(MAX + 5, "whole")  # max_recipients does not apply to a send that is not split
    ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": to},
                   Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    assert "x-sesgate-batch-id" not in ses.seen
    recs = settled(fgw.fake)
    assert len(recs) == 1
    d = dict(form(recs[0]))
    assert [d["Destination.ToAddresses.member.%d" % (i + 1)] for i in range(MAX + 5)] == to


def test_max_recipients(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    msg = {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": to_list(MAX + 1, "many")}, Message=msg)
    err = ei.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
    assert err["Error"]["Code"] == "InvalidParameterValue", err
    assert str(MAX) in err["Error"]["Message"], err
    v2 = client(fgw, "sesv2")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        v2.send_email(FromEmailAddress=harness.SENDER, Destination={"ToAddresses": to_list(MAX + 1, "many2")},
                      Content={"Simple": msg})
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ei.value.response["Error"]["Code"] == "BadRequestException", ei.value.response
    assert settled(fgw.fake, 0.5) == [], "a refused send reached the upstream"
    # exactly max_recipients is a batch
    ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": to_list(MAX, "edge")}, Message=msg)
    assert len(ses.seen.get("x-sesgate-batch-id", "")) == 36
    deadline = time.monotonic() + 15
    while len(fgw.fake.requests()) < MAX and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(settled(fgw.fake)) == MAX


DKIM = ("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; c=relaxed/relaxed;\r\n"
        " h=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
        " b=dGVzdHNpZ25hdHVyZQ==\r\n")


def test_dkim_signed_to_splits_envelope_only(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    raw = (DKIM + "From: %s\r\nTo: a@example.org, \"Doe, Jane\" <b@example.org>\r\nCc: c@example.org\r\n"
           "Subject: signed\r\nDate: Sat, 28 Nov 2026 08:00:00 +0000\r\n\r\nsigned body\r\n"
           % harness.SENDER).encode()
    ses.send_raw_email(RawMessage={"Data": raw})
    batch = ses.seen.get("x-sesgate-batch-id", "")
    assert len(batch) == 36
    deadline = time.monotonic() + 10
    while len(fgw.fake.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    recs = settled(fgw.fake)
    assert len(recs) == 2, harness._summary(recs)
    envelopes = []
    for r in recs:
        p = form(r)
        d = dict(p)
        # the signed message goes out byte for byte; only the envelope differs
        assert base64.b64decode(d["RawMessage.Data"]) == raw
        envelopes.append(sorted(v for k, v in p if k.startswith("Destinations.member.")))
    assert sorted(envelopes) == [["a@example.org", "c@example.org"], ["b@example.org"]]
    status, _, body = harness.http("GET", fgw.sesgate.admin_url + "/batches/" + batch)
    assert status == 200
    st = json.loads(body)
    assert "dkim" in st["flags"].split(), st["flags"]


def test_dkim_signed_with_bcc_header_refused(fgw):
    fgw.fake.reset()
    ses = client(fgw, "ses")
    raw = (DKIM + "From: %s\r\nTo: a@example.org, b@example.org\r\nBcc: hidden@example.org\r\n"
           "Subject: signed\r\n\r\nbody\r\n" % harness.SENDER).encode()
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_raw_email(RawMessage={"Data": raw})
    assert ei.value.response["Error"]["Code"] == "MessageRejected", ei.value.response
    assert settled(fgw.fake, 0.5) == []


def test_each_recipient_gets_one_copy(fgw):
    # A To address given twice (in any case, with or without a display name)
    # is sent once; a Cc or Bcc recipient that is also a To recipient gets
    # its own copy only.
    fgw.fake.reset()
    ses = client(fgw, "ses")
    ses.send_email(Source=harness.SENDER,
                   Destination={"ToAddresses": ["a@example.org", "Big A <A@EXAMPLE.org>", "b@example.org",
                                                "a@example.org"],
                                "CcAddresses": ["b@example.org", "c@example.org"],
                                "BccAddresses": ["C@example.org", "d@example.org"]},
                   Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    batch = ses.seen.get("x-sesgate-batch-id", "")
    assert len(batch) == 36
    deadline = time.monotonic() + 10
    while len(fgw.fake.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    recs = settled(fgw.fake)
    assert len(recs) == 2, harness._summary(recs)
    dests = {}
    for r in recs:
        d = dict(form(r))
        dests[d["Destination.ToAddresses.member.1"]] = sorted(
            v for k, v in d.items() if k.startswith("Destination.") and not k.startswith("Destination.To"))
        assert "Destination.ToAddresses.member.2" not in d
    assert dests == {"a@example.org": ["c@example.org", "d@example.org"], "b@example.org": []}, dests
