"""fakeaws: loopback fakes of the AWS services that hand out credentials.

They follow AWS's documented behaviour, and tests/integration/test_fakeaws.py
checks each one against botocore's own credential providers:

- FakeIMDS: the EC2 instance metadata service, IMDSv2 only. PUT
  /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds (1 to 21600;
  otherwise 400) and answers a token; a PUT carrying X-Forwarded-For is
  refused 403 (IMDS refuses a token request that went through a proxy).
  Every GET needs a valid, unexpired X-aws-ec2-metadata-token, else 401 (no
  IMDSv1 fallback). GET /latest/meta-data/iam/security-credentials/ lists the
  role name; .../security-credentials/ROLE answers the documented JSON: Code,
  LastUpdated, Type "AWS-HMAC", AccessKeyId, SecretAccessKey, Token,
  Expiration.
- FakeContainer: the ECS task credentials endpoint or the EKS Pod Identity
  agent: GET on its path answers AccessKeyId, SecretAccessKey, Token,
  Expiration and RoleArn (ECS) or AccountId (Pod Identity). With a token set,
  the request's Authorization header must equal it, else 401.
- FakeSTS: AssumeRole (form POST, Version 2011-06-15, SigV4 for service sts
  checked by botocore, via fakeses.verify_sigv4, against the keys it was told
  of: the source credentials) and AssumeRoleWithWebIdentity (unsigned; the
  WebIdentityToken must equal the token file's content). Answers are the
  documented XML; errors are ErrorResponse documents.

Every fake issues fresh temporary credentials on each request (AccessKeyId
"ASIA...", a secret made by harness.new_secret so the suite's log scan knows
it, a session token), expiring `lifetime` seconds later, and hands each set to
its sinks: objects with add_key(access_key, secret, session_token,
expiration) such as harness.FakeSES (so the fake SES upstream accepts them
until they expire) or a FakeSTS (so they can sign AssumeRole). Each fake
records every request it was asked (method, path, headers, form, status,
time) and can be told to fail for a time: fail(seconds, "500") answers 500,
fail(seconds, "refuse") closes its listening socket so connections are
refused, and listens again on the same port afterwards.

The fakes run in the test process, each on a thread, on 127.0.0.1.
"""

import base64
import datetime
import json
import secrets
import string
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fakeses
import harness

STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
MAX_IMDS_TTL = 21600


def iso8601(epoch):
    """Epoch seconds as AWS writes an Expiration: 2026-12-08T03:00:00Z."""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_token(nbytes=96):
    """An opaque session token, base64 like AWS's."""
    return base64.b64encode(secrets.token_bytes(nbytes)).decode()


def new_temporary_key():
    """A temporary access key id (AWS starts them with ASIA)."""
    alphabet = string.ascii_uppercase + string.digits
    return "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def xml_escape(text):
    """Escape text for an XML element."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the fake that owns the server."""

    protocol_version = "HTTP/1.1"
    server_version = "Server"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.fake._serve(self, body)

    do_GET = do_PUT = do_POST = do_DELETE = _any

    def answer(self, status, body, content_type="text/plain", headers=None):
        body = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class FakeService:
    """What the three fakes share: the listener, the record, the issued
    credentials, the sinks and the failure switch."""

    name = "fake"

    def __init__(self, sinks=(), lifetime=3600):
        self.sinks = list(sinks)
        self.lifetime = lifetime  # seconds each issued set of credentials lives
        self.lock = threading.Lock()
        self.records = []
        self.issued = []  # every set of credentials handed out, oldest first
        self.port = 0
        self._server = None
        self._thread = None
        self._fail_until = 0.0
        self._fail_mode = None
        self._timer = None

    @property
    def url(self):
        """The fake's base URL (no trailing slash)."""
        return "http://127.0.0.1:%d" % self.port

    def _listen(self):
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _close(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def start(self):
        """Listen on a free loopback port; returns self."""
        self._listen()
        return self

    def stop(self):
        """Stop listening (for good)."""
        if self._timer:
            self._timer.cancel()
        self._close()

    def fail(self, seconds, mode="500"):
        """For the next seconds, answer every request 500 ("500") or refuse
        connections ("refuse": the listening socket is closed, and opened
        again on the same port when the time is up)."""
        assert mode in ("500", "refuse")
        with self.lock:
            self._fail_until = time.monotonic() + seconds
            self._fail_mode = mode
        if mode == "refuse":
            self._close()
            self._timer = threading.Timer(seconds, self._listen)
            self._timer.daemon = True
            self._timer.start()

    def failing(self):
        """True while fail() is in force."""
        with self.lock:
            return time.monotonic() < self._fail_until

    def issue(self, **extra):
        """A fresh set of temporary credentials, handed to every sink."""
        expiration = int(time.time()) + self.lifetime
        creds = {"AccessKeyId": new_temporary_key(), "SecretAccessKey": harness.new_secret(),
                 "Token": new_token(), "Expiration": iso8601(expiration), "expiration": expiration}
        creds.update(extra)
        for sink in self.sinks:
            sink.add_key(creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"], expiration)
        with self.lock:
            self.issued.append(creds)
        return creds

    def secrets_issued(self):
        """Every secret access key and session token handed out so far."""
        with self.lock:
            return [c[k] for c in self.issued for k in ("SecretAccessKey", "Token")]

    def requests(self):
        """A copy of the record: dicts with method, path, headers (lower-case
        names), form (the decoded body of a form POST), status, time."""
        with self.lock:
            return list(self.records)

    def _serve(self, handler, body):
        path, _, query = handler.path.partition("?")
        record = {"time": time.time(), "method": handler.command, "path": path, "query": query,
                  "headers": {k.lower(): v for k, v in handler.headers.items()}, "form": None, "status": None}
        if self.failing():
            status, out, ctype, extra = self.failure_answer()
        else:
            status, out, ctype, extra = self.answer(handler.command, path, query, record["headers"], body, record)
        record["status"] = status
        with self.lock:
            self.records.append(record)
        handler.answer(status, out, ctype, extra)

    def failure_answer(self):
        """What a failing fake answers."""
        return 500, "Internal Server Error", "text/plain", None

    def answer(self, method, path, query, headers, body, record):
        raise NotImplementedError


class FakeIMDS(FakeService):
    """The EC2 instance metadata service, IMDSv2 only (see the module doc)."""

    name = "imds"

    def __init__(self, role="sesgate-role", **kw):
        super().__init__(**kw)
        self.role = role
        self.tokens = {}  # token -> monotonic expiry

    def answer(self, method, path, query, headers, body, record):
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, "", "text/plain", None
            if "x-forwarded-for" in headers:
                return 403, "Forbidden", "text/plain", None
            ttl = headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_IMDS_TTL:
                return 400, "Bad Request", "text/plain", None
            token = new_token(40)
            with self.lock:
                self.tokens[token] = time.monotonic() + int(ttl)
            return 200, token, "text/plain", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        if method != "GET":
            return 405, "", "text/plain", None
        token = headers.get("x-aws-ec2-metadata-token")
        with self.lock:
            valid = token is not None and self.tokens.get(token, 0) > time.monotonic()
        if not valid:
            return 401, "Unauthorized", "text/plain", None
        base = "/latest/meta-data/iam/security-credentials/"
        if path == base:
            return 200, self.role, "text/plain", None
        if path == base + self.role:
            creds = self.issue()
            out = {"Code": "Success", "LastUpdated": iso8601(time.time()), "Type": "AWS-HMAC",
                   "AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
                   "Token": creds["Token"], "Expiration": creds["Expiration"]}
            return 200, json.dumps(out, indent=2), "text/plain", None
        return 404, "Not Found", "text/plain", None


class FakeContainer(FakeService):
    """The ECS container credentials endpoint (path "/v2/credentials/ID",
    RoleArn in the answer) or the EKS Pod Identity agent (pod_identity=True:
    path "/v1/credentials", AccountId in the answer, a token required)."""

    name = "container"

    def __init__(self, token=None, pod_identity=False, path=None, role_arn=None, **kw):
        super().__init__(**kw)
        self.token = token
        self.pod_identity = pod_identity
        self.path = path or ("/v1/credentials" if pod_identity else "/v2/credentials/%s" % uuid.uuid4())
        self.role_arn = role_arn or "arn:aws:iam::%s:role/sesgate-task" % ACCOUNT

    @property
    def full_uri(self):
        """The value of AWS_CONTAINER_CREDENTIALS_FULL_URI for this fake."""
        return self.url + self.path

    def failure_answer(self):
        return 500, json.dumps({"code": "InternalServerError", "message": "failed"}), "application/json", None

    def answer(self, method, path, query, headers, body, record):
        if method != "GET" or path != self.path:
            return 404, json.dumps({"code": "NotFound", "message": "not found"}), "application/json", None
        if self.token is not None and headers.get("authorization") != self.token:
            return 401, json.dumps({"code": "AccessDeniedException", "message": "invalid authorization token"}), \
                "application/json", None
        creds = self.issue()
        out = {"AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
               "Token": creds["Token"], "Expiration": creds["Expiration"]}
        if self.pod_identity:
            out["AccountId"] = ACCOUNT
        else:
            out["RoleArn"] = self.role_arn
        return 200, json.dumps(out), "application/json", None


class StsError(Exception):
    """An STS error answer."""

    def __init__(self, status, code, message, kind="Sender"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


# fakeses.verify_sigv4's failure kinds -> STS's (status, code).
STS_AUTH_ERRORS = {
    "missing": (403, "MissingAuthenticationToken"),
    "incomplete": (400, "IncompleteSignature"),
    "unknown_key": (403, "InvalidClientTokenId"),
    "token": (403, "InvalidClientTokenId"),
    "expired": (403, "SignatureDoesNotMatch"),
    "signature": (403, "SignatureDoesNotMatch"),
    "expired_token": (403, "ExpiredToken"),
}


class FakeSTS(FakeService):
    """AWS STS: AssumeRole (signed) and AssumeRoleWithWebIdentity (unsigned).

    roles maps a role ARN to its options: {"external_id": X} makes X
    required (AccessDenied without it). web_identity_token is what the token
    file must hold (InvalidIdentityToken otherwise)."""

    name = "sts"

    def __init__(self, region="us-east-1", roles=None, web_identity_token=None, **kw):
        super().__init__(**kw)
        self.region = region
        self.roles = dict(roles or {})
        self.web_identity_token = web_identity_token
        self.keys = {}  # access key id -> (secret, token, expiration): who may sign AssumeRole

    def add_key(self, access_key, secret, session_token=None, expiration=None):
        """Accept AssumeRole signed with this key from now on."""
        with self.lock:
            keys = dict(self.keys)
            keys[access_key] = (secret, session_token, expiration)
            self.keys = keys

    def failure_answer(self):
        return self.error(StsError(500, "InternalFailure", "An internal error occurred.", "Receiver"))

    def error(self, e):
        out = ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n'
               "    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n"
               % (STS_XMLNS, e.kind, e.code, xml_escape(e.message), uuid.uuid4()))
        return e.status, out, "text/xml", None

    def answer(self, method, path, query, headers, body, record):
        try:
            return self._answer(method, path, query, headers, body, record)
        except StsError as e:
            record["error"] = e.code
            return self.error(e)

    def _answer(self, method, path, query, headers, body, record):
        if method != "POST" or path != "/":
            raise StsError(404, "UnknownOperationException", "Unknown operation")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise StsError(400, "InvalidAction", "Could not find operation for the request")
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        record["form"] = form
        action = form.get("Action")
        if form.get("Version") != "2011-06-15":
            raise StsError(400, "InvalidAction", "Could not find operation %s for version %s"
                           % (action, form.get("Version")))
        if action == "AssumeRole":
            self._check_signature(method, path, query, headers, body, record)
        elif action != "AssumeRoleWithWebIdentity":
            raise StsError(400, "InvalidAction", "Could not find operation %s for version 2011-06-15" % action)
        arn = form.get("RoleArn", "")
        session = form.get("RoleSessionName", "")
        if not arn:
            raise StsError(400, "ValidationError", "1 validation error detected: Value null at 'roleArn' "
                           "failed to satisfy constraint: Member must not be null")
        if not (2 <= len(session) <= 64) or any(not (c.isalnum() or c in "+=,.@_-") for c in session):
            raise StsError(400, "ValidationError", "1 validation error detected: Value '%s' at "
                           "'roleSessionName' failed to satisfy constraint: Member must satisfy regular "
                           "expression pattern: [\\w+=,.@-]*" % session)
        role = self.roles.get(arn)
        if role is None:
            raise StsError(403, "AccessDenied", "User: %s is not authorized to perform: sts:%s on resource: %s"
                           % (record.get("caller", "anonymous"), action, arn))
        if action == "AssumeRole":
            if role.get("external_id") is not None and form.get("ExternalId") != role["external_id"]:
                raise StsError(403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on "
                               "resource: %s" % (record.get("caller"), arn))
            duration = int(form.get("DurationSeconds") or 3600)
        else:
            token = form.get("WebIdentityToken")
            if not token or token != self.web_identity_token:
                raise StsError(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your "
                               "identity provider,  please reference AssumeRoleWithWebIdentity documentation "
                               "for requirements")
            duration = int(form.get("DurationSeconds") or 3600)
        if not 900 <= duration <= 43200:
            raise StsError(400, "ValidationError", "1 validation error detected: Value '%d' at "
                           "'durationSeconds' failed to satisfy constraint: Member must have value greater "
                           "than or equal to 900" % duration)
        creds = self.issue()
        role_name = arn.rsplit("/", 1)[-1]
        assumed = ("<AssumedRoleUser>\n      <Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn>\n"
                   "      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId>\n    </AssumedRoleUser>"
                   % (ACCOUNT, xml_escape(role_name), xml_escape(session), xml_escape(session)))
        credentials = ("<Credentials>\n      <AccessKeyId>%s</AccessKeyId>\n"
                       "      <SecretAccessKey>%s</SecretAccessKey>\n      <SessionToken>%s</SessionToken>\n"
                       "      <Expiration>%s</Expiration>\n    </Credentials>"
                       % (creds["AccessKeyId"], xml_escape(creds["SecretAccessKey"]), creds["Token"],
                          creds["Expiration"]))
        if action == "AssumeRole":
            inner = "%s\n    %s\n    <PackedPolicySize>6</PackedPolicySize>" % (assumed, credentials)
        else:
            inner = ("<SubjectFromWebIdentityToken>system:serviceaccount:mail:sesgate"
                     "</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n    %s\n    %s\n"
                     "    <Provider>arn:aws:iam::%s:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
                     "</Provider>" % (assumed, credentials, ACCOUNT))
        out = ('<%sResponse xmlns="%s">\n  <%sResult>\n    %s\n  </%sResult>\n  <ResponseMetadata>\n'
               "    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n</%sResponse>\n"
               % (action, STS_XMLNS, action, inner, action, uuid.uuid4(), action))
        return 200, out, "text/xml", None

    def _check_signature(self, method, path, query, headers, body, record):
        """AssumeRole must be SigV4-signed (service sts, this region) with a
        key this fake was told of (StsError otherwise)."""
        now = datetime.datetime.utcnow().replace(microsecond=0)
        verdict = fakeses.verify_sigv4(method, path, query, list(headers.items()), body, self.keys, self.region,
                                       now, 300, service="sts")
        record["access_key"] = verdict["access_key"]
        record["verified"] = verdict["ok"]
        if not verdict["ok"]:
            record["verify_error"] = verdict["reason"]
            status, code = STS_AUTH_ERRORS[verdict["kind"]]
            raise StsError(status, code, verdict["message"])
        record["caller"] = "arn:aws:sts::%s:assumed-role/source/%s" % (ACCOUNT, verdict["access_key"])
