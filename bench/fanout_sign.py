#!/usr/bin/python3
"""fanout_sign.py HOST:PORT KEY_ID SECRET OUT NRCPT [REGION]

Write a SigV4-signed (botocore SigV4Auth, service "email") SES v1 SendEmail
POST for http://HOST:PORT/ with NRCPT To recipients, signed with the current
time, in the format sigv4_sendemail.lua and fanout.sh read: one
"Name: value" line per header, an empty line, then the body.

The body is the one the seed-php baseline sends (bench/body.sh N: Source
sender@example.com, recipients userN@example.com, Subject "hi", Text body
"hello") plus Version=2010-12-01, as an SES v1 client sends it. The request
is valid for the server's clock-skew window: sign it right before each run.
"""
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def body(n):
    p = ["Action=SendEmail", "Version=2010-12-01", "Source=sender%40example.com"]
    p += [f"Destination.ToAddresses.member.{i}=user{i}%40example.com" for i in range(1, n + 1)]
    p += ["Message.Subject.Data=hi", "Message.Body.Text.Data=hello"]
    return "&".join(p)


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    hostport, key_id, secret, out, n = sys.argv[1:6]
    region = sys.argv[6] if len(sys.argv) == 7 else "us-east-1"
    data = body(int(n))
    req = AWSRequest(method="POST", url=f"http://{hostport}/", data=data.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(key_id, secret), "email", region).add_auth(req)
    headers = {"Host": hostport}
    headers.update((k, v) for k, v in req.headers.items())
    with open(out, "w") as f:
        for k, v in headers.items():
            f.write(f"{k}: {v}\n")
        f.write("\n")
        f.write(data)


if __name__ == "__main__":
    main()
