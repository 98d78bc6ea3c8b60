#!/bin/bash
# passthrough.sh -- pass-through of a one-recipient SES v1 SendEmail, side by
# side in one run, against the same fake SES upstream (nginx, 127.0.0.1:8091):
#   upstream the fake SES alone (a reference for the machine's speed)
#   php      the seed-php front (nginx + php-fpm, 127.0.0.1:8090), WORKERS=0
#   nginx    nginx proxy_pass with upstream keepalive, 1 worker (no cryptography)
#   sesgate  build/sesgate serve (verifies SigV4, re-signs, forwards)
# For each: wrk -t1 -c16 -d10s --latency, 3 runs each after a 2 s warm-up, then
# the same with -c1; the runs go in rounds (every target once per round). Every
# run must have 0 non-2xx responses, 0 socket errors and one upstream request
# per client request, or the script stops with an error.
# Loopback only; every process it starts is stopped on exit (trap).
#
# Settings (environment):
#   RUNS (3), DUR (10s), WARM (2s), CONNS ("16 1")
#   TARGETS ("upstream php nginx sesgate")
#   PROFILE (1: perf profile of sesgate during one more run at the end)
#   IDLE_MAX (0.15): before a run, wait (up to WAIT_IDLE=1800 s) until other
#     processes use fewer cores than this
#   OTHER_MAX (0.12): a run during which other processes used more cores is
#     repeated, up to TRIES=5 times, then kept and flagged
#   MAX_SOCKET_ERRORS (0): socket errors tolerated per wrk run (shown in the
#     table); non-2xx responses are never tolerated
#   PROXY_PORT (8093), SESGATE_PORT (8094), SESGATE_ADMIN_PORT (8095)
#   FRONT_PORT (8090), UPSTREAM_PORT (8091), CAPTURE_PORT (8092), REDIS_PORT (6390): the
#     baseline's ports
#   SEED_PHP (the seed-php baseline folder, kept outside this repository): without it the
#     target php is left out and the fake upstream is this folder's nginx-upstream.conf.in
#     (the baseline's server, the same answer), so the other targets still run
#   KEEP_TMP (0: remove the temp dir on success),
#   BASE_BIN (none): another build, measured as target "base" (add it to TARGETS) with the
#     same configuration on BASE_PORT (8096, admin 8097), for a before/after in one run;
#     BASE_RATE (SG_RATE): the base's [send] rate, e.g. BASE_BIN=build/sesgate BASE_RATE=off
#     SG_RATE=1000000 compares the limiter on and off in one run
#   SESGATE_BIN (build/sesgate: another build to measure), SG_RATE (off: [send] rate; a number
#     runs every send through the shared limiter at a rate it never reaches; never auto: the
#     fake upstream does not answer GetSendQuota, so auto would hold every send),
#   RESULTS_DIR (bench/results)
#   FREE_PORTS (0; 1: every port not given is one the kernel picks free)
#   SMOKE=1: one round of 1 s runs at -c16 on free ports, no idle wait, no profile (what
#     `make bench` and tests/integration/test_bench_smoke.py run)
# Output: the Markdown table on stdout; bench/results/{raw.jsonl,log.txt,table.md,profile.txt}.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MAIN="$(dirname "$HERE")"
SEED_PHP="${SEED_PHP:-}"
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if [ "${SMOKE:-0}" = 1 ]; then
    RUNS="${RUNS:-1}"; DUR="${DUR:-1s}"; WARM="${WARM:-1s}"; CONNS="${CONNS:-16}"; PROFILE="${PROFILE:-0}"
    IDLE_MAX="${IDLE_MAX:-99}"; TRIES="${TRIES:-1}"; OTHER_MAX="${OTHER_MAX:-99}"
    FREE_PORTS="${FREE_PORTS:-1}"
fi
if [ "${FREE_PORTS:-0}" = 1 ]; then   # ports the kernel picks, for those not given
    for v in FRONT_PORT UPSTREAM_PORT CAPTURE_PORT REDIS_PORT PROXY_PORT SESGATE_PORT SESGATE_ADMIN_PORT BASE_PORT BASE_ADMIN_PORT; do
        [ -n "${!v:-}" ] || printf -v "$v" '%s' "$(free_port)"
    done
fi
SESGATE_BIN_GIVEN="${SESGATE_BIN:-}"; SESGATE_BIN="${SESGATE_BIN:-$MAIN/build/sesgate}"; SG_RATE="${SG_RATE:-off}"; BASE_RATE="${BASE_RATE:-$SG_RATE}"
BASE_BIN="${BASE_BIN:-}"; BASE_PORT="${BASE_PORT:-8096}"; BASE_ADMIN_PORT="${BASE_ADMIN_PORT:-8097}"
RUNS="${RUNS:-3}"; DUR="${DUR:-10s}"; WARM="${WARM:-2s}"; CONNS="${CONNS:-16 1}"
if [ -n "$SEED_PHP" ]; then TARGETS="${TARGETS:-upstream php nginx sesgate}"; else TARGETS="${TARGETS:-upstream nginx sesgate}"; fi
PROFILE="${PROFILE:-1}"; KEEP_TMP="${KEEP_TMP:-0}"
IDLE_MAX="${IDLE_MAX:-0.15}"; WAIT_IDLE="${WAIT_IDLE:-1800}"; TRIES="${TRIES:-5}"
export OTHER_MAX="${OTHER_MAX:-0.12}"
FRONT_PORT="${FRONT_PORT:-8090}"; UPSTREAM_PORT="${UPSTREAM_PORT:-8091}"   # the baseline's defaults
CAPTURE_PORT="${CAPTURE_PORT:-8092}"; REDIS_PORT="${REDIS_PORT:-6390}"
export FRONT_PORT UPSTREAM_PORT CAPTURE_PORT REDIS_PORT   # read by the baseline's env.sh
PROXY_PORT="${PROXY_PORT:-8093}"; SESGATE_PORT="${SESGATE_PORT:-8094}"
SESGATE_ADMIN_PORT="${SESGATE_ADMIN_PORT:-8095}"
CLIENT_KEY=SGBENCH0000000000001
CLIENT_SECRET=bench-client-secret-0123456789
OUT="${RESULTS_DIR:-$HERE/results}"
RAW="$OUT/raw.jsonl"; LOG="$OUT/log.txt"

TMP=""; SG_PID=""; BASE_PID=""; WRK_PID=""; PERF_PID=""; PHP_STARTED=0

log() { echo "[$(date +%T)] $*" >> "$LOG"; echo "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# cmdline_has PID TEXT: the process PID exists and its command line contains TEXT
cmdline_has() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$2"; }

# stop_pid PID TEXT: TERM, wait up to 5 s, then KILL (only if the command line matches)
stop_pid() {
    local pid="$1" text="$2" i
    cmdline_has "$pid" "$text" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$PERF_PID" ] && stop_pid "$PERF_PID" perf
    [ -n "$WRK_PID" ] && stop_pid "$WRK_PID" wrk
    [ -n "$SG_PID" ] && { stop_pid "$SG_PID" sesgate; wait "$SG_PID" 2>/dev/null || true; }
    [ -n "$BASE_PID" ] && { stop_pid "$BASE_PID" sesgate; wait "$BASE_PID" 2>/dev/null || true; }
    if [ -n "$TMP" ] && [ -f "$TMP/nginx-proxy.pid" ]; then
        stop_pid "$(cat "$TMP/nginx-proxy.pid")" "nginx: master"
    fi
    if [ -n "$TMP" ] && [ -f "$TMP/php/nginx-upstream.pid" ] && [ "$PHP_STARTED" = 0 ]; then
        stop_pid "$(cat "$TMP/php/nginx-upstream.pid")" "nginx: master"
    fi
    if [ "$PHP_STARTED" = 1 ]; then
        RUN_DIR="$TMP/php" "$SEED_PHP/stop.sh" >/dev/null 2>&1 || echo "seed-php stop.sh failed (run dir $TMP/php)" >&2
    fi
    if [ -n "$TMP" ]; then
        if [ "$KEEP_TMP" = 1 ] || [ "$rc" != 0 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    local i
    for i in $(seq 1 100); do port_busy "$1" && return 0; sleep 0.05; done
    die "nothing listening on 127.0.0.1:$1"
}

machine() {  # the machine and software versions, as Markdown list items
    local deb; deb="$(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "- CPU: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- memory: $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- kernel $(uname -r), Debian $deb"
    echo "- nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(php -v 2>/dev/null | head -1 | cut -d' ' -f1-2),"\
         "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'),"\
         "libcurl $(curl-config --version 2>/dev/null | cut -d' ' -f2 || dpkg-query -W -f '${Version}' libcurl4),"\
         "libevent $(pkg-config --modversion libevent 2>/dev/null || echo '?'),"\
         "$(openssl version | cut -d' ' -f1-2), python3-botocore $(/usr/bin/python3 -c 'import botocore; print(botocore.__version__)')"
    echo "- $("$SESGATE_BIN" version)"
}

# sign HOSTPORT FILE: a freshly signed request (the signature holds for the clock-skew window)
sign() { /usr/bin/python3 "$HERE/sign_sendemail.py" "$1" "$CLIENT_KEY" "$CLIENT_SECRET" "$2"; }

# curl_signed FILE URL OUTBODY: POST the signed request in FILE with curl; prints the status
curl_signed() {
    local line args=()
    while IFS= read -r line; do [ -z "$line" ] && break; args+=(-H "$line"); done < "$1"
    awk 'f{printf "%s%s", sep, $0; sep="\n"} /^$/{f=1}' "$1" > "$1.body"
    curl -s -o "$3" -w '%{http_code}' --max-time 5 "${args[@]}" --data-binary @"$1.body" "$2"
}

uplines() { wc -l < "$TMP/php/upstream-access.log"; }

# children_seconds: sets CS to the user+sys CPU seconds of this shell's reaped
# children (the builtin must run in this shell, not in a $(...) subshell)
children_seconds() {
    local u s
    times > "$TMP/times"
    { read -r _; read -r u s; } < "$TMP/times"   # e.g. "0m1.234s 0m0.567s"
    u="${u%s}"; s="${s%s}"
    CS="${u%%m*} ${u#*m} ${s%%m*} ${s#*m}"      # "min sec min sec", summed by awk later
}

# prepare TARGET: set WRK_ARGS for TARGET, signing a fresh request where needed
prepare() {
    case "$1" in
    upstream) if [ "$PHP_STARTED" = 1 ]; then
            WRK_ARGS=(-s "$SEED_PHP/bench/sendemail.lua" "http://127.0.0.1:$UPSTREAM_PORT/" -- 1)
        else
            sign "127.0.0.1:$UPSTREAM_PORT" "$TMP/req-upstream.txt"
            WRK_ARGS=(-s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$UPSTREAM_PORT/" -- "$TMP/req-upstream.txt")
        fi ;;
    php) WRK_ARGS=(-s "$SEED_PHP/bench/sendemail.lua" "http://127.0.0.1:$FRONT_PORT/" -- 1) ;;
    nginx) sign "127.0.0.1:$PROXY_PORT" "$TMP/req-nginx.txt"
        WRK_ARGS=(-s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$PROXY_PORT/" -- "$TMP/req-nginx.txt") ;;
    base) sign "127.0.0.1:$BASE_PORT" "$TMP/req-base.txt"
        WRK_ARGS=(-s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$BASE_PORT/" -- "$TMP/req-base.txt") ;;
    sesgate) sign "127.0.0.1:$SESGATE_PORT" "$TMP/req-sesgate.txt"
        WRK_ARGS=(-s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$SESGATE_PORT/" -- "$TMP/req-sesgate.txt") ;;
    esac
}

# run_wrk CONNS DUR OUTFILE: wrk with WRK_ARGS (in the background, so the trap can stop it)
run_wrk() {
    local rc=0
    wrk -t1 -c"$1" -d"$2" --latency "${WRK_ARGS[@]}" > "$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    [ "$rc" = 0 ] || { cat "$3" >&2; die "wrk exited with $rc (${WRK_ARGS[*]} -c$1)"; }
}

snap() {  # snap OUTFILE: CPU of every process group
    local groups=("upstream_nginx=$(cat "$TMP/php/nginx-upstream.pid")+")
    case "$1" in
    php) groups+=("front_nginx=$(cat "$TMP/php/nginx-front.pid")+" "php_fpm=$(cat "$TMP/php/php-fpm.pid")+"
        "redis=$(cat "$TMP/php/redis.pid")") ;;
    nginx) groups+=("proxy_nginx=$(cat "$TMP/nginx-proxy.pid")+") ;;
    sesgate) groups+=("sesgate=$SG_PID") ;;
    base) groups+=("sesgate=$BASE_PID") ;;
    esac
    /usr/bin/python3 "$HERE/pt_stats.py" snap "$2" "${groups[@]}"
}

# wait_idle: wait (up to WAIT_IDLE seconds) until the machine is idle, since
# other processes' load would distort the figures
wait_idle() {
    local b waited=0
    while :; do
        b=$(/usr/bin/python3 "$HERE/pt_stats.py" busy 2)
        awk -v b="$b" -v m="$IDLE_MAX" 'BEGIN{exit !(b < m)}' && return 0
        if [ "$waited" -ge "$WAIT_IDLE" ]; then
            log "WARNING: machine still busy ($b cores) after ${WAIT_IDLE}s; measuring anyway"
            return 0
        fi
        [ "$waited" = 0 ] && log "machine busy ($b cores used by other processes); waiting for it to be idle"
        sleep 3; waited=$((waited + 5))
    done
}

# start_sesgate: start sesgate serve in a clean environment (no AWS_* or
# SESGATE_* variable of the caller changes the configuration)
start_sesgate() {
    env -i PATH="$PATH" HOME="$TMP" "$SESGATE_BIN" serve -c "$TMP/sesgate.ini" 2>> "$TMP/sesgate.log" &
    SG_PID=$!
    wait_port "$SESGATE_PORT"
}

# start_base: the same for BASE_BIN (another build), on BASE_PORT
start_base() {
    env -i PATH="$PATH" HOME="$TMP" "$BASE_BIN" serve -c "$TMP/base.ini" 2>> "$TMP/base.log" &
    BASE_PID=$!
    wait_port "$BASE_PORT"
}

# alive TARGET: the processes TARGET needs are still running; a sesgate that
# something outside this script stopped is started again (and logged)
alive() {
    local f
    for f in nginx-upstream.pid nginx-front.pid php-fpm.pid redis.pid; do
        [ "$PHP_STARTED" = 1 ] || [ "$f" = nginx-upstream.pid ] || continue
        [ -d "/proc/$(cat "$TMP/php/$f")" ] || die "the process of $f was stopped from outside this script"
    done
    [ -d "/proc/$(cat "$TMP/nginx-proxy.pid")" ] || die "the nginx proxy was stopped from outside this script"
    if [ "$1" = base ] && ! [ -d "/proc/$BASE_PID" ]; then
        wait "$BASE_PID" 2>/dev/null || true
        log "WARNING: the base sesgate (pid $BASE_PID) was stopped from outside this script; starting it again"
        start_base
        return 1
    fi
    if [ "$1" = sesgate ] && ! [ -d "/proc/$SG_PID" ]; then
        wait "$SG_PID" 2>/dev/null || true
        log "WARNING: sesgate (pid $SG_PID) was stopped from outside this script: $(tail -2 "$TMP/sesgate.log" | tr '\n' ' '); starting it again"
        start_sesgate
        return 1
    fi
    return 0
}

# measure TARGET CONNS RUN: a warm-up, then one measured run (repeated when
# other processes disturbed it)
measure() {
    local target="$1" c="$2" r="$3" try rc l0 t0 t1 wcpu
    for try in $(seq 1 "$TRIES"); do
        wait_idle
        alive "$target" || true
        prepare "$target"
        run_wrk "$c" "$WARM" "$TMP/warm.txt"
        /usr/bin/python3 "$HERE/pt_stats.py" check "$TMP/warm.txt" >&2 ||
            { cat "$TMP/warm.txt" >&2; die "warm-up of $target -c$c had errors"; }
        prepare "$target"
        snap "$target" "$TMP/cpu_a.json"
        l0=$(uplines); children_seconds; t0=$CS
        run_wrk "$c" "$DUR" "$TMP/wrk.txt"
        children_seconds; t1=$CS
        snap "$target" "$TMP/cpu_b.json"
        wcpu=$(echo "$t0 $t1" | awk '{printf "%.3f", ($5 * 60 + $6 + $7 * 60 + $8) - ($1 * 60 + $2 + $3 * 60 + $4)}')
        sleep 0.3
        cat "$TMP/wrk.txt" >> "$LOG"
        rc=0
        /usr/bin/python3 "$HERE/pt_stats.py" record "$RAW" "$target" "$c" "$r" "$TMP/wrk.txt" \
            "$TMP/cpu_a.json" "$TMP/cpu_b.json" "$wcpu" $(( $(uplines) - l0 )) \
            "$([ "$try" = "$TRIES" ] && echo 1 || echo 0)" > "$TMP/record.txt" 2>&1 || rc=$?
        tee -a "$LOG" < "$TMP/record.txt" >&2
        [ "$rc" = 2 ] && continue
        [ "$rc" = 0 ] || die "run $r of $target -c$c did not pass its checks"
        return 0
    done
}

# --- preflight -------------------------------------------------------------
for t in wrk nginx redis-server curl; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y wrk nginx-light redis-server curl (scripts/deps test)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "missing python3-botocore" >&2; exit 1; }
case "$SG_RATE $BASE_RATE" in *auto*) echo "SG_RATE/BASE_RATE auto: the fake upstream does not answer GetSendQuota; give a number or off" >&2; exit 1 ;; esac
if [ -n "$SEED_PHP" ]; then
    [ -x "$SEED_PHP/run.sh" ] || { echo "no seed-php baseline at $SEED_PHP (SEED_PHP)" >&2; exit 1; }
    command -v php >/dev/null || { echo "missing php: apt-get install -y php-cli php-fpm php-redis php-curl (scripts/deps test)" >&2; exit 1; }
elif [[ " $TARGETS " == *" php "* ]]; then
    echo "target php needs the seed-php baseline: set SEED_PHP to its folder" >&2; exit 1
else
    echo "SEED_PHP unset: no PHP target; the fake upstream is bench/nginx-upstream.conf.in" >&2
fi
for p in "$FRONT_PORT" "$UPSTREAM_PORT" "$CAPTURE_PORT" "$REDIS_PORT" "$PROXY_PORT" "$SESGATE_PORT" "$SESGATE_ADMIN_PORT"; do
    if port_busy "$p"; then echo "127.0.0.1:$p is in use; stop what uses it (or change PROXY_PORT/SESGATE_PORT/SESGATE_ADMIN_PORT)" >&2; exit 1; fi
done
mkdir -p "$OUT"; : > "$RAW"; : > "$LOG"
[ -n "$SESGATE_BIN_GIVEN" ] || make -C "$MAIN" -s >/dev/null   # a given SESGATE_BIN is measured as it is
[ -x "$SESGATE_BIN" ] || { echo "no sesgate binary at $SESGATE_BIN" >&2; exit 1; }
TMP="$(mktemp -d /tmp/sesgate-passthrough.XXXXXX)"
chmod 755 "$TMP"   # php-fpm and nginx workers (www-data) reach their socket under it
log "=== passthrough.sh $(date -u +%FT%TZ) at $(git -C "$MAIN" describe --always --dirty 2>/dev/null || echo '?'): SG_RATE=$SG_RATE RUNS=$RUNS DUR=$DUR WARM=$WARM CONNS='$CONNS' TARGETS='$TARGETS' tmp=$TMP load: $(cut -d' ' -f1-3 /proc/loadavg)"
machine | tee -a "$LOG" >&2

# --- start -----------------------------------------------------------------
if [ -n "$SEED_PHP" ]; then
    PHP_STARTED=1
    RUN_DIR="$TMP/php" WORKERS=0 "$SEED_PHP/run.sh" >> "$LOG" 2>&1 || die "seed-php run.sh failed (see $LOG)"
else
    mkdir -p "$TMP/php"
    s="$(cat "$HERE/nginx-upstream.conf.in")"
    s="${s//@RUN_DIR@/$TMP/php}"; s="${s//@UPSTREAM_PORT@/$UPSTREAM_PORT}"
    printf '%s\n' "$s" > "$TMP/php/nginx-upstream.conf"
    nginx -e "$TMP/php/nginx-upstream-error.log" -p "$TMP/php" -c "$TMP/php/nginx-upstream.conf"
    wait_port "$UPSTREAM_PORT"
fi

s="$(cat "$HERE/nginx-proxy.conf.in")"
s="${s//@RUN_DIR@/$TMP}"; s="${s//@PROXY_PORT@/$PROXY_PORT}"; s="${s//@UPSTREAM_PORT@/$UPSTREAM_PORT}"
printf '%s\n' "$s" > "$TMP/nginx-proxy.conf"
nginx -e "$TMP/nginx-proxy-error.log" -p "$TMP" -c "$TMP/nginx-proxy.conf"
wait_port "$PROXY_PORT"

mkdir -p "$TMP/sesgate-var"
cat > "$TMP/sesgate.ini" <<EOF
[server]
listen = 127.0.0.1:$SESGATE_PORT
admin_listen = 127.0.0.1:$SESGATE_ADMIN_PORT

[upstream]
endpoint = http://127.0.0.1:$UPSTREAM_PORT
region = us-east-1
access_key_id = AKIDBENCHUPSTREAM001
secret_access_key = bench-upstream-secret-never-checked

[redis]
data_dir = $TMP/sesgate-var

[send]
rate = $SG_RATE

[client.bench]
access_key_id = $CLIENT_KEY
secret_access_key = $CLIENT_SECRET
EOF
start_sesgate
if [ -n "$BASE_BIN" ]; then
    sed -e "s/127.0.0.1:$SESGATE_PORT/127.0.0.1:$BASE_PORT/" -e "s/127.0.0.1:$SESGATE_ADMIN_PORT/127.0.0.1:$BASE_ADMIN_PORT/" \
        -e "s|$TMP/sesgate-var|$TMP/base-var|" -e "s/^rate = .*/rate = $BASE_RATE/" "$TMP/sesgate.ini" > "$TMP/base.ini"
    chmod 600 "$TMP/base.ini"
    start_base
fi

# --- correctness checks before measuring ----------------------------------
curl -s -o "$TMP/upstream.xml" --max-time 5 --data-binary x "http://127.0.0.1:$UPSTREAM_PORT/"
grep -q '<SendEmailResponse' "$TMP/upstream.xml" || die "the fake upstream does not answer a SendEmailResponse"
if [ "$PHP_STARTED" = 1 ]; then
    "$SEED_PHP/bench/body.sh" 1 > "$TMP/php-body"
    code=$(curl -s -o "$TMP/php.xml" -w '%{http_code}' --max-time 5 -H 'Content-Type: application/x-www-form-urlencoded' \
        -H 'Date: Sat, 28 Nov 2026 05:00:00 UTC' -H 'X-Amzn-Authorization: AWS3-HTTPS AWSAccessKeyId=AKIDEXAMPLE,Algorithm=HmacSHA256,Signature=x' \
        --data-binary @"$TMP/php-body" "http://127.0.0.1:$FRONT_PORT/")
    [ "$code" = 200 ] && cmp -s "$TMP/php.xml" "$TMP/upstream.xml" || die "PHP front: status $code, body $(head -c 300 "$TMP/php.xml")"
fi
sign "127.0.0.1:$PROXY_PORT" "$TMP/req-nginx.txt"
code=$(curl_signed "$TMP/req-nginx.txt" "http://127.0.0.1:$PROXY_PORT/" "$TMP/nginx.xml")
[ "$code" = 200 ] && cmp -s "$TMP/nginx.xml" "$TMP/upstream.xml" || die "nginx proxy: status $code, body $(head -c 300 "$TMP/nginx.xml")"
sign "127.0.0.1:$SESGATE_PORT" "$TMP/req-sesgate.txt"
code=$(curl_signed "$TMP/req-sesgate.txt" "http://127.0.0.1:$SESGATE_PORT/" "$TMP/sesgate.xml")
[ "$code" = 200 ] && cmp -s "$TMP/sesgate.xml" "$TMP/upstream.xml" || die "sesgate: status $code, body $(head -c 300 "$TMP/sesgate.xml")"
# the same request with one signature digit changed must be refused
sig="$(sed -n 's/.*Signature=\([0-9a-f]*\).*/\1/p' "$TMP/req-sesgate.txt")"
if [ "${sig:10:1}" = 0 ]; then d=1; else d=0; fi
sed "s/$sig/${sig:0:10}$d${sig:11}/" "$TMP/req-sesgate.txt" > "$TMP/req-bad.txt"
code=$(curl_signed "$TMP/req-bad.txt" "http://127.0.0.1:$SESGATE_PORT/" "$TMP/bad.xml")
[ "$code" = 403 ] && grep -q SignatureDoesNotMatch "$TMP/bad.xml" || die "sesgate accepted a bad signature: status $code"
log "checks passed: $([ "$PHP_STARTED" = 1 ] && echo "PHP front, ")nginx proxy and sesgate answer 200 with the upstream's SendEmailResponse; sesgate answers 403 SignatureDoesNotMatch to a bad signature ($(wc -c < "$TMP/req-sesgate.txt.body")-byte signed body)"

# --- measurements ------------------------------------------------------------
# Rounds: each round measures every target once, so a slow drift of the
# machine's speed touches all targets alike.
for c in $CONNS; do
    for r in $(seq 1 "$RUNS"); do
        log "--- -c$c round $r"
        for target in $TARGETS; do
            measure "$target" "$c" "$r"
        done
    done
done
[[ " $TARGETS " == *" sesgate "* ]] && { alive sesgate || log "WARNING: the RSS figures are of a restarted sesgate"; }
/usr/bin/python3 "$HERE/pt_stats.py" rss "$SG_PID" "$OUT/sesgate-rss.json"
log "sesgate: $(cat "$OUT/sesgate-rss.json")"

# --- profile of sesgate (after the measurements; perf costs CPU) ------------
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null && [[ " $TARGETS " == *" sesgate "* ]]; then
    log "--- perf profile of sesgate during a 10 s -c16 run"
    wait_idle
    alive sesgate || true
    sign "127.0.0.1:$SESGATE_PORT" "$TMP/req-sesgate.txt"
    wrk -t1 -c16 -d10s --latency -s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$SESGATE_PORT/" -- "$TMP/req-sesgate.txt" > "$TMP/wrk-perf.txt" 2>&1 &
    WRK_PID=$!
    sleep 1
    perf record -q -F 999 --call-graph dwarf,16384 -p "$SG_PID" -o "$TMP/perf.data" -- sleep 8 >> "$LOG" 2>&1 &
    PERF_PID=$!
    wait "$PERF_PID" || log "perf record exited with $?"
    PERF_PID=""
    wait "$WRK_PID" || true
    WRK_PID=""
    /usr/bin/python3 "$HERE/pt_stats.py" check "$TMP/wrk-perf.txt" >&2 || log "WARNING: the profiled run had errors"
    {
        echo "perf record -F 999 --call-graph dwarf -p <sesgate> during wrk -t1 -c16 -d10s (8 s sampled)"
        grep 'Requests/sec' "$TMP/wrk-perf.txt" | sed 's/^/wrk under perf: /' || true
        echo
        echo "== top 15 by self cost (symbol, DSO) =="
        perf report -i "$TMP/perf.data" --stdio --no-children --sort symbol,dso -g none --percent-limit 0.3 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -15 || true
        echo
        echo "== top 15 by self cost per DSO =="
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -15 || true
        echo
        echo "== top 15 in the sesgate binary by self cost (share of all samples) =="
        perf report -i "$TMP/perf.data" --stdio --no-children --dsos sesgate --sort symbol -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -15 || true
        echo
        echo "== top 10 in libcrypto by self cost =="
        perf report -i "$TMP/perf.data" --stdio --no-children --dsos libcrypto.so.3 --sort symbol -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -10 || true
        echo
        echo "== top 10 in libcurl by self cost =="
        perf report -i "$TMP/perf.data" --stdio --no-children --dsos libcurl.so.4.8.0 --sort symbol -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -10 || true
        echo
        echo "== top 25 by inclusive cost (children) =="
        perf report -i "$TMP/perf.data" --stdio --children --sort symbol -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -25 || true
    } > "$OUT/profile.txt"
    cat "$OUT/profile.txt" >> "$LOG"
fi

# --- report ------------------------------------------------------------------
{
    echo "### Machine"
    echo
    machine
    echo
    echo "### Pass-through of a one-recipient SendEmail (wrk -t1 -d$DUR --latency, $RUNS runs, each after a $WARM warm-up)"
    echo
    /usr/bin/python3 "$HERE/pt_stats.py" table "$RAW" "$OUT/sesgate-rss.json"
} > "$OUT/table.md"
cat "$OUT/table.md"
log "=== passthrough.sh done"
