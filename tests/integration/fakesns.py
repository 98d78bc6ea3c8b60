"""A fake Amazon SNS publisher for sesgate's feedback endpoint.

It has its own certificate authority (RSA 2048, in memory; its certificate
is written to a file for [feedback] test_trust) and a loopback HTTPS server
whose certificate that CA signed. The server serves:

  GET /SimpleNotificationService-<name>.pem   a signing certificate
  GET /?Action=ConfirmSubscription&...        a SubscribeURL: counted, answered
                                              as SNS answers ConfirmSubscription

Messages are built as AWS documents them ("HTTP/HTTPS notification JSON
format", "Verifying the signatures of Amazon SNS messages"): the envelope's
fields for Notification, SubscriptionConfirmation and UnsubscribeConfirmation,
the string to sign ("Key\\nValue\\n" for each signed key in that documented
order, Subject only when present), SignatureVersion 1 (SHA1withRSA) or 2
(SHA256withRSA), and SNS's HTTP headers. Nothing here comes from sesgate's
own code (src/sns.c): the string to sign is written out from the
documentation.

A second CA ("rogue") with its own signing certificate is served too, for
the case of a certificate that does not chain to the trusted CA.
"""

import base64
import datetime
import http.client
import http.server
import json
import ssl
import threading
import urllib.parse
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGION = "us-east-1"
ACCOUNT = "123456789012"

# The keys SNS signs, in the documented order (AWS: "Verifying the signatures
# of Amazon SNS messages").
SIGNED_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SIGNED_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

SNS_HEADERS = {
    "Content-Type": "text/plain; charset=UTF-8",
    "User-Agent": "Amazon Simple Notification Service Agent",
}


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(key, cn, issuer_key=None, issuer_cert=None, ca=False, san=None, days=365):
    """A certificate for key named cn, signed by issuer (self-signed without one)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder()
         .subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=True, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def timestamp(when=None):
    """SNS's Timestamp: ISO 8601 UTC with milliseconds and Z."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)


def string_to_sign(msg):
    """The string SNS signs for msg (a dict of the envelope), from AWS's
    documentation: for each signed key of the message's type, in order, the
    key, a newline, the value, a newline; Subject only when the message has
    one."""
    keys = SIGNED_NOTIFICATION if msg["Type"] == "Notification" else SIGNED_CONFIRMATION
    out = ""
    for k in keys:
        if k not in msg:
            continue
        out += k + "\n" + msg[k] + "\n"
    return out


def sign(key, msg, version):
    """Signature (base64) of msg with key: version 1 SHA1withRSA, 2 SHA256withRSA."""
    h = hashes.SHA1() if version == 1 else hashes.SHA256()
    sig = key.sign(string_to_sign(msg).encode("utf-8"), padding.PKCS1v15(), h)
    return base64.b64encode(sig).decode()


def body_of(msg):
    """The POST body as SNS writes it: pretty-printed JSON, key : value."""
    return json.dumps(msg, indent=2, separators=(",", " : ")).encode("utf-8")


def headers_of(msg, subscription_arn=None):
    """SNS's HTTP headers for msg."""
    h = dict(SNS_HEADERS)
    h["x-amz-sns-message-type"] = msg.get("Type", "Notification")
    h["x-amz-sns-message-id"] = msg.get("MessageId", "")
    h["x-amz-sns-topic-arn"] = msg.get("TopicArn", "")
    if subscription_arn and msg.get("Type") != "SubscriptionConfirmation":
        h["x-amz-sns-subscription-arn"] = subscription_arn
    return h


def topic_arn(name, region=REGION, account=ACCOUNT):
    return "arn:aws:sns:%s:%s:%s" % (region, account, name)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        sns = self.server.sns
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        with sns.lock:
            sns.gets.append(self.path)
        if u.path in sns.files:
            self._send(200, sns.files[u.path], "application/x-x509-ca-cert")
            return
        if q.get("Action") == ["ConfirmSubscription"]:
            token = q.get("Token", [""])[0]
            with sns.lock:
                sns.confirms[token] = sns.confirms.get(token, 0) + 1
                fail = sns.confirm_fail > 0
                sns.confirm_fail -= 1 if fail else 0
            if fail:
                self._send(500, b"<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>",
                           "text/xml")
                return
            body = ("<ConfirmSubscriptionResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"
                    "<ConfirmSubscriptionResult><SubscriptionArn>%s:%s</SubscriptionArn>"
                    "</ConfirmSubscriptionResult><ResponseMetadata><RequestId>%s</RequestId>"
                    "</ResponseMetadata></ConfirmSubscriptionResponse>"
                    % (q.get("TopicArn", [""])[0], uuid.uuid4(), uuid.uuid4())).encode()
            self._send(200, body, "text/xml")
            return
        self._send(404, b"not found\n")


class FakeSNS:
    """The publisher: CAs, signing certificates, the HTTPS server and the
    messages. Start it with start(), stop it with stop()."""

    def __init__(self, workdir, region=REGION):
        self.workdir = Path(workdir)
        self.region = region
        self.ca_key = _key()
        self.ca = _cert(self.ca_key, "fakesns test CA", ca=True, days=3650)
        self.key = _key()
        self.cert = _cert(self.key, "sns.%s.amazonaws.com" % region, self.ca_key, self.ca)
        self.rogue_ca_key = _key()
        self.rogue_ca = _cert(self.rogue_ca_key, "fakesns rogue CA", ca=True, days=3650)
        self.rogue_cert = _cert(self.key, "sns.%s.amazonaws.com" % region, self.rogue_ca_key, self.rogue_ca)
        import ipaddress
        self.tls_key = _key()
        self.tls_cert = _cert(self.tls_key, "127.0.0.1", self.ca_key, self.ca,
                              san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                   x509.DNSName("localhost")])
        self.cert_path = "/SimpleNotificationService-%s.pem" % uuid.uuid4().hex
        self.rogue_path = "/SimpleNotificationService-%s.pem" % uuid.uuid4().hex
        self.files = {self.cert_path: pem(self.cert), self.rogue_path: pem(self.rogue_cert)}
        self.lock = threading.Lock()
        self.gets = []
        self.confirms = {}
        self.confirm_fail = 0  # the next this many SubscribeURL visits answer 500
        self.server = None
        self.thread = None
        self.port = None

    # ------------------------------------------------------------ server

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.workdir / "fakesns-ca.pem"
        self.ca_file.write_bytes(pem(self.ca))
        tls_cert = self.workdir / "fakesns-tls.pem"
        tls_key = self.workdir / "fakesns-tls.key"
        tls_cert.write_bytes(pem(self.tls_cert) + pem(self.ca))
        tls_key.write_bytes(self.tls_key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls_cert), str(tls_key))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.sns = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def host(self):
        """The certificate host, "127.0.0.1:PORT"."""
        return "127.0.0.1:%d" % self.port

    @property
    def test_trust(self):
        """The value of [feedback] test_trust for this publisher."""
        return "%s %s" % (self.ca_file, self.host)

    @property
    def cert_url(self):
        return "https://%s%s" % (self.host, self.cert_path)

    @property
    def rogue_url(self):
        return "https://%s%s" % (self.host, self.rogue_path)

    def cert_gets(self, url=None):
        """GETs of a certificate (of url's path when given) so far."""
        path = urllib.parse.urlsplit(url).path if url else None
        with self.lock:
            return [g for g in self.gets if g in self.files and (path is None or g == path)]

    def confirm_count(self, token=None):
        """GETs of SubscribeURLs (of token when given) so far."""
        with self.lock:
            return self.confirms.get(token, 0) if token else sum(self.confirms.values())

    # ------------------------------------------------------------ messages

    def notification(self, topic, message, *, version=2, subject=None, cert_url=None, key=None,
                     message_id=None, when=None):
        """A signed Notification envelope (a dict) carrying message (a str)."""
        msg = {"Type": "Notification", "MessageId": message_id or str(uuid.uuid4()), "TopicArn": topic}
        if subject is not None:
            msg["Subject"] = subject
        msg["Message"] = message
        msg["Timestamp"] = timestamp(when)
        msg["SignatureVersion"] = str(version)
        msg["Signature"] = sign(key or self.key, msg, version)
        msg["SigningCertURL"] = cert_url or self.cert_url
        msg["UnsubscribeURL"] = ("https://sns.%s.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=%s:%s"
                                 % (self.region, topic, uuid.uuid4()))
        return msg

    def confirmation(self, topic, *, kind="SubscriptionConfirmation", version=2, cert_url=None,
                     subscribe_url=None, token=None, key=None, when=None):
        """A signed SubscriptionConfirmation or UnsubscribeConfirmation; its
        SubscribeURL points at this server's counter (subscribe_url: another)."""
        token = token or uuid.uuid4().hex * 4
        if subscribe_url is None:
            subscribe_url = "https://%s/?Action=ConfirmSubscription&TopicArn=%s&Token=%s" % (
                self.host, urllib.parse.quote(topic, safe=""), token)
        if kind == "SubscriptionConfirmation":
            text = ("You have chosen to subscribe to the topic %s.\n"
                    "To confirm the subscription, visit the SubscribeURL included in this message." % topic)
        else:
            text = ("You have chosen to deactivate subscription %s:%s.\n"
                    "To cancel this operation and restore the subscription, visit the SubscribeURL "
                    "included in this message." % (topic, uuid.uuid4()))
        msg = {"Type": kind, "MessageId": str(uuid.uuid4()), "Token": token, "TopicArn": topic,
               "Message": text, "SubscribeURL": subscribe_url, "Timestamp": timestamp(when),
               "SignatureVersion": str(version)}
        msg["Signature"] = sign(key or self.key, msg, version)
        msg["SigningCertURL"] = cert_url or self.cert_url
        return msg

    def resign(self, msg, version=None, key=None):
        """msg signed again (after a test changed a field on purpose)."""
        version = version or int(msg["SignatureVersion"])
        msg = dict(msg)
        msg["SignatureVersion"] = str(version)
        msg["Signature"] = sign(key or self.key, msg, version)
        return msg


def post(url, msg=None, *, body=None, headers=None, method="POST", subscription_arn=None, timeout=15.0):
    """POST msg (or the raw body) to url as SNS does; returns (status, text)."""
    u = urllib.parse.urlsplit(url)
    if body is None:
        body = body_of(msg)
    h = headers if headers is not None else headers_of(msg or {}, subscription_arn)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


# An SES identity notification (Bounce), as AWS's documentation shows it.
def ses_bounce(message_id=None, recipient="bounce@simulator.amazonses.com", bounce_type="Permanent"):
    return json.dumps({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "remoteMtaIp": "127.0.2.0",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": "2016-01-27T14:59:38.237Z",
            "source": "john@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
            "sourceIp": "127.0.3.0",
            "sendingAccountId": "123456789012",
            "messageId": message_id or "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": [recipient],
        },
    })


# An SES configuration-set event (Delivery), as AWS's documentation shows it.
def ses_delivery_event(message_id=None, recipient="success@simulator.amazonses.com"):
    return json.dumps({
        "eventType": "Delivery",
        "mail": {
            "timestamp": "2016-10-19T23:20:52.240Z",
            "source": "sender@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
            "sendingAccountId": "123456789012",
            "messageId": message_id or "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
            "destination": [recipient],
            "headersTruncated": False,
            "tags": {"ses:configuration-set": ["ConfigSet"]},
        },
        "delivery": {
            "timestamp": "2016-10-19T23:21:04.133Z",
            "processingTimeMillis": 11893,
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "mta.example.com",
        },
    })
