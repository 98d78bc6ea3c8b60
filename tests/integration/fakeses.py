#!/usr/bin/python3
"""fakeses: a fake Amazon SES endpoint for sesgate's integration tests.

It plays the upstream that sesgate forwards to. Every SES request must carry
a valid AWS Signature V4 made with the one access key it is started with
(sesgate's upstream credentials); the signature is checked with botocore's own
SigV4 implementation, on exactly the bytes received. Requests are answered
the way SES answers them (v1 Query/XML and v2 REST-JSON), recorded in memory
and optionally as JSON lines in a file, and faults can be injected through a
small control API on the same port:

    POST /__control   JSON rule or list of rules (see Rules below)
    GET  /__control   the current rules
    GET  /__requests  the recorded requests as a JSON list (?since=SEQ: only
                      those with seq >= SEQ)
    POST /__reset     forget the recorded requests and the rules
    POST /__quota     {"max_send_rate": .., "max_24_hour_send": ..,
                       "sent_last_24_hours": .., "enforce": true|false}
                      sets what quota calls report and whether sends are
                      held to it (see Quota below); any subset of the keys
    GET  /__quota     the quota, "enforce" and the recipients accepted in
                      the last second ("sent_last_second")
    POST /__keys      {"access_key": .., "secret": .., "session_token": ..,
                       "expiration": EPOCH_SECONDS} adds a key the fake
                      accepts from then on (temporary credentials an STS,
                      IMDS or container fake issued: see fakeaws.py); a
                      request signed with it after its expiration is
                      refused 403 ExpiredToken ("ExpiredTokenException"
                      for v2), as AWS refuses expired session credentials
    GET  /__keys      the access key ids accepted and their expirations

Control requests are neither signature-checked nor recorded. With
--digest-above N, a record keeps a body larger than N bytes only by its
digest (body_b64 null; see digest_of): large messages to many recipients
would otherwise fill memory and the record file.

Rules: {"mode": "normal" | "status", "status": 503, "code": "...",
"message": "...", "v2": {"status": 429, "code": "...", "message": "..."},
"delay_ms": N, "drop": true, "garbage": true, "truncate": true, "count": N}.
The first rule applies to each signed, verified SES request; a rule with
"count" applies to that many requests and is then removed, a rule without it
stays. "v2" overrides status/code/message for v2 requests. "drop" closes the
connection without an answer; "garbage" answers with a non-SES body;
"truncate" sends the answer the request would otherwise get (its status,
headers and a Content-Length of the whole body) but closes the connection
after the first half of the body (a send answered so is carried out and
counted: the record has its status and "fault": "truncate").

Quota: GetSendQuota (v1) and GetAccount (v2) report MaxSendRate,
Max24HourSend and SentLast24Hours. SentLast24Hours is the recipients of the
sends accepted in the last 24 hours (of the fake's lifetime), plus the value
last set through /__quota (a fixed offset that does not expire; setting it
starts the count afresh). With "enforce" on (off by default, or
--enforce-quota) the fake holds sends to the quota as SES does, counting
RECIPIENTS: v1 SendEmail, SendTemplatedEmail (the Destination To, Cc and Bcc
members) and SendRawEmail (Destinations, else the To, Cc and Bcc headers);
v2 SendEmail (Destination To+Cc+Bcc, or for Raw without a Destination the
header recipients). Bulk sends are not held. Checks, in this order, for a send
of n recipients at monotonic time t:
  - daily: SentLast24Hours + n > Max24HourSend (unless Max24HourSend < 0,
    unlimited) -> v1 400 Throttling "Daily message quota exceeded.", v2 400
    LimitExceededException "Daily message quota exceeded." (the v2 spelling
    a third-party fixture uses; AWS does not document one: docs/ERRORS.md
    treats any throttling code with a daily-quota message as the quota);
  - rate: the recipients of the sends accepted in (t - 1 s, t], plus n, would
    exceed MaxSendRate -> v1 400 Throttling "Maximum sending rate exceeded.",
    v2 429 TooManyRequestsException "Maximum sending rate exceeded.".
A refused send is recorded with "throttled": "daily" | "rate", its status and
its recipients, and is not counted. Every record has "t", the fake's
time.monotonic() (CLOCK_MONOTONIC, comparable across processes on one
machine) when its request line was read: the instant SES would count it at,
and the one the quota above is checked at.

Usage: fakeses.py --port 0 --access-key AKID --secret SECRET
       [--region us-east-1] [--session-token T] [--record FILE]
       [--clock-skew SECONDS] [--max-send-rate N] [--max-24-hour-send N]
       [--enforce-quota]
Prints "listening <port>" on stdout when ready.
"""

import argparse
import base64
import collections
import datetime
import email.parser
import email.policy
import email.utils
import gc
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

XMLNS = "http://ses.amazonaws.com/doc/2010-12-01/"
DAY_S = 86400.0
RATE_MESSAGE = "Maximum sending rate exceeded."
DAILY_MESSAGE = "Daily message quota exceeded."
SERVICE = "ses"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
CONTROL_PATHS = ("/__control", "/__requests", "/__reset", "/__quota", "/__keys")

# Every v1 action of API version 2010-12-01.
V1_ACTIONS = frozenset(
    """CloneReceiptRuleSet CreateConfigurationSet CreateConfigurationSetEventDestination
    CreateConfigurationSetTrackingOptions CreateCustomVerificationEmailTemplate
    CreateReceiptFilter CreateReceiptRule CreateReceiptRuleSet CreateTemplate
    DeleteConfigurationSet DeleteConfigurationSetEventDestination
    DeleteConfigurationSetTrackingOptions DeleteCustomVerificationEmailTemplate
    DeleteIdentity DeleteIdentityPolicy DeleteReceiptFilter DeleteReceiptRule
    DeleteReceiptRuleSet DeleteTemplate DeleteVerifiedEmailAddress
    DescribeActiveReceiptRuleSet DescribeConfigurationSet DescribeReceiptRule
    DescribeReceiptRuleSet GetAccountSendingEnabled GetCustomVerificationEmailTemplate
    GetIdentityDkimAttributes GetIdentityMailFromDomainAttributes
    GetIdentityNotificationAttributes GetIdentityPolicies
    GetIdentityVerificationAttributes GetSendQuota GetSendStatistics GetTemplate
    ListConfigurationSets ListCustomVerificationEmailTemplates ListIdentities
    ListIdentityPolicies ListReceiptFilters ListReceiptRuleSets ListTemplates
    ListVerifiedEmailAddresses PutConfigurationSetDeliveryOptions PutIdentityPolicy
    ReorderReceiptRuleSet SendBounce SendBulkTemplatedEmail SendCustomVerificationEmail
    SendEmail SendRawEmail SendTemplatedEmail SetActiveReceiptRuleSet
    SetIdentityDkimEnabled SetIdentityFeedbackForwardingEnabled
    SetIdentityHeadersInNotificationsEnabled SetIdentityMailFromDomain
    SetIdentityNotificationTopic SetReceiptRulePosition TestRenderTemplate
    UpdateAccountSendingEnabled UpdateConfigurationSetEventDestination
    UpdateConfigurationSetReputationMetricsEnabled UpdateConfigurationSetSendingEnabled
    UpdateConfigurationSetTrackingOptions UpdateCustomVerificationEmailTemplate
    UpdateReceiptRule UpdateTemplate VerifyDomainDkim VerifyDomainIdentity
    VerifyEmailAddress VerifyEmailIdentity""".split()
)

# v1 actions without an output shape: their response has no <ActionResult>
# element. Actions with an empty output shape (VerifyEmailIdentity, ...) get
# an empty <ActionResult/>, as SES sends and as botocore's parser requires.
V1_NO_RESULT = frozenset(
    """CreateCustomVerificationEmailTemplate DeleteCustomVerificationEmailTemplate
    DeleteVerifiedEmailAddress UpdateAccountSendingEnabled
    UpdateConfigurationSetReputationMetricsEnabled UpdateConfigurationSetSendingEnabled
    UpdateCustomVerificationEmailTemplate VerifyEmailAddress""".split()
)

IDENTITIES = ["example.com", "allowed.example", "sender@example.com"]

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"
MISSING_TOKEN = (
    "The request must contain either a valid (registered) AWS access key ID or X.509 certificate."
)

# Failure kind -> (v1 code, v1 status, v2 code, v2 status).
AUTH_ERRORS = {
    "missing": ("MissingAuthenticationToken", 403, "MissingAuthenticationTokenException", 403),
    "incomplete": ("IncompleteSignature", 400, "IncompleteSignatureException", 403),
    "unknown_key": ("InvalidClientTokenId", 403, "UnrecognizedClientException", 403),
    "token": ("InvalidClientTokenId", 403, "UnrecognizedClientException", 403),
    "expired_token": ("ExpiredToken", 403, "ExpiredTokenException", 403),
    "expired": ("SignatureDoesNotMatch", 403, "InvalidSignatureException", 403),
    "signature": ("SignatureDoesNotMatch", 403, "InvalidSignatureException", 403),
}


class ExactSigV4Auth(SigV4Auth):
    """botocore's SigV4 signer, signing exactly the headers the request names.

    botocore leaves out a few headers it never signs itself (user-agent,
    expect, x-amzn-trace-id); AWS verifies whatever SignedHeaders lists, so
    this subclass keeps every header of the (already restricted) request.
    All canonicalization and key derivation are botocore's.
    """

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


def parse_authorization(value):
    """Split an AWS4-HMAC-SHA256 Authorization header into its fields."""
    algorithm, _, rest = value.strip().partition(" ")
    fields = {}
    for part in rest.split(","):
        name, eq, val = part.strip().partition("=")
        if eq:
            fields[name.strip()] = val.strip()
    return algorithm, fields


def amz_time_text(dt):
    """Format a UTC datetime as an X-Amz-Date value."""
    return dt.strftime(TIME_FORMAT)


def verify_sigv4(method, raw_path, raw_query, headers, body, keys, region, now, skew_s, service=SERVICE):
    """Verify the SigV4 signature of one received request for service.

    headers is a list of (name, value) pairs as received; keys maps access key
    id -> (secret, session token or None), or (secret, token, expiration in
    epoch seconds or None): a key past its expiration is refused as
    "expired_token" once its signature is known to be right. Returns a dict: ok, access_key,
    kind (a key of AUTH_ERRORS when not ok), message, reason, and on a
    signature mismatch the canonical request and string to sign computed.
    """
    result = {"ok": False, "access_key": None, "kind": None, "message": None, "reason": None}

    def fail(kind, message, reason=None, **extra):
        result.update(kind=kind, message=message, reason=reason or message, **extra)
        return result

    lower = {}
    for name, value in headers:
        lower.setdefault(name.lower(), []).append(value)
    auth_values = lower.get("authorization")
    if not auth_values:
        return fail("missing", MISSING_TOKEN, "no Authorization header")
    if len(auth_values) > 1:
        return fail("incomplete", "Multiple Authorization headers.")
    algorithm, fields = parse_authorization(auth_values[0])
    if algorithm != "AWS4-HMAC-SHA256":
        return fail("incomplete", "Unsupported AWS 'algorithm': '%s'." % algorithm)
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    if missing:
        return fail(
            "incomplete",
            "Authorization header requires '%s' parameter. Authorization=%s"
            % (missing[0], auth_values[0]),
        )
    cred = fields["Credential"].split("/")
    if len(cred) != 5:
        return fail("incomplete", "Credential must have exactly 5 slash-delimited elements.")
    akid, scope_date, scope_region, scope_service, terminator = cred
    result["access_key"] = akid
    if akid not in keys:
        return fail("unknown_key", INVALID_TOKEN, "unknown access key %s" % akid)
    secret, token = keys[akid][:2]
    expiration = keys[akid][2] if len(keys[akid]) > 2 else None
    got_token = lower.get("x-amz-security-token")
    if (token or None) != (got_token[0] if got_token else None):
        return fail("token", INVALID_TOKEN, "session token missing or wrong")

    date_values = lower.get("x-amz-date")
    if date_values:
        amz_date = date_values[0].strip()
        try:
            when = datetime.datetime.strptime(amz_date, TIME_FORMAT)
        except ValueError:
            return fail("incomplete", "Invalid X-Amz-Date: '%s'." % amz_date)
    elif lower.get("date"):
        parsed = email.utils.parsedate_tz(lower["date"][0])
        if parsed is None:
            return fail("incomplete", "Invalid Date header.")
        when = datetime.datetime.utcfromtimestamp(email.utils.mktime_tz(parsed))
        amz_date = amz_time_text(when)
    else:
        return fail(
            "incomplete",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )

    if scope_date != amz_date[:8]:
        return fail(
            "signature",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP: '%s' != '%s', from '%s'." % (scope_date, amz_date[:8], amz_date),
        )
    if scope_region != region:
        return fail("signature", "Credential should be scoped to a valid region, not '%s'." % scope_region)
    if scope_service != service:
        return fail("signature", "Credential should be scoped to correct service: '%s'." % service)
    if terminator != "aws4_request":
        return fail(
            "signature",
            "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'."
            % terminator,
        )

    skew = datetime.timedelta(seconds=skew_s)
    minutes = int(skew_s // 60)
    if when < now - skew:
        return fail(
            "expired",
            "Signature expired: %s is now earlier than %s (%s - %d min.)"
            % (amz_date, amz_time_text(now - skew), amz_time_text(now), minutes),
        )
    if when > now + skew:
        return fail(
            "expired",
            "Signature not yet current: %s is still later than %s (%s + %d min.)"
            % (amz_date, amz_time_text(now + skew), amz_time_text(now), minutes),
        )

    signed_names = fields["SignedHeaders"].split(";")
    if "host" not in signed_names:
        return fail(
            "incomplete",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    if signed_names != sorted(set(signed_names)) or any(n != n.lower() for n in signed_names):
        return fail(
            "signature",
            SIGNATURE_MISMATCH,
            "SignedHeaders not lower-case, sorted and unique: %s" % fields["SignedHeaders"],
        )
    absent = [n for n in signed_names if n not in lower]
    if absent:
        return fail("signature", SIGNATURE_MISMATCH, "signed header(s) not sent: %s" % ",".join(absent))

    payload_hash = hashlib.sha256(body).hexdigest()
    sent_hash = lower.get("x-amz-content-sha256")
    if sent_hash and sent_hash[0].strip() != payload_hash:
        return fail(
            "signature",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            "x-amz-content-sha256 %s != sha256(body) %s" % (sent_hash[0], payload_hash),
        )

    signed = HTTPHeaders()
    for name, value in headers:
        if name.lower() in signed_names:
            signed[name.lower()] = value
    signer = ExactSigV4Auth(Credentials(akid, secret, token), service, region)
    # The query is canonicalized from its decoded parameters, as AWS does
    # (botocore's own encoder); this equals the raw query whenever the sender
    # encoded it canonically.
    query = ""
    if raw_query:
        params = []
        for pair in raw_query.split("&"):
            key, _, value = pair.partition("=")
            params.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
        query = "?" + signer._canonical_query_string_params(params)
    url = "http://" + lower["host"][0] + raw_path + query
    request = AWSRequest(method=method, url=url, headers=signed, data=body)
    request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        return fail(
            "signature",
            SIGNATURE_MISMATCH,
            "signature mismatch",
            canonical_request=canonical,
            string_to_sign=string_to_sign,
        )
    if expiration is not None and time.time() >= expiration:
        return fail("expired_token", EXPIRED_TOKEN, "session credentials expired %.1f s ago"
                    % (time.time() - expiration))
    result.update(ok=True)
    return result


def new_message_id():
    """A fresh MessageId in SES's us-east-1 format."""
    return "0100018c%s-%s-000000" % (secrets.token_hex(4), uuid.uuid4())


def digest_of(api, body):
    """What a record keeps of a body above --digest-above instead of the body:
    its length and SHA-256 and, for a raw send (v1 SendRawEmail, v2 SendEmail
    with Content.Raw), the message's header block (up to and including the
    empty line) and the length and SHA-256 of the rest."""
    out = {"body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
    data = None
    try:
        if api == "v1":
            for k, v in urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True):
                if k == "RawMessage.Data":
                    data = v
        else:
            data = ((json.loads(body).get("Content") or {}).get("Raw") or {}).get("Data")
        msg = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except (ValueError, AttributeError):
        msg = None
    if msg is not None:
        ends = [i + len(eol) for eol in (b"\r\n\r\n", b"\n\n") for i in [msg.find(eol)] if i >= 0]
        end = min(ends) if ends else len(msg)
        out.update(raw_head_b64=base64.b64encode(msg[:end]).decode(), raw_rest_len=len(msg) - end,
                   raw_rest_sha256=hashlib.sha256(msg[end:]).hexdigest())
    return out


def xml_escape(text):
    """Escape text for an XML element."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def raw_recipients(data):
    """The To, Cc and Bcc addresses of a raw MIME message."""
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    fields = []
    for name in ("to", "cc", "bcc"):
        fields.extend(str(v) for v in (msg.get_all(name) or []))
    return [addr for _, addr in email.utils.getaddresses(fields) if addr]


def raw_from(data):
    """The address in the From header of a raw MIME message, or None."""
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    found = email.utils.getaddresses([str(v) for v in (msg.get_all("from") or [])])
    return found[0][1] if found else None


class SesError(Exception):
    """An SES error answer: code, HTTP status and message."""

    def __init__(self, code, status, message):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


class QuotaError(SesError):
    """A send refused by the enforced quota: kind is "rate" or "daily"."""

    def __init__(self, api, kind):
        if kind == "rate":
            code, status = ("Throttling", 400) if api == "v1" else ("TooManyRequestsException", 429)
            message = RATE_MESSAGE
        else:
            code, status = ("Throttling", 400) if api == "v1" else ("LimitExceededException", 400)
            message = DAILY_MESSAGE
        super().__init__(code, status, message)
        self.kind = kind
        self.t = None
        self.recipients = None

    def at(self, t):
        """Note the monotonic time of the refusal; returns self."""
        self.t = t
        return self


class State:
    """Everything the server shares between its threads."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.records = []
        self.bulk_seen = set()  # addresses whose one-time bulk failure was given
        self.seq = 0
        self.rules = []
        self.keys = {args.access_key: (args.secret, args.session_token or None)}
        self.region = args.region
        self.skew_s = args.clock_skew
        self.quota = {
            "max_send_rate": args.max_send_rate,
            "max_24_hour_send": args.max_24_hour_send,
            "sent_last_24_hours": 0.0,
        }
        self.enforce = bool(getattr(args, "enforce_quota", False))
        # Accepted sends as (monotonic time, recipients), oldest first: the
        # last second's for the rate, the last day's for SentLast24Hours.
        self.second = collections.deque()
        self.day = collections.deque()
        self.day_sum = 0
        self.sent_base = 0.0  # the SentLast24Hours offset set through /__quota
        # The account-level suppression list (SES v2 PutSuppressedDestination,
        # DeleteSuppressedDestination, ListSuppressedDestinations,
        # GetSuppressedDestination): lower-cased address -> (address as
        # given, reason, time added in epoch seconds).
        self.suppressed = {}
        self.record_file = open(args.record, "a", encoding="utf-8") if args.record else None

    def next_rule(self):
        """Take the rule that applies to the next request, or None."""
        with self.lock:
            if not self.rules:
                return None
            rule = self.rules[0]
            if "count" in rule:
                rule["count"] -= 1
                if rule["count"] <= 0:
                    self.rules.pop(0)
            return dict(rule)

    def add_record(self, record):
        """Store one request record in memory and in the record file."""
        with self.lock:
            record["seq"] = self.seq
            self.seq += 1
            self.records.append(record)
            if self.record_file:
                self.record_file.write(json.dumps(record, sort_keys=True) + "\n")
                self.record_file.flush()

    def _expire(self, now):
        """Drop accepted sends that left the 1 s and the 24 h windows (lock held).
        Sends are admitted about, not exactly, in the order they arrived: the
        last 1.25 s are kept and admit() counts the last second of them."""
        while self.second and self.second[0][0] <= now - 1.25:
            self.second.popleft()
        while self.day and self.day[0][0] <= now - DAY_S:
            self.day_sum -= self.day.popleft()[1]
        self.quota["sent_last_24_hours"] = self.sent_base + self.day_sum

    def admit(self, api, n, hold=True, at=None):
        """Admit a send of n recipients that arrived at monotonic time at
        (None: now), or (hold, and the quota enforced) raise QuotaError when
        the send would pass it. Returns at; an admitted send is counted then.
        SES counts a request when it reaches it: the time the request line
        was read, not the time this process got round to it after checking
        the signature (requests on other connections may have been checked
        first, so the one-second window counts every send after at - 1 s)."""
        with self.lock:
            now = time.monotonic() if at is None else at
            self._expire(now)
            if self.enforce and hold:
                day_max = self.quota["max_24_hour_send"]
                if day_max >= 0 and self.quota["sent_last_24_hours"] + n > day_max:
                    raise QuotaError(api, "daily").at(now)
                last_second = sum(c for t, c in self.second if t > now - 1.0)
                if last_second + n > self.quota["max_send_rate"]:
                    raise QuotaError(api, "rate").at(now)
            self.second.append((now, n))
            self.day.append((now, n))
            self.day_sum += n
            self.quota["sent_last_24_hours"] = self.sent_base + self.day_sum
            return now

    def quota_now(self):
        """The quota as reported now (SentLast24Hours brought up to date)."""
        with self.lock:
            self._expire(time.monotonic())
            return dict(self.quota)

    def set_quota(self, spec):
        """Apply a /__quota body; returns the quota and the enforcement state."""
        with self.lock:
            for key in ("max_send_rate", "max_24_hour_send"):
                if key in spec:
                    self.quota[key] = float(spec[key])
            if "sent_last_24_hours" in spec:
                self.sent_base = float(spec["sent_last_24_hours"])
                self.day.clear()
                self.day_sum = 0
            if "enforce" in spec:
                if not isinstance(spec["enforce"], bool):
                    raise ValueError("enforce must be true or false")
                self.enforce = spec["enforce"]
            return self.quota_state()

    def quota_state(self):
        """The quota, the enforcement flag and the last second's recipients (lock held)."""
        now = time.monotonic()
        self._expire(now)
        return {"ok": True, "quota": dict(self.quota), "enforce": self.enforce,
                "sent_last_second": sum(c for _, c in self.second)}


RULE_KEYS = {"mode", "status", "code", "message", "v2", "delay_ms", "drop", "garbage", "truncate", "count"}


def check_rule(rule):
    """Validate one control rule; returns it or raises ValueError."""
    if not isinstance(rule, dict):
        raise ValueError("a rule is a JSON object")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise ValueError("unknown rule keys: %s" % ", ".join(sorted(unknown)))
    mode = rule.get("mode", "normal")
    if mode not in ("normal", "status"):
        raise ValueError("mode must be normal or status")
    if mode == "status" and "status" not in rule:
        raise ValueError("mode status needs a status")
    if "count" in rule and (not isinstance(rule["count"], int) or rule["count"] < 1):
        raise ValueError("count must be a positive integer")
    return dict(rule, mode=mode)


class Handler(BaseHTTPRequestHandler):
    """One connection; each request is a control call or an SES request."""

    protocol_version = "HTTP/1.1"
    server_version = "Server"
    sys_version = ""
    timeout = 120

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fakeses: %s\n" % (fmt % args))

    def parse_request(self):
        # The request line has just been read: the time SES would count it at.
        self.arrived = time.monotonic()
        return super().parse_request()

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def read_body(self):
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The sender went away mid-body (a killed process): SES never
            # acts on a request it did not receive whole.
            raise ConnectionAbortedError("the body ended after %d of %d bytes" % (len(body), length))
        return body

    def send(self, status, body, content_type, extra=None, request_id=None):
        """Send a complete response with SES's standard headers."""
        self.send_response(status)
        self.send_header("x-amzn-RequestId", request_id or str(uuid.uuid4()))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if not self.truncate:
            self.wfile.write(body)
            return
        self.truncate = False
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_json(self, status, obj):
        """Send a control-API JSON answer."""
        self.send(status, json.dumps(obj).encode(), "application/json")

    def handle_control(self, path, query, body):
        """Serve /__control, /__requests, /__reset and /__quota."""
        state = self.server.state
        if path == "/__requests" and self.command == "GET":
            since = int(urllib.parse.parse_qs(query).get("since", ["0"])[0])
            with state.lock:
                out = [r for r in state.records if r["seq"] >= since]
            return self.send_json(200, out)
        if path == "/__reset" and self.command == "POST":
            with state.lock:
                state.records = []
                state.rules = []
            return self.send_json(200, {"ok": True, "seq": state.seq})
        if path == "/__control" and self.command == "GET":
            with state.lock:
                return self.send_json(200, {"rules": state.rules})
        if path == "/__control" and self.command == "POST":
            try:
                spec = json.loads(body or b"{}")
                rules = [check_rule(r) for r in (spec if isinstance(spec, list) else [spec])]
            except ValueError as e:
                return self.send_json(400, {"ok": False, "error": str(e)})
            rules = [r for r in rules if not (r["mode"] == "normal" and "count" not in r and len(r) == 1)]
            with state.lock:
                state.rules = rules
            return self.send_json(200, {"ok": True, "rules": rules})
        if path == "/__quota" and self.command == "POST":
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("a quota is a JSON object")
                out = state.set_quota(spec)
            except (ValueError, TypeError) as e:
                return self.send_json(400, {"ok": False, "error": str(e)})
            return self.send_json(200, out)
        if path == "/__quota" and self.command == "GET":
            with state.lock:
                return self.send_json(200, state.quota_state())
        if path == "/__keys" and self.command == "POST":
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict) or not spec.get("access_key") or not spec.get("secret"):
                    raise ValueError("a key is a JSON object with access_key and secret")
                expiration = spec.get("expiration")
                expiration = None if expiration is None else float(expiration)
            except (ValueError, TypeError) as e:
                return self.send_json(400, {"ok": False, "error": str(e)})
            with state.lock:
                # A new dict: a verifier reading the old one is not disturbed.
                keys = dict(state.keys)
                keys[spec["access_key"]] = (spec["secret"], spec.get("session_token") or None, expiration)
                state.keys = keys
            return self.send_json(200, {"ok": True, "keys": len(keys)})
        if path == "/__keys" and self.command == "GET":
            with state.lock:
                out = {k: (v[2] if len(v) > 2 else None) for k, v in state.keys.items()}
            return self.send_json(200, {"ok": True, "keys": out})
        return self.send_json(404, {"ok": False, "error": "no such control call"})

    def handle_any(self):
        """Answer one request."""
        self.truncate = False
        raw_path, _, raw_query = self.path.partition("?")
        try:
            body = self.read_body()
        except ConnectionAbortedError:
            self.close_connection = True
            return
        if raw_path in CONTROL_PATHS:
            return self.handle_control(raw_path, raw_query, body)
        state = self.server.state
        api = "v2" if raw_path.startswith("/v2/") else "v1"
        headers = list(self.headers.items())
        record_headers = {}
        for name, value in headers:
            key = name.lower()
            if key in record_headers:
                prev = record_headers[key]
                record_headers[key] = (prev if isinstance(prev, list) else [prev]) + [value]
            else:
                record_headers[key] = value
        now = datetime.datetime.utcnow().replace(microsecond=0)
        record = {
            "time": time.time(),
            "t": self.arrived,
            "time_iso": now.isoformat() + "Z",
            "method": self.command,
            "path": raw_path,
            "query": raw_query,
            "headers": record_headers,
            "body_b64": base64.b64encode(body).decode(),
            "api": api,
            "action": None,
            "access_key": None,
            "verified": False,
            "verify_error": None,
            "status": None,
            "message_id": None,
            "recipients": None,
            "fault": None,
        }
        if self.server.digest_above and len(body) > self.server.digest_above:
            record.update(digest_of(api, body))
            record["body_b64"] = None
        request_id = str(uuid.uuid4())
        record["request_id"] = request_id
        try:
            verdict = verify_sigv4(
                self.command, raw_path, raw_query, headers, body, state.keys, state.region, now, state.skew_s
            )
        except Exception as e:  # a verifier crash is a failed verification
            verdict = {"ok": False, "access_key": None, "kind": "signature",
                       "message": SIGNATURE_MISMATCH, "reason": "verifier error: %r" % e}
        record["access_key"] = verdict["access_key"]
        record["verified"] = verdict["ok"]
        try:
            action, params = self.describe(api, raw_path, raw_query, body)
        except SesError:
            action, params = None, None
        record["action"] = action
        if not verdict["ok"]:
            v1code, v1status, v2code, v2status = AUTH_ERRORS[verdict["kind"]]
            code, status = (v1code, v1status) if api == "v1" else (v2code, v2status)
            record["verify_error"] = {
                k: verdict.get(k) for k in ("kind", "message", "reason", "canonical_request", "string_to_sign")
            }
            record["verify_error"]["code"] = code
            record["status"] = status
            state.add_record(record)
            if self.server.verbose:
                sys.stderr.write("fakeses: REFUSED %s %s: %s\n" % (self.command, self.path, verdict["reason"]))
            return self.send_error_response(api, status, code, verdict["message"], request_id)

        rule = state.next_rule()
        if rule and rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        if rule and rule.get("drop"):
            record["fault"] = "drop"
            state.add_record(record)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        self.truncate = bool(rule and rule.get("truncate"))
        if rule and rule.get("garbage"):
            record["fault"] = "garbage"
            record["status"] = int(rule.get("status", 200))
            state.add_record(record)
            return self.send(
                record["status"], b"<html><body>this is not an SES response</body></html>\n",
                "text/html", request_id=request_id,
            )
        if rule and rule["mode"] == "status":
            spec = dict(rule)
            if api == "v2" and isinstance(rule.get("v2"), dict):
                spec.update(rule["v2"])
            status = int(spec["status"])
            code = spec.get("code") or ("InternalFailure" if status >= 500 else "BadRequest")
            message = spec.get("message") or code
            record["fault"] = "truncate" if self.truncate else "status"
            record["status"] = status
            state.add_record(record)
            return self.send_error_response(api, status, code, message, request_id)
        if rule:
            record["fault"] = "delay" if rule.get("delay_ms") else None
            if self.truncate:
                record["fault"] = "truncate"

        try:
            if api == "v1":
                status, out, ctype, info = self.answer_v1(action, params, request_id)
            else:
                status, out, ctype, info = self.answer_v2(raw_path, params, request_id)
        except SesError as e:
            record["status"] = e.status
            if self.truncate:
                record["fault"] = "truncate"
            if isinstance(e, QuotaError):
                record["throttled"] = e.kind
                record["recipients"] = e.recipients
                record["t"] = e.t
            state.add_record(record)
            return self.send_error_response(api, e.status, e.code, e.message, request_id)
        if "t" in info:
            record["t"] = info.pop("t")
        record.update(info)
        record["status"] = status
        if record.get("recipients") and not record.get("counted"):
            state.admit(api, len(record["recipients"]), hold=False, at=self.arrived)  # bulk sends: counted, never held
        record.pop("counted", None)
        state.add_record(record)
        return self.send(status, out, ctype, request_id=request_id)

    def send_error_response(self, api, status, code, message, request_id):
        """Answer with an SES error in the API's format."""
        if api == "v1":
            kind = "Receiver" if status >= 500 else "Sender"
            body = (
                '<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n'
                "    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n"
                % (XMLNS, kind, xml_escape(code), xml_escape(message), request_id)
            ).encode()
            return self.send(status, body, "text/xml", request_id=request_id)
        body = json.dumps({"message": message}).encode()
        return self.send(status, body, "application/json", {"x-amzn-ErrorType": code}, request_id=request_id)

    def bulk_entries(self, dests, api):
        """One result per destination of a bulk call, as SES gives them. The
        first To address picks a destination's fate: bulk-reject-* is
        MessageRejected, bulk-throttle-* AccountThrottled and bulk-transient-*
        TransientFailure the first time that address is seen (Success after),
        anything else Success."""
        state = self.server.state
        out = []
        for d in dests:
            first = (d["To"] or d["Cc"] or d["Bcc"] or [""])[0].lower()
            entry = dict(d)
            status = None
            if first.startswith("bulk-reject-"):
                status = ("MessageRejected", "MESSAGE_REJECTED", "Email address is not verified.")
            for prefix, v1, v2, msg in (("bulk-throttle-", "AccountThrottled", "ACCOUNT_THROTTLED",
                                         "Maximum sending rate exceeded."),
                                        ("bulk-transient-", "TransientFailure", "TRANSIENT_FAILURE",
                                         "Temporary failure.")):
                if first.startswith(prefix):
                    with state.lock:
                        seen = first in state.bulk_seen
                        state.bulk_seen.add(first)
                    if not seen:
                        status = (v1, v2, msg)
            if status:
                entry["status"] = status[0] if api == "v1" else status[1]
                entry["error"] = status[2]
            else:
                entry["status"] = "Success" if api == "v1" else "SUCCESS"
                entry["message_id"] = new_message_id()
            out.append(entry)
        return out

    def describe(self, api, raw_path, raw_query, body):
        """The action name and parsed parameters of an SES request."""
        if api == "v1":
            # SES reads the query string of a GET or DELETE, and a POST's
            # form body together with its query string.
            text = raw_query
            if self.command == "POST" and body:
                text = "&".join(p for p in (raw_query, body.decode("utf-8", "replace")) if p)
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
            params = {}
            for key, value in pairs:
                params[key] = value
            return params.get("Action"), params
        params = None
        if body:
            try:
                params = json.loads(body)
            except ValueError:
                raise SesError("BadRequestException", 400, "Request body is not valid JSON.")
        return "%s %s" % (self.command, raw_path), params

    def answer_v1(self, action, params, request_id):
        """Answer a verified v1 (Query) request."""
        if not action:
            raise SesError("MissingAction", 400, "Action is required.")
        # SES serves a request without Version as 2010-12-01.
        version = params.get("Version", "2010-12-01")
        if version != "2010-12-01":
            raise SesError(
                "InvalidAction", 400, "Could not find operation %s for version %s" % (action, version)
            )
        if action not in V1_ACTIONS:
            raise SesError("InvalidAction", 400, "Could not find operation %s for version 2010-12-01" % action)
        info = {}
        result = ""
        if action in ("SendEmail", "SendTemplatedEmail"):
            recipients = [
                v for k, v in sorted(params.items())
                if re.match(r"^Destination\.(To|Cc|Bcc)Addresses\.member\.\d+$", k) and v
            ]
            if not params.get("Source"):
                raise SesError("MissingParameter", 400, "Missing required parameter Source.")
            if action == "SendEmail" and "Message.Subject.Data" not in params:
                raise SesError("MissingParameter", 400, "Missing required parameter Message.Subject.Data.")
            if action == "SendTemplatedEmail" and not params.get("Template"):
                raise SesError("MissingParameter", 400, "Missing required parameter Template.")
            info = self.accept_send(recipients)
            result = "<MessageId>%s</MessageId>" % info["message_id"]
        elif action == "SendRawEmail":
            try:
                raw = base64.b64decode(params.get("RawMessage.Data", ""), validate=True)
            except ValueError:
                raise SesError("InvalidParameterValue", 400, "RawMessage.Data is not valid base64.")
            if not raw:
                raise SesError("MissingParameter", 400, "Missing required parameter RawMessage.Data.")
            recipients = [v for k, v in params.items() if re.match(r"^Destinations\.member\.\d+$", k) and v]
            info = self.accept_send(recipients or raw_recipients(raw))
            info["raw_from"] = raw_from(raw)
            result = "<MessageId>%s</MessageId>" % info["message_id"]
        elif action == "SendBulkTemplatedEmail":
            numbers = sorted(
                {int(m.group(1)) for k in params for m in [re.match(r"^Destinations\.member\.(\d+)\.", k)] if m}
            )
            if len(numbers) > 50:
                raise SesError("InvalidParameterValue", 400, "Too many destinations: at most 50.")
            dests = []
            for n in numbers:
                pre = "Destinations.member.%d." % n
                dest = {k: [v for kk, v in sorted(params.items(), key=lambda kv: kv[0])
                            if re.match(r"^%sDestination\.%sAddresses\.member\.\d+$" % (re.escape(pre), k), kk)]
                        for k in ("To", "Cc", "Bcc")}
                dest["data"] = params.get(pre + "ReplacementTemplateData")
                dest["tags"] = {params[k]: params.get(k[: -len("Name")] + "Value")
                                for k in params if re.match(r"^%sReplacementTags\.member\.\d+\.Name$" % re.escape(pre), k)}
                dests.append(dest)
            entries = self.bulk_entries(dests, "v1")
            members = []
            for e in entries:
                members.append("<member><Status>%s</Status>%s%s</member>" % (
                    e["status"],
                    "<Error>%s</Error>" % xml_escape(e["error"]) if e.get("error") else "",
                    "<MessageId>%s</MessageId>" % e["message_id"] if e.get("message_id") else ""))
            ids = [e.get("message_id") for e in entries]
            info = {"message_id": ids[0] if ids else None, "message_ids": ids, "entries": entries,
                    "recipients": [a for d in dests for k in ("To", "Cc", "Bcc") for a in d[k]],
                    "defaults": {k: v for k, v in params.items() if not k.startswith("Destinations.member.")}}
            result = "<Status>%s</Status>" % "".join(members)
        elif action == "GetSendQuota":
            q = self.server.state.quota_now()
            result = (
                "<SentLast24Hours>%.1f</SentLast24Hours><Max24HourSend>%.1f</Max24HourSend>"
                "<MaxSendRate>%.1f</MaxSendRate>" % (q["sent_last_24_hours"], q["max_24_hour_send"], q["max_send_rate"])
            )
        elif action == "GetAccountSendingEnabled":
            result = "<Enabled>true</Enabled>"
        elif action == "SendBounce":
            # one bounce message, to the original message's sender
            mid = new_message_id()
            info = {"message_id": mid, "recipients": ["bounce-of:%s" % params.get("OriginalMessageId", "")]}
            result = "<MessageId>%s</MessageId>" % mid
        elif action == "SendCustomVerificationEmail":
            mid = new_message_id()
            info = {"message_id": mid, "recipients": [params.get("EmailAddress", "")]}
            result = "<MessageId>%s</MessageId>" % mid
        elif action in ("ListIdentities", "ListVerifiedEmailAddresses"):
            names = IDENTITIES if action == "ListIdentities" else [i for i in IDENTITIES if "@" in i]
            tag = "Identities" if action == "ListIdentities" else "VerifiedEmailAddresses"
            result = "<%s>%s</%s>" % (tag, "".join("<member>%s</member>" % xml_escape(i) for i in names), tag)
        if action in V1_NO_RESULT:
            inner = ""
        elif result:
            inner = "  <%sResult>\n    %s\n  </%sResult>\n" % (action, result, action)
        else:
            inner = "  <%sResult/>\n" % action
        out = (
            '<%sResponse xmlns="%s">\n%s  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n'
            "  </ResponseMetadata>\n</%sResponse>\n" % (action, XMLNS, inner, request_id, action)
        )
        return 200, out.encode(), "text/xml", info

    def accept_send(self, recipients, api="v1"):
        """Check a send's recipients like SES, hold it to the quota when that
        is enforced (QuotaError), and give it a MessageId."""
        if not recipients:
            raise SesError("InvalidParameterValue", 400, "Missing final '@domain'")
        if len(recipients) > 50:
            raise SesError("InvalidParameterValue", 400, "Recipient count exceeds 50.")
        for addr in recipients:
            if "@" not in addr:
                raise SesError("InvalidParameterValue", 400, "Missing final '@domain'")
        try:
            t = self.server.state.admit(api, len(recipients), at=self.arrived)
        except QuotaError as e:
            e.recipients = list(recipients)
            raise
        return {"message_id": new_message_id(), "recipients": recipients, "t": t, "counted": True}

    def answer_suppression(self, method, raw_path, params):
        """SES v2's account-level suppression list, as AWS's API reference
        describes it: PUT /v2/email/suppression/addresses (EmailAddress,
        Reason BOUNCE or COMPLAINT), GET and DELETE .../addresses/{EmailAddress}
        (NotFoundException when absent), GET .../addresses (Reason, StartDate,
        EndDate, NextToken, PageSize; SuppressedDestinationSummaries with
        EmailAddress, Reason, LastUpdateTime in epoch seconds)."""
        ctype = "application/json"
        state = self.server.state
        base = "/v2/email/suppression/addresses"
        if raw_path.startswith(base + "/"):
            addr = urllib.parse.unquote(raw_path[len(base) + 1:])
            key = addr.lower()
            with state.lock:
                entry = state.suppressed.get(key)
                if entry is not None and method == "DELETE":
                    del state.suppressed[key]
            if method not in ("GET", "DELETE"):
                raise SesError("NotFoundException", 404, "Unknown operation.")
            if entry is None:
                raise SesError("NotFoundException", 404, "Email address %s does not exist on your suppression list." % addr)
            if method == "DELETE":
                return 200, b"{}", ctype, {"suppression": ("delete", key)}
            out = {"SuppressedDestination": {"EmailAddress": entry[0], "Reason": entry[1],
                                             "LastUpdateTime": entry[2], "Attributes": {}}}
            return 200, json.dumps(out).encode(), ctype, {}
        if method == "PUT":
            params = params if isinstance(params, dict) else {}
            addr, reason = params.get("EmailAddress"), params.get("Reason")
            if not isinstance(addr, str) or "@" not in addr:
                raise SesError("BadRequestException", 400, "EmailAddress is required and must be an email address.")
            if reason not in ("BOUNCE", "COMPLAINT"):
                raise SesError("BadRequestException", 400, "Reason must be BOUNCE or COMPLAINT.")
            with state.lock:
                state.suppressed[addr.lower()] = (addr, reason, time.time())
            return 200, b"{}", ctype, {"suppression": ("put", addr.lower(), reason)}
        if method != "GET":
            raise SesError("NotFoundException", 404, "Unknown operation.")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)

        def when(name):
            v = (query.get(name) or [None])[0]
            if v is None:
                return None
            try:
                return float(v)
            except ValueError:
                try:
                    return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    raise SesError("BadRequestException", 400, "%s is not a date." % name)
        reasons = query.get("Reason") or []
        start, end = when("StartDate"), when("EndDate")
        try:
            size = int((query.get("PageSize") or ["1000"])[0])
            offset = int((query.get("NextToken") or ["0"])[0])
        except ValueError:
            raise SesError("InvalidNextTokenException", 400, "The NextToken or PageSize is not valid.")
        if size < 1 or size > 1000 or offset < 0:
            raise SesError("BadRequestException", 400, "PageSize must be 1 to 1000.")
        with state.lock:
            rows = sorted(state.suppressed.values(), key=lambda e: e[0].lower())
        rows = [e for e in rows if (not reasons or e[1] in reasons) and (start is None or e[2] >= start)
                and (end is None or e[2] <= end)]
        page = rows[offset:offset + size]
        out = {"SuppressedDestinationSummaries": [
            {"EmailAddress": e[0], "Reason": e[1], "LastUpdateTime": e[2]} for e in page]}
        if offset + size < len(rows):
            out["NextToken"] = str(offset + size)
        return 200, json.dumps(out).encode(), ctype, {}

    def answer_v2(self, raw_path, params, request_id):
        """Answer a verified v2 (REST-JSON) request."""
        method = self.command
        ctype = "application/json"
        if method == "POST" and raw_path == "/v2/email/outbound-emails":
            if not isinstance(params, dict) or not isinstance(params.get("Content"), dict):
                raise SesError("BadRequestException", 400, "Content is required.")
            content = params["Content"]
            dest = params.get("Destination") or {}
            recipients = [
                a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in (dest.get(key) or [])
            ]
            info = {}
            if "Raw" in content:
                try:
                    raw = base64.b64decode((content["Raw"] or {}).get("Data", ""), validate=True)
                except (ValueError, TypeError):
                    raise SesError("BadRequestException", 400, "Raw message data is not valid base64.")
                if not raw:
                    raise SesError("BadRequestException", 400, "Raw message data is required.")
                if not recipients:
                    recipients = raw_recipients(raw)
                info["raw_from"] = raw_from(raw)
            elif "Simple" in content or "Template" in content:
                if not params.get("FromEmailAddress"):
                    raise SesError("BadRequestException", 400, "FromEmailAddress is required.")
            else:
                raise SesError("BadRequestException", 400, "Content must be Simple, Raw or Template.")
            try:
                info.update(self.accept_send(recipients, "v2"))
            except QuotaError:
                raise
            except SesError as e:
                raise SesError("BadRequestException", 400, e.message)
            return 200, json.dumps({"MessageId": info["message_id"]}).encode(), ctype, info
        if method == "POST" and raw_path == "/v2/email/outbound-bulk-emails":
            given = (params or {}).get("BulkEmailEntries") or []
            if len(given) > 50:
                raise SesError("BadRequestException", 400, "Too many destinations: at most 50.")
            dests = []
            for e in given:
                d = e.get("Destination") or {}
                dests.append({
                    "To": d.get("ToAddresses") or [], "Cc": d.get("CcAddresses") or [],
                    "Bcc": d.get("BccAddresses") or [],
                    "data": ((e.get("ReplacementEmailContent") or {}).get("ReplacementTemplate") or {}).get(
                        "ReplacementTemplateData"),
                    "tags": {t.get("Name"): t.get("Value") for t in e.get("ReplacementTags") or []},
                })
            entries = self.bulk_entries(dests, "v2")
            results = []
            for e in entries:
                r = {"Status": e["status"]}
                if e.get("error"):
                    r["Error"] = e["error"]
                if e.get("message_id"):
                    r["MessageId"] = e["message_id"]
                results.append(r)
            ids = [e.get("message_id") for e in entries]
            recipients = [a for d in dests for k in ("To", "Cc", "Bcc") for a in d[k]]
            info = {"message_id": ids[0] if ids else None, "message_ids": ids, "entries": entries,
                    "recipients": recipients,
                    "defaults": {k: v for k, v in (params or {}).items() if k != "BulkEmailEntries"}}
            return 200, json.dumps({"BulkEmailEntryResults": results}).encode(), ctype, info
        if raw_path == "/v2/email/suppression/addresses" or raw_path.startswith("/v2/email/suppression/addresses/"):
            return self.answer_suppression(method, raw_path, params)
        if method == "GET" and raw_path == "/v2/email/account":
            q = self.server.state.quota_now()
            out = {
                "DedicatedIpAutoWarmupEnabled": False,
                "EnforcementStatus": "HEALTHY",
                "ProductionAccessEnabled": True,
                "SendQuota": {
                    "Max24HourSend": q["max_24_hour_send"],
                    "MaxSendRate": q["max_send_rate"],
                    "SentLast24Hours": q["sent_last_24_hours"],
                },
                "SendingEnabled": True,
                "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
            }
            return 200, json.dumps(out).encode(), ctype, {}
        # ListEmailIdentities: GET /identities in older models, POST
        # /list-identities (JSON body) in current SDKs.
        if (method, raw_path) in (("GET", "/v2/email/identities"), ("POST", "/v2/email/list-identities")):
            out = {
                "EmailIdentities": [
                    {
                        "IdentityType": "EMAIL_ADDRESS" if "@" in i else "DOMAIN",
                        "IdentityName": i,
                        "SendingEnabled": True,
                        "VerificationStatus": "SUCCESS",
                    }
                    for i in IDENTITIES
                ]
            }
            return 200, json.dumps(out).encode(), ctype, {}
        return 200, b"{}", ctype, {}


def main(argv=None):
    """Parse the arguments, start the server and serve until killed."""
    p = argparse.ArgumentParser(description="fake Amazon SES endpoint")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--record", default=None)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", default=None,
                   help="the secret access key; default: $FAKESES_SECRET (keeps it off argv)")
    p.add_argument("--session-token", default=None)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--clock-skew", type=float, default=300.0)
    p.add_argument("--max-send-rate", type=float, default=14.0)
    p.add_argument("--max-24-hour-send", type=float, default=50000.0)
    p.add_argument("--enforce-quota", action="store_true",
                   help="hold sends to MaxSendRate and Max24HourSend (see Quota)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--digest-above", type=int, default=0,
                   help="record a body larger than this many bytes by its digest (see digest_of)")
    args = p.parse_args(argv)
    if args.secret is None:
        args.secret = os.environ.get("FAKESES_SECRET", "")
        if not args.secret:
            p.error("give --secret or set FAKESES_SECRET")
    # The arrival times are the measurement: a pause of the cyclic collector
    # (tens of ms with many records) would stamp requests late and bunch
    # them. The records hold no cycles; reference counting frees the rest.
    gc.disable()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    server.verbose = args.verbose
    server.digest_above = args.digest_above
    sys.stdout.write("listening %d\n" % server.server_address[1])
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
