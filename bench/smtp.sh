#!/bin/bash
# smtp.sh -- messages taken per second over SMTP: sesgate's SMTP listener
# into its queue against Postfix's smtpd into its queue, on the same
# machine, with the same load, and the ratio sesgate/Postfix.
#
# The load (bench/smtp_load.py) is what Postfix's smtp-source does with
# -s SESSIONS -r RCPTS (SESSIONS sessions at once, messages of RCPTS
# recipients back to back, about 1 KB each) for SECONDS seconds, for RCPTS
# 1 and 20, over STARTTLS on both sides (the same self-signed certificate);
# sesgate also gets AUTH PLAIN once per session, with the client's SMTP
# password (`sesgate smtp-password default`). It prints messages/s and p50
# and p99 per message (MAIL FROM to the answer after the data).
# smtp-source itself speaks neither STARTTLS nor AUTH, so it can only load
# Postfix; its plain-text rate is printed as a reference for the driver.
#
# sesgate: `sesgate run` with the sandbox upstream (no AWS credentials),
# [sandbox] events = off and a rate far above the load, its own Redis; the
# workers drain the queue while it fills, and each recipient becomes one
# .eml in the outbox. Postfix: a private instance (as root) whose smtpd
# takes the mail into its queue (fsync per message), where it stays: each
# message goes to the hold queue (smtpd_data_restrictions = HOLD), which
# the queue manager leaves alone, so the receiving side does no more than
# receive.
#
# Settings (environment): SESGATE_BIN (build/sesgate), SESSIONS (20),
# SECONDS_EACH (20), PROCS (2 driver processes), KEEP (0: delete the work
# directory), TIMEOUT (900 s for the whole run). SMOKE=1: 4 sessions, 2 s
# each, what the test suite runs (tests/integration/test_bench_smoke.py).
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "${SMOKE:-0}" = 1 ]; then
    SESSIONS=${SESSIONS:-4}
    SECONDS_EACH=${SECONDS_EACH:-2}
    TIMEOUT=${TIMEOUT:-120}
    SOURCE_MSGS=${SOURCE_MSGS:-40}
fi
SESSIONS=${SESSIONS:-20}
SECONDS_EACH=${SECONDS_EACH:-20}
PROCS=${PROCS:-2}
TIMEOUT=${TIMEOUT:-900}
SOURCE_MSGS=${SOURCE_MSGS:-2000}
[ "$(id -u)" -eq 0 ] || { echo "smtp: needs root (a private Postfix instance)" >&2; exit 1; }
bin=$(readlink -f "${SESGATE_BIN:-build/sesgate}")
[ -x "$bin" ] || { echo "smtp: no $bin (make, or set SESGATE_BIN)" >&2; exit 1; }
# sesgate reads SESGATE_* variables as settings, and AWS credentials would
# select Amazon SES instead of the sandbox.
unset SESGATE_BIN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
[ -x /usr/sbin/postfix ] && [ -x /usr/sbin/smtp-source ] || { echo "smtp: no postfix (scripts/deps test)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sesgate-smtp.XXXXXX")
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port) admin=$(free_port) smtp=$(free_port)
export PYTHONPATH="$root/tests/integration"
pf() { # pf start|stop|port: the private Postfix under $work/postfix
    /usr/bin/python3 - "$1" "$work" <<'PY'
import sys
from pathlib import Path
import smtp_clients as sc
what, work = sys.argv[1], Path(sys.argv[2])
p = sc.Postfix(work / "postfix", main={
    "smtpd_tls_cert_file": str(work / "cert.pem"), "smtpd_tls_key_file": str(work / "key.pem"),
    "smtpd_tls_security_level": "may", "smtpd_tls_loglevel": "0",
    # into the queue only: every message goes to the hold queue, which the
    # queue manager leaves alone
    "smtpd_data_restrictions": "check_client_access static:HOLD"})
if what == "start":
    p.start()
    (work / "postfix.port").write_text(str(p.port))
else:
    p.started = True
    p.stop()
PY
}
cleanup() {
    [ -f "$work/postfix.port" ] && pf stop || true
    if [ -n "${pid:-}" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -days 2 \
    -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2> /dev/null
cat > sesgate.ini <<EOF
[server]
listen = 127.0.0.1:$port
admin_listen = 127.0.0.1:$admin
tls_cert = $work/cert.pem
tls_key = $work/key.pem
[smtp]
listen = 127.0.0.1:$smtp
max_connections = 1000
[redis]
data_dir = $work/var
[send]
concurrency = 64
first_recipient = queue
[sandbox]
rate = 200000
daily_quota = 100000000
# no SNS events: they would compete with the load measured here
events = off
EOF
"$bin" run -c sesgate.ini > run.out 2> run.err &
pid=$!
for _ in $(seq 600); do
    [ -s var/credentials ] && curl -sf "http://127.0.0.1:$admin/readyz" > /dev/null 2>&1 &&
        (exec 3<> "/dev/tcp/127.0.0.1/$smtp") 2> /dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "smtp: sesgate exited:" >&2; cat run.err >&2; exit 1; }
    sleep 0.1
done
user=$(awk -F' *= *' '$1 == "aws_access_key_id" {print $2; exit}' var/credentials)
"$bin" smtp-password default -c sesgate.ini | awk '$1 == "password" {print $3}' > smtp-password
[ -n "$user" ] && [ -s smtp-password ] || { echo "smtp: no SMTP credentials" >&2; exit 1; }
pf start
pfport=$(cat postfix.port)
echo "smtp: $("$bin" version), $SESSIONS sessions, $SECONDS_EACH s a run, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
load() { # load TARGET RCPTS ARGS...: one run of the driver; its JSON
    local target=$1 rcpts=$2
    shift 2
    timeout "$TIMEOUT" /usr/bin/python3 "$root/bench/smtp_load.py" "$target" "$SESSIONS" "$rcpts" "$SECONDS_EACH" \
        --procs "$PROCS" "$@"
}
line() { # line NAME RCPTS JSON: the human line
    /usr/bin/python3 -c 'import json, sys
r = json.loads(sys.argv[3])
print("smtp: %s, %s recipient(s) a message: %d messages in %.0f s = %.1f messages/s, p50 %s ms, p99 %s ms, max %s ms, errors %d, driver CPU %.1f s%s" % (
    sys.argv[1], sys.argv[2], r["messages"], r["seconds"], r["per_second"], r["p50_ms"], r["p99_ms"], r["max_ms"],
    r["errors"], r["driver_cpu_s"], ("; first errors: %s" % r["first_errors"]) if r["first_errors"] else ""))' "$@"
}
rc=0
for r in 1 20; do
    s=$(load "127.0.0.1:$smtp" "$r" --tls cert.pem --auth "$user" smtp-password)
    line "sesgate (STARTTLS, AUTH)" "$r" "$s"
    p=$(load "127.0.0.1:$pfport" "$r" --tls cert.pem)
    line "postfix smtpd (STARTTLS)" "$r" "$p"
    /usr/bin/python3 -c 'import json, sys
s, p = json.loads(sys.argv[2]), json.loads(sys.argv[3])
ratio = s["per_second"] / p["per_second"] if p["per_second"] else float("nan")
print("smtp: ratio sesgate/postfix, %s recipient(s) a message: %.2f x the messages/s; p99 %s ms vs %s ms" % (
    sys.argv[1], ratio, s["p99_ms"], p["p99_ms"]))
sys.exit(0 if s["errors"] == 0 and p["errors"] == 0 and s["messages"] > 0 and p["messages"] > 0 else 1)' \
        "$r" "$s" "$p" || rc=1
    t0=$(date +%s.%N)
    timeout "$TIMEOUT" /usr/sbin/smtp-source -s "$SESSIONS" -m "$SOURCE_MSGS" -r "$r" -l 1000 -f load@example.com \
        -t "src-$r@example.com" -M load.sesgate.test "127.0.0.1:$pfport" || rc=1
    t1=$(date +%s.%N)
    echo "smtp: reference: smtp-source -s $SESSIONS -r $r (plain text, no pipelining) into postfix: $(awk \
        -v a="$t0" -v b="$t1" -v n="$SOURCE_MSGS" 'BEGIN { printf "%d messages in %.2f s = %.1f messages/s", n, b - a, n / (b - a) }')"
done
echo "smtp: sesgate queue: $("$bin" status -c sesgate.ini | tr '\n' ' ' | cut -c1-200)"
grep -E "level=(error|fatal)|AddressSanitizer" run.err | head -5 || true
exit "$rc"
