"""SES's own example notifications, end to end: every example of AWS's SES
documentation (tests/unit/testdata/sesevent: both formats, every event
type) and every bounce type and subtype SES documents, each about one
recipient of a real batch, signed by the fake SNS publisher (signature
versions 1 and 2 in turn) and posted to the feedback endpoint of
`sesgate run` in front of the fake SES upstream. Then each field is checked
against the batch status (`sesgate batch show --json`): the state, its time
(the event's own timestamp), the bounce type, subtype, action, status and
diagnostic code, the complaint's feedback type, the delivery's SMTP answer,
the delay's type and expiry, the reject's reason; the events that set no
state (Send, Open, Click, Rendering Failure, Subscription) leave none; the
batch's counters; the suppression list (permanent bounces and complaints
only); sesgate_events_total by type and client."""

import copy
import datetime
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

import fakesns
import harness

pytestmark = pytest.mark.needs_sesgate

CORPUS = Path(__file__).resolve().parents[1] / "unit" / "testdata" / "sesevent"
TOPIC = fakesns.topic_arn("ses-corpus")
PFX = "sesgate-it:{sesgate-it}:"
SENDER = "news@example.com"

# SES's bounce types and subtypes ("Contents of notifications for Amazon
# SES", bounce types).
BOUNCE_KINDS = [("Undetermined", "Undetermined"), ("Permanent", "General"), ("Permanent", "NoEmail"),
                ("Permanent", "Suppressed"), ("Permanent", "OnAccountSuppressionList"),
                ("Transient", "General"), ("Transient", "MailboxFull"), ("Transient", "MessageTooLarge"),
                ("Transient", "ContentRejected"), ("Transient", "AttachmentRejected")]

# The object that holds each kind's details, and the state it sets.
OBJECT = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery",
          "DeliveryDelay": "deliveryDelay", "Reject": "reject", "Send": "send", "Open": "open",
          "Click": "click", "Rendering Failure": "failure", "Subscription": "subscription"}
STATE = {"Bounce": "bounced", "Complaint": "complained", "Delivery": "delivered",
         "DeliveryDelay": "delayed", "Reject": "rejected"}


def kind_of(ev):
    return ev.get("eventType") or ev.get("notificationType")


def cases():
    """(name, event dict) for every corpus file and every bounce kind."""
    out = []
    for f in sorted(CORPUS.glob("*.json")):
        out.append((f.stem, json.loads(f.read_text())))
    base = json.loads((CORPUS / "notification-bounce-dsn.json").read_text())
    for t, s in BOUNCE_KINDS:
        ev = copy.deepcopy(base)
        ev["bounce"]["bounceType"], ev["bounce"]["bounceSubType"] = t, s
        out.append(("bounce-%s-%s" % (t, s), ev))
    return out


def aimed(ev, message_id, address):
    """ev about message_id and its one recipient address."""
    ev = copy.deepcopy(ev)
    ev["mail"]["messageId"] = message_id
    ev["mail"]["destination"] = [address]
    obj = ev.get(OBJECT[kind_of(ev)], {})
    for key in ("bouncedRecipients", "complainedRecipients", "delayedRecipients"):
        if key in obj:
            first = dict(obj[key][0])
            first["emailAddress"] = address
            obj[key] = [first]
    if "recipients" in obj:
        obj["recipients"] = [address]
    return ev


def iso_seconds(ts):
    """An SES timestamp as the batch view prints it (UTC, whole seconds)."""
    ts = re.sub(r" ?([+-]\d\d):?(\d\d)$", r"\1:\2", ts.replace("Z", "+00:00"))
    ts = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], ts)
    t = datetime.datetime.fromisoformat(ts).astimezone(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_detail(ev):
    """The detail fields the batch view must show for ev's recipient."""
    k = kind_of(ev)
    obj = ev[OBJECT[k]]
    want = {}

    def put(name, value):
        if value is not None:
            want[name] = value

    rcpt = {}
    for key in ("bouncedRecipients", "complainedRecipients", "delayedRecipients"):
        if key in obj:
            rcpt = obj[key][0]
    if k == "Bounce":
        put("type", obj["bounceType"])
        put("subtype", obj["bounceSubType"])
    elif k == "Complaint":
        put("feedback_type", obj.get("complaintFeedbackType"))
        put("subtype", obj.get("complaintSubType"))
    elif k == "Delivery":
        put("smtp_response", obj.get("smtpResponse"))
    elif k == "DeliveryDelay":
        put("type", obj.get("delayType"))
        put("expiration", obj.get("expirationTime"))
    elif k == "Reject":
        put("reason", obj.get("reason"))
    put("action", rcpt.get("action"))
    put("status", rcpt.get("status"))
    put("diagnostic", rcpt.get("diagnosticCode"))
    return want


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    work = tmp_path_factory.mktemp("corpus")
    sns = fakesns.FakeSNS(work).start()
    extra = {"feedback": {"topics": TOPIC, "test_trust": sns.test_trust},
             "send": {"rate": "200", "first_recipient": "sync"}}
    gw = harness.run_gateway(work, extra=extra, fake_args=("--max-send-rate", "1000"))
    yield gw, sns
    harness.stop_run_gateway(gw)
    sns.stop()


def batch_show(gw, batch):
    r = subprocess.run([str(harness.sesgate_bin()), "batch", "show", batch, "--json", "-c",
                        str(gw.sesgate.config_path)], capture_output=True, text=True, timeout=30,
                       env=harness.clean_env(gw.sesgate.env), cwd=str(gw.workdir))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_documented_example_lands_on_its_recipient(env):
    gw, sns = env
    all_cases = cases()
    assert len(all_cases) >= 28
    to = ["c%02d@example.net" % i for i in range(len(all_cases))]
    client = harness.boto3_client(gw, "ses")
    client.send_email(Source=SENDER, Destination={"ToAddresses": to},
                      Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})
    batch = gw.sesgate.redis("ZREVRANGE", PFX + "recent", "0", "0").strip()
    assert batch
    deadline = time.monotonic() + 60
    st = batch_show(gw, batch)
    while not st["complete"] and time.monotonic() < deadline:
        time.sleep(0.2)
        st = batch_show(gw, batch)
    assert st["complete"] and st["sent"] == len(to), st
    mid = {r["index"]: r["message_id"] for r in st["recipients"]}

    started = time.time()
    for i, (name, ev) in enumerate(all_cases):
        msg = sns.notification(TOPIC, json.dumps(aimed(ev, mid[i], to[i])), version=1 + i % 2)
        status, text = fakesns.post(gw.endpoint + "/sesgate/sns", msg)
        assert status == 200, (name, status, text)
    finished = time.time()

    st = batch_show(gw, batch)
    by = {r["index"]: r for r in st["recipients"]}
    counts = {s: 0 for s in ("delivered", "bounced", "complained", "delayed", "rejected")}
    for i, (name, ev) in enumerate(all_cases):
        k = kind_of(ev)
        got = by[i]["delivery"]
        if k not in STATE:
            assert got == [], (name, got)
            continue
        counts[STATE[k]] += 1
        assert len(got) == 1, (name, got)
        d = dict(got[0])
        assert d.pop("address") == to[i], name
        assert d.pop("state") == STATE[k], name
        ts = ev[OBJECT[k]].get("timestamp")
        t, t_ms = d.pop("time"), d.pop("time_ms")
        if ts is not None:
            assert t == iso_seconds(ts), (name, t, ts)
        else:  # a Reject has no time of its own: the time it arrived
            assert started - 1 <= t_ms / 1000 <= finished + 1, (name, t_ms)
        assert d == expected_detail(ev), (name, d)
        assert by[i]["state"] == "sent", name
    for s, n in counts.items():
        assert st[s] == n, (s, st[s], n)

    # The suppression list: permanent bounces and complaints, nothing else.
    for i, (name, ev) in enumerate(all_cases):
        k = kind_of(ev)
        entry = gw.sesgate.redis("HGET", PFX + "sup", to[i]).strip()
        if k == "Bounce" and ev["bounce"]["bounceType"] == "Permanent":
            assert entry.startswith("BOUNCE\t") and entry.endswith("\tevent"), (name, entry)
        elif k == "Complaint":
            assert entry.startswith("COMPLAINT\t"), (name, entry)
        else:
            assert entry == "", (name, entry)

    # Counted by type and client.
    status, _, body = harness.http("GET", gw.sesgate.admin_url + "/metrics")
    metrics = body.decode()
    assert status == 200
    by_type = {}
    for name, ev in all_cases:
        by_type[kind_of(ev)] = by_type.get(kind_of(ev), 0) + 1
    for k, n in by_type.items():
        line = 'sesgate_events_total{type="%s",client="app"} %d' % (k, n)
        assert line in metrics, (line, [m for m in metrics.splitlines() if "events_total" in m])
