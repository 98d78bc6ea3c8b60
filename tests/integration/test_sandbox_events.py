"""The feedback loop end to end on the sandbox (issue 14; docs/SANDBOX.md
"Events", docs/SUPPRESSION.md): nothing here is faked. The sandbox's
mailbox simulator publishes SNS-signed SES notifications to sesgate's own
SNS endpoint, which verifies them (topic, certificate URL, chain to the
sandbox's in-memory CA, signature, replay) and applies them: each
recipient's delivery state in its batch, the suppression list, and the
relay to the client's events_url.

A batch to a mix of simulator addresses ends with each recipient's state
right; the bounced and complained addresses are suppressed; the next batch
to the same list skips them without taking rate (SES, here the sandbox,
never sees them); the client's events_url receives each event once, byte
for byte as the sandbox signed it, including the events of the second batch,
sent while its server was down for 10 s.
"""

import base64
import json
import re
import subprocess
import time
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import harness

pytestmark = pytest.mark.needs_sesgate

SENDER = "sender@example.com"
SIM = "@simulator.amazonses.com"
LIST = ["success" + SIM, "bounce" + SIM, "complaint" + SIM, "suppressionlist" + SIM, "ooto" + SIM,
        "reader@example.org"]
TOPIC = "arn:aws:sns:%s:000000000000:sesgate-sandbox" % harness.REGION


def ops_json(gate, *args):
    r = subprocess.run([str(harness.sesgate_bin())] + list(args[:1]) + ["-c", str(gate.config_path)]
                       + list(args[1:]), capture_output=True, text=True, timeout=30, env=harness.clean_env(),
                       cwd=str(gate.workdir))
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout)


def batch_send(ses, to):
    """A v1 SendEmail that becomes a batch; its batch id."""
    seen = {}

    def after_call(http_response, **kwargs):
        seen["batch"] = http_response.headers.get("x-sesgate-batch-id")

    ses.meta.events.register("after-call.ses.SendEmail", after_call)
    try:
        ses.send_email(Source=SENDER, Destination={"ToAddresses": to},
                       Message={"Subject": {"Data": "loop"}, "Body": {"Text": {"Data": "feedback"}}})
    finally:
        ses.meta.events.unregister("after-call.ses.SendEmail", after_call)
    assert seen.get("batch")
    return seen["batch"]


def final_states(gate, batch, want):
    """Poll `batch show --json` until every address has the delivery state
    want[address] (a state name); returns the status and {address: delivery
    state object}."""
    last = {}

    def ready():
        st = ops_json(gate, "batch", "show", batch, "--json")
        states = {}
        for r in st["recipients"]:
            for d in r.get("delivery", []):
                states[d["address"]] = d
        last["st"], last["states"] = st, states
        ok = st["complete"] and all(states.get(a, {}).get("state") == s for a, s in want.items())
        return ok

    assert harness.wait_for(ready, 30, 0.3), (last.get("states"), gate.log_text()[-3000:])
    return last["st"], last["states"]


def sandbox_sends(gate):
    """The sends the sandbox (SES) accepted, by their one recipient's log line."""
    return len(re.findall(r"event=sandbox_send .*recipients=1", gate.log_text()))


def verify(body, cert):
    """The relayed body is the sandbox's SNS message byte for byte: its
    signature (AWS's string to sign, SHA256withRSA) verifies."""
    n = json.loads(body)
    tbs = "".join("%s\n%s\n" % (k, n[k]) for k in ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
                  if k in n)
    cert.public_key().verify(base64.b64decode(n["Signature"]), tbs.encode(), padding.PKCS1v15(), hashes.SHA256())
    return n


def start(tmp_path, name, sink):
    """sesgate run on the sandbox, events on, client app relayed to sink;
    (gate, boto3 SES v1 client, the sandbox's port)."""
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    placeholder = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    gate = harness.RunSesgate(tmp_path / name, "sandbox", placeholder,
                              {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}},
                              extra={"sandbox": {"rate": "100", "daily_quota": "1000"},
                                     "client.app": {"events_url": sink.url},
                                     "feedback": {"relay_timeout": "2s"}})
    gate.start()
    sport = int(re.search(r"sandbox_start endpoint=http://127\.0\.0\.1:(\d+)", gate.log_text()).group(1))
    gw = types.SimpleNamespace(endpoint=gate.url, region=harness.REGION, creds=lambda name: app)
    return gate, harness.boto3_client(gw, "ses"), sport


def first_batch(gate, ses):
    """A batch to the simulator: each recipient's state, as SES's events
    say, every event checked and applied by the endpoint."""
    b1 = batch_send(ses, LIST)
    st, states = final_states(gate, b1, {
        "success" + SIM: "delivered", "ooto" + SIM: "delivered", "reader@example.org": "delivered",
        "bounce" + SIM: "bounced", "suppressionlist" + SIM: "bounced", "complaint" + SIM: "complained"})
    assert (st["sent"], st["dead"]) == (6, 0)
    assert (st["delivered"], st["bounced"], st["complained"]) == (3, 2, 1), st
    b = states["bounce" + SIM]
    assert (b["type"], b["subtype"], b["diagnostic"]) == ("Permanent", "General", "smtp; 550 5.1.1 user unknown")
    s = states["suppressionlist" + SIM]
    assert (s["type"], s["subtype"]) == ("Permanent", "OnAccountSuppressionList")
    assert "suppressed" in s["diagnostic"]
    assert states["complaint" + SIM]["feedback_type"] == "abuse"
    log = gate.log_text()
    applied = re.findall(r"event=feedback .*type=Notification outcome=applied topic=%s " % re.escape(TOPIC), log)
    assert len(applied) == 7, log[-3000:]
    assert "feedback_refused" not in log and "sandbox_event_refused" not in log


def test_states_and_relays_once_through_an_outage(tmp_path):
    """Each recipient's state; the client's events_url gets each event once,
    byte for byte, the second batch's while its server was down for 10 s."""
    sink = harness.SnsSink()
    port = sink.port
    gate, ses, sport = start(tmp_path, "relay", sink)
    back = None
    try:
        first_batch(gate, ses)
        # the 7 events of the first batch, each once, byte for byte
        assert harness.wait_for(lambda: len(sink.posts) >= 7, 30), (sink.answers, gate.log_text()[-3000:])
        time.sleep(1)
        cert = x509.load_pem_x509_certificate(
            harness.http("GET", "http://127.0.0.1:%d/sesgate-sandbox-sns.pem" % sport)[2])
        first = {}
        for p in sink.posts:
            h = {k.lower(): v for k, v in p.headers.items()}
            n = verify(p.body, cert)
            assert h["x-amz-sns-message-type"] == "Notification" and h["x-amz-sns-topic-arn"] == TOPIC
            assert h["x-amz-sns-message-id"] == n["MessageId"]
            first[n["MessageId"]] = json.loads(n["Message"])
        assert len(sink.posts) == 7 and len(first) == 7, "each event once"
        kinds = sorted(m["notificationType"] for m in first.values())
        assert kinds == ["Bounce", "Bounce", "Complaint", "Delivery", "Delivery", "Delivery", "Delivery"]

        # the application's server goes down for 10 s; a batch meanwhile
        sink.stop()
        down_at = time.monotonic()
        to = ["success" + SIM, "ooto" + SIM, "reader@example.org"]
        b2 = batch_send(ses, to)
        final_states(gate, b2, {a: "delivered" for a in to})
        time.sleep(max(0, 10 - (time.monotonic() - down_at)))
        back = harness.SnsSink(port=port)
        assert harness.wait_for(lambda: len(back.posts) >= 3, 90, 0.3), gate.log_text()[-3000:]
        time.sleep(2)
        second = {}
        for p in back.posts:
            n = verify(p.body, cert)
            second[n["MessageId"]] = json.loads(n["Message"])
        assert len(back.posts) == 3 and len(second) == 3, "each event once"
        assert not set(second) & set(first)
        assert sorted(m["delivery"]["recipients"][0] for m in second.values()) == sorted(to)
    finally:
        gate.stop()
        if sink.thread.is_alive():
            sink.stop()
        if back:
            back.stop()
        harness.assert_no_sanitizer(gate.log_text())


def test_bounced_and_complained_are_suppressed_and_skipped(tmp_path):
    """The bounced and complained addresses are suppressed by the events;
    the next batch to the same list skips them without taking rate: SES
    (the sandbox) sees three sends, and only their events follow."""
    sink = harness.SnsSink()
    gate, ses, sport = start(tmp_path, "suppress", sink)
    try:
        first_batch(gate, ses)
        sup = {e["address"]: e for e in ops_json(gate, "suppression", "list", "--json")}
        assert {a: (e["reason"], e["source"]) for a, e in sup.items()} == {
            "bounce" + SIM: ("BOUNCE", "event"), "suppressionlist" + SIM: ("BOUNCE", "event"),
            "complaint" + SIM: ("COMPLAINT", "event")}
        assert harness.wait_for(lambda: len(sink.posts) >= 7, 30)
        sends = sandbox_sends(gate)
        attempts = sum(d["DeliveryAttempts"] for d in ses.get_send_statistics()["SendDataPoints"])
        b2 = batch_send(ses, LIST)
        st2, states2 = final_states(gate, b2, {"success" + SIM: "delivered", "ooto" + SIM: "delivered",
                                               "reader@example.org": "delivered"})
        by = {r["address"]: r for r in st2["recipients"]}
        for a in ("bounce" + SIM, "complaint" + SIM, "suppressionlist" + SIM):
            assert by[a]["state"] == "suppressed", by[a]
            assert a not in states2
        assert (st2["sent"], st2["suppressed"], st2["dead"]) == (3, 3, 0), st2
        assert sandbox_sends(gate) - sends == 3
        assert sum(d["DeliveryAttempts"] for d in ses.get_send_statistics()["SendDataPoints"]) - attempts == 3
        # only the three sent copies' events are relayed
        assert harness.wait_for(lambda: len(sink.posts) >= 10, 30)
        time.sleep(2)
        assert len(sink.posts) == 10
    finally:
        gate.stop()
        sink.stop()
        harness.assert_no_sanitizer(gate.log_text())
