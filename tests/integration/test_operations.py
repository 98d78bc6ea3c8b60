"""Running sesgate as a daemon: SIGHUP reloads the client keys and policies
without dropping connections (and a configuration with errors changes
nothing), and [server] user makes a root start give up root before it
starts anything.
"""

import http.client
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import types
from pathlib import Path

import botocore.auth
import botocore.exceptions
import botocore.awsrequest
import botocore.credentials
import pytest

import harness

pytestmark = pytest.mark.needs_sesgate


def signed_get_send_quota(creds, port):
    """(headers, body) of a v1 GetSendQuota signed with creds for 127.0.0.1:port."""
    body = "Action=GetSendQuota&Version=2010-12-01"
    req = botocore.awsrequest.AWSRequest(
        method="POST", url="http://127.0.0.1:%d/" % port, data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(creds.access_key, creds.secret), "ses",
                            harness.REGION).add_auth(req)
    return dict(req.headers.items()), body


def ask(conn, creds, port):
    """GetSendQuota on the open connection conn: (status, body)."""
    headers, body = signed_get_send_quota(creds, port)
    conn.request("POST", "/", body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read().decode()




@pytest.fixture
def gw(tmp_path):
    g = harness.start_gateway(tmp_path)
    if g.direct:
        harness.stop_gateway(g)
        pytest.skip("needs sesgate")
    yield g
    harness.stop_gateway(g)
    log = g.sesgate.log_text()
    assert "AddressSanitizer" not in log and "runtime error" not in log


def test_sighup_reloads_clients_on_open_connections(gw):
    gate = gw.sesgate
    old, new = gw.creds("readonly"), harness.Creds("fresh", harness.new_access_key("SGNEW"), harness.new_secret())
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
    assert ask(conn, old, gate.port)[0] == 200
    sock = conn.sock
    # The readonly key goes away, a new one arrives.
    del gate.clients["readonly"]
    gate.clients["fresh"] = {"creds": new, "allow_actions": ["GetSendQuota"], "allow_from": ["*"]}
    gate.config_path.write_text(gate.config_text())
    gate.proc.send_signal(signal.SIGHUP)
    harness.wait_log(gate, "event=reload ")
    status, body = ask(conn, old, gate.port)
    assert status == 403 and "InvalidClientTokenId" in body, body
    assert ask(conn, new, gate.port)[0] == 200
    assert conn.sock is sock, "the connection was dropped by the reload"
    conn.close()
    # A client's policy changes too: fresh may no longer call GetSendQuota.
    gate.clients["fresh"]["allow_actions"] = ["SendEmail"]
    gate.config_path.write_text(gate.config_text())
    gate.proc.send_signal(signal.SIGHUP)
    harness.wait_log(gate, "event=reload ", 2)
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
    status, body = ask(conn, new, gate.port)
    assert status == 403 and "AccessDenied" in body, body
    conn.close()
    assert gate.proc.poll() is None


def test_sighup_with_errors_changes_nothing(gw):
    gate = gw.sesgate
    app = gw.creds("app")
    good = gate.config_path.read_text()
    gate.config_path.write_text(good + "\n[client.broken]\naccess_key_id = lower-case-is-not-a-key\n")
    gate.proc.send_signal(signal.SIGHUP)
    harness.wait_log(gate, "event=reload_failed")
    assert "lower-case-is-not-a-key" in gate.log_text() or "client.broken" in gate.log_text()
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
    assert ask(conn, app, gate.port)[0] == 200
    conn.close()
    assert gate.proc.poll() is None
    assert app.secret not in gate.log_text()


def test_runs_as_the_configured_user(tmp_path):
    assert os.geteuid() == 0, "becoming another user needs a root start: run the suite as root, as CI does"
    nobody = pwd.getpwnam("nobody")
    # pytest's own directories are root's alone: the data directory must be
    # somewhere nobody can reach.
    work = Path(tempfile.mkdtemp(prefix="sesgate-as-user-"))
    os.chmod(work, 0o755)
    shutil.chown(work, nobody.pw_uid, nobody.pw_gid)
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(tmp_path / "fake", upstream).start()
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    gate = harness.Sesgate(work, fake.url, upstream,
                           {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}},
                           extra={"server": {"user": "nobody"}})
    gate.log_path = tmp_path / "sesgate.log"
    try:
        gate.start()
        uid = [ln.split()[1:] for ln in open("/proc/%d/status" % gate.proc.pid) if ln.startswith("Uid:")][0]
        assert uid == [str(nobody.pw_uid)] * 4, uid
        children = subprocess.run(["pgrep", "-P", str(gate.proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "no managed redis-server"
        for c in children:
            cuid = [ln.split()[1] for ln in open("/proc/%s/status" % c) if ln.startswith("Uid:")][0]
            assert cuid == str(nobody.pw_uid)
        assert (work / "var").stat().st_uid == nobody.pw_uid
        conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
        assert ask(conn, app, gate.port)[0] == 200
        conn.close()
    finally:
        gate.stop()
        fake.stop()
        shutil.rmtree(work, ignore_errors=True)
    assert gate.proc.returncode == 0, gate.log_text()[-2000:]


def test_redis_that_lost_its_data_is_reported_loudly(gw):
    gate = gw.sesgate
    harness.wait_log(gate, "event=start ")
    time.sleep(1.5)  # the epoch is stored and seen
    assert "redis_data_lost" not in gate.log_text()
    sock = gw.workdir / "var" / "redis" / "redis.sock"
    out = subprocess.run(["redis-cli", "-s", str(sock), "FLUSHALL"], capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "OK", out
    harness.wait_log(gate, "event=redis_data_lost", timeout=5)
    line = [ln for ln in gate.log_text().splitlines() if "event=redis_data_lost" in ln][0]
    assert "level=error" in line and "must be sent again" in line
    status, _, body = harness.http("GET", gate.admin_url + "/metrics")
    assert status == 200
    assert "sesgate_redis_data_lost_total 1" in body.decode()
    # Once said, it is not repeated: the new epoch holds.
    time.sleep(2.5)
    assert gate.log_text().count("event=redis_data_lost") == 1
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
    assert ask(conn, gw.creds("app"), gate.port)[0] == 200
    conn.close()


def sent_recipients(fake):
    """Every To address of a send the fake upstream accepted."""
    out = []
    for r in fake.requests():
        if r.get("action") == "SendEmail" and r.get("status") == 200:
            out.extend(v for k, v in harness.decoded_body(r).items() if k.startswith("Destination.ToAddresses"))
    return out


def test_disk_full_under_data_dir(tmp_path):
    """data_dir on a 24 MB tmpfs, filled up: Redis can no longer append to its
    log, so new batches get ServiceUnavailable (nothing is accepted that
    could not be kept); once space is back, sending works again and every
    batch that was accepted is delivered, each recipient once."""
    assert os.geteuid() == 0, "mounting a small file system needs root: run the suite as root, as CI does"
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    upstream = harness.Creds("upstream", harness.new_access_key("AKIA"), harness.new_secret())
    fake = harness.FakeSES(tmp_path / "fake", upstream).start()
    app = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
    gate = harness.RunSesgate(mnt, fake.url, upstream,
                      {"app": {"creds": app, "allow_actions": ["*"], "allow_from": ["*"]}},
                      extra={"send": {"first_recipient": "queue", "rate": "off"}})
    gate.log_path = tmp_path / "sesgate.log"
    try:
        gate.start()
        gw = types.SimpleNamespace(endpoint=gate.url, region=harness.REGION, creds=lambda name: app)
        ses = harness.boto3_client(gw, "ses")

        def batch(tag):
            to = ["%s-%d@example.net" % (tag, i) for i in range(3)]
            ses.send_email(Source=harness.SENDER, Destination={"ToAddresses": to},
                           Message={"Subject": {"Data": tag}, "Body": {"Text": {"Data": "x"}}})
            return to

        accepted = batch("before")
        with open(mnt / "fill", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        refused = None
        for k in range(40):
            try:
                accepted += batch("full%d" % k)
            except botocore.exceptions.ClientError as e:
                refused = e
                break
            time.sleep(0.05)
        assert refused is not None, "batches were still accepted on a full disk"
        err = refused.response["Error"]
        print("\ndisk full: %d batches accepted after the disk filled, then %s %r"
              % (k, err["Code"], err["Message"]))
        assert (err["Code"], refused.response["ResponseMetadata"]["HTTPStatusCode"]) == ("ServiceUnavailable", 503), err
        os.unlink(mnt / "fill")
        deadline = time.monotonic() + 20
        while True:
            try:
                accepted += batch("after")
                break
            except botocore.exceptions.ClientError:
                assert time.monotonic() < deadline, "sending did not come back after space was freed"
                time.sleep(0.5)
        deadline = time.monotonic() + 20
        while sorted(sent_recipients(fake)) != sorted(accepted) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(sent_recipients(fake)) == sorted(accepted)
        assert gate.proc.poll() is None
    finally:
        gate.stop()
        fake.stop()
        subprocess.run(["umount", "-l", str(mnt)])
    log = gate.log_text()
    assert "AddressSanitizer" not in log and "runtime error" not in log
