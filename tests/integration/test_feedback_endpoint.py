"""The SNS endpoint for SES notifications ([feedback] path, src/feedback.c),
against a fake SNS publisher (fakesns.py: its own CA, a loopback HTTPS
server for its signing certificates and SubscribeURLs, both signature
versions) and `sesgate run` with the fake SES upstream.

Every case asserts the HTTP answer and the log: a refusal is logged once
per cause (its reason and topic) and counted in
sesgate_feedback_refused_total{reason=...} every time. Each test uses
topics of its own, so that causes do not mix between tests.
"""

import json
import re
import subprocess
import threading
import uuid

import pytest

import fakesns
import harness

pytestmark = pytest.mark.needs_sesgate

PATH = "/sesgate/sns"
TOPIC_NAMES = ("valid", "tamper", "tamper2", "wrongcert", "urls", "confirm", "unsub", "replay", "raw",
               "size", "method", "event", "cache", "ses", "rogue", "suburl", "confirm2")


def topic(name):
    return fakesns.topic_arn("sesgate-" + name)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("feedback")
    sns = fakesns.FakeSNS(work).start()
    extra = {"feedback": {"topics": ", ".join(topic(n) for n in TOPIC_NAMES), "test_trust": sns.test_trust}}
    gw = harness.run_gateway(work, extra=extra)
    yield gw, sns
    harness.stop_run_gateway(gw)
    sns.stop()


def url(gw):
    return gw.endpoint + PATH


def log(gw):
    return gw.sesgate.log_text()


def refused_lines(gw, reason, topic_arn):
    pat = r"event=feedback_refused [^\n]*reason=%s [^\n]*topic=%s [^\n]*" % (re.escape(reason),
                                                                            re.escape(topic_arn))
    return re.findall(pat, log(gw))


def wait_refused(gw, reason, topic_arn):
    """The refusal's log line is there, exactly once."""
    pat = r"event=feedback_refused [^\n]*reason=%s [^\n]*topic=%s " % (re.escape(reason), re.escape(topic_arn))
    harness.wait_log(gw.sesgate, pat)
    lines = refused_lines(gw, reason, topic_arn)
    assert len(lines) == 1, lines
    return lines[0]


def wait_handled(gw, sns_id, type_="Notification", outcome="applied"):
    pat = r"event=feedback [^\n]*type=%s outcome=%s [^\n]*sns_id=%s " % (type_, outcome, re.escape(sns_id))
    harness.wait_log(gw.sesgate, pat)


def metric(gw, name, **labels):
    """The value of a counter in /metrics (0 when absent)."""
    _, _, body = harness.http("GET", gw.sesgate.admin_url + "/metrics")
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            lab = line[len(name) + 1:line.index("}")]
            if ",".join(sorted(lab.split(","))) == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("version", [1, 2])
def test_valid_notifications(env, version):
    gw, sns = env
    t = topic("valid")
    for msg in (sns.notification(t, fakesns.ses_bounce(), version=version, subject="Amazon SES Email Event"),
                sns.notification(t, fakesns.ses_delivery_event(), version=version)):
        status, text = fakesns.post(url(gw), msg, subscription_arn=t + ":" + str(uuid.uuid4()))
        assert (status, text) == (200, "ok\n")
        wait_handled(gw, msg["MessageId"])
    assert not refused_lines(gw, "signature", t)
    assert metric(gw, "sesgate_feedback_messages_total", type="Notification", outcome="applied") >= 2


def test_tampered_fields_are_refused_once_per_cause(env):
    gw, sns = env
    t, t2 = topic("tamper"), topic("tamper2")
    before = metric(gw, "sesgate_feedback_refused_total", reason="signature")
    fetches = len(sns.cert_gets())
    cases = []
    for version in (1, 2):
        for field, value in (("Message", fakesns.ses_bounce(recipient="other@example.com")),
                             ("MessageId", str(uuid.uuid4())),
                             ("Timestamp", "2030-01-01T00:00:00.000Z")):
            m = sns.notification(t, fakesns.ses_bounce(), version=version)
            m[field] = value
            cases.append(m)
        c = sns.confirmation(t, version=version)
        c["Token"] = c["Token"][::-1]
        cases.append(c)
    for m in cases:
        status, text = fakesns.post(url(gw), m)
        assert (status, text) == (403, "refused: signature\n"), m
    line = wait_refused(gw, "signature", t)
    assert "status=403" in line
    # TopicArn changed to another allowed topic: the signature no longer holds
    m = sns.notification(t, fakesns.ses_bounce())
    m["TopicArn"] = t2
    assert fakesns.post(url(gw), m) == (403, "refused: signature\n")
    wait_refused(gw, "signature", t2)
    assert metric(gw, "sesgate_feedback_refused_total", reason="signature") == before + len(cases) + 1
    # nothing was confirmed, the certificate was fetched once at most
    assert sns.confirm_count() == 0
    assert len(sns.cert_gets()) - fetches <= 1
    # the same message untampered passes
    ok = sns.notification(t, fakesns.ses_bounce())
    assert fakesns.post(url(gw), ok) == (200, "ok\n")


def test_wrong_topic_refused_before_anything(env):
    gw, sns = env
    other = fakesns.topic_arn("not-allowed")
    fetches = len(sns.gets)
    m = sns.notification(other, fakesns.ses_bounce(), cert_url=sns.cert_url.replace(".pem", "-x.pem"))
    c = sns.confirmation(other)
    for msg in (m, c, sns.notification(other, fakesns.ses_bounce())):
        assert fakesns.post(url(gw), msg) == (403, "refused: topic\n")
    line = wait_refused(gw, "topic", other)
    assert "status=403" in line
    # neither the certificate nor the SubscribeURL was touched
    assert len(sns.gets) == fetches
    assert sns.confirm_count(c["Token"]) == 0
    # a topic ARN in the wrong shape, also refused by the topic check
    bad = sns.notification("arn:aws:sns:us-east-1:12:x", fakesns.ses_bounce())
    assert fakesns.post(url(gw), bad) == (403, "refused: topic\n")


def test_cert_urls_outside_the_rule(env):
    gw, sns = env
    t = topic("urls")
    fetches = len(sns.gets)
    host, path = sns.host, sns.cert_path
    bad = [
        "http://%s%s" % (host, path),                                    # not https
        "https://sns.us-east-1.amazonaws.com.evil.example%s" % path,     # another host (look-alike suffix)
        "https://sns-us-east-1.amazonaws.com%s" % path,                  # look-alike host
        "https://sns.us-east-1.amazonaws.co%s" % path,                   # look-alike domain
        "https://user@%s%s" % (host, path),                              # userinfo
        "https://sns.us-east-1.amazonaws.com@evil.example%s" % path,     # userinfo that looks like the host
        "https://127.0.0.1:%d%s" % (sns.port + 1 if sns.port < 65535 else 1, path),  # another port
        "https://sns.us-east-1.amazonaws.com:8443%s" % path,             # SNS's host with a port
        "https://evil.example%s" % path,                                 # another host
    ]
    before = metric(gw, "sesgate_feedback_refused_total", reason="url")
    for u in bad:
        for version in (1, 2):
            m = sns.notification(t, fakesns.ses_bounce(), version=version, cert_url=u)
            assert fakesns.post(url(gw), m) == (403, "refused: url\n"), u
    wait_refused(gw, "url", t)
    assert metric(gw, "sesgate_feedback_refused_total", reason="url") == before + 2 * len(bad)
    assert len(sns.gets) == fetches  # nothing fetched


def test_certificate_from_another_ca(env):
    gw, sns = env
    t = topic("rogue")
    for version in (1, 2):
        m = sns.notification(t, fakesns.ses_bounce(), version=version, cert_url=sns.rogue_url)
        assert fakesns.post(url(gw), m) == (403, "refused: chain\n")
    line = wait_refused(gw, "chain", t)
    assert "status=403" in line
    # a failed certificate is not kept: each message fetched it again
    assert len(sns.cert_gets(sns.rogue_url)) == 2


def test_subscription_confirmed_once(env):
    gw, sns = env
    t = topic("confirm")
    for version in (1, 2):
        c = sns.confirmation(t, version=version)
        assert fakesns.post(url(gw), c) == (200, "ok\n")
        assert sns.confirm_count(c["Token"]) == 1
        harness.wait_log(gw.sesgate, r"event=feedback_subscription_confirmed [^\n]*topic=%s\n" % re.escape(t),
                         count=version)
        # SNS sends it again: not confirmed a second time
        assert fakesns.post(url(gw), c) == (200, "ok\n")
        wait_handled(gw, c["MessageId"], "SubscriptionConfirmation", "replay")
        assert sns.confirm_count(c["Token"]) == 1
    key = "sesgate-it:{sesgate-it}:sns:" + c["MessageId"]
    assert gw.sesgate.redis("GET", key) == "1"
    ttl = int(gw.sesgate.redis("PTTL", key))
    assert 0 < ttl <= 86400000


def test_failed_confirmation_is_tried_again(env):
    """The SubscribeURL visit failed: 503 (SNS sends the confirmation
    again), and the next delivery visits it again."""
    gw, sns = env
    t = topic("confirm2")
    c = sns.confirmation(t)
    sns.confirm_fail = 1
    assert fakesns.post(url(gw), c) == (503, "refused: confirm\n")
    assert sns.confirm_count(c["Token"]) == 1
    line = wait_refused(gw, "confirm", t)
    assert "HTTP 500" in line and "status=503" in line
    assert fakesns.post(url(gw), c) == (200, "ok\n")
    assert sns.confirm_count(c["Token"]) == 2
    harness.wait_log(gw.sesgate, r"event=feedback_subscription_confirmed [^\n]*topic=%s\n" % re.escape(t))
    assert fakesns.post(url(gw), c) == (200, "ok\n")
    assert sns.confirm_count(c["Token"]) == 2


def test_subscribe_url_outside_the_rule_is_not_visited(env):
    gw, sns = env
    t = topic("suburl")
    c = sns.confirmation(t, subscribe_url="https://sns.us-east-1.amazonaws.com.evil.example/?Action="
                                          "ConfirmSubscription&Token=abc")
    gets = len(sns.gets)
    assert fakesns.post(url(gw), c) == (403, "refused: subscribe_url\n")
    wait_refused(gw, "subscribe_url", t)
    c2 = sns.confirmation(t, subscribe_url="http://%s/?Action=ConfirmSubscription&Token=abc" % sns.host)
    assert fakesns.post(url(gw), c2) == (403, "refused: subscribe_url\n")
    assert len(refused_lines(gw, "subscribe_url", t)) == 1
    assert sns.confirm_count() == 0 or all(g.find("Token=abc") < 0 for g in sns.gets[gets:])
    assert not [g for g in sns.gets[gets:] if "ConfirmSubscription" in g]


def test_unsubscribe_confirmation_logged(env):
    gw, sns = env
    t = topic("unsub")
    c = sns.confirmation(t, kind="UnsubscribeConfirmation")
    assert fakesns.post(url(gw), c, subscription_arn=t + ":abc") == (200, "ok\n")
    harness.wait_log(gw.sesgate, r"event=feedback_unsubscribed [^\n]*topic=%s " % re.escape(t))
    wait_handled(gw, c["MessageId"], "UnsubscribeConfirmation", "logged")
    assert sns.confirm_count(c["Token"]) == 0  # an unsubscription is never "confirmed"


def test_replayed_notification_is_applied_once(env):
    gw, sns = env
    t = topic("replay")
    m = sns.notification(t, fakesns.ses_bounce(message_id="replay-" + uuid.uuid4().hex))
    assert fakesns.post(url(gw), m) == (200, "ok\n")
    wait_handled(gw, m["MessageId"], outcome="applied")
    assert fakesns.post(url(gw), m) == (200, "ok\n")
    wait_handled(gw, m["MessageId"], outcome="replay")
    text = log(gw)
    assert len(re.findall(r"outcome=applied [^\n]*sns_id=%s " % re.escape(m["MessageId"]), text)) == 1


def test_raw_delivery_refused_with_a_hint(env):
    gw, sns = env
    t = topic("raw")
    headers = fakesns.headers_of({"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": t})
    headers["x-amz-sns-rawdelivery"] = "true"
    for _ in range(2):
        status, text = fakesns.post(url(gw), body=fakesns.ses_bounce().encode(), headers=headers)
        assert (status, text) == (403, "refused: raw\n")
    line = wait_refused(gw, "raw", t)
    assert 'hint="raw message delivery is on: switch it off for this subscription"' in line


def test_oversized_and_malformed(env):
    gw, sns = env
    t = topic("size")
    headers = fakesns.headers_of({"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": t})
    big = sns.notification(t, "x" * (1024 * 1024 + 10))
    status, text = fakesns.post(url(gw), big, headers=headers)
    assert (status, text) == (403, "refused: size\n")
    wait_refused(gw, "size", t)
    for body in (b"{", b"[]", b"not json", b'{"Type": "Notification"', b""):
        status, text = fakesns.post(url(gw), body=body, headers=headers)
        assert status == 403, body
        assert text.startswith("refused: "), text
    wait_refused(gw, "json", t)
    # a field missing: Signature
    m = sns.notification(t, fakesns.ses_bounce())
    del m["Signature"]
    assert fakesns.post(url(gw), m) == (403, "refused: field\n")
    wait_refused(gw, "field", t)
    # an unknown Type
    m = sns.notification(t, fakesns.ses_bounce())
    m["Type"] = "Nonsense"
    assert fakesns.post(url(gw), m)[0] == 403
    # the daemon is fine
    ok = sns.notification(t, fakesns.ses_bounce())
    assert fakesns.post(url(gw), ok) == (200, "ok\n")


def test_get_on_the_path(env):
    gw, sns = env
    before = metric(gw, "sesgate_feedback_refused_total", reason="method")
    for method in ("GET", "PUT", "DELETE"):
        status, headers, body = harness.http(method, url(gw))
        assert status == 405, (method, status, body)
        assert body == b"refused: method\n"
        assert headers.get("Allow") == "POST"
    harness.wait_log(gw.sesgate, r"event=feedback_refused [^\n]*reason=method ")
    assert len(re.findall(r"event=feedback_refused [^\n]*reason=method ", log(gw))) == 1
    assert metric(gw, "sesgate_feedback_refused_total", reason="method") == before + 3


def test_unreadable_ses_event(env):
    gw, sns = env
    t = topic("event")
    for message in ("not json", json.dumps({"notificationType": "Bounce"}),
                    json.dumps({"eventType": "Bounce", "mail": {"messageId": "x"}})):
        m = sns.notification(t, message)
        assert fakesns.post(url(gw), m) == (400, "refused: event\n")
    wait_refused(gw, "event", t)


def test_certificate_cached_and_fetched_once_for_concurrent_messages(env):
    gw, sns = env
    t = topic("cache")
    path = "/SimpleNotificationService-%s.pem" % uuid.uuid4().hex
    sns.files[path] = fakesns.pem(sns.cert)
    cert_url = "https://%s%s" % (sns.host, path)
    msgs = [sns.notification(t, fakesns.ses_bounce(), version=1 + i % 2, cert_url=cert_url) for i in range(12)]
    results = [None] * len(msgs)

    def send(i):
        results[i] = fakesns.post(url(gw), msgs[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(msgs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert results == [(200, "ok\n")] * len(msgs)
    assert len(sns.cert_gets(cert_url)) == 1
    for m in msgs:
        wait_handled(gw, m["MessageId"])
    assert not [line for line in log(gw).splitlines() if "event=feedback_refused" in line and t in line]
    m = sns.notification(t, fakesns.ses_bounce(), cert_url=cert_url)
    assert fakesns.post(url(gw), m) == (200, "ok\n")
    assert len(sns.cert_gets(cert_url)) == 1


def test_certificate_fetch_failure_not_cached(env):
    gw, sns = env
    t = topic("wrongcert")
    missing = "https://%s/SimpleNotificationService-%s.pem" % (sns.host, uuid.uuid4().hex)
    for _ in range(2):
        m = sns.notification(t, fakesns.ses_bounce(), cert_url=missing)
        assert fakesns.post(url(gw), m) == (403, "refused: cert_fetch\n")
    line = wait_refused(gw, "cert_fetch", t)
    assert "HTTP 404" in line
    assert len(sns.cert_gets()) >= 0 and len([g for g in sns.gets if missing.endswith(g)]) == 2


def test_ses_calls_alongside(env):
    gw, sns = env
    ses = harness.boto3_client(gw, "ses")
    r = ses.send_email(Source="sender@example.com", Destination={"ToAddresses": ["to@example.com"]},
                       Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "body"}}})
    assert r["MessageId"]
    assert harness.wait_records(gw.fake, 1)
    harness.wait_log(gw.sesgate, r"event=request [^\n]*action=SendEmail status=200 ")
    # an SNS message on any other path is an SES call, refused as one
    m = sns.notification(topic("ses"), fakesns.ses_bounce())
    for path in (PATH + "/", PATH + "x", "/sesgate"):
        status, headers, body = harness.http("POST", gw.endpoint + path, fakesns.body_of(m),
                                             fakesns.headers_of(m))
        assert status == 403, (path, status)
        assert b"MissingAuthenticationToken" in body or b"IncompleteSignature" in body, body
    harness.wait_log(gw.sesgate, r"event=request [^\n]*status=403 error=MissingAuthenticationToken", count=3)
    assert m["MessageId"] not in log(gw)
    # the endpoint with a query string is still the endpoint
    status, _ = fakesns.post(url(gw) + "?from=sns", m)
    assert status == 200
    wait_handled(gw, m["MessageId"])
    # an SES call signed for the endpoint's path is not taken as SES
    status, headers, body = harness.http("POST", url(gw), b"Action=SendEmail",
                                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and body.startswith(b"refused: "), body


def test_check_warns_about_test_trust(env, tmp_path):
    gw, sns = env
    cfg = tmp_path / "c.ini"
    cfg.write_text("[feedback]\ntopics = %s\ntest_trust = %s\n" % (topic("valid"), sns.test_trust))
    r = subprocess.run([str(harness.sesgate_bin()), "check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30, env=harness.clean_env())
    harness.assert_exit(r, 0)
    assert "[feedback] test_trust is set" in r.stderr
    assert "test_trust = %s" % sns.test_trust in r.stdout
    cfg.write_text("[feedback]\ntopics = %s\n" % topic("valid"))
    r = subprocess.run([str(harness.sesgate_bin()), "check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30, env=harness.clean_env())
    harness.assert_exit(r, 0)
    assert "test_trust" not in r.stderr


def test_endpoint_off_without_topics(tmp_path):
    """No [feedback] topics (and no sandbox): the path is nothing special."""
    gw = harness.run_gateway(tmp_path)
    try:
        sns = fakesns.FakeSNS(tmp_path / "sns").start()
        m = sns.notification(topic("valid"), fakesns.ses_bounce())
        sns.stop()
        status, headers, body = harness.http("POST", gw.endpoint + PATH, fakesns.body_of(m), fakesns.headers_of(m))
        assert status == 403 and b"MissingAuthenticationToken" in body, body
        assert "event=feedback" not in gw.sesgate.log_text()
    finally:
        harness.stop_run_gateway(gw)


def test_unreadable_test_trust_ca_stops_the_start(tmp_path):
    """A test_trust CA file that cannot be read: sesgate says which and
    does not start (a silently missing trust would refuse every message)."""
    missing = tmp_path / "no-such-ca.pem"
    gate = harness.Sesgate(tmp_path, "http://127.0.0.1:9", harness.Creds("upstream", "AKIAUNUSEDUNUSED0000", "x" * 40),
                           {}, extra={"feedback": {"topics": topic("valid"),
                                                   "test_trust": "%s 127.0.0.1:1" % missing}})
    with pytest.raises(RuntimeError) as e:
        gate.start(timeout=15)
    assert "cannot read the CA file %s" % missing in str(e.value), str(e.value)
    assert gate.proc.returncode == 1
    harness.assert_no_sanitizer(gate.log_text())


def test_malformed_http_on_the_path_answered_as_the_endpoint(env):
    """A request the listener refuses before reading it (here a chunked
    body) on the endpoint's path is answered in the endpoint's plain text,
    not as an SES error, and logged once."""
    gw, sns = env
    port = int(gw.endpoint.rsplit(":", 1)[1])
    req = (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: text/plain; charset=UTF-8\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    for _ in range(2):
        out = harness.raw_exchange(port, req)
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), out
        assert body == b"refused: http\n", out
    harness.wait_log(gw.sesgate, r"event=feedback_refused [^\n]*reason=http [^\n]*status=400 ")
    assert len(re.findall(r"event=feedback_refused [^\n]*reason=http ", log(gw))) == 1
