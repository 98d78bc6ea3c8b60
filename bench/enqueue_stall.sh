#!/bin/bash
# enqueue_stall.sh -- how long other clients wait while one SendEmail to a
# million recipients is enqueued, and Redis's longest command meanwhile.
#
# `sesgate run` with the built-in sandbox upstream (as bench/million.sh);
# bench/enqueue_stall.py sends one-recipient SendEmails every INTERVAL_MS
# from other connections and, 1 s in, the N-recipient SendEmail; it prints
# p50/p99/max of the single sends made while the big one was in flight.
# Redis logs every command slower than 1 ms (SLOWLOG, slowlog-log-slower-than
# 1000) and its latency monitor every event over 5 ms (LATENCY LATEST); the
# script prints the five slowest commands and the latency events.
#
# Settings (environment): SESGATE_BIN (build/sesgate; another build, e.g.
# release 0.1.0's, to compare), N (1000000), INTERVAL_MS (10), KEEP (0:
# delete the work directory), TIMEOUT (600 s for the whole run),
# PROBE_FRONT (0; 1: the single sends go to a second process, `sesgate
# serve` on the same Redis, so that they measure Redis and not the first
# front's event loop, busy with the big request's 61 MB body).
# SMOKE=1: N=2000 and a 60 s bound, what the test suite runs
# (tests/integration/test_bench_smoke.py). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "${SMOKE:-0}" = 1 ]; then
    N=${N:-2000}
    TIMEOUT=${TIMEOUT:-60}
fi
N=${N:-1000000}
INTERVAL_MS=${INTERVAL_MS:-10}
TIMEOUT=${TIMEOUT:-600}
bin=$(readlink -f "${SESGATE_BIN:-build/sesgate}")
[ -x "$bin" ] || { echo "enqueue_stall: no $bin (make, or set SESGATE_BIN)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sesgate-stall.XXXXXX")
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port) admin=$(free_port) port2=$(free_port) admin2=$(free_port)
cleanup() {
    if [ -n "${pid2:-}" ]; then
        kill "$pid2" 2>/dev/null || true
        wait "$pid2" 2>/dev/null || true
    fi
    if [ -n "${pid:-}" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/sesgate.ini" <<EOF
[server]
listen = 127.0.0.1:$port
admin_listen = 127.0.0.1:$admin
max_body = 128m
[redis]
data_dir = $work/var
[send]
max_recipients = $((N > 2 ? N : 2))
concurrency = 64
first_recipient = queue
[sandbox]
rate = 200000
daily_quota = 2000000
# no SNS events: they would compete with the fills measured here
events = off
EOF
if [ "${PROBE_FRONT:-0}" = 1 ]; then
    sed -e "s/^listen = .*/listen = 127.0.0.1:$port2/" \
        -e "s/^admin_listen = .*/admin_listen = 127.0.0.1:$admin2/" "$work/sesgate.ini" > "$work/serve.ini"
fi
cd "$work"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u SESGATE_BIN -u TEST_SESGATE_FILL_STEP \
    "$bin" run -c sesgate.ini > run.out 2> run.err &
pid=$!
for _ in $(seq 600); do
    [ -S var/redis/redis.sock ] && [ -s var/credentials ] &&
        curl -sf "http://127.0.0.1:$admin/readyz" > /dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "enqueue_stall: sesgate exited:" >&2; cat run.err >&2; exit 1; }
    sleep 0.1
done
probe_port=$port
if [ "${PROBE_FRONT:-0}" = 1 ]; then
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u SESGATE_BIN -u TEST_SESGATE_FILL_STEP \
        "$bin" serve -c serve.ini > serve.out 2> serve.err &
    pid2=$!
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$admin2/readyz" > /dev/null 2>&1 && break
        kill -0 "$pid2" 2>/dev/null || { echo "enqueue_stall: sesgate serve exited:" >&2; cat serve.err >&2; exit 1; }
        sleep 0.1
    done
    probe_port=$port2
fi
rcli() { redis-cli -s var/redis/redis.sock "$@"; }
rcli CONFIG SET slowlog-log-slower-than 1000 > /dev/null
rcli CONFIG SET slowlog-max-len 100000 > /dev/null
rcli CONFIG SET latency-monitor-threshold 5 > /dev/null
rcli SLOWLOG RESET > /dev/null
rcli LATENCY RESET > /dev/null
echo "enqueue_stall: $("$bin" version), N $N, a single send every $INTERVAL_MS ms to $([ "$probe_port" = "$port" ] && echo "the same front" || echo "a second front"), load $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
timeout "$TIMEOUT" /usr/bin/python3 "$root/bench/enqueue_stall.py" "127.0.0.1:$port" var/credentials "$N" \
    probes.json "$INTERVAL_MS" "127.0.0.1:$probe_port" || rc=$?
# SLOWLOG GET: [id, time, microseconds, [command, args...], client, name]
rcli --json SLOWLOG GET 100000 > slowlog.json
/usr/bin/python3 - slowlog.json <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
log.sort(key=lambda e: -e[2])
print("enqueue_stall: Redis commands over 1 ms: %d; the slowest (ms, command, first key):" % len(log))
for e in log[:5]:
    a = e[3]
    key = a[3] if a[0].upper() in ("EVAL", "EVALSHA") and len(a) > 3 else (a[1] if len(a) > 1 else "")
    print("  %.1f %s %s" % (e[2] / 1000.0, a[0], key[:60]))
PY
echo "enqueue_stall: LATENCY LATEST (event, time, latest ms, max ms):"
rcli --json LATENCY LATEST > latency.json
/usr/bin/python3 -c 'import json, sys
for e in json.load(open(sys.argv[1])): print("  %s %s %s %s" % tuple(e[:4]))' latency.json
echo "enqueue_stall: redis-server peak RSS $(awk '/VmHWM/{print $2}' "/proc/$(pgrep -P "$pid" redis-server)/status" 2>/dev/null) kB"
grep -E "level=(error|fatal)|AddressSanitizer" run.err | head -5 || true
exit "$rc"
