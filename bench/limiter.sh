#!/bin/bash
# limiter.sh -- what the shared rate limiter costs a pass-through send: one
# `sesgate serve` at a time in front of a static fake SES (nginx answering
# every POST with a SendEmailResponse), with a Redis of its own, loaded with
# wrk -t1 -c16 and a one-recipient SigV4-signed SendEmail. Targets, in rounds
# (each once per round, so a slow spell of the machine hits every one):
#   off      [send] rate = off (no limiter)
#   on       [send] rate = 1000000 (the limiter at a rate it never reaches)
#   base     BASE_BIN (another build, e.g. the commit before) at rate = 1000000
# For each run: requests/s, sesgate's CPU microseconds per request (user + sys
# from /proc/PID/stat over the run; the same for its Redis), Redis commands per request (INFO
# commandstats before and after; those a script runs count too) and script
# calls (EVALSHA, EVAL) per request, and the medians per target. Every run must
# have 0 non-2xx responses and 0 socket errors, or the script stops.
# Loopback only; every process it starts is stopped on exit.
#
# Settings (environment): RUNS (3), DUR (8s), WARM (1s), CONNS (16),
#   TARGETS ("off on", plus "base" when BASE_BIN is set), BASE_BIN,
#   SESGATE_BIN (build/sesgate), UP_PORT (8191), SG_PORT (8194), REDIS_PORT (6392)
# Output: one line per run and a Markdown table on stdout.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MAIN="$(dirname "$HERE")"
SESGATE_BIN="${SESGATE_BIN:-$MAIN/build/sesgate}"; BASE_BIN="${BASE_BIN:-}"
RUNS="${RUNS:-3}"; DUR="${DUR:-8s}"; WARM="${WARM:-1s}"; CONNS="${CONNS:-16}"
TARGETS="${TARGETS:-off on${BASE_BIN:+ base}}"
UP_PORT="${UP_PORT:-8191}"; SG_PORT="${SG_PORT:-8194}"; REDIS_PORT="${REDIS_PORT:-6392}"
KEY=SGBENCH0000000000001; SECRET=bench-client-secret-0123456789
TMP=""; SG_PID=""; REDIS_PID=""

stop_pid() { # PID TEXT: TERM then KILL, only if PID's command line holds TEXT
    local i
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$2" || return 0
    kill -TERM "$1" 2>/dev/null || true
    for i in $(seq 1 50); do [ -d "/proc/$1" ] || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
    trap - EXIT INT TERM
    [ -n "$SG_PID" ] && { stop_pid "$SG_PID" sesgate; wait "$SG_PID" 2>/dev/null || true; }
    [ -n "$TMP" ] && [ -f "$TMP/nginx.pid" ] && stop_pid "$(cat "$TMP/nginx.pid")" "nginx: master"
    [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID" redis-server
    [ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
wait_port() { local i; for i in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
for t in wrk nginx redis-server redis-cli; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done

TMP="$(mktemp -d /tmp/sesgate-limiter.XXXXXX)"
cat > "$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/body;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / {
            default_type text/xml;
            return 200 '<SendEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><SendEmailResult><MessageId>0100018c-bench</MessageId></SendEmailResult><ResponseMetadata><RequestId>bench-req</RequestId></ResponseMetadata></SendEmailResponse>';
        }
    }
}
EOF
nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" > "$TMP/redis.log" 2>&1 &
REDIS_PID=$!
wait_port "$UP_PORT"; wait_port "$REDIS_PORT"
RC() { redis-cli -p "$REDIS_PORT" "$@"; }
# cmds: "commands script-calls" run so far (commands inside a script count too)
cmds() { RC INFO commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" {n += $3}
    $1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" {e += $3} END {print n + 0, e + 0}'; }

# start TARGET: sesgate for it, on SG_PORT
start() {
    local bin="$SESGATE_BIN" rate=1000000
    [ "$1" = off ] && rate=off
    [ "$1" = base ] && bin="$BASE_BIN"
    mkdir -p "$TMP/var"
    cat > "$TMP/sesgate.ini" <<EOF
[server]
listen = 127.0.0.1:$SG_PORT
[upstream]
endpoint = http://127.0.0.1:$UP_PORT
region = us-east-1
access_key_id = AKIDBENCHUPSTREAM001
secret_access_key = bench-upstream-secret-never-checked
[redis]
url = redis://127.0.0.1:$REDIS_PORT
data_dir = $TMP/var
[send]
rate = $rate
[client.bench]
access_key_id = $KEY
secret_access_key = $SECRET
EOF
    chmod 600 "$TMP/sesgate.ini"
    env -i PATH="$PATH" HOME="$TMP" "$bin" serve -c "$TMP/sesgate.ini" 2>> "$TMP/sesgate.log" &
    SG_PID=$!
    wait_port "$SG_PORT"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
echo "# limiter.sh $(date -u +%FT%TZ) commit $(git -C "$MAIN" rev-parse --short HEAD) RUNS=$RUNS DUR=$DUR CONNS=$CONNS TARGETS='$TARGETS'${BASE_BIN:+ BASE_BIN=$BASE_BIN}"
: > "$TMP/runs"
for r in $(seq 1 "$RUNS"); do
    for t in $TARGETS; do
        RC FLUSHALL > /dev/null
        start "$t"
        /usr/bin/python3 "$HERE/sign_sendemail.py" "127.0.0.1:$SG_PORT" "$KEY" "$SECRET" "$TMP/req.txt"
        wrk -t1 -c"$CONNS" -d"$WARM" -s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$SG_PORT/" -- "$TMP/req.txt" > "$TMP/warm.txt" 2>&1
        read -r c0 e0 < <(cmds); k0=$(ticks "$SG_PID"); q0=$(ticks "$REDIS_PID")
        wrk -t1 -c"$CONNS" -d"$DUR" -s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$SG_PORT/" -- "$TMP/req.txt" > "$TMP/wrk.txt" 2>&1
        k1=$(ticks "$SG_PID"); q1=$(ticks "$REDIS_PID"); read -r c1 e1 < <(cmds)
        json=$(sed -n 's/^JSON //p' "$TMP/wrk.txt")
        [ -n "$json" ] || { cat "$TMP/wrk.txt" >&2; exit 1; }
        line=$(/usr/bin/python3 - "$t" "$r" "$json" "$k0" "$k1" "$HZ" "$c0" "$c1" "$e0" "$e1" "$q0" "$q1" <<'PY'
import json, sys
t, r, j, k0, k1, hz, c0, c1, e0, e1, q0, q1 = sys.argv[1:]
j = json.loads(j)
if j["non2xx"] or j["errors"]:
    sys.exit("run %s of %s: %d non-2xx, %d socket errors" % (r, t, j["non2xx"], j["errors"]))
n = j["requests"]
cpu = (int(k1) - int(k0)) / int(hz) * 1e6 / n
rcpu = (int(q1) - int(q0)) / int(hz) * 1e6 / n
print("%s %s %.0f %.1f %.3f %d %.4f %.1f" % (t, r, j["rps"], cpu, (int(c1) - int(c0)) / n, j["p99_us"],
                                           (int(e1) - int(e0)) / n, rcpu))
PY
)
        echo "$line" | tee -a "$TMP/runs" | awk '{printf "run %s %-4s %8s req/s  %6s us CPU/req (Redis %s)  %6s Redis cmds/req  %s script calls/req  p99 %s us\n", $2, $1, $3, $4, $8, $5, $7, $6}'
        stop_pid "$SG_PID" sesgate; wait "$SG_PID" 2>/dev/null || true; SG_PID=""
    done
done
echo
echo "| target | req/s (median) | sesgate CPU us/request (median) | Redis CPU us/request (median) | Redis commands/request (median) | script calls/request (median) | p99 us (median) |"
echo "|---|---|---|---|---|---|---|"
for t in $TARGETS; do
    awk -v t="$t" '$1 == t' "$TMP/runs" | /usr/bin/python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin]
med = lambda i: statistics.median(float(x[i]) for x in rows)
print("| %s | %.0f | %.1f | %.1f | %.3f | %.4f | %.0f |" % (rows[0][0], med(2), med(3), med(7), med(4), med(6), med(5)))'
done
