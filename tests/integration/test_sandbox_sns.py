"""The sandbox's SNS publisher checked independently ([sandbox] events,
docs/SANDBOX.md "Events"): its notifications go to a test server here
(TEST_SESGATE_SANDBOX_EVENTS_URL), which checks SNS's headers and fields,
the certificate chain to the sandbox's CA (both fetched from the sandbox's
listener), and the SHA256withRSA signature with python3-cryptography over
the string to sign built from AWS's documentation, not from sesgate's code.
"""

import base64
import json
import re
import subprocess
import time
import types

import boto3
import botocore.config
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

import harness

pytestmark = pytest.mark.needs_sesgate

SENDER = "sender@example.com"
SIM = "@simulator.amazonses.com"


def start(workdir, sink_url, events="on", tls=None):
    """sesgate run on the sandbox with its events sent to sink_url."""
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    placeholder = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    extra = {"sandbox": {"rate": "100", "daily_quota": "1000", "events": events}}
    gate = harness.RunSesgate(workdir, "sandbox", placeholder,
                              {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}},
                              extra=extra, env={"TEST_SESGATE_SANDBOX_EVENTS_URL": sink_url})
    gate.start()
    gw = types.SimpleNamespace(endpoint=gate.url, region=harness.REGION, creds=lambda name: app)
    port = int(re.search(r"sandbox_start endpoint=http://127\.0\.0\.1:(\d+)", gate.log_text()).group(1))
    return gw, gate, port


def stop(gate):
    gate.stop()
    harness.assert_no_sanitizer(gate.log_text())


def string_to_sign(n):
    """AWS, "Verifying the signatures of Amazon SNS messages": for a
    Notification, Message, MessageId, Subject (if present), Timestamp,
    TopicArn and Type, each as name, newline, value, newline."""
    out = ""
    for k in ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"):
        if k in n:
            out += "%s\n%s\n" % (k, n[k])
    return out.encode()


def fetch_pems(port):
    st, _, cert = harness.http("GET", "http://127.0.0.1:%d/sesgate-sandbox-sns.pem" % port)
    assert st == 200
    st, _, ca = harness.http("GET", "http://127.0.0.1:%d/sesgate-sandbox-ca.pem" % port)
    assert st == 200
    return cert, ca


def check_chain(cert_pem, ca_pem):
    """The signing certificate: RSA 2048, not a CA, issued and signed by the
    CA, which is a self-signed CA. Returns the signing certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    key.verify(ca.signature, ca.tbs_certificate_bytes, ec.ECDSA(ca.signature_hash_algorithm))
    return cert


def verify(n, cert):
    """The SNS signature of n under cert (SignatureVersion 2: SHA256withRSA)."""
    assert n["SignatureVersion"] == "2"
    cert.public_key().verify(base64.b64decode(n["Signature"]), string_to_sign(n), padding.PKCS1v15(),
                             hashes.SHA256())


def test_simulator_outcomes_are_signed_sns_notifications(tmp_path):
    sink = harness.SnsSink()
    gw, gate, sport = start(tmp_path / "sns", sink.url)
    try:
        ses = harness.boto3_client(gw, "sesv2")
        to = ["success" + SIM, "bounce" + SIM, "complaint" + SIM, "suppressionlist" + SIM, "ooto" + SIM,
              "plain@example.org"]
        sent_at = time.monotonic()
        mids = {}
        for a in to:
            mids[a] = ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": [a]},
                                     Content={"Simple": {"Subject": {"Data": "sim"},
                                                         "Body": {"Text": {"Data": "x"}}}})["MessageId"]
        # 4 deliveries (success, complaint, ooto, plain), 2 bounces, 1 complaint
        assert harness.wait_for(lambda: len(sink.posts) >= 7, 20), (len(sink.posts), gate.log_text()[-2000:])
        time.sleep(1.5)
        assert len(sink.posts) == 7, "every outcome once"
        # events wait a second after the send, as SES's come after its answer
        assert min(p.at for p in sink.posts) >= sent_at + 0.95
        cert_pem, ca_pem = fetch_pems(sport)
        cert = check_chain(cert_pem, ca_pem)
        topic = "arn:aws:sns:%s:000000000000:sesgate-sandbox" % harness.REGION
        seen = {}
        ids = set()
        for p in sink.posts:
            n = json.loads(p.body)
            h = {k.lower(): v for k, v in p.headers.items()}
            assert p.path == "/sns-sink"
            assert h["content-type"] == "text/plain; charset=UTF-8"
            assert h["user-agent"] == "Amazon Simple Notification Service Agent"
            assert h["x-amz-sns-message-type"] == "Notification" == n["Type"]
            assert h["x-amz-sns-message-id"] == n["MessageId"]
            assert h["x-amz-sns-topic-arn"] == topic == n["TopicArn"]
            assert h["x-amz-sns-subscription-arn"].startswith(topic + ":")
            assert n["SigningCertURL"] == "https://127.0.0.1:%d/sesgate-sandbox-sns.pem" % sport
            assert n["UnsubscribeURL"].startswith("https://127.0.0.1:%d/?Action=Unsubscribe&SubscriptionArn=" % sport)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", n["Timestamp"])
            assert "Subject" not in n
            verify(n, cert)
            ids.add(n["MessageId"])
            m = json.loads(n["Message"])
            assert m["mail"]["source"] == SENDER
            rcpt = m["mail"]["destination"][0]
            assert m["mail"]["destination"] == [rcpt]
            assert m["mail"]["messageId"] == mids[rcpt]
            kind = m["notificationType"]
            if kind == "Delivery":
                rcpts = m["delivery"]["recipients"]
            elif kind == "Bounce":
                rcpts = [r["emailAddress"] for r in m["bounce"]["bouncedRecipients"]]
            else:
                rcpts = [r["emailAddress"] for r in m["complaint"]["complainedRecipients"]]
            assert len(rcpts) == 1
            seen.setdefault(rcpts[0], []).append((kind, m))
        assert len(ids) == 7, "one SNS MessageId per notification"
        kinds = {a: sorted(k for k, _ in v) for a, v in seen.items()}
        assert kinds == {"success" + SIM: ["Delivery"], "ooto" + SIM: ["Delivery"], "plain@example.org": ["Delivery"],
                         "bounce" + SIM: ["Bounce"], "suppressionlist" + SIM: ["Bounce"],
                         "complaint" + SIM: ["Complaint", "Delivery"]}
        b = seen["bounce" + SIM][0][1]["bounce"]
        assert (b["bounceType"], b["bounceSubType"]) == ("Permanent", "General")
        assert "550 5.1.1" in b["bouncedRecipients"][0]["diagnosticCode"]
        s = seen["suppressionlist" + SIM][0][1]["bounce"]
        assert (s["bounceType"], s["bounceSubType"]) == ("Permanent", "OnAccountSuppressionList")
        # the complaint comes after its delivery
        assert [k for k, _ in seen["complaint" + SIM]] == ["Delivery", "Complaint"]
        c = [m for k, m in seen["complaint" + SIM] if k == "Complaint"][0]["complaint"]
        assert c["complaintFeedbackType"] == "abuse"
        # a tampered Message does not verify (the check above can fail)
        n = json.loads(sink.posts[0].body)
        n["Message"] = n["Message"].replace("{", "{ ", 1)
        with pytest.raises(Exception):
            verify(n, cert)
        # the notification files are still written
        outbox = tmp_path / "sns" / "var" / "outbox"
        assert len(list(outbox.glob("*.bounce.json"))) == 2
        assert len(list(outbox.glob(mids["complaint" + SIM] + "-*.complaint.json"))) == 1
        # the keys and certificates are in memory only
        body = b"".join(cert_pem.splitlines()[1:3])
        for f in (tmp_path / "sns").rglob("*"):
            if f.is_file() and f.stat().st_size < 50_000_000:
                assert body not in f.read_bytes().replace(b"\n", b""), f
        log = gate.log_text()
        assert "sandbox_events url=%s" % sink.url in log
    finally:
        stop(gate)
        sink.stop()


def test_events_wait_for_an_endpoint_that_fails_or_is_down(tmp_path):
    """5xx answers and a stopped endpoint: the event is tried again with
    backoff, byte for byte the same SNS message, and arrives once."""
    sink = harness.SnsSink(fail=2)
    port = sink.port
    gw, gate, sport = start(tmp_path / "retry", sink.url)
    try:
        ses = harness.boto3_client(gw, "sesv2")
        mid = ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["bounce" + SIM]},
                             Content={"Simple": {"Subject": {"Data": "r"}, "Body": {"Text": {"Data": "x"}}}})[
            "MessageId"]
        assert harness.wait_for(lambda: len(sink.posts) == 1, 30), gate.log_text()[-2000:]
        assert sink.answers == [503, 503, 200]
        harness.wait_log(gate, r"sandbox_events_retry status=503")
        harness.wait_log(gate, r"sandbox_events_resumed failed_tries=2")
        n = json.loads(sink.posts[0].body)
        assert json.loads(n["Message"])["mail"]["messageId"] == mid
        # the endpoint goes away for 3 s: events sent meanwhile arrive after
        sink.stop()
        mids = []
        for i in range(3):
            mids.append(ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["down%d@example.org" % i]},
                                       Content={"Simple": {"Subject": {"Data": "d"},
                                                           "Body": {"Text": {"Data": "x"}}}})["MessageId"])
        harness.wait_log(gate, r"sandbox_events_retry status=0 error=")
        time.sleep(2)
        back = harness.SnsSink(port=port)
        try:
            assert harness.wait_for(lambda: len(back.posts) == 3, 40), gate.log_text()[-2000:]
            time.sleep(1)
            got = sorted(json.loads(json.loads(p.body)["Message"])["mail"]["messageId"] for p in back.posts)
            assert got == sorted(mids), "each event once"
            cert = check_chain(*fetch_pems(sport))
            for p in back.posts:
                verify(json.loads(p.body), cert)
        finally:
            back.stop()
    finally:
        stop(gate)
        if sink.thread.is_alive():
            sink.stop()


def test_events_off_publishes_nothing(tmp_path):
    sink = harness.SnsSink()
    gw, gate, sport = start(tmp_path / "off", sink.url, events="off")
    try:
        ses = harness.boto3_client(gw, "sesv2")
        mid = ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["bounce" + SIM]},
                             Content={"Simple": {"Subject": {"Data": "o"}, "Body": {"Text": {"Data": "x"}}}})[
            "MessageId"]
        outbox = tmp_path / "off" / "var" / "outbox"
        assert harness.wait_for(lambda: list(outbox.glob(mid + "-*.bounce.json")), 10)
        time.sleep(2.5)
        assert sink.posts == [] and sink.answers == []
        assert "sandbox_start" in gate.log_text() and "events=off" in gate.log_text()
        # no certificate is served either: the path is an (unsigned) SES call
        st, _, _ = harness.http("GET", "http://127.0.0.1:%d/sesgate-sandbox-sns.pem" % sport)
        assert st == 403
    finally:
        stop(gate)
        sink.stop()


def test_events_reach_a_tls_listener_whatever_its_certificate_names(tmp_path):
    """[server] tls_cert set: the events go over https to the listener's own
    feedback endpoint, known by its key (the certificate names another
    host and no CA here issued it), and the endpoint verifies and applies
    them."""
    d = tmp_path / "pki"
    d.mkdir()
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=mail.example.com",
                        "-addext", "subjectAltName=DNS:mail.example.com"], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    placeholder = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    gate = harness.RunSesgate(tmp_path / "tls", "sandbox", placeholder,
                              {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}},
                              extra={"sandbox": {"rate": "100", "daily_quota": "1000"},
                                     "server": {"tls_cert": str(d / "cert.pem"), "tls_key": str(d / "key.pem")}})
    gate.start()
    try:
        harness.wait_log(gate, r"event=sandbox_events url=https://127\.0\.0\.1:%d/sesgate/sns " % gate.port)
        gw = types.SimpleNamespace(endpoint="https://127.0.0.1:%d" % gate.port, region=harness.REGION,
                                   creds=lambda name: app)
        ses = boto3.client("sesv2", endpoint_url=gw.endpoint, region_name=gw.region, verify=False,
                           aws_access_key_id=app.access_key, aws_secret_access_key=app.secret,
                           config=botocore.config.Config(retries={"max_attempts": 1}))
        ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["bounce" + SIM]},
                       Content={"Simple": {"Subject": {"Data": "t"}, "Body": {"Text": {"Data": "x"}}}})
        topic = "arn:aws:sns:%s:000000000000:sesgate-sandbox" % harness.REGION
        log = harness.wait_log(gate, r"event=feedback .*type=Notification outcome=applied topic=%s .*kind=Bounce"
                               % re.escape(topic), timeout=20)
        assert "sandbox_events_retry" not in log and "sandbox_event_refused" not in log
        assert "sandbox_events_pin_failed" not in log
    finally:
        stop(gate)


def test_events_beyond_the_cap_are_dropped_and_counted(tmp_path):
    """The endpoint is down: events wait, up to the cap (lowered to 3 here);
    the next ones are dropped and counted in a log line; the 3 waiting
    arrive once it is back."""
    sink = harness.SnsSink()
    port = sink.port
    sink.stop()
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    placeholder = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    gate = harness.RunSesgate(tmp_path / "cap", "sandbox", placeholder,
                              {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}},
                              extra={"sandbox": {"rate": "100", "daily_quota": "1000"}},
                              env={"TEST_SESGATE_SANDBOX_EVENTS_URL": sink.url,
                                   "TEST_SESGATE_SANDBOX_EVENTS_MAX": "3"})
    gate.start()
    back = None
    try:
        gw = types.SimpleNamespace(endpoint=gate.url, region=harness.REGION, creds=lambda name: app)
        ses = harness.boto3_client(gw, "sesv2")
        mids = []
        for i in range(5):
            mids.append(ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": ["cap%d@example.org" % i]},
                                       Content={"Simple": {"Subject": {"Data": "c"},
                                                           "Body": {"Text": {"Data": "x"}}}})["MessageId"])
        harness.wait_log(gate, r"event=sandbox_events_dropped dropped=2 dropped_total=2 queue_max=3")
        harness.wait_log(gate, r"event=sandbox_events_retry status=0 ")
        back = harness.SnsSink(port=port)
        assert harness.wait_for(lambda: len(back.posts) >= 3, 60, 0.2), gate.log_text()[-2000:]
        time.sleep(2)
        got = [json.loads(json.loads(p.body)["Message"])["mail"]["messageId"] for p in back.posts]
        assert sorted(got) == sorted(mids[:3]), "the first three, each once"
    finally:
        stop(gate)
        if back:
            back.stop()
