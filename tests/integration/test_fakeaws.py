"""Checks of the credential fakes (fakeaws.py) against the real SDK: botocore's
own credential providers must get credentials from them, and the fake SES
upstream must accept those credentials until they expire. This is what shows
the fakes answer as AWS documents."""

import functools
import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError, EndpointConnectionError

import fakeaws
import harness


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """An environment where botocore finds no credentials of its own: no
    AWS_* variables, empty shared files, IMDS off unless a test turns it on."""
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", harness.REGION)
    return monkeypatch


@pytest.fixture(scope="module")
def ses(tmp_path_factory):
    """A fake SES upstream that knows no key but the ones the fakes issue."""
    fake = harness.FakeSES(tmp_path_factory.mktemp("fakeaws-ses"),
                           harness.Creds("static", harness.new_access_key("AKIA"), harness.new_secret())).start()
    yield fake
    fake.stop()


@pytest.fixture
def started():
    """Fakes a test starts (append them), stopped afterwards."""
    fakes = []
    yield fakes
    for f in fakes:
        f.stop()


def send_with(ses, creds):
    """One SES GetSendQuota and one SendEmail signed with creds (a botocore
    Credentials object or frozen credentials) at the fake SES."""
    client = boto3.client("ses", region_name=harness.REGION, endpoint_url=ses.url,
                          aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                          aws_session_token=creds.token)
    client.get_send_quota()
    return client.send_email(Source="a@example.com", Destination={"ToAddresses": ["b@example.com"]},
                             Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}})["MessageId"]


def frozen(session):
    creds = session.get_credentials()
    assert creds is not None, "botocore found no credentials"
    return creds, creds.get_frozen_credentials()


def test_imds_v2_with_botocore(aws_env, ses, started):
    imds = fakeaws.FakeIMDS(role="web-role", sinks=[ses]).start()
    started.append(imds)
    aws_env.setenv("AWS_EC2_METADATA_DISABLED", "false")
    aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url + "/")
    creds, f = frozen(boto3.Session())
    assert creds.method == "iam-role"
    issued = imds.issued[-1]
    assert (f.access_key, f.secret_key, f.token) == (issued["AccessKeyId"], issued["SecretAccessKey"],
                                                     issued["Token"])
    assert send_with(ses, f)
    reqs = imds.requests()
    assert [(r["method"], r["path"], r["status"]) for r in reqs] == [
        ("PUT", "/latest/api/token", 200),
        ("GET", "/latest/meta-data/iam/security-credentials/", 200),
        ("GET", "/latest/meta-data/iam/security-credentials/web-role", 200)]
    token = reqs[1]["headers"]["x-aws-ec2-metadata-token"]
    assert reqs[2]["headers"]["x-aws-ec2-metadata-token"] == token
    assert 1 <= int(reqs[0]["headers"]["x-aws-ec2-metadata-token-ttl-seconds"]) <= 21600


def test_imds_refuses_v1_and_bad_token_requests(ses, started):
    imds = fakeaws.FakeIMDS(sinks=[ses]).start()
    started.append(imds)
    base = imds.url + "/latest/meta-data/iam/security-credentials/"
    assert harness.http("GET", base)[0] == 401  # IMDSv1: no token
    assert harness.http("GET", base, headers={"X-aws-ec2-metadata-token": "made-up"})[0] == 401
    assert harness.http("PUT", imds.url + "/latest/api/token")[0] == 400  # no TTL
    assert harness.http("PUT", imds.url + "/latest/api/token",
                        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21601"})[0] == 400
    assert harness.http("PUT", imds.url + "/latest/api/token",
                        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.1"})[0] == 403
    status, headers, token = harness.http("PUT", imds.url + "/latest/api/token",
                                          headers={"X-aws-ec2-metadata-token-ttl-seconds": "1"})
    assert status == 200 and headers["X-aws-ec2-metadata-token-ttl-seconds"] == "1"
    hdr = {"X-aws-ec2-metadata-token": token.decode()}
    status, _, body = harness.http("GET", base + "sesgate-role", headers=hdr)
    assert status == 200
    doc = json.loads(body)
    assert set(doc) == {"Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    assert doc["Code"] == "Success" and doc["Type"] == "AWS-HMAC" and doc["AccessKeyId"].startswith("ASIA")
    assert harness.http("GET", base + "other-role", headers=hdr)[0] == 404
    time.sleep(1.2)
    assert harness.http("GET", base, headers=hdr)[0] == 401  # the token's TTL passed
    assert not imds.issued[1:]  # nothing was issued without a valid token


@pytest.mark.parametrize("pod_identity", [False, True])
def test_container_with_token_with_botocore(aws_env, ses, started, pod_identity):
    token = fakeaws.new_token(24)
    box = fakeaws.FakeContainer(token=token, pod_identity=pod_identity, sinks=[ses]).start()
    started.append(box)
    aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", box.full_uri)
    aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
    creds, f = frozen(boto3.Session())
    assert creds.method == "container-role"
    assert f.access_key == box.issued[-1]["AccessKeyId"] and f.token == box.issued[-1]["Token"]
    assert box.requests()[-1]["headers"]["authorization"] == token
    assert send_with(ses, f)
    aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-the-token")
    with pytest.raises(CredentialRetrievalError):
        boto3.Session().get_credentials()
    assert box.requests()[-1]["status"] == 401


def test_container_without_token_with_botocore(aws_env, ses, started):
    box = fakeaws.FakeContainer(sinks=[ses]).start()
    started.append(box)
    aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", box.full_uri)
    creds, f = frozen(boto3.Session())
    assert f.access_key == box.issued[-1]["AccessKeyId"]
    assert "authorization" not in box.requests()[-1]["headers"]
    assert send_with(ses, f)


def sts_endpoint(session, provider_name, sts):
    """Point the STS client a botocore provider makes at the fake (this
    botocore predates AWS_ENDPOINT_URL_STS)."""
    provider = session._session.get_component("credential_provider").get_provider(provider_name)
    provider._client_creator = functools.partial(provider._client_creator, endpoint_url=sts.url)


def test_sts_assume_role_from_source_profile_with_botocore(aws_env, ses, started, tmp_path):
    arn = "arn:aws:iam::123456789012:role/ses-sender"
    sts = fakeaws.FakeSTS(roles={arn: {"external_id": "ext-42"}}, sinks=[ses]).start()
    started.append(sts)
    source = harness.Creds("source", harness.new_access_key("AKIA"), harness.new_secret())
    sts.add_key(source.access_key, source.secret)
    (tmp_path / "config").write_text(
        "[profile sender]\nrole_arn = %s\nsource_profile = base\nexternal_id = ext-42\n"
        "role_session_name = it-session\n\n[profile base]\naws_access_key_id = %s\n"
        "aws_secret_access_key = %s\n" % (arn, source.access_key, source.secret))
    session = boto3.Session(profile_name="sender")
    sts_endpoint(session, "assume-role", sts)
    creds, f = frozen(session)
    assert f.access_key == sts.issued[-1]["AccessKeyId"] and f.token == sts.issued[-1]["Token"]
    rec = sts.requests()[-1]
    assert rec["verified"] and rec["access_key"] == source.access_key and rec["status"] == 200
    assert rec["form"]["Action"] == "AssumeRole" and rec["form"]["Version"] == "2011-06-15"
    assert rec["form"]["ExternalId"] == "ext-42" and rec["form"]["RoleSessionName"] == "it-session"
    assert "/sts/aws4_request" in rec["headers"]["authorization"]
    assert send_with(ses, f)


def test_sts_errors_with_botocore(ses, started):
    arn = "arn:aws:iam::123456789012:role/ses-sender"
    sts = fakeaws.FakeSTS(roles={arn: {"external_id": "ext-42"}}, sinks=[ses]).start()
    started.append(sts)
    known = harness.Creds("source", harness.new_access_key("AKIA"), harness.new_secret())
    sts.add_key(known.access_key, known.secret)

    def client(access_key, secret, token=None):
        return boto3.client("sts", region_name=harness.REGION, endpoint_url=sts.url, aws_access_key_id=access_key,
                            aws_secret_access_key=secret, aws_session_token=token)

    cases = [
        (client(known.access_key, harness.new_secret()), {"ExternalId": "ext-42"}, "SignatureDoesNotMatch", 403),
        (client(harness.new_access_key("AKIA"), known.secret), {"ExternalId": "ext-42"}, "InvalidClientTokenId",
         403),
        (client(known.access_key, known.secret), {}, "AccessDenied", 403),
        (client(known.access_key, known.secret), {"ExternalId": "wrong"}, "AccessDenied", 403),
    ]
    for c, extra, code, status in cases:
        with pytest.raises(ClientError) as e:
            c.assume_role(RoleArn=arn, RoleSessionName="s1", **extra)
        assert (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == \
            (code, status)
    with pytest.raises(ClientError) as e:
        client(known.access_key, known.secret).assume_role(RoleArn=arn + "-other", RoleSessionName="s1",
                                                           ExternalId="ext-42")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert not sts.issued
    # expired source credentials are refused as AWS refuses them
    sts.add_key("ASIAEXPIREDEXAMPLE01", known.secret, "tok", time.time() - 1)
    with pytest.raises(ClientError) as e:
        client("ASIAEXPIREDEXAMPLE01", known.secret, "tok").assume_role(RoleArn=arn, RoleSessionName="s1",
                                                                        ExternalId="ext-42")
    assert e.value.response["Error"]["Code"] == "ExpiredToken"
    out = client(known.access_key, known.secret).assume_role(RoleArn=arn, RoleSessionName="s1",
                                                             ExternalId="ext-42", DurationSeconds=900)
    assert out["Credentials"]["AccessKeyId"] == sts.issued[-1]["AccessKeyId"]
    assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/ses-sender/s1"


def test_sts_web_identity_with_botocore(aws_env, ses, started, tmp_path):
    arn = "arn:aws:iam::123456789012:role/irsa-sender"
    jwt = "eyJhbGciOiJSUzI1NiJ9." + fakeaws.new_token(60).replace("=", "")
    sts = fakeaws.FakeSTS(roles={arn: {}}, web_identity_token=jwt, sinks=[ses]).start()
    started.append(sts)
    token_file = tmp_path / "token"
    token_file.write_text(jwt)
    aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    aws_env.setenv("AWS_ROLE_ARN", arn)
    aws_env.setenv("AWS_ROLE_SESSION_NAME", "pod-session")
    session = boto3.Session()
    sts_endpoint(session, "assume-role-with-web-identity", sts)
    creds, f = frozen(session)
    assert f.access_key == sts.issued[-1]["AccessKeyId"]
    rec = sts.requests()[-1]
    assert "authorization" not in rec["headers"]
    assert rec["form"]["Action"] == "AssumeRoleWithWebIdentity" and rec["form"]["WebIdentityToken"] == jwt
    assert rec["form"]["RoleSessionName"] == "pod-session"
    assert send_with(ses, f)
    token_file.write_text("eyJ.wrong.token")
    session = boto3.Session()
    sts_endpoint(session, "assume-role-with-web-identity", sts)
    with pytest.raises(ClientError) as e:
        session.get_credentials().get_frozen_credentials()
    assert e.value.response["Error"]["Code"] == "InvalidIdentityToken"


def test_fakeses_refuses_expired_temporary_credentials(ses, started):
    box = fakeaws.FakeContainer(sinks=[ses], lifetime=2).start()
    started.append(box)
    _, _, body = harness.http("GET", box.full_uri)
    doc = json.loads(body)
    creds = type("C", (), {"access_key": doc["AccessKeyId"], "secret_key": doc["SecretAccessKey"],
                           "token": doc["Token"]})
    assert send_with(ses, creds)
    wrong = type("C", (), {"access_key": doc["AccessKeyId"], "secret_key": doc["SecretAccessKey"],
                           "token": "another-token"})
    with pytest.raises(ClientError) as e:
        send_with(ses, wrong)
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    time.sleep(max(0.0, box.issued[-1]["expiration"] - time.time()) + 0.2)
    with pytest.raises(ClientError) as e:
        send_with(ses, creds)
    assert (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("ExpiredToken", 403)
    refused = ses.take_refused()
    assert [r["verify_error"]["kind"] for r in refused] == ["token", "expired_token"]


def test_fail_for_a_time(aws_env, ses, started):
    box = fakeaws.FakeContainer(sinks=[ses]).start()
    sts = fakeaws.FakeSTS(sinks=[ses]).start()
    started.extend([box, sts])
    aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", box.full_uri)
    box.fail(5.0, "refuse")  # longer than botocore's 3 attempts 1 s apart
    sts.fail(5.0, "500")
    with pytest.raises((CredentialRetrievalError, EndpointConnectionError)):
        boto3.Session().get_credentials()
    assert not box.requests()  # refused: nothing reached it
    status, _, body = harness.http("POST", sts.url + "/", b"Action=AssumeRole&Version=2011-06-15",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 500 and b"<ErrorResponse" in body and b"InternalFailure" in body
    harness.wait_for(lambda: not box.failing() and not sts.failing(), timeout=10)
    time.sleep(0.2)
    _, f = frozen(boto3.Session())
    assert f.access_key == box.issued[-1]["AccessKeyId"]
    assert [r["status"] for r in box.requests()] == [200]
