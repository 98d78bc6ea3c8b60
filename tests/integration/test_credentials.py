"""The AWS default credential chain end to end: `sesgate run` with no static
upstream keys takes its credentials from each source of the chain (the
environment, a profile with role_arn + source_profile, web identity, the
ECS / EKS Pod Identity container endpoint, EC2 IMDSv2), served by the fakes
of fakeaws.py, and the fake SES upstream accepts only the keys those fakes
issued, until they expire. An [upstream] role_arn is assumed on top with a
signed AssumeRole. Credentials that live 20 s are refreshed while a batch
drains; a source that fails for 30 s loses nothing and nothing is sent with
expired keys (the fake SES would refuse it, and every refusal fails the test:
conftest.py); /readyz says so meanwhile. The start line and `sesgate check`
name the source and no log line holds a secret."""

import subprocess
import time

import pytest
from botocore.exceptions import ClientError

import fakeaws
import harness

pytestmark = pytest.mark.needs_sesgate

PREFIX = "sesgate-it"
DLQ = "%s:{%s}:dlq" % (PREFIX, PREFIX)
ROLE = "arn:aws:iam::123456789012:role/ses-sender"


@pytest.fixture(scope="module")
def ses(tmp_path_factory):
    """The fake SES upstream. Its own key is never handed to sesgate: it
    accepts only what the credential fakes issue (or a test adds)."""
    if harness.direct_mode():
        pytest.skip("needs sesgate: skipped with SESGATE_DIRECT=1")
    fake = harness.FakeSES(tmp_path_factory.mktemp("creds-ses"),
                           harness.Creds("unused", harness.new_access_key("AKIA"), harness.new_secret())).start()
    yield fake
    fake.stop()


class Chain:
    """One test's fakes, its sesgate and every secret they handed out."""

    def __init__(self, ses, workdir):
        self.ses = ses
        self.workdir = workdir
        self.fakes = []
        self.gate = None
        self.secrets = []  # static secrets and tokens the test made itself
        self.client = harness.Creds("app", harness.new_access_key("SGAPP"), harness.new_secret())
        self.env = {
            "HOME": str(workdir),
            "AWS_CONFIG_FILE": str(workdir / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def add(self, fake):
        self.fakes.append(fake.start())
        return fake

    def start(self, upstream=None, send=None):
        """sesgate run, the fake SES as its upstream, the chain's environment."""
        extra = {"send": dict({"first_recipient": "queue", "rate": "20", "concurrency": "4",
                               "max_attempts": "5"}, **(send or {}))}
        if upstream:
            extra["upstream"] = upstream
        policies = {"app": {"creds": self.client, "allow_actions": ["*"], "allow_from": ["*"]}}
        self.gate = harness.RunSesgate(self.workdir, self.ses.url, None, policies, extra=extra, env=self.env)
        self.gate.start()
        self.gw = harness.Gateway(self.gate.url, harness.REGION, False, self.ses, self.gate, None,
                                  {"app": self.client}, self.workdir)
        return self

    def check(self):
        """`sesgate check` on the same configuration and environment: its
        output (stdout and stderr) after a zero exit."""
        out = subprocess.run([str(harness.sesgate_bin()), "check", "-c", str(self.gate.config_path)],
                             capture_output=True, text=True, env=harness.clean_env(self.env), timeout=30)
        return harness.assert_exit((out.returncode, out.stdout + out.stderr), 0)

    def issued_keys(self):
        return {c["AccessKeyId"] for f in self.fakes for c in f.issued}

    def every_secret(self):
        out = list(self.secrets)
        for f in self.fakes:
            out.extend(f.secrets_issued())
            if getattr(f, "token", None):
                out.append(f.token)
            if getattr(f, "web_identity_token", None):
                out.append(f.web_identity_token)
            if isinstance(f, fakeaws.FakeIMDS):
                out.extend(f.tokens)
        return out

    def assert_no_secret_logged(self, *texts):
        """No secret, token or Authorization header in sesgate's log or texts."""
        log = self.gate.log_text() if self.gate else ""
        for text in (log,) + texts:
            for s in self.every_secret():
                assert s not in text, "a secret or token appears in sesgate's output"
            assert "AWS4-HMAC-SHA256 Credential" not in text
            harness.assert_no_sanitizer(text)

    def stop(self):
        if self.gate:
            self.gate.stop()
            self.assert_no_secret_logged()
        for f in self.fakes:
            f.stop()


@pytest.fixture
def chain(ses, tmp_path):
    ses.reset()
    c = Chain(ses, tmp_path)
    yield c
    c.stop()


def send(chain, to, subject="credential chain"):
    """SendEmail through sesgate to the To addresses; the batch is queued."""
    client = harness.boto3_client(chain.gw, "ses")
    return client.send_email(Source=harness.SENDER, Destination={"ToAddresses": list(to)},
                             Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": "hello"}}})


def sends(ses, since=0):
    """The SendEmail copies the fake SES received and accepted."""
    return [r for r in ses.requests(since) if r["action"] == "SendEmail" and r["status"] == 200]


def deliver(chain, n, timeout=30.0, tag="to"):
    """Send n recipients and wait until the fake SES accepted each once."""
    to = ["%s%03d@example.net" % (tag, i) for i in range(n)]
    send(chain, to)
    recs = harness.wait_records(chain.ses, n, timeout=timeout,
                                pred=lambda r: r["action"] == "SendEmail" and r["status"] == 200)
    got = sorted(a for r in recs for a in r["recipients"])
    assert got == sorted(to), harness._summary(chain.ses.requests())
    return recs


def assert_source(chain, description):
    """The start line and `sesgate check` name the source as description."""
    harness.wait_log(chain.gate, "event=start ")
    starts = [ln for ln in chain.gate.log_text().splitlines() if "event=start " in ln]
    assert starts and description in starts[-1], starts[-1:]
    out = chain.check()
    assert "upstream default credentials: %s" % description in out, out[-2000:]
    chain.assert_no_secret_logged(out)


def test_environment(chain):
    key, secret, token = harness.new_access_key("ASIA"), harness.new_secret(), fakeaws.new_token()
    chain.secrets += [secret, token]
    chain.ses.add_key(key, secret, token, time.time() + 3600)
    chain.env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token)
    chain.start()
    recs = deliver(chain, 3)
    assert {r["access_key"] for r in recs} == {key}
    assert all(r["headers"]["x-amz-security-token"] == token for r in recs)
    assert_source(chain, "environment")


def test_profile_role_arn_with_source_profile(chain):
    sts = chain.add(fakeaws.FakeSTS(roles={ROLE: {"external_id": "brand-7"}}, sinks=[chain.ses]))
    base = harness.Creds("base", harness.new_access_key("AKIA"), harness.new_secret())
    chain.secrets.append(base.secret)
    sts.add_key(base.access_key, base.secret)
    (chain.workdir / "aws-credentials").write_text(
        "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (base.access_key, base.secret))
    (chain.workdir / "aws-config").write_text(
        "[profile sender]\nrole_arn = %s\nsource_profile = base\nexternal_id = brand-7\n" % ROLE)
    chain.env.update(AWS_PROFILE="sender", AWS_ENDPOINT_URL_STS=sts.url)
    chain.start()
    recs = deliver(chain, 3)
    assert {r["access_key"] for r in recs} <= {c["AccessKeyId"] for c in sts.issued}
    calls = sts.requests()
    assert calls and all(c["verified"] and c["access_key"] == base.access_key for c in calls)
    assert calls[0]["form"]["Action"] == "AssumeRole" and calls[0]["form"]["RoleArn"] == ROLE
    assert calls[0]["form"]["ExternalId"] == "brand-7"
    assert "/%s/sts/aws4_request" % harness.REGION in calls[0]["headers"]["authorization"]
    assert_source(chain, "profile sender + assume role %s" % ROLE)


def test_web_identity(chain):
    jwt = "eyJhbGciOiJSUzI1NiJ9." + fakeaws.new_token(60).replace("=", "").replace("+", "-").replace("/", "_")
    sts = chain.add(fakeaws.FakeSTS(roles={ROLE: {}}, web_identity_token=jwt, sinks=[chain.ses]))
    token_file = chain.workdir / "eks-token"
    token_file.write_text(jwt)
    chain.env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_ARN=ROLE,
                     AWS_ROLE_SESSION_NAME="sesgate-pod", AWS_ENDPOINT_URL_STS=sts.url)
    chain.start()
    recs = deliver(chain, 3)
    assert {r["access_key"] for r in recs} <= {c["AccessKeyId"] for c in sts.issued}
    call = sts.requests()[0]
    assert call["form"]["Action"] == "AssumeRoleWithWebIdentity" and call["form"]["WebIdentityToken"] == jwt
    assert call["form"]["RoleSessionName"] == "sesgate-pod" and "authorization" not in call["headers"]
    assert_source(chain, "web identity %s" % ROLE)


@pytest.mark.parametrize("how", ["ecs-no-token", "ecs-token", "pod-identity-token-file"])
def test_container(chain, how):
    token = None if how == "ecs-no-token" else fakeaws.new_token(32)
    box = chain.add(fakeaws.FakeContainer(token=token, pod_identity=how.startswith("pod"), sinks=[chain.ses]))
    chain.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = box.full_uri
    token_file = chain.workdir / "pod-token"
    if how == "ecs-token":
        chain.env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
    elif how == "pod-identity-token-file":
        token_file.write_text(token)
        chain.env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(token_file)
    chain.start()
    recs = deliver(chain, 3)
    assert {r["access_key"] for r in recs} <= chain.issued_keys()
    asked = box.requests()
    assert asked and all(r["status"] == 200 for r in asked)
    assert all(r["headers"].get("authorization") == token for r in asked)
    assert_source(chain, "container")


@pytest.mark.parametrize("down_at_start", [False, True])
def test_imds_v2(chain, down_at_start):
    """IMDSv2 only; with the service down at start (500 for 4 s) sesgate
    retries the token, never asks without one, and sends once it answers."""
    imds = chain.add(fakeaws.FakeIMDS(role="ec2-ses-role", sinks=[chain.ses]))
    chain.env.update(AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    if down_at_start:
        imds.fail(4, "500")
    chain.start()
    if down_at_start:
        asked = imds.requests()
        assert asked and all(r["status"] == 500 for r in asked)
        assert all(r["method"] == "PUT" or "x-aws-ec2-metadata-token" in r["headers"] for r in asked)
        harness.wait_for(lambda: any(r["status"] == 200 for r in imds.requests()), timeout=30)
    recs = deliver(chain, 3)
    assert {r["access_key"] for r in recs} <= chain.issued_keys()
    asked = imds.requests()
    imds_up = min(r["time"] for r in asked if r["status"] == 200)
    assert asked[0]["method"] == "PUT" and asked[0]["path"] == "/latest/api/token"
    assert all(r["status"] == (500 if r["time"] < imds_up else 200) for r in asked), \
        [(r["method"], r["path"], r["status"]) for r in asked]
    assert all("x-aws-ec2-metadata-token" in r["headers"] for r in asked if r["method"] == "GET")
    assert {r["path"] for r in asked if r["method"] == "GET"} == {
        "/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials/ec2-ses-role"}
    assert_source(chain, "instance role")


def test_role_arn_on_top_of_container(chain):
    sts = chain.add(fakeaws.FakeSTS(roles={ROLE: {"external_id": "ext-91"}}, sinks=[chain.ses]))
    box = chain.add(fakeaws.FakeContainer(sinks=[sts]))  # the task role may only assume ROLE
    chain.env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=box.full_uri, AWS_ENDPOINT_URL=sts.url)
    chain.start(upstream={"role_arn": ROLE, "external_id": "ext-91", "session_name": "mail-eu"})
    recs = deliver(chain, 3)
    assert {r["access_key"] for r in recs} <= {c["AccessKeyId"] for c in sts.issued}
    calls = sts.requests()
    assert calls and all(c["status"] == 200 and c["verified"] for c in calls)
    assert {c["access_key"] for c in calls} <= {c["AccessKeyId"] for c in box.issued}
    form = calls[0]["form"]
    assert (form["Action"], form["RoleArn"], form["ExternalId"], form["RoleSessionName"]) == \
        ("AssumeRole", ROLE, "ext-91", "mail-eu")
    assert_source(chain, "container + assume role %s" % ROLE)


def gaps(recs):
    """The seconds between consecutive accepted sends (the fake's clock)."""
    ts = sorted(r["t"] for r in recs)
    return [b - a for a, b in zip(ts, ts[1:])]


def readyz(chain):
    status, _, body = harness.http("GET", chain.gate.admin_url + "/readyz")
    return status, body.decode(errors="replace")


def test_refresh_during_drain(chain):
    """Credentials living 20 s, refreshed ahead of expiry while 300 copies
    drain at 10/s: every copy accepted (none refused as expired), sent
    with more than one key, and the drain never stalls."""
    box = chain.add(fakeaws.FakeContainer(sinks=[chain.ses], lifetime=20))
    chain.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = box.full_uri
    chain.start(send={"rate": "10"})
    to = ["drain%03d@example.net" % i for i in range(300)]
    for i in range(0, 300, 100):
        send(chain, to[i:i + 100])
    recs = harness.wait_records(chain.ses, 300, timeout=60,
                                pred=lambda r: r["action"] == "SendEmail" and r["status"] == 200)
    assert sorted(a for r in recs for a in r["recipients"]) == sorted(to)
    assert not chain.ses.take_refused()
    keys = [r["access_key"] for r in sorted(recs, key=lambda r: r["t"])]
    assert set(keys) <= chain.issued_keys() and len(set(keys)) >= 2, "no refresh during a 30 s drain"
    worst = max(gaps(recs))
    assert worst < 1.0, "the drain stalled %.2f s (at 10/s)" % worst
    assert int(chain.gate.redis("XLEN", DLQ) or 0) == 0
    # refreshed ahead of expiry, not on every send: about every 10 s
    assert 2 <= len(box.requests()) <= 8, len(box.requests())
    assert readyz(chain)[0] == 200
    assert "credentials_refreshed" in chain.gate.log_text()


@pytest.mark.parametrize("mode", ["500", "refuse"])
def test_source_failing_30s(chain, mode):
    """The container endpoint fails for 30 s while the credentials it gave
    (20 s) run out: sends stop at expiry and stay queued, /readyz says the
    credentials expired, and every copy goes out once the source is back."""
    box = chain.add(fakeaws.FakeContainer(sinks=[chain.ses], lifetime=20))
    chain.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = box.full_uri
    chain.start(send={"rate": "10"})
    assert harness.wait_for(lambda: box.issued and harness.http("GET", chain.gate.admin_url + "/readyz")[0] == 200,
                            timeout=10), "no first credentials"
    first = box.issued[-1]
    box.fail(30, mode)
    to = ["fail%03d@example.net" % i for i in range(300)]
    for i in range(0, 300, 100):
        send(chain, to[i:i + 100])
    harness.wait_for(lambda: readyz(chain)[0] == 503, timeout=30, step=0.2)
    status, text = readyz(chain)
    assert status == 503 and "upstream credentials expired" in text, text
    held = len(sends(chain.ses))
    assert held < 300
    assert all(r["time"] < first["expiration"] for r in sends(chain.ses))
    time.sleep(3)
    assert len(sends(chain.ses)) == held, "sent while the credentials were expired"
    recs = harness.wait_records(chain.ses, 300, timeout=120,
                                pred=lambda r: r["action"] == "SendEmail" and r["status"] == 200)
    assert sorted(a for r in recs for a in r["recipients"]) == sorted(to), "lost or sent twice"
    assert not chain.ses.take_refused(), "a copy was sent with expired keys"
    assert int(chain.gate.redis("XLEN", DLQ) or 0) == 0
    for r in recs:
        issued = next(c for f in chain.fakes for c in f.issued if c["AccessKeyId"] == r["access_key"])
        assert r["time"] < issued["expiration"]
    harness.wait_for(lambda: readyz(chain)[0] == 200, timeout=10)
    assert "credentials_refresh_failed" in chain.gate.log_text()


def test_check_without_any_source_fails(chain, tmp_path):
    """No static keys and no source configured: `sesgate check` says which
    sources it looked for and exits non-zero, with no secret."""
    policies = {"app": {"creds": chain.client, "allow_actions": ["*"], "allow_from": ["*"]}}
    gate = harness.RunSesgate(tmp_path, chain.ses.url, None, policies, env=chain.env)
    gate.config_path.write_text(gate.config_text())
    out = subprocess.run([str(harness.sesgate_bin()), "check", "-c", str(gate.config_path)],
                         capture_output=True, text=True, env=harness.clean_env(chain.env), timeout=30)
    assert out.returncode != 0
    assert "no upstream credentials" in out.stderr, out.stderr
    assert chain.client.secret not in out.stdout + out.stderr


@pytest.mark.parametrize("credential_source", ["EcsContainer", "Ec2InstanceMetadata"])
def test_profile_role_arn_with_credential_source(chain, credential_source):
    """A profile's role_arn assumed with the credentials of its
    credential_source: the container endpoint or the instance role."""
    sts = chain.add(fakeaws.FakeSTS(roles={ROLE: {}}, sinks=[chain.ses]))
    if credential_source == "EcsContainer":
        source = chain.add(fakeaws.FakeContainer(sinks=[sts]))
        chain.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = source.full_uri
    else:
        source = chain.add(fakeaws.FakeIMDS(sinks=[sts]))
        chain.env.update(AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=source.url)
    (chain.workdir / "aws-config").write_text(
        "[profile ci]\nrole_arn = %s\ncredential_source = %s\nrole_session_name = ci-run\n"
        % (ROLE, credential_source))
    chain.env.update(AWS_PROFILE="ci", AWS_ENDPOINT_URL_STS=sts.url)
    chain.start()
    recs = deliver(chain, 2)
    assert {r["access_key"] for r in recs} <= {c["AccessKeyId"] for c in sts.issued}
    calls = sts.requests()
    assert calls and calls[0]["verified"] and calls[0]["form"]["RoleSessionName"] == "ci-run"
    assert calls[0]["access_key"] in {c["AccessKeyId"] for c in source.issued}
    assert_source(chain, "profile ci")


def test_assume_role_refused_keeps_sends_queued(chain):
    """STS refuses the AssumeRole (the trust policy wants another
    ExternalId): no credentials, so /readyz says so, a pass-through call
    gets ServiceUnavailable, queued copies wait (no attempt, no dead letter),
    and all go out once STS grants the role."""
    sts = chain.add(fakeaws.FakeSTS(roles={ROLE: {"external_id": "the-right-one"}}, sinks=[chain.ses]))
    box = chain.add(fakeaws.FakeContainer(sinks=[sts]))
    chain.env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=box.full_uri, AWS_ENDPOINT_URL_STS=sts.url)
    chain.start(upstream={"role_arn": ROLE, "external_id": "a-wrong-one"})
    harness.wait_for(lambda: any(r.get("error") == "AccessDenied" for r in sts.requests()), timeout=10)
    status, text = readyz(chain)
    assert status == 503 and "upstream credentials not yet available" in text, text
    client = harness.boto3_client(chain.gw, "ses")
    with pytest.raises(ClientError) as e:
        client.get_send_quota()
    assert e.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    to = ["wait%d@example.net" % i for i in range(5)]
    send(chain, to)
    time.sleep(3)
    assert not chain.ses.requests(), "something reached SES without credentials"
    assert int(chain.gate.redis("XLEN", DLQ) or 0) == 0
    assert "credentials_refresh_failed" in chain.gate.log_text()
    sts.roles[ROLE] = {"external_id": "a-wrong-one"}  # the trust policy is fixed
    recs = harness.wait_records(chain.ses, 5, timeout=90,
                                pred=lambda r: r["action"] == "SendEmail" and r["status"] == 200)
    assert sorted(a for r in recs for a in r["recipients"]) == sorted(to)
    assert int(chain.gate.redis("XLEN", DLQ) or 0) == 0
    harness.wait_for(lambda: readyz(chain)[0] == 200, timeout=10)


def test_token_files_read_again_at_each_refresh(chain):
    """The web identity token file is read at every fetch: the kubelet
    rotates it, and the old token is refused once it did."""
    first = "eyJ0eXAiOiJKV1QifQ.first." + fakeaws.new_token(30).replace("=", "")
    sts = chain.add(fakeaws.FakeSTS(roles={ROLE: {}}, web_identity_token=first, sinks=[chain.ses], lifetime=20))
    token_file = chain.workdir / "eks-token"
    token_file.write_text(first)
    chain.secrets.append(first)
    chain.env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_ARN=ROLE, AWS_ENDPOINT_URL_STS=sts.url)
    chain.start()
    deliver(chain, 2, tag="before")
    second = "eyJ0eXAiOiJKV1QifQ.second." + fakeaws.new_token(30).replace("=", "")
    token_file.write_text(second)
    sts.web_identity_token = second
    n = len(sts.requests())
    harness.wait_for(lambda: len(sts.requests()) > n, timeout=30)
    chain.ses.reset()
    deliver(chain, 2, tag="after")
    later = sts.requests()[n:]
    assert later and all(r["form"]["WebIdentityToken"] == second and r["status"] == 200 for r in later)
