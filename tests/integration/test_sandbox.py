"""The sandbox upstream end to end (docs/SANDBOX.md): sesgate run with
[upstream] endpoint = sandbox, real boto3 clients (SES v1 and v2) through
sesgate, and the files the sandbox writes under <data_dir>/outbox/.
"""

import email
import email.policy
import json
import re
import socket
import subprocess
import time
import types
from pathlib import Path

import botocore.exceptions
import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

SENDER = "sender@example.com"
MESSAGE_ID_RE = re.compile(r"^0100[0-9a-f]{12}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-000000$")


def start_sandbox(workdir, sandbox=None, send=None, client=None):
    """sesgate run with the sandbox upstream and one client key ("app"),
    client: more keys of its [client.app] section; returns (gateway-like
    object for harness.boto3_client, process, outbox)."""
    workdir = Path(workdir)
    if harness.direct_mode():
        pytest.skip("needs sesgate")
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    # The upstream credentials are replaced by the sandbox's own key at start.
    placeholder = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    extra = {"sandbox": sandbox or {"rate": "100", "daily_quota": "1000"}}
    if send:
        extra["send"] = send
    if client:
        extra["client.app"] = client
    gate = harness.RunSesgate(workdir, "sandbox", placeholder,
                      {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}}, extra=extra)
    gate.start()
    gw = types.SimpleNamespace(endpoint=gate.url, region=harness.REGION, creds=lambda name: app)
    return gw, gate, workdir / "var" / "outbox"


def stop_sandbox(gate):
    """Stop sesgate and check its log for sanitizer reports and secrets."""
    gate.stop()
    log = gate.log_text()
    assert "AddressSanitizer" not in log
    assert "runtime error" not in log
    assert "sandbox_start" in log


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    gw, gate, outbox = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield types.SimpleNamespace(gw=gw, gate=gate, outbox=outbox)
    stop_sandbox(gate)


def files_of(outbox, message_id, suffix=".eml"):
    """The outbox files of message_id with suffix, sorted by recipient index."""
    found = [p for p in outbox.glob(message_id + "-*" + suffix)
             if re.fullmatch(re.escape(message_id) + r"-\d+" + re.escape(suffix), p.name)]
    return sorted(found, key=lambda p: int(p.name[len(message_id) + 1:-len(suffix)]))


def parse(path):
    """(Delivered-To, parsed message) of an outbox file."""
    data = path.read_bytes()
    first, rest = data.split(b"\n", 1)
    assert first.startswith(b"Delivered-To: ")
    return first[len(b"Delivered-To: "):].strip().decode(), email.message_from_bytes(rest, policy=email.policy.default)


def body_text(part):
    """A text part's content with CRLF line ends made LF."""
    return part.get_content().replace("\r\n", "\n")




def error_of(excinfo):
    return harness.client_error(excinfo)


# ---------------------------------------------------------------- sends


def test_v1_send_email_one_recipient(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    r = ses.send_email(Source="Sender <%s>" % SENDER, Destination={"ToAddresses": ["to1@example.com"]},
                       Message={"Subject": {"Data": "Hello there"}, "Body": {"Text": {"Data": "plain body\nline 2"}}},
                       ReplyToAddresses=["reply@example.com"])
    mid = r["MessageId"]
    assert MESSAGE_ID_RE.match(mid), mid
    assert len(mid) == 60
    files = files_of(sb.outbox, mid)
    assert len(files) == 1
    rcpt, msg = parse(files[0])
    assert rcpt == "to1@example.com"
    assert msg["From"] == "Sender <%s>" % SENDER
    assert msg["To"] == "to1@example.com"
    assert msg["Reply-To"] == "reply@example.com"
    assert msg["Subject"] == "Hello there"
    assert msg["Message-ID"] == "<%s@email.amazonses.com>" % mid
    assert msg["MIME-Version"] == "1.0"
    assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert body_text(msg) == "plain body\nline 2"
    assert msg["Cc"] is None and msg["Bcc"] is None


def test_v1_cc_and_bcc_each_get_a_file_without_bcc_header(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    r = ses.send_email(Source=SENDER,
                       Destination={"ToAddresses": ["t@example.com"], "CcAddresses": ["c@example.com"],
                                    "BccAddresses": ["hidden@example.com"]},
                       Message={"Subject": {"Data": "Gr\u00fc\u00dfe \u2603"}, "Body": {"Text": {"Data": "caf\u00e9 \u00e0 la cr\u00e8me"}}})
    files = files_of(sb.outbox, r["MessageId"])
    assert len(files) == 3
    rcpts = []
    for f in files:
        raw = f.read_bytes()
        # Only the Delivered-To line of the Bcc recipient's own copy names it.
        assert b"hidden@" not in raw.split(b"\n", 1)[1]
        rcpt, msg = parse(f)
        rcpts.append(rcpt)
        assert msg["Bcc"] is None
        assert msg["To"] == "t@example.com"
        assert msg["Cc"] == "c@example.com"
        assert msg["Subject"] == "Gr\u00fc\u00dfe \u2603"
        assert b"=?UTF-8?B?" in raw
        assert body_text(msg) == "caf\u00e9 \u00e0 la cr\u00e8me"
        assert msg["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert rcpts == ["t@example.com", "c@example.com", "hidden@example.com"]


def test_v2_simple_text_and_html_is_multipart_alternative(sb):
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    r = sesv2.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["v2@example.com"]},
                         Content={"Simple": {"Subject": {"Data": "Both parts"},
                                             "Body": {"Text": {"Data": "the text"}, "Html": {"Data": "<p>the <b>html</b></p>"}}}})
    mid = r["MessageId"]
    assert MESSAGE_ID_RE.match(mid)
    files = files_of(sb.outbox, mid)
    assert len(files) == 1
    rcpt, msg = parse(files[0])
    assert rcpt == "v2@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert body_text(parts[0]) == "the text"
    assert body_text(parts[1]) == "<p>the <b>html</b></p>"
    assert all(p.get_content_charset() == "utf-8" for p in parts)


def raw_bytes(to="raw-to@example.com"):
    return (b"From: Raw Sender <sender@example.com>\r\nTo: " + to.encode() +
            b"\r\nSubject: raw one\r\nX-Custom: keep me  \r\nContent-Type: text/plain\r\n\r\nraw body\r\n.line\r\n")


def check_raw_file(path, raw, rcpt, mid):
    data = path.read_bytes()
    first, rest = data.split(b"\r\n", 1)
    assert first == b"Delivered-To: " + rcpt.encode()
    # Message-ID and Date are added in front; every byte of the original follows.
    assert rest.endswith(raw)
    added = rest[:-len(raw)]
    assert b"Message-ID: <" + mid.encode() + b"@email.amazonses.com>\r\n" in added
    assert added.count(b"\r\n") == 2 and b"Date: " in added


def test_v1_raw_keeps_bytes_and_gains_message_id(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    raw = raw_bytes()
    r = ses.send_raw_email(RawMessage={"Data": raw})
    files = files_of(sb.outbox, r["MessageId"])
    assert len(files) == 1
    check_raw_file(files[0], raw, "raw-to@example.com", r["MessageId"])


def test_v2_raw_keeps_bytes_and_gains_message_id(sb):
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    raw = raw_bytes("v2raw@example.com")
    r = sesv2.send_email(Content={"Raw": {"Data": raw}}, Destination={"ToAddresses": ["v2raw@example.com"]})
    files = files_of(sb.outbox, r["MessageId"])
    assert len(files) == 1
    check_raw_file(files[0], raw, "v2raw@example.com", r["MessageId"])


def test_raw_with_message_id_is_untouched(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    raw = b"Message-ID: <mine@example.com>\nDate: Mon, 01 Jan 2024 00:00:00 +0000\nFrom: sender@example.com\nTo: lf@example.com\nSubject: lf\n\nbody\n"
    r = ses.send_raw_email(RawMessage={"Data": raw})
    files = files_of(sb.outbox, r["MessageId"])
    assert len(files) == 1
    assert files[0].read_bytes() == b"Delivered-To: lf@example.com\n" + raw


def test_templates_v1_create_send_get_list_delete(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    ses.create_template(Template={"TemplateName": "welcome", "SubjectPart": "Hi {{name}}",
                                  "TextPart": "Dear {{name}}, you have {{ count }} items in {{shop.city}}.",
                                  "HtmlPart": "<p>{{name}}</p>"})
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.create_template(Template={"TemplateName": "welcome", "SubjectPart": "x"})
    assert error_of(ei)[:2] == ("AlreadyExists", 400)
    got = ses.get_template(TemplateName="welcome")["Template"]
    assert got["SubjectPart"] == "Hi {{name}}" and got["HtmlPart"] == "<p>{{name}}</p>"
    names = [t["Name"] for t in ses.list_templates()["TemplatesMetadata"]]
    assert "welcome" in names
    r = ses.send_templated_email(Source=SENDER, Destination={"ToAddresses": ["tpl@example.com"]},
                                 Template="welcome",
                                 TemplateData=json.dumps({"name": "Ana & Bo", "count": 3, "shop": {"city": "Lyon"}}))
    files = files_of(sb.outbox, r["MessageId"])
    assert len(files) == 1
    _, msg = parse(files[0])
    assert msg["Subject"] == "Hi Ana & Bo"
    parts = list(msg.iter_parts())
    assert body_text(parts[0]) == "Dear Ana & Bo, you have 3 items in Lyon."
    assert body_text(parts[1]) == "<p>Ana &amp; Bo</p>"
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_templated_email(Source=SENDER, Destination={"ToAddresses": ["tpl@example.com"]},
                                 Template="nope", TemplateData="{}")
    assert error_of(ei)[:2] == ("TemplateDoesNotExist", 400)
    ses.update_template(Template={"TemplateName": "welcome", "SubjectPart": "New {{name}}"})
    assert ses.get_template(TemplateName="welcome")["Template"]["SubjectPart"] == "New {{name}}"
    ses.delete_template(TemplateName="welcome")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.get_template(TemplateName="welcome")
    assert error_of(ei)[:2] == ("TemplateDoesNotExist", 400)


def test_templates_v2(sb):
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    sesv2.create_email_template(TemplateName="v2tpl",
                                TemplateContent={"Subject": "Order {{id}}", "Text": "Order {{id}} shipped"})
    got = sesv2.get_email_template(TemplateName="v2tpl")
    assert got["TemplateContent"] == {"Subject": "Order {{id}}", "Text": "Order {{id}} shipped"}
    assert "v2tpl" in [t["TemplateName"] for t in sesv2.list_email_templates()["TemplatesMetadata"]]
    r = sesv2.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["v2tpl@example.com"]},
                         Content={"Template": {"TemplateName": "v2tpl", "TemplateData": "{\"id\": 42}"}})
    _, msg = parse(files_of(sb.outbox, r["MessageId"])[0])
    assert msg["Subject"] == "Order 42"
    assert body_text(msg) == "Order 42 shipped"
    sesv2.delete_email_template(TemplateName="v2tpl")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sesv2.get_email_template(TemplateName="v2tpl")
    assert error_of(ei)[:2] == ("NotFoundException", 404)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sesv2.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["v2tpl@example.com"]},
                         Content={"Template": {"TemplateName": "v2tpl", "TemplateData": "{}"}})
    assert error_of(ei)[:2] == ("NotFoundException", 404)


def test_multi_recipient_send_is_fanned_out_one_file_each(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    to = ["fan%d@example.com" % i for i in range(4)]
    r = ses.send_email(Source=SENDER, Destination={"ToAddresses": to},
                       Message={"Subject": {"Data": "fan-out"}, "Body": {"Text": {"Data": "to each"}}})
    assert r["MessageId"]

    def delivered():
        got = {}
        for p in harness.outbox(sb.outbox):
            rcpt, msg = parse(p)
            if msg["Subject"] == "fan-out":
                got.setdefault(rcpt, []).append(msg)
        return got if len(got) == len(to) else None

    got = harness.wait_for(delivered, 15.0)
    assert got is not None, "not every recipient got a file"
    assert sorted(got) == sorted(to)
    for rcpt, msgs in got.items():
        assert len(msgs) == 1
        assert msgs[0]["To"] == rcpt


def test_quota_numbers_and_sent_last_24_hours(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    before = ses.get_send_quota()
    assert before["Max24HourSend"] == 1000.0 and before["MaxSendRate"] == 100.0
    ses.send_email(Source=SENDER, Destination={"ToAddresses": ["q1@example.com"], "CcAddresses": ["q2@example.com"]},
                   Message={"Subject": {"Data": "q"}, "Body": {"Text": {"Data": "q"}}})
    after = ses.get_send_quota()
    assert after["SentLast24Hours"] == before["SentLast24Hours"] + 2
    acct = sesv2.get_account()["SendQuota"]
    assert acct == {"Max24HourSend": 1000.0, "MaxSendRate": 100.0, "SentLast24Hours": after["SentLast24Hours"]}
    stats = ses.get_send_statistics()["SendDataPoints"]
    assert sum(p["DeliveryAttempts"] for p in stats) >= 2


def test_identities(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    ses.verify_email_identity(EmailAddress="verified@example.com")
    token = ses.verify_domain_identity(Domain="example.org")["VerificationToken"]
    assert token
    assert {"verified@example.com", "example.org"} <= set(ses.list_identities()["Identities"])
    assert ses.list_identities(IdentityType="Domain")["Identities"] == ["example.org"]
    attrs = ses.get_identity_verification_attributes(Identities=["verified@example.com", "other@example.net"])
    assert {k: v["VerificationStatus"] for k, v in attrs["VerificationAttributes"].items()} == {
        "verified@example.com": "Success", "other@example.net": "Success"}
    assert ses.get_account_sending_enabled()["Enabled"] is True
    sesv2.create_email_identity(EmailIdentity="v2id@example.com")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sesv2.create_email_identity(EmailIdentity="v2id@example.com")
    assert error_of(ei)[0] == "AlreadyExistsException"
    names = {i["IdentityName"]: i["IdentityType"] for i in sesv2.list_email_identities()["EmailIdentities"]}
    assert names["v2id@example.com"] == "EMAIL_ADDRESS" and names["example.org"] == "DOMAIN"
    ident = sesv2.get_email_identity(EmailIdentity="v2id@example.com")
    assert ident["VerifiedForSendingStatus"] is True and ident["IdentityType"] == "EMAIL_ADDRESS"


def test_unsupported_operations_get_ses_errors(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    sesv2 = harness.boto3_client(sb.gw, "sesv2")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.list_configuration_sets()
    assert error_of(ei)[:2] == ("InvalidAction", 400)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sesv2.list_contact_lists()
    assert error_of(ei)[:2] == ("UnknownOperationException", 404)


def test_bounce_simulator_writes_bounce_json(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    r = ses.send_email(Source=SENDER, Destination={"ToAddresses": ["bounce@simulator.amazonses.com"]},
                       Message={"Subject": {"Data": "b"}, "Body": {"Text": {"Data": "b"}}})
    mid = r["MessageId"]
    assert files_of(sb.outbox, mid) == []
    notes = files_of(sb.outbox, mid, ".bounce.json")
    assert len(notes) == 1
    n = json.loads(notes[0].read_text())
    assert n["notificationType"] == "Bounce"
    assert n["bounce"]["bounceType"] == "Permanent"
    assert n["bounce"]["bouncedRecipients"][0]["emailAddress"] == "bounce@simulator.amazonses.com"
    assert "5.1.1" in n["bounce"]["bouncedRecipients"][0]["diagnosticCode"]
    assert n["mail"]["messageId"] == mid and n["mail"]["source"] == SENDER


def test_complaint_and_ooto_simulator(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    r = ses.send_email(Source=SENDER, Destination={"ToAddresses": ["success@simulator.amazonses.com"],
                                                   "CcAddresses": ["complaint@simulator.amazonses.com",
                                                                   "ooto@simulator.amazonses.com"]},
                       Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "s"}}})
    mid = r["MessageId"]
    assert len(files_of(sb.outbox, mid)) == 3
    c = json.loads(files_of(sb.outbox, mid, ".complaint.json")[0].read_text())
    assert c["notificationType"] == "Complaint"
    assert c["complaint"]["complainedRecipients"] == [{"emailAddress": "complaint@simulator.amazonses.com"}]
    reply = files_of(sb.outbox, mid, ".ooto.eml")
    assert [p.name for p in reply] == ["%s-3.ooto.eml" % mid]
    rcpt, msg = parse(reply[0])
    assert rcpt == SENDER and msg["Subject"] == "Out of the office"
    assert msg["In-Reply-To"] == "<%s@email.amazonses.com>" % mid


def test_invalid_recipient_rejected(sb):
    ses = harness.boto3_client(sb.gw, "ses")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ses.send_email(Source=SENDER, Destination={"ToAddresses": ["no-domain"]},
                       Message={"Subject": {"Data": "x"}, "Body": {"Text": {"Data": "x"}}})
    assert error_of(ei)[:2] == ("InvalidParameterValue", 400)


# ---------------------------------------------------------------- limits


def test_sandbox_rate_throttles_a_burst(tmp_path):
    gw, gate, outbox = start_sandbox(tmp_path, sandbox={"rate": "2", "daily_quota": "1000"},
                                     send={"rate": "off"})
    try:
        ses = harness.boto3_client(gw, "ses")
        ok, throttled = 0, []
        t0 = time.monotonic()
        for i in range(5):
            try:
                ses.send_email(Source=SENDER, Destination={"ToAddresses": ["burst%d@example.com" % i]},
                               Message={"Subject": {"Data": "burst"}, "Body": {"Text": {"Data": "x"}}})
                ok += 1
            except botocore.exceptions.ClientError as e:
                throttled.append((e.response["Error"]["Code"], e.response["Error"]["Message"]))
        elapsed = time.monotonic() - t0
        # rate 2: a burst of at most 2, then 2 more per second the loop took
        assert 1 <= ok <= 2 + int(2 * elapsed) and throttled, (ok, elapsed)
        assert set(throttled) == {("Throttling", "Maximum sending rate exceeded.")}
        assert len(list(harness.outbox(outbox))) == ok
        sesv2 = harness.boto3_client(gw, "sesv2")
        time.sleep(1.2)
        codes = []
        for i in range(5):
            try:
                sesv2.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["v%d@example.com" % i]},
                                 Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "x"}}}})
            except botocore.exceptions.ClientError as e:
                codes.append(harness.client_error(types.SimpleNamespace(value=e)))
        assert codes and all(c[:2] == ("TooManyRequestsException", 429) for c in codes)
        assert all(c[2] == "Maximum sending rate exceeded." for c in codes)
    finally:
        stop_sandbox(gate)


def test_sandbox_daily_quota(tmp_path):
    gw, gate, outbox = start_sandbox(tmp_path, sandbox={"rate": "100", "daily_quota": "3"},
                                     send={"rate": "off"})
    try:
        ses = harness.boto3_client(gw, "ses")
        for i in range(3):
            ses.send_email(Source=SENDER, Destination={"ToAddresses": ["d%d@example.com" % i]},
                           Message={"Subject": {"Data": "d"}, "Body": {"Text": {"Data": "x"}}})
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            ses.send_email(Source=SENDER, Destination={"ToAddresses": ["d4@example.com"]},
                           Message={"Subject": {"Data": "d"}, "Body": {"Text": {"Data": "x"}}})
        assert error_of(ei) == ("Throttling", 400, "Daily message quota exceeded.")
        q = ses.get_send_quota()
        assert q["SentLast24Hours"] == 3.0 and q["Max24HourSend"] == 3.0
        # Simulator addresses do not count against the daily quota.
        ses.send_email(Source=SENDER, Destination={"ToAddresses": ["success@simulator.amazonses.com"]},
                       Message={"Subject": {"Data": "d"}, "Body": {"Text": {"Data": "x"}}})
        assert len(list(harness.outbox(outbox))) == 4
    finally:
        stop_sandbox(gate)


# ---------------------------------------------------------------- the sandbox's own checks


def sandbox_endpoint(gate):
    """The sandbox's own URL, from its start-up log line."""
    m = harness.wait_for(lambda: re.search(r"event=sandbox_start endpoint=(http://127\.0\.0\.1:\d+)", gate.log_text()), 15.0)
    assert m, "no sandbox_start line"
    return m.group(1)


def test_sandbox_checks_signatures(sb):
    url = sandbox_endpoint(sb.gate)
    status, headers, body = harness.http("POST", url + "/", b"Action=GetSendQuota&Version=2010-12-01",
                                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and b"<Code>MissingAuthenticationToken</Code>" in body
    assert headers.get("x-amzn-RequestId")
    stranger = harness.Creds("x", harness.new_access_key("AKIA"), harness.new_secret())
    gw = types.SimpleNamespace(endpoint=url, region=harness.REGION, creds=lambda name: stranger)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        harness.boto3_client(gw, "ses").get_send_quota()
    assert error_of(ei)[:2] == ("InvalidClientTokenId", 403)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        harness.boto3_client(gw, "sesv2").get_account()
    assert error_of(ei)[:2] == ("UnrecognizedClientException", 403)
    # The sandbox's key appears in no log line.
    assert not re.search(r"AKIDSANDBOX[A-Z0-9]{12}", sb.gate.log_text())


def test_simulator_outcomes_in_the_batch_status(tmp_path):
    """A batch to every simulator address: copy 0 (success@) goes first, the
    others through the queue. SES accepts every copy, so each is sent with
    its MessageId (the queue does not know which upstream it talks to); the
    outcomes come afterwards as SES's notifications, which the sandbox
    signs and POSTs to sesgate's SNS endpoint: the endpoint applies them
    (its log lines) and the batch shows each recipient's delivery state: a
    bounce for bounce@ (Permanent, General, with its diagnostic) and
    suppressionlist@ (OnAccountSuppressionList), a complaint after the
    delivery for complaint@, a delivery for success@ and ooto@. (A gateway of
    its own: the module's has these addresses on its suppression list by
    now, from the other tests' bounces and complaints.)"""
    gw, gate, outbox = start_sandbox(tmp_path / "outcomes")
    sb = types.SimpleNamespace(gw=gw, gate=gate, outbox=outbox)
    try:
        check_simulator_outcomes(sb)
    finally:
        stop_sandbox(gate)


def check_simulator_outcomes(sb):
    """The body of test_simulator_outcomes_in_the_batch_status."""
    ses = harness.boto3_client(sb.gw, "ses")
    seen = {}

    def after_call(http_response, **kwargs):
        seen["batch"] = http_response.headers.get("x-sesgate-batch-id")

    ses.meta.events.register("after-call.ses.SendEmail", after_call)
    sim = ["success", "complaint", "ooto", "bounce", "suppressionlist"]
    to = ["%s@simulator.amazonses.com" % s for s in sim]
    ses.send_email(Source=SENDER, Destination={"ToAddresses": to},
                   Message={"Subject": {"Data": "sim"}, "Body": {"Text": {"Data": "simulator"}}})
    batch = seen["batch"]
    assert batch
    want = {"success": "delivered", "complaint": "complained", "ooto": "delivered", "bounce": "bounced",
            "suppressionlist": "bounced"}

    def show():
        r = subprocess.run([str(harness.sesgate_bin()), "batch", "show", batch, "--json", "-c",
                            str(sb.gate.config_path)], capture_output=True, text=True, timeout=30,
                           env=harness.clean_env(), cwd=str(sb.gate.workdir))
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        states = {d["address"].split("@")[0]: d for r in st["recipients"] for d in r.get("delivery", [])}
        done = st["complete"] and all(states.get(k, {}).get("state") == v for k, v in want.items())
        return (st, states) if done else None

    got = harness.wait_for(show, timeout=30, step=0.3)
    assert got, "the batch's delivery states did not arrive"
    st, states = got
    by = {r["address"].split("@")[0]: r for r in st["recipients"]}
    for k in sim:
        assert by[k]["state"] == "sent" and "note" not in by[k], by[k]
        assert MESSAGE_ID_RE.match(by[k]["message_id"]), by[k]
    assert (st["sent"], st["dead"]) == (5, 0)
    assert (st["delivered"], st["bounced"], st["complained"]) == (2, 2, 1), st
    b = states["bounce"]
    assert (b["type"], b["subtype"], b["diagnostic"]) == ("Permanent", "General", "smtp; 550 5.1.1 user unknown")
    s = states["suppressionlist"]
    assert (s["type"], s["subtype"]) == ("Permanent", "OnAccountSuppressionList")
    assert states["complaint"]["feedback_type"] == "abuse"
    # each event went through the SNS endpoint's checks (the sandbox's own
    # topic, certificate and signature) and was applied
    topic = "arn:aws:sns:%s:000000000000:sesgate-sandbox" % harness.REGION
    log = sb.gate.log_text()
    applied = re.findall(r"event=feedback .*type=Notification outcome=applied topic=%s .*kind=(\w+)"
                         % re.escape(topic), log)
    assert sorted(applied) == ["Bounce", "Bounce", "Complaint", "Delivery", "Delivery", "Delivery"], applied
    assert "sandbox_event_refused" not in log and "feedback_refused" not in log
    bounce_mid = by["bounce"]["message_id"]
    assert files_of(sb.outbox, bounce_mid, ".bounce.json") and not files_of(sb.outbox, bounce_mid)


def test_connection_metrics_count_client_connections_only(tmp_path):
    """sesgate_connections counts SES client connections: not the sandbox's
    side of sesgate's upstream connections, not the admin scrape itself.
    (Events off: the sandbox's SNS posts reach the SES listener as SNS's
    do, on connections of their own, which count.)"""
    gw, gate, outbox = start_sandbox(tmp_path / "conns",
                                     sandbox={"rate": "100", "daily_quota": "1000", "events": "off"})
    socks = []
    try:
        ses = harness.boto3_client(gw, "ses")
        to = ["conn%d@example.com" % i for i in range(6)]
        ses.send_email(Source=SENDER, Destination={"ToAddresses": to},
                       Message={"Subject": {"Data": "conns"}, "Body": {"Text": {"Data": "x"}}})
        assert harness.wait_for(lambda: len(list(harness.outbox(outbox))) >= len(to), 15.0), "not delivered"
        ses.close()
        for _ in range(3):
            socks.append(socket.create_connection(("127.0.0.1", gate.port), timeout=5))

        def conns():
            _, _, body = harness.http("GET", gate.admin_url + "/metrics")
            m = re.search(rb"^sesgate_connections (\d+)$", body, re.M)
            assert m, body[:2000]
            return int(m.group(1))

        # sesgate keeps its upstream connections to the sandbox open (six
        # sends went through them), and the scrape is a connection too.
        assert harness.wait_for(lambda: conns() == 3, timeout=10), conns()
    finally:
        for s in socks:
            s.close()
        stop_sandbox(gate)
