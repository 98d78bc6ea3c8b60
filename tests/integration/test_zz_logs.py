"""After the client tests: no secret was ever logged or reached the upstream.

Named to run last, once every other test has made sesgate log what it logs.
"""

import base64
import json

import pytest


@pytest.mark.needs_sesgate
def test_no_secret_in_sesgate_log(gateway):
    log = gateway.sesgate.log_text()
    assert log.strip(), "sesgate logged nothing"
    secrets = {"upstream": gateway.upstream.secret}
    secrets.update({name: c.secret for name, c in gateway.clients.items()})
    for name, secret in secrets.items():
        assert secret not in log, "the %s secret appears in sesgate's log" % name


@pytest.mark.needs_sesgate
def test_no_client_credentials_upstream(gateway):
    text = gateway.fake.record_path.read_text()
    for name, c in gateway.clients.items():
        assert c.secret not in text, "the %s secret reached the upstream" % name
        assert c.access_key not in text, "the %s access key reached the upstream" % name
        assert base64.b64encode(c.secret.encode()).decode() not in text


@pytest.mark.needs_sesgate
def test_every_upstream_request_was_validly_signed(gateway):
    """Over the whole run, the upstream never saw a request it refused:
    sesgate signed everything it forwarded correctly, retries included."""

    records = [json.loads(line) for line in gateway.fake.record_path.read_text().splitlines() if line.strip()]
    assert records, "the upstream recorded nothing"
    bad = [r for r in records if not r["verified"]]
    assert not bad, "upstream refused %d request(s); first: %s" % (
        len(bad), json.dumps({k: bad[0].get(k) for k in ("method", "path", "verify_error")}, indent=1))
