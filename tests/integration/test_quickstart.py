"""The README's quick start, executed: `scripts/start` with no configuration
file and no AWS credentials, then every command of the README block marked
"quickstart", as written, in a fresh directory (so `var/` is the daemon's
data directory and `to.json` lands there). Two things differ from a
person's run, and only through the environment and a textual port
substitution: the daemon listens on free ports instead of 8025/8026, and the
sandbox runs at 200 recipients a second instead of 14, so that the
1,000-recipient mail takes seconds rather than a minute and a half.

Checked: each command succeeds; the single mail's MessageId is SES-shaped
and its .eml is in the outbox; the 1,000-recipient mail becomes 1,000 .eml
files, one per reader, each with its own To; `batch show last --watch`
prints progress lines and then the complete batch; both simulator copies
are sent (SES accepts them), the sandbox's Bounce and Delivery reach the
SNS endpoint (its log lines), the batch then counts one delivered and one
bounced with the bounce's type, subtype and diagnostic, `suppression list`
shows the bounced address (added by the event), and the bounce's
notification is in the outbox; the key's secret appears in no output.

This checks the user's build: scripts/start builds and runs build/sesgate,
the optimized binary without sanitizers, exactly as a person's quick start
does. Memory errors are the business of the tests that run $SESGATE_BIN
(the sanitizer build under tests/run); none is looked for here.
"""

import json
import os
import re
import signal
import subprocess
import time
from email import message_from_bytes
from email.policy import default as email_policy

import pytest

import harness

pytestmark = pytest.mark.needs_sesgate

README = harness.REPO / "README.md"
MARK = "<!-- quickstart:"
SEP = "@@@ quickstart command "


def quickstart_commands():
    """The commands of the README's quickstart block, continuation lines
    joined, comments and blank lines dropped."""
    text = README.read_text()
    assert MARK in text, "README has no quickstart block"
    block = text.split(MARK, 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    cmds, cur = [], ""
    for line in block.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cmds.append(cur + line)
        cur = ""
    assert not cur, "a continuation line ends the block"
    return cmds


@pytest.fixture
def started(tmp_path):
    """scripts/start with no configuration, data in tmp_path/var; yields
    (workdir, port, stdout text so far as a callable)."""
    port, admin = harness.free_port(), harness.free_port()
    work = tmp_path / "qs"
    work.mkdir()
    (work / "build").symlink_to(harness.REPO / "build")
    out = open(tmp_path / "start.out", "wb")
    env = harness.clean_env({
        "SESGATE_SERVER_LISTEN": "127.0.0.1:%d" % port,
        "SESGATE_SERVER_ADMIN_LISTEN": "127.0.0.1:%d" % admin,
        "SESGATE_REDIS_DATA_DIR": str(work / "var"),
        "SESGATE_SANDBOX_RATE": "200",
    })
    proc = subprocess.Popen([str(harness.REPO / "scripts" / "start")], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, env=env, cwd=str(work))
    out.close()
    text = lambda: (tmp_path / "start.out").read_text(errors="replace")  # noqa: E731
    try:
        deadline = time.monotonic() + 600  # a first start may build
        while time.monotonic() < deadline and "try it from another terminal" not in text():
            assert proc.poll() is None, "scripts/start exited %s:\n%s" % (proc.returncode, text()[-3000:])
            time.sleep(0.2)
        assert "try it from another terminal" in text(), text()[-3000:]
        harness.wait_port(port)
        yield work, port, text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, text()[-3000:]


def run_block(work, port, cmds, timeout=300):
    """Run cmds in one bash (set -e) in work; returns the output of each."""
    script = ["set -e"]
    for i, c in enumerate(cmds):
        script.append("echo '%s%d'" % (SEP, i))
        script.append(c.replace("127.0.0.1:8025", "127.0.0.1:%d" % port))
    env = harness.clean_env({"PATH": "/usr/bin:/bin:" + os.environ.get("PATH", "")})
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=str(work), env=env, capture_output=True,
                       text=True, timeout=timeout)
    parts = re.split(r"^%s(\d+)$" % re.escape(SEP), r.stdout, flags=re.M)
    outs = {int(parts[k]): parts[k + 1] for k in range(1, len(parts) - 1, 2)}
    assert r.returncode == 0, "quick start failed after %d commands: %s\nstdout:\n%s\nstderr:\n%s" % (
        len(outs), cmds[len(outs) - 1] if outs else "", r.stdout[-3000:], r.stderr[-3000:])
    assert len(outs) == len(cmds)
    return [outs[i] for i in range(len(cmds))], r.stderr


def find(cmds, outs, pattern, nth=0):
    """The output of the nth command matching pattern."""
    hits = [o for c, o in zip(cmds, outs) if re.search(pattern, c)]
    assert len(hits) > nth, (pattern, cmds)
    return hits[nth]


def test_readme_quick_start(started):
    work, port, start_out = started
    cmds = quickstart_commands()
    assert any("send-email" in c for c in cmds) and any(re.search(r"batch show last$", c) for c in cmds)
    outs, err = run_block(work, port, cmds)

    banner = start_out()
    assert "upstream: the built-in sandbox" in banner
    creds = (work / "var" / "credentials").read_text()
    secret = re.search(r"aws_secret_access_key = (\S+)", creds).group(1)
    key_id = re.search(r"aws_access_key_id = (\S+)", creds).group(1)
    assert key_id in banner
    for text in outs + [err, banner]:
        assert secret not in text
    assert oct((work / "var" / "credentials").stat().st_mode & 0o777) == "0o600"

    # One mail.
    first = json.loads(find(cmds, outs, r"--to someone@example.com"))
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{6}",
                        first["MessageId"]), first
    listed = find(cmds, outs, r"^ls var/outbox/$").split()
    assert listed == ["%s-1.eml" % first["MessageId"]], listed

    # 1,000 recipients.
    bulk = json.loads(find(cmds, outs, r"file://to\.json"))
    assert bulk["MessageId"]
    status = find(cmds, outs, r"sesgate status").splitlines()
    assert any(ln.startswith("depth ") for ln in status) and any(ln.startswith("batch ") for ln in status)
    shown = find(cmds, outs, r"batch show last --watch", 0).splitlines()
    assert "total 1000" in shown and "sent 1000" in shown and "dead 0" in shown, shown[:20]
    rows = [ln for ln in shown if re.match(r"^\d+ \S+ sent ", ln)]
    assert len(rows) == 1000
    assert rows[0].split()[3] == bulk["MessageId"]  # copy 0 answered the client
    count = find(cmds, outs, r"grep -c").strip()
    assert count == "1001"
    readers = {}
    for f in harness.outbox(work / "var" / "outbox"):
        m = message_from_bytes(f.read_bytes(), policy=email_policy)
        if m["Subject"] == "Our news":
            readers[str(m["To"])] = readers.get(str(m["To"]), 0) + 1
            assert m["Message-ID"] and m["Date"] and m["From"] == "news@example.com"
    assert readers == {"reader%04d@example.com" % i: 1 for i in range(1, 1001)}

    # The simulator: SES accepts both copies; then one delivered, one
    # bounced, as SES's events say.
    shown = find(cmds, outs, r"batch show last --watch", 1).splitlines()
    assert "total 2" in shown and "sent 2" in shown and "dead 0" in shown, shown
    rows = [ln for ln in shown if re.match(r"^\d+ \S+ sent ", ln)]
    assert sorted(r.split()[1] for r in rows) == ["bounce@simulator.amazonses.com",
                                                  "success@simulator.amazonses.com"], rows
    # the sandbox's events reached the SNS endpoint and were applied
    topic = "arn:aws:sns:us-east-1:000000000000:sesgate-sandbox"
    log = start_out()
    for kind in ("Bounce", "Delivery"):
        assert re.search(r"event=feedback .*type=Notification outcome=applied topic=%s .*kind=%s"
                         % (re.escape(topic), kind), log), log[-3000:]
    assert "sandbox_event_refused" not in log
    shown = find(cmds, outs, r"batch show last$").splitlines()
    assert "delivered 1" in shown and "bounced 1" in shown, shown
    bounced = [ln for ln in shown if re.match(r"^  bounce@simulator\.amazonses\.com bounced ", ln)]
    assert len(bounced) == 1 and bounced[0].endswith(" Permanent General smtp; 550 5.1.1 user unknown"), shown
    # the bounce put the address on the suppression list, and only it
    sup = [ln.split() for ln in find(cmds, outs, r"suppression list").splitlines() if ln.strip()]
    assert len(sup) == 1 and sup[0][:2] == ["bounce@simulator.amazonses.com", "BOUNCE"] and sup[0][-1] == "event", sup
    bounces = list(harness.outbox(work / "var" / "outbox", "*.bounce.json"))
    assert len(bounces) == 1
    note = json.loads(bounces[0].read_text())
    assert note["notificationType"] == "Bounce"
    assert "bounce@simulator.amazonses.com" in json.dumps(note["bounce"])

    # SES's bulk call: 120 destinations, one answer entry each, every reader
    # one file rendered with its own data.
    answer = json.loads(find(cmds, outs, r"send-bulk-templated-email"))["Status"]
    assert len(answer) == 120 and all(a["Status"] == "Success" and a["MessageId"] for a in answer), answer[:3]
    queued = [a["MessageId"] for a in answer if a["MessageId"].startswith("sesgate-")]
    assert 0 < len(queued) < 120, "the first destinations go before the answer, the rest is queued"
    shown = find(cmds, outs, r"batch show last --watch", 2).splitlines()
    assert "total %d" % len(queued) in shown and "sent %d" % len(queued) in shown, shown[:20]
    fans = {}
    for f in harness.outbox(work / "var" / "outbox"):
        m = message_from_bytes(f.read_bytes(), policy=email_policy)
        if str(m["To"]).startswith("fan"):
            fans[str(m["To"])] = m["Subject"]
    assert fans == {"fan%03d@example.com" % i: "Hello reader %d" % i for i in range(1, 121)}
