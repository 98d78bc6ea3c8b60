"""Upgrades lose nothing: a batch that release 0.1.0 (commit 602b74e) queued
is finished by this one. Release 0.1.0 is built from the repository's own
history; its `sesgate serve` queues a batch (first_recipient = queue, so no
copy is sent before the upgrade) and stops; this release's `sesgate run`
starts on the same data directory and drains it.

0.1.0 did not check addresses, so its batch may hold ones SES refuses (an
empty one, one without '@'): those become dead letters with SES's code and
reason, never "BatchMissing", and every other recipient is sent once."""

import json
import subprocess
import tarfile
import time

import pytest

import harness
from test_fanout_clients import parse_copy

pytestmark = pytest.mark.needs_sesgate

RELEASE_0_1_0 = "602b74e"


@pytest.fixture(scope="module")
def old_bin(tmp_path_factory):
    """build/sesgate of release 0.1.0, built from git history."""
    d = tmp_path_factory.mktemp("sesgate-0.1.0")
    tar = d / "src.tar"
    proc = subprocess.run(["git", "-C", str(harness.REPO), "archive", "-o", str(tar), RELEASE_0_1_0],
                          capture_output=True, text=True)
    assert proc.returncode == 0, "release 0.1.0 is not in this clone's history: %s" % proc.stderr
    with tarfile.open(tar) as t:
        t.extractall(d / "src")
    proc = subprocess.run(["make", "-s", "-j2", "all"], cwd=str(d / "src"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d / "src" / "build" / "sesgate"


def batch_status(gate, batch):
    status, _, body = harness.http("GET", gate.admin_url + "/batches/" + batch)
    assert status == 200, body
    return json.loads(body)


def test_batch_queued_by_0_1_0_drains(old_bin, tmp_path):
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(tmp_path, upstream).start()
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    policies = {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}}
    extra = {"send": {"rate": "1000", "concurrency": "4", "first_recipient": "queue"}}
    valid = ["up%02d@x.example" % i for i in range(20)]
    bad = {"": "Illegal address", "not-an-email": "Missing final '@domain'"}
    to = valid[:5] + [""] + valid[5:12] + ["not-an-email"] + valid[12:]
    try:
        old = harness.Sesgate(tmp_path, fake.url, upstream, policies, extra=extra)
        gw = harness.Gateway(old.url, harness.REGION, False, fake, old, upstream, {"app": app}, tmp_path)
        old.start(binary=old_bin)
        try:
            c = harness.boto3_client(gw, "ses")
            seen = {}
            c.meta.events.register("after-call", lambda http_response, **kw: seen.update(
                {k.lower(): v for k, v in http_response.headers.items()}))
            resp = c.send_email(Source="news@example.com", Destination={"ToAddresses": to},
                                Message={"Subject": {"Data": "before the upgrade"},
                                         "Body": {"Text": {"Data": "queued by 0.1.0"}}})
            batch = seen.get("x-sesgate-batch-id")
            assert batch and resp["MessageId"] == "sesgate-" + batch, (resp, seen)
        finally:
            old.stop()
        assert fake.requests() == [], "0.1.0's serve sent copies itself"
        new = harness.RunSesgate(tmp_path, fake.url, upstream, policies, extra=extra)
        new.start()
        try:
            deadline = time.monotonic() + 60
            st = batch_status(new, batch)
            while not st["complete"] and time.monotonic() < deadline:
                time.sleep(0.2)
                st = batch_status(new, batch)
            assert st["complete"], st
            assert (st["total"], st["sent"], st["dead"]) == (len(to), len(valid), len(bad)), st
            for r in st["recipients"]:
                if r["address"] in bad:
                    assert r["state"] == "dead", r
                    assert (r.get("code"), r.get("message")) == ("InvalidParameterValue", bad[r["address"]]), r
                else:
                    assert r["state"] == "sent", r
            time.sleep(0.3)
            recs = fake.requests()
            assert all(rec["verified"] and rec["status"] == 200 for rec in recs)
            assert sorted(parse_copy(rec).to[0] for rec in recs) == sorted(valid)
        finally:
            new.stop()
        log = new.log_text()
        assert "BatchMissing" not in log and not harness.SANITIZER_RE.search(log), log[-3000:]
    finally:
        fake.stop()


def test_batch_queued_by_0_1_0_drains_through_upstream_with_several(old_bin, tmp_path):
    """A batch 0.1.0 queued (no u in its hash) drains through [upstream] when
    the new configuration adds an [upstream.eu] whose senders match its
    sender: routing applies to new calls, not to what is already queued."""
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    eu_key = harness.Creds("upstream-eu", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(tmp_path / "default", upstream).start()
    fake_eu = harness.FakeSES(tmp_path / "eu", eu_key, region="eu-west-1").start()
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    policies = {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}}
    extra = {"send": {"rate": "1000", "concurrency": "4", "first_recipient": "queue"}}
    to = ["up%02d@x.example" % i for i in range(20)]
    try:
        old = harness.Sesgate(tmp_path, fake.url, upstream, policies, extra=extra)
        gw = harness.Gateway(old.url, harness.REGION, False, fake, old, upstream, {"app": app}, tmp_path)
        old.start(binary=old_bin)
        try:
            seen = {}
            c = harness.boto3_client(gw, "ses")
            c.meta.events.register("after-call", lambda http_response, **kw: seen.update(
                {k.lower(): v for k, v in http_response.headers.items()}))
            c.send_email(Source="news@example.com", Destination={"ToAddresses": to},
                         Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "queued by 0.1.0"}}})
            batch = seen.get("x-sesgate-batch-id")
            assert batch
        finally:
            old.stop()
        extra["upstream.eu"] = {"endpoint": fake_eu.url, "region": "eu-west-1",
                                "access_key_id": eu_key.access_key, "secret_access_key": eu_key.secret,
                                "rate": "1000", "senders": "*@example.com"}
        new = harness.RunSesgate(tmp_path, fake.url, upstream, policies, extra=extra)
        new.start()
        try:
            deadline = time.monotonic() + 60
            st = batch_status(new, batch)
            while not st["complete"] and time.monotonic() < deadline:
                time.sleep(0.2)
                st = batch_status(new, batch)
            assert st["complete"] and st["sent"] == len(to), st
            assert sorted(parse_copy(rec).to[0] for rec in fake.requests()) == sorted(to)
            assert fake_eu.requests() == []
            # a new send from that sender goes to eu
            gw.endpoint = new.url
            c = harness.boto3_client(gw, "ses")
            c.send_email(Source="news@example.com", Destination={"ToAddresses": ["new@x.example"]},
                         Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "after"}}})
            assert [parse_copy(rec).to[0] for rec in fake_eu.requests()] == ["new@x.example"]
        finally:
            new.stop()
        log = new.log_text()
        assert not harness.SANITIZER_RE.search(log), log[-3000:]
    finally:
        fake.stop()
        fake_eu.stop()
