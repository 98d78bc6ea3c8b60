"""An aws command line plugin for sesgate's integration tests.

Loaded through a generated config file ([plugins] cli_legacy_plugin_path);
controlled by the environment:

  SESGATE_TEST_FAULT=expired   sign with a clock 10 minutes in the past
  SESGATE_TEST_FAULT=tampered  change one body byte after signing
  SESGATE_TEST_CAPTURE=FILE    append each request as sent (JSON line)
"""

import base64
import datetime
import json
import os
import types
import urllib.parse


def _tamper(body):
    """body with its last ASCII letter changed to another letter."""
    b = bytearray(body.encode() if isinstance(body, str) else body)
    for i in range(len(b) - 1, -1, -1):
        c = b[i]
        if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
            b[i] = c + 1 if c in (0x58, 0x78) else (c & 0x20) | 0x58
            return bytes(b)
    raise ValueError("no letter to tamper with")


def _shift_signing_clock(seconds):
    """Make botocore's SigV4 signers (pure Python and CRT) read a clock moved
    by seconds."""
    import importlib

    class _Shifted(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)

    shifted_module = types.SimpleNamespace(**dict(vars(datetime), datetime=_Shifted))
    for name in ("botocore.auth", "botocore.crt.auth"):
        try:
            importlib.import_module(name).datetime = shifted_module
        except ImportError:
            pass


def awscli_initialize(cli):
    """Plugin entry point: register the handlers the environment asks for."""
    fault = os.environ.get("SESGATE_TEST_FAULT", "")
    capture = os.environ.get("SESGATE_TEST_CAPTURE", "")
    if fault == "expired":
        _shift_signing_clock(-600)

    def before_send(request, **kwargs):
        if fault == "tampered":
            request.body = _tamper(request.body)
        if capture:
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode()
            parts = urllib.parse.urlsplit(request.url)
            rec = {
                "method": request.method, "path": parts.path, "query": parts.query,
                "headers": {k.lower(): (v.decode() if isinstance(v, bytes) else v)
                            for k, v in request.headers.items()},
                "body_b64": base64.b64encode(body).decode(),
            }
            with open(capture, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        return None

    if fault == "tampered" or capture:
        cli.register("before-send", before_send)
