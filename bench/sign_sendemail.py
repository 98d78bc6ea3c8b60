#!/usr/bin/python3
"""sign_sendemail.py HOST:PORT KEY_ID SECRET OUT [REGION]

Write a SigV4-signed (botocore SigV4Auth, service "email") SES v1 SendEmail
POST for http://HOST:PORT/ to OUT, signed with the current time: one
"Name: value" line per header, an empty line, then the body. The request is
valid for the server's clock-skew window, so sign it right before each run.
"""
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

BODY = (
    "Action=SendEmail&Version=2010-12-01&Source=sender%40example.com"
    "&Destination.ToAddresses.member.1=user1%40example.com"
    "&Message.Subject.Data=hi&Message.Body.Text.Data=hello"
)


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    hostport, key_id, secret, out = sys.argv[1:5]
    region = sys.argv[5] if len(sys.argv) == 6 else "us-east-1"
    req = AWSRequest(
        method="POST",
        url=f"http://{hostport}/",
        data=BODY.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(key_id, secret), "email", region).add_auth(req)
    headers = {"Host": hostport}
    headers.update((k, v) for k, v in req.headers.items())
    with open(out, "w") as f:
        for k, v in headers.items():
            f.write(f"{k}: {v}\n")
        f.write("\n")
        f.write(BODY)


if __name__ == "__main__":
    main()
