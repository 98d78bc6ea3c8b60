"""SES's bulk calls in the sandbox upstream (docs/SANDBOX.md, "Bulk sends"):
v1 SendBulkTemplatedEmail and v2 SendBulkEmail from real boto3 clients
through sesgate, checked in the files the sandbox writes.

The gateway's client has `fanout = off`, so the front forwards a bulk call
of at most 50 destinations as it is and these tests exercise the sandbox
itself, not the front's handling of bulk calls.
"""

import json
import time
import types

import botocore.exceptions
import pytest

import harness
from test_sandbox import MESSAGE_ID_RE, SENDER, body_text, files_of, parse, start_sandbox, stop_sandbox

pytestmark = pytest.mark.needs_sesgate

SIM = "simulator.amazonses.com"


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    gw, gate, outbox = start_sandbox(tmp_path_factory.mktemp("sandbox-bulk"),
                                     sandbox={"rate": "1000", "daily_quota": "100000"},
                                     send={"rate": "1000"}, client={"fanout": "off"})
    ses = harness.boto3_client(gw, "ses")
    ses.create_template(Template={
        "TemplateName": "bulk",
        "SubjectPart": "Hi {{name}} from {{shop.city}}",
        "TextPart": "Dear {{name}}, code {{code}}, shop {{shop.city}} {{shop.zip}}, n={{n}}.",
        "HtmlPart": "<p>{{name}} &amp; {{{raw}}}</p>",
    })
    yield types.SimpleNamespace(gw=gw, gate=gate, outbox=outbox)
    stop_sandbox(gate)


DEFAULTS = {"name": "friend", "code": "D", "shop": {"city": "Lyon", "zip": "69001"}, "raw": "<i>r</i>"}


def outbox_names(outbox):
    return sorted(p.name for p in outbox.iterdir())


def error_of(excinfo):
    return harness.client_error(excinfo)


def check_files(outbox, mid, to, cc=(), bcc=()):
    """The .eml files of MessageId mid: one per recipient in To, Cc, Bcc
    order, each showing To and Cc but never Bcc; returns the parsed
    messages."""
    files = files_of(outbox, mid)
    rcpts = list(to) + list(cc) + list(bcc)
    assert len(files) == len(rcpts), (mid, [f.name for f in files])
    msgs = []
    for f, want in zip(files, rcpts):
        got, msg = parse(f)
        assert got == want
        assert msg["To"] == ", ".join(to)
        assert msg["Cc"] == (", ".join(cc) if cc else None)
        assert msg["Bcc"] is None
        for hidden in bcc:
            assert hidden.encode() not in f.read_bytes().split(b"\n", 1)[1]
        assert msg["From"] == SENDER
        assert msg["Message-ID"] == "<%s@email.amazonses.com>" % mid
        msgs.append(msg)
    return msgs


def test_v1_fifty_destinations_each_rendered_with_its_merged_data(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    dests = []
    for i in range(1, 51):
        d = {"Destination": {"ToAddresses": ["to%d@example.com" % i]}}
        if i % 10 == 0:
            d["Destination"]["CcAddresses"] = ["cc%d@example.com" % i]
            d["Destination"]["BccAddresses"] = ["bcc%d@example.com" % i, "bcc%db@example.com" % i]
        if i % 2 == 0:
            # a nested object merges member by member: shop.zip stays
            d["ReplacementTemplateData"] = json.dumps({"name": "N%d" % i, "shop": {"city": "C%d" % i}, "n": i})
        elif i % 3 == 0:
            d["ReplacementTemplateData"] = "{}"
        dests.append(d)
    r = ses.send_bulk_templated_email(Source=SENDER, Template="bulk", DefaultTemplateData=json.dumps(DEFAULTS),
                                      ReplyToAddresses=["reply@example.com"], Destinations=dests)
    status = r["Status"]
    assert len(status) == 50
    assert [s["Status"] for s in status] == ["Success"] * 50
    mids = [s["MessageId"] for s in status]
    assert len(set(mids)) == 50
    for i, mid in enumerate(mids, 1):
        assert MESSAGE_ID_RE.match(mid), mid
        dest = dests[i - 1]["Destination"]
        msgs = check_files(sb.outbox, mid, dest["ToAddresses"], dest.get("CcAddresses", ()),
                           dest.get("BccAddresses", ()))
        for msg in msgs:
            assert msg["Reply-To"] == "reply@example.com"
            text, html = (body_text(p) for p in msg.iter_parts())
            if i % 2 == 0:
                assert msg["Subject"] == "Hi N%d from C%d" % (i, i)
                assert text == "Dear N%d, code D, shop C%d 69001, n=%d." % (i, i, i)
                assert html == "<p>N%d &amp; <i>r</i></p>" % i
            else:
                assert msg["Subject"] == "Hi friend from Lyon"
                assert text == "Dear friend, code D, shop Lyon 69001, n=."
                assert html == "<p>friend &amp; <i>r</i></p>"


def test_v2_bulk_destinations_with_cc_bcc_and_replacement_data(sb):
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    entries = [
        {"Destination": {"ToAddresses": ["v2a@example.com"], "CcAddresses": ["v2c@example.com"],
                         "BccAddresses": ["v2h@example.com"]},
         "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": json.dumps({"name": "Ana"})}}},
        {"Destination": {"ToAddresses": ["v2b@example.com", "v2b2@example.com"]}},
        {"Destination": {"BccAddresses": ["v2only-bcc@example.com"]},
         "ReplacementEmailContent": {"ReplacementTemplate": {
             "ReplacementTemplateData": json.dumps({"shop": {"zip": "75001"}, "code": 7})}}},
    ]
    r = sesv2.send_bulk_email(FromEmailAddress=SENDER, BulkEmailEntries=entries,
                              DefaultContent={"Template": {"TemplateName": "bulk",
                                                           "TemplateData": json.dumps(DEFAULTS)}})
    res = r["BulkEmailEntryResults"]
    assert [e["Status"] for e in res] == ["SUCCESS"] * 3
    assert all(MESSAGE_ID_RE.match(e["MessageId"]) for e in res)
    a = check_files(sb.outbox, res[0]["MessageId"], ["v2a@example.com"], ["v2c@example.com"], ["v2h@example.com"])
    assert {m["Subject"] for m in a} == {"Hi Ana from Lyon"}
    b = check_files(sb.outbox, res[1]["MessageId"], ["v2b@example.com", "v2b2@example.com"])
    assert {m["Subject"] for m in b} == {"Hi friend from Lyon"}
    files = files_of(sb.outbox, res[2]["MessageId"])
    assert len(files) == 1
    rcpt, msg = parse(files[0])
    assert rcpt == "v2only-bcc@example.com" and msg["To"] is None and msg["Bcc"] is None
    assert body_text(next(msg.iter_parts())) == "Dear friend, code 7, shop Lyon 75001, n=."


def test_v2_inline_template_and_headers_merged_by_name(sb):
    """Inline TemplateContent, Headers and ReplacementHeaders (newer than
    this boto3's model: put into the request body before it is signed)."""
    sesv2 = harness.boto3_client(sb.gw, "sesv2")

    def rewrite(request, **kwargs):
        body = json.loads(request.body)
        body["DefaultContent"]["Template"] = {
            "TemplateContent": {"Subject": "Inline {{name}}", "Text": "x {{a.b}} {{a.c}}"},
            "TemplateData": json.dumps({"name": "D", "a": {"b": 1, "c": 2}}),
            "Headers": [{"Name": "List-Unsubscribe", "Value": "<https://d.example/u>"},
                        {"Name": "X-Campaign", "Value": "c1"}]}
        body["BulkEmailEntries"][0]["ReplacementHeaders"] = [
            {"Name": "list-unsubscribe", "Value": "<https://r.example/u>"}, {"Name": "X-Extra", "Value": "e"}]
        request.data = json.dumps(body).encode()

    sesv2.meta.events.register("before-sign.sesv2.SendBulkEmail", rewrite)
    r = sesv2.send_bulk_email(
        FromEmailAddress=SENDER, DefaultContent={"Template": {"TemplateName": "replaced"}},
        BulkEmailEntries=[{"Destination": {"ToAddresses": ["h1@example.com"]},
                           "ReplacementEmailContent": {"ReplacementTemplate": {
                               "ReplacementTemplateData": json.dumps({"a": {"c": 9}})}}},
                          {"Destination": {"ToAddresses": ["h2@example.com"]}}])
    res = r["BulkEmailEntryResults"]
    assert [e["Status"] for e in res] == ["SUCCESS", "SUCCESS"]
    (m1,) = check_files(sb.outbox, res[0]["MessageId"], ["h1@example.com"])
    (m2,) = check_files(sb.outbox, res[1]["MessageId"], ["h2@example.com"])
    assert m1["Subject"] == "Inline D" and body_text(m1) == "x 1 9"
    assert m2["Subject"] == "Inline D" and body_text(m2) == "x 1 2"
    assert m1.get_all("List-Unsubscribe") == ["<https://r.example/u>"]
    assert m1["X-Campaign"] == "c1" and m1["X-Extra"] == "e"
    assert m2.get_all("List-Unsubscribe") == ["<https://d.example/u>"]
    assert m2["X-Campaign"] == "c1" and m2["X-Extra"] is None


def test_tags_merge_and_simulator_per_destination(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    r = ses.send_bulk_templated_email(
        Source=SENDER, Template="bulk", DefaultTemplateData="{}",
        DefaultTags=[{"Name": "campaign", "Value": "spring"}, {"Name": "tier", "Value": "basic"}],
        Destinations=[
            {"Destination": {"ToAddresses": ["complaint@" + SIM]},
             "ReplacementTags": [{"Name": "tier", "Value": "gold"}, {"Name": "extra", "Value": "x-1"}]},
            {"Destination": {"ToAddresses": ["bounce+b1@" + SIM]}},
            {"Destination": {"ToAddresses": ["plain@example.com"]},
             "ReplacementTags": [{"Name": "campaign", "Value": "autumn"}]},
        ])
    st = r["Status"]
    assert [s["Status"] for s in st] == ["Success"] * 3
    complaint, bounce, plain = (s["MessageId"] for s in st)
    # complaint@: delivered, and a complaint whose mail.tags are the merged tags
    assert len(files_of(sb.outbox, complaint)) == 1
    note = json.loads(files_of(sb.outbox, complaint, ".complaint.json")[0].read_text())
    assert note["notificationType"] == "Complaint"
    assert note["mail"]["messageId"] == complaint
    assert note["mail"]["tags"] == {"campaign": ["spring"], "tier": ["gold"], "extra": ["x-1"]}
    # bounce@: nothing delivered, a bounce with the default tags
    assert files_of(sb.outbox, bounce) == []
    note = json.loads(files_of(sb.outbox, bounce, ".bounce.json")[0].read_text())
    assert note["bounce"]["bounceType"] == "Permanent"
    assert note["mail"]["tags"] == {"campaign": ["spring"], "tier": ["basic"]}
    # the plain destination of the same call is delivered as usual
    check_files(sb.outbox, plain, ["plain@example.com"])
    assert files_of(sb.outbox, plain, ".bounce.json") == []
    assert files_of(sb.outbox, plain, ".complaint.json") == []

    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    r = sesv2.send_bulk_email(
        FromEmailAddress=SENDER, DefaultEmailTags=[{"Name": "campaign", "Value": "v2"}],
        DefaultContent={"Template": {"TemplateName": "bulk", "TemplateData": "{}"}},
        BulkEmailEntries=[{"Destination": {"ToAddresses": ["suppressionlist@" + SIM]},
                           "ReplacementTags": [{"Name": "campaign", "Value": "v2-b"}, {"Name": "k", "Value": "v"}]}])
    mid = r["BulkEmailEntryResults"][0]["MessageId"]
    note = json.loads(files_of(sb.outbox, mid, ".bounce.json")[0].read_text())
    assert note["bounce"]["bounceSubType"] == "OnAccountSuppressionList"
    assert note["mail"]["tags"] == {"campaign": ["v2-b"], "k": ["v"]}


def fifty_one():
    return [{"Destination": {"ToAddresses": ["many%d@example.com" % i]}} for i in range(51)]


def test_fifty_one_destinations_are_refused_whole(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    before = outbox_names(sb.outbox)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_bulk_templated_email(Source=SENDER, Template="bulk", DefaultTemplateData="{}",
                                      Destinations=fifty_one())
    assert error_of(ei) == ("InvalidParameterValue", 400, "Destination count exceeds 50.")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sesv2.send_bulk_email(FromEmailAddress=SENDER, DefaultContent={"Template": {"TemplateName": "bulk"}},
                              BulkEmailEntries=fifty_one())
    assert error_of(ei) == ("BadRequestException", 400, "Destination count exceeds 50.")
    # one destination over 50 recipients refuses the call too
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_bulk_templated_email(
            Source=SENDER, Template="bulk", DefaultTemplateData="{}",
            Destinations=[{"Destination": {"ToAddresses": ["ok@example.com"]}},
                          {"Destination": {"ToAddresses": ["r%d@example.com" % i for i in range(40)],
                                           "BccAddresses": ["b%d@example.com" % i for i in range(11)]}}])
    assert error_of(ei) == ("InvalidParameterValue", 400, "Recipient count exceeds 50.")
    # as does one invalid address
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_bulk_templated_email(
            Source=SENDER, Template="bulk", DefaultTemplateData="{}",
            Destinations=[{"Destination": {"ToAddresses": ["ok@example.com"]}},
                          {"Destination": {"CcAddresses": ["no-domain"]}}])
    assert error_of(ei) == ("InvalidParameterValue", 400, "Missing final '@domain'")
    assert outbox_names(sb.outbox) == before


def test_missing_template_and_missing_parameters(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    before = outbox_names(sb.outbox)
    one = [{"Destination": {"ToAddresses": ["t@example.com"]}}]
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_bulk_templated_email(Source=SENDER, Template="nope", DefaultTemplateData="{}", Destinations=one)
    assert error_of(ei) == ("TemplateDoesNotExist", 400, "Template nope does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sesv2.send_bulk_email(FromEmailAddress=SENDER, DefaultContent={"Template": {"TemplateName": "nope"}},
                              BulkEmailEntries=one)
    assert error_of(ei)[:2] == ("NotFoundException", 404)

    # botocore checks required parameters before sending: take them out of
    # the request after that check, before signing
    drop = []

    def strip(request, **kwargs):
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        request.data = "&".join(p for p in body.split("&") if p.split("=", 1)[0] not in drop)

    ses.meta.events.register("before-sign.ses.SendBulkTemplatedEmail", strip)
    for param in ("DefaultTemplateData", "Source", "Template"):
        drop[:] = [param]
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            ses.send_bulk_templated_email(Source=SENDER, Template="bulk", DefaultTemplateData="{}", Destinations=one)
        assert error_of(ei) == ("MissingParameter", 400, "The request must contain the parameter %s." % param)
    drop[:] = ["Destinations.member.1.Destination.ToAddresses.member.1"]
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_bulk_templated_email(Source=SENDER, Template="bulk", DefaultTemplateData="{}", Destinations=one)
    assert error_of(ei) == ("MissingParameter", 400, "The request must contain the parameter Destinations.")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_bulk_templated_email(Source=SENDER, Template="bulk", DefaultTemplateData="[1]", Destinations=one)
    assert error_of(ei) == ("InvalidParameterValue", 400, "DefaultTemplateData is not a JSON object.")
    assert outbox_names(sb.outbox) == before


def test_bad_replacement_data_fails_its_destination_only(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    r = ses.send_bulk_templated_email(
        Source=SENDER, Template="bulk", DefaultTemplateData=json.dumps(DEFAULTS),
        Destinations=[{"Destination": {"ToAddresses": ["good1@example.com"]}},
                      {"Destination": {"ToAddresses": ["bad@example.com"]}, "ReplacementTemplateData": "{not json"},
                      {"Destination": {"ToAddresses": ["good2@example.com"]},
                       "ReplacementTemplateData": json.dumps({"name": "G"})}])
    st = r["Status"]
    assert [s["Status"] for s in st] == ["Success", "InvalidParameterValue", "Success"]
    assert st[1]["Error"] == "ReplacementTemplateData is not a JSON object." and "MessageId" not in st[1]
    check_files(sb.outbox, st[0]["MessageId"], ["good1@example.com"])
    assert check_files(sb.outbox, st[2]["MessageId"], ["good2@example.com"])[0]["Subject"] == "Hi G from Lyon"
    assert not any("bad@example.com" in p.read_text(errors="replace") for p in harness.outbox(sb.outbox))

    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    r = sesv2.send_bulk_email(
        FromEmailAddress=SENDER, DefaultContent={"Template": {"TemplateName": "bulk", "TemplateData": "{}"}},
        BulkEmailEntries=[{"Destination": {"ToAddresses": ["bad2@example.com"]},
                           "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": "[]"}}},
                          {"Destination": {"ToAddresses": ["good3@example.com"]}}])
    res = r["BulkEmailEntryResults"]
    assert [e["Status"] for e in res] == ["INVALID_PARAMETER", "SUCCESS"]
    assert res[0]["Error"] == "ReplacementTemplateData is not a JSON object."
    check_files(sb.outbox, res[1]["MessageId"], ["good3@example.com"])


def test_rate_and_quota_are_counted_per_recipient_and_reported_per_destination(tmp_path):
    gw, gate, outbox = start_sandbox(tmp_path, sandbox={"rate": "4", "daily_quota": "6"},
                                     client={"fanout": "off"})
    try:
        ses = harness.boto3_client(gw, "ses")
        ses.create_template(Template={"TemplateName": "t", "SubjectPart": "S {{n}}", "TextPart": "x"})
        dests = [{"Destination": {"ToAddresses": ["a@example.com"], "CcAddresses": ["a2@example.com"]}},
                 {"Destination": {"ToAddresses": ["b@example.com"]}},
                 {"Destination": {"ToAddresses": ["c@example.com"]}},
                 {"Destination": {"ToAddresses": ["d@example.com"]}}]
        r = ses.send_bulk_templated_email(Source=SENDER, Template="t", DefaultTemplateData="{}",
                                          Destinations=dests)
        st = r["Status"]
        # the rate (4 recipients a second) holds the first three destinations
        assert [s["Status"] for s in st] == ["Success", "Success", "Success", "AccountThrottled"]
        assert st[3]["Error"] == "Maximum sending rate exceeded."
        assert len(files_of(outbox, st[0]["MessageId"])) == 2
        assert ses.get_send_quota()["SentLast24Hours"] == 4.0
        time.sleep(1.2)
        sesv2 = harness.boto3_client(gw, "sesv2")
        r = sesv2.send_bulk_email(
            FromEmailAddress=SENDER, DefaultContent={"Template": {"TemplateName": "t", "TemplateData": "{}"}},
            BulkEmailEntries=[{"Destination": {"ToAddresses": ["e@example.com", "f@example.com"]}},
                              {"Destination": {"ToAddresses": ["success@" + SIM]}},
                              {"Destination": {"ToAddresses": ["g@example.com"]}}])
        res = r["BulkEmailEntryResults"]
        # the quota (6) takes e and f; the simulator does not count against it
        assert [e["Status"] for e in res] == ["SUCCESS", "SUCCESS", "ACCOUNT_DAILY_QUOTA_EXCEEDED"]
        assert res[2]["Error"] == "Daily message quota exceeded."
        assert len(files_of(outbox, res[0]["MessageId"])) == 2
        assert sesv2.get_account()["SendQuota"]["SentLast24Hours"] == 6.0
        delivered = sorted(parse(p)[0] for p in harness.outbox(outbox))
        assert delivered == ["a2@example.com", "a@example.com", "b@example.com", "c@example.com",
                             "e@example.com", "f@example.com", "success@" + SIM]
    finally:
        stop_sandbox(gate)


def test_a_bulk_batch_of_120_destinations_through_the_queue(tmp_path_factory):
    """Fan-out on (the default): 120 destinations become a batch the workers
    send to the sandbox in bulk calls; every recipient gets one file rendered
    with its own destination's data merged over the defaults, and the answer
    has one entry per destination."""
    gw, gate, outbox = start_sandbox(tmp_path_factory.mktemp("sandbox-bulk-queue"),
                                     sandbox={"rate": "1000", "daily_quota": "100000"},
                                     send={"rate": "1000"})
    try:
        ses = harness.boto3_client(gw, "ses")
        ses.create_template(Template={"TemplateName": "q", "SubjectPart": "Hi {{name}} in {{shop.city}}",
                                      "TextPart": "n={{n}}"})
        dests = [{"Destination": {"ToAddresses": ["q%03d@example.com" % i],
                                  **({"CcAddresses": ["qc%03d@example.com" % i]} if i % 10 == 0 else {})},
                  "ReplacementTemplateData": json.dumps({"name": "N%d" % i, "n": i})} for i in range(120)]
        r = ses.send_bulk_templated_email(Source=SENDER, Template="q", DefaultTemplateData=json.dumps(DEFAULTS),
                                          Destinations=dests)
        assert len(r["Status"]) == 120 and all(s["Status"] == "Success" for s in r["Status"]), r["Status"][:3]
        want = 120 + 12
        assert harness.wait_for(lambda: len(harness.outbox(outbox)) >= want, 30.0), len(harness.outbox(outbox))
        time.sleep(0.3)
        files = harness.outbox(outbox)
        assert len(files) == want
        seen = {}
        for f in files:
            rcpt, msg = parse(f)
            assert rcpt not in seen, "%s got two files" % rcpt
            seen[rcpt] = msg
        for i in range(120):
            for rcpt in ["q%03d@example.com" % i] + (["qc%03d@example.com" % i] if i % 10 == 0 else []):
                msg = seen[rcpt]
                assert msg["Subject"] == "Hi N%d in Lyon" % i, (rcpt, msg["Subject"])
                assert body_text(msg).strip() == "n=%d" % i
    finally:
        stop_sandbox(gate)
