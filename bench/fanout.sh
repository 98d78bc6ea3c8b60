#!/bin/bash
# fanout.sh -- bulk fan-out of sesgate side by side with the seed-php baseline
# in one run, against the same fake SES upstream (nginx, 127.0.0.1:8091):
#   enqueue  recipients queued per second by the front alone (no worker), for
#            SendEmails of 50 and 1,000 To recipients: wrk -t1 -c16 -d10s,
#            3 runs in rounds, Redis flushed before each run
#              php            seed-php front (sends recipient 1, queues the rest)
#              sesgate        sesgate serve, first_recipient = sync (copy 0
#                             sent at once, the rest queued: like PHP)
#              sesgate_queue  sesgate serve, first_recipient = queue (all queued)
#   drain    recipients sent per second by the workers from a queue of 20,000
#            (400 requests of 51 recipients queued through the front), with the
#            seed-php RENAME method so that start-up is not timed
#              php            16 worker.php processes (its best in RESULTS.md)
#              sesgate        SG_WORKERS (1) sesgate work processes, [send]
#                             concurrency 64 each
#   mem      Redis used_memory per recipient after queueing 100,000 (2,000
#            requests of 51 recipients through the front), and what is left
#            per recipient once the workers delivered them all
# Both systems use a redis-server with the baseline's settings (TCP on
# 127.0.0.1, no RDB, no AOF): the baseline's own on 6390 and one for sesgate
# on SG_REDIS_PORT (6391), which sesgate reaches through [redis] url. (sesgate's
# managed Redis would add append-only persistence the baseline does not have.)
# Every run is checked: no non-2xx, no socket error, the upstream saw exactly
# the requests expected, the queue grew by exactly the recipients queued, the
# drained queue is empty (nothing pending, delayed or dead), no dead letter.
# Loopback only; every process it starts is stopped on exit (trap).
#
# Settings (environment):
#   ONLY ("enqueue drain mem"), RUNS (3), DUR (10s), WARM (2s), CONNS (16),
#   WRK_TIMEOUT (30s: a PHP request of 1,000 recipients takes over a second)
#   SIZES ("50 1000"): recipients per request for enqueue
#   ENQ_TARGETS ("php sesgate sesgate_queue")
#   DRAIN_N (20000), PHP_WORKERS (16), SG_WORKERS (1: sesgate work processes),
#   SG_CONCURRENCY (64, per process), SG_RATE (off: no limiter; a number: the shared
#     limiter at that rate, e.g. 1000000 to measure its cost)
#   MEM_MSGS (2000): requests of 51 recipients (50 queued each) for mem
#   PROFILE (1: perf profiles of sesgate serve and work after the measurements)
#   IDLE_MAX (0.15), WAIT_IDLE (1800), OTHER_MAX (0.12), TRIES (5): as passthrough.sh
#   MAX_SOCKET_ERRORS (0)
#   SESGATE_PORT (8094, sync front), SESGATE_QPORT (8095, queue front),
#   SG_REDIS_PORT (6391)
#   FRONT_PORT (8090), UPSTREAM_PORT (8091), CAPTURE_PORT (8092), REDIS_PORT (6390): the
#     baseline's ports
#   SEED_PHP (the seed-php baseline folder, kept outside this repository): without it
#     sesgate is measured alone (no php target, no ratios) against this folder's
#     nginx-upstream.conf.in (the baseline's fake upstream, the same answer)
#   KEEP_TMP (0), RESULTS_DIR (bench/results)
#   SESGATE_BIN (build/sesgate, made first; a given build is measured as it is)
#   FREE_PORTS (0; 1: every port not given is one the kernel picks free)
#   SMOKE=1: one round, 1 s runs of 50 recipients, a drain of 400, memory of 20 requests,
#     free ports, no idle wait, no profile (what `make bench` and
#     tests/integration/test_bench_smoke.py run)
# Output: the Markdown table on stdout; bench/results/{fanout-raw.jsonl,
# fanout-log.txt, fanout-table.md, fanout-profile.txt}.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MAIN="$(dirname "$HERE")"
SEED_PHP="${SEED_PHP:-}"
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if [ "${SMOKE:-0}" = 1 ]; then
    RUNS="${RUNS:-1}"; DUR="${DUR:-1s}"; WARM="${WARM:-1s}"; SIZES="${SIZES:-50}"; DRAIN_N="${DRAIN_N:-400}"
    MEM_MSGS="${MEM_MSGS:-20}"; PROFILE="${PROFILE:-0}"; IDLE_MAX="${IDLE_MAX:-99}"; TRIES="${TRIES:-1}"
    OTHER_MAX="${OTHER_MAX:-99}"; PHP_WORKERS="${PHP_WORKERS:-4}"
    FREE_PORTS="${FREE_PORTS:-1}"
fi
if [ "${FREE_PORTS:-0}" = 1 ]; then   # ports the kernel picks, for those not given
    for v in FRONT_PORT UPSTREAM_PORT CAPTURE_PORT REDIS_PORT SESGATE_PORT SESGATE_QPORT SG_REDIS_PORT; do
        [ -n "${!v:-}" ] || printf -v "$v" '%s' "$(free_port)"
    done
fi
# the systems compared: the seed-php baseline only when SEED_PHP is given
if [ -n "$SEED_PHP" ]; then SYSTEMS="php sesgate"; else SYSTEMS="sesgate"; fi
ONLY="${ONLY:-enqueue drain mem}"
RUNS="${RUNS:-3}"; DUR="${DUR:-10s}"; WARM="${WARM:-2s}"; export CONNS="${CONNS:-16}"
WRK_TIMEOUT="${WRK_TIMEOUT:-30s}"
SIZES="${SIZES:-50 1000}"; ENQ_TARGETS="${ENQ_TARGETS:-${SYSTEMS/sesgate/sesgate sesgate_queue}}"
DRAIN_N="${DRAIN_N:-20000}"; PHP_WORKERS="${PHP_WORKERS:-16}"
SG_CONCURRENCY="${SG_CONCURRENCY:-64}"; SG_RATE="${SG_RATE:-off}"; SG_WORKERS="${SG_WORKERS:-1}"
MEM_MSGS="${MEM_MSGS:-2000}"; PROFILE="${PROFILE:-1}"; KEEP_TMP="${KEEP_TMP:-0}"
IDLE_MAX="${IDLE_MAX:-0.15}"; WAIT_IDLE="${WAIT_IDLE:-1800}"; TRIES="${TRIES:-5}"
export OTHER_MAX="${OTHER_MAX:-0.12}"
FRONT_PORT="${FRONT_PORT:-8090}"; UPSTREAM_PORT="${UPSTREAM_PORT:-8091}"   # the baseline's defaults
CAPTURE_PORT="${CAPTURE_PORT:-8092}"; REDIS_PORT="${REDIS_PORT:-6390}"
export FRONT_PORT UPSTREAM_PORT CAPTURE_PORT REDIS_PORT   # read by the baseline's env.sh
SESGATE_PORT="${SESGATE_PORT:-8094}"; SESGATE_QPORT="${SESGATE_QPORT:-8095}"
SG_REDIS_PORT="${SG_REDIS_PORT:-6391}"
CLIENT_KEY=SGBENCH0000000000001
CLIENT_SECRET=bench-client-secret-0123456789
PFX=sesgate
KQ="$PFX:{$PFX}:q:bench"; KQ_HOLD="$PFX:{$PFX}:qhold"; KDLQ="$PFX:{$PFX}:dlq"; KD="$PFX:{$PFX}:d"
OUT="${RESULTS_DIR:-$HERE/results}"
RAW="$OUT/fanout-raw.jsonl"; LOG="$OUT/fanout-log.txt"
STATS="$HERE/fanout_stats.py"

TMP=""; SG_PID=""; SGQ_PID=""; WK_PIDS=""; WATCH_PID=""; WRK_PID=""; PERF_PID=""; PHP_STARTED=0; SGR_STARTED=0

log() { echo "[$(date +%T)] $*" >> "$LOG"; echo "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# cmdline_has PID TEXT: the process PID exists and its command line contains TEXT
cmdline_has() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }

# stop_pid PID TEXT: TERM, wait up to 12 s (sesgate's grace is 10 s), then KILL
# (only if the command line matches)
stop_pid() {
    local pid="$1" text="$2" i
    cmdline_has "$pid" "$text" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 120); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$PERF_PID" ] && stop_pid "$PERF_PID" perf
    [ -n "$WRK_PID" ] && stop_pid "$WRK_PID" wrk
    [ -n "$WATCH_PID" ] && stop_pid "$WATCH_PID" waitlines
    for p in $WK_PIDS; do stop_pid "$p" sesgate; wait "$p" 2>/dev/null || true; done
    [ -n "$SG_PID" ] && { stop_pid "$SG_PID" sesgate; wait "$SG_PID" 2>/dev/null || true; }
    [ -n "$SGQ_PID" ] && { stop_pid "$SGQ_PID" sesgate; wait "$SGQ_PID" 2>/dev/null || true; }
    if [ "$SGR_STARTED" = 1 ] && [ -f "$TMP/sg-redis/redis.pid" ]; then
        stop_pid "$(cat "$TMP/sg-redis/redis.pid")" redis-server
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

want() { [[ " $ONLY " == *" $1 "* ]]; }
is_sg() { [[ "$1" == sesgate* ]]; }

# Redis of the baseline (RP) and of sesgate (RS)
RP() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
RS() { redis-cli -h 127.0.0.1 -p "$SG_REDIS_PORT" "$@"; }
rcli() { if is_sg "$1"; then shift; RS "$@"; else shift; RP "$@"; fi; }
qlen() { if is_sg "$1"; then RS XLEN "$KQ"; else RP LLEN mail; fi; }
used_memory() { rcli "$1" INFO memory | awk -F: '/^used_memory:/{gsub("\r","",$2); print $2}'; }
sum_usage() { rcli "$1" --scan | sed 's/^/MEMORY USAGE "/; s/$/"/' | rcli "$1" | awk '{s+=$1} END{print s+0}'; }
pending() { RS XPENDING "$KQ" w 2>/dev/null | awk 'NR==1' || echo 0; }

uplines() { wc -l < "$TMP/php/upstream-access.log"; }

machine() {  # the machine and software versions, as Markdown list items
    local deb; deb="$(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "- CPU: $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- memory: $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- kernel $(uname -r), Debian $deb"
    echo "- nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(php -v 2>/dev/null | head -1 | cut -d' ' -f1-2),"\
         "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
    echo "- $("$SG_BIN" version)"
}

# sign PORT NRCPT FILE: a freshly signed NRCPT-recipient SendEmail for sesgate on PORT
sign() { /usr/bin/python3 "$HERE/fanout_sign.py" "127.0.0.1:$1" "$CLIENT_KEY" "$CLIENT_SECRET" "$3" "$2"; }

port_of() { case "$1" in php) echo "$FRONT_PORT" ;; sesgate) echo "$SESGATE_PORT" ;; sesgate_queue) echo "$SESGATE_QPORT" ;; esac; }

# request TARGET NRCPT: sets HDRS (curl -H arguments) and writes $TMP/body for
# one NRCPT-recipient SendEmail to TARGET (signed now for sesgate)
request() {
    local line
    HDRS=()
    if is_sg "$1"; then
        sign "$(port_of "$1")" "$2" "$TMP/req.txt"
        while IFS= read -r line; do [ -z "$line" ] && break; HDRS+=(-H "$line"); done < "$TMP/req.txt"
        awk 'f{printf "%s%s", sep, $0; sep="\n"} /^$/{f=1}' "$TMP/req.txt" > "$TMP/body"
    else
        HDRS=(-H 'Content-Type: application/x-www-form-urlencoded' -H 'Date: Sat, 28 Nov 2026 05:00:00 UTC'
              -H 'X-Amzn-Authorization: AWS3-HTTPS AWSAccessKeyId=AKIDEXAMPLE,Algorithm=HmacSHA256,Signature=x')
        "$SEED_PHP/bench/body.sh" "$2" > "$TMP/body"
    fi
}

# post_many TARGET MESSAGES NRCPT: POST MESSAGES SendEmails of NRCPT
# recipients to TARGET, 8 in parallel (seed-php bench.sh's enqueue_front)
post_many() {
    local m="$2" cfg="$TMP/urls.cfg" ok i
    request "$1" "$3"
    : > "$cfg"
    for i in $(seq 1 "$m"); do printf 'url = "http://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$(port_of "$1")" >> "$cfg"; done
    ok=$(curl -s --no-progress-meter --max-time 120 -Z --parallel-max 8 -K "$cfg" -X POST "${HDRS[@]}" \
        --data-binary @"$TMP/body" -w '%{http_code}\n' 2>>"$LOG" | grep -c '^200$' || true)
    [ "$ok" = "$m" ] || die "only $ok of $m POSTs to $1 got 200"
}

# children_seconds: sets CS to the user+sys CPU seconds of this shell's reaped children
children_seconds() {
    local u s
    times > "$TMP/times"
    { read -r _; read -r u s; } < "$TMP/times"
    u="${u%s}"; s="${s%s}"
    CS="${u%%m*} ${u#*m} ${s%%m*} ${s#*m}"
}

# snap TARGET OUTFILE: CPU of every process group of TARGET
snap() {
    local groups=("upstream_nginx=$(cat "$TMP/php/nginx-upstream.pid")+") w pids=""
    case "$1" in
    php) groups+=("front_nginx=$(cat "$TMP/php/nginx-front.pid")+" "php_fpm=$(cat "$TMP/php/php-fpm.pid")+"
        "redis=$(cat "$TMP/php/redis.pid")") ;;
    php_drain) for w in "$TMP"/php/worker.*.pid; do [ -e "$w" ] && pids="$pids$(cat "$w"),"; done
        groups+=("php_workers=$pids" "redis=$(cat "$TMP/php/redis.pid")") ;;
    sesgate) groups+=("sesgate=$SG_PID" "redis=$(cat "$TMP/sg-redis/redis.pid")") ;;
    sesgate_queue) groups+=("sesgate=$SGQ_PID" "redis=$(cat "$TMP/sg-redis/redis.pid")") ;;
    sesgate_drain) groups+=("sesgate_work=${WK_PIDS// /,}" "redis=$(cat "$TMP/sg-redis/redis.pid")") ;;
    esac
    /usr/bin/python3 "$STATS" snap "$2" "${groups[@]}"
}

# wait_idle: wait (up to WAIT_IDLE seconds) until other processes use fewer than IDLE_MAX cores
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

# start_serve PORTVAR INI: start sesgate serve in a clean environment (no
# AWS_* or SESGATE_* variable of the caller changes the configuration)
start_serve() {
    env -i PATH="$PATH" HOME="$TMP" "$SG_BIN" serve -c "$2" 2>> "$TMP/sesgate-serve.log" &
    printf -v "$1" '%s' $!
}

# start_worker [N]: N (SG_WORKERS) sesgate work processes; their pids in WK_PIDS
start_worker() {
    local i
    for i in $(seq 1 "${1:-$SG_WORKERS}"); do
        env -i PATH="$PATH" HOME="$TMP" "$SG_BIN" work -c "$TMP/sesgate-sync.ini" 2>> "$TMP/sesgate-work.log" &
        WK_PIDS="${WK_PIDS:+$WK_PIDS }$!"
    done
}
stop_worker() {
    local p
    for p in $WK_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $WK_PIDS; do stop_pid "$p" sesgate; wait "$p" 2>/dev/null || true; done
    WK_PIDS=""
}

# alive: every long-running process is still there
alive() {
    local f
    for f in nginx-upstream.pid nginx-front.pid php-fpm.pid redis.pid; do
        [ "$PHP_STARTED" = 1 ] || [ "$f" = nginx-upstream.pid ] || continue
        [ -d "/proc/$(cat "$TMP/php/$f")" ] || die "the process of $f was stopped from outside this script"
    done
    [ -d "/proc/$(cat "$TMP/sg-redis/redis.pid")" ] || die "sesgate's redis-server was stopped"
    [ -d "/proc/$SG_PID" ] || die "sesgate serve (sync) stopped: $(tail -3 "$TMP/sesgate-serve.log" | tr '\n' ' ')"
    [ -d "/proc/$SGQ_PID" ] || die "sesgate serve (queue) stopped: $(tail -3 "$TMP/sesgate-serve.log" | tr '\n' ' ')"
}

# run_wrk CONNS DUR OUTFILE: wrk with WRK_ARGS (in the background, so the trap can stop it)
run_wrk() {
    local rc=0
    wrk -t1 -c"$1" -d"$2" --timeout "$WRK_TIMEOUT" --latency "${WRK_ARGS[@]}" > "$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    [ "$rc" = 0 ] || { cat "$3" >&2; die "wrk exited with $rc (${WRK_ARGS[*]} -c$1)"; }
}

# prepare TARGET NRCPT: WRK_ARGS for TARGET, signing a fresh request for sesgate
prepare() {
    if is_sg "$1"; then
        sign "$(port_of "$1")" "$2" "$TMP/req-wrk.txt"
        WRK_ARGS=(-s "$HERE/sigv4_sendemail.lua" "http://127.0.0.1:$(port_of "$1")/" -- "$TMP/req-wrk.txt")
    else
        WRK_ARGS=(-s "$SEED_PHP/bench/sendemail.lua" "http://127.0.0.1:$FRONT_PORT/" -- "$2")
    fi
}

# measure_enqueue TARGET NRCPT RUN
measure_enqueue() {
    local t="$1" n="$2" r="$3" try rc l0 q0 t0 t1 wcpu dlq
    for try in $(seq 1 "$TRIES"); do
        wait_idle
        alive
        prepare "$t" "$n"
        run_wrk "$CONNS" "$WARM" "$TMP/warm.txt"
        /usr/bin/python3 "$HERE/pt_stats.py" check "$TMP/warm.txt" >&2 ||
            { cat "$TMP/warm.txt" >&2; die "warm-up of $t $n had errors"; }
        sleep 0.3
        rcli "$t" FLUSHALL > /dev/null
        prepare "$t" "$n"
        snap "$t" "$TMP/cpu_a.json"
        l0=$(uplines); q0=$(qlen "$t"); children_seconds; t0=$CS
        run_wrk "$CONNS" "$DUR" "$TMP/wrk.txt"
        children_seconds; t1=$CS
        snap "$t" "$TMP/cpu_b.json"
        wcpu=$(echo "$t0 $t1" | awk '{printf "%.3f", ($5 * 60 + $6 + $7 * 60 + $8) - ($1 * 60 + $2 + $3 * 60 + $4)}')
        sleep 0.3
        dlq=0; is_sg "$t" && dlq=$(RS XLEN "$KDLQ")
        cat "$TMP/wrk.txt" >> "$LOG"
        rc=0
        /usr/bin/python3 "$STATS" enqueue "$RAW" "$t" "$n" "$r" "$TMP/wrk.txt" "$TMP/cpu_a.json" "$TMP/cpu_b.json" \
            "$wcpu" $(( $(uplines) - l0 )) $(( $(qlen "$t") - q0 )) "$dlq" \
            "$([ "$try" = "$TRIES" ] && echo 1 || echo 0)" > "$TMP/record.txt" 2>&1 || rc=$?
        tee -a "$LOG" < "$TMP/record.txt" >&2
        rcli "$t" FLUSHALL > /dev/null
        [ "$rc" = 2 ] && continue
        [ "$rc" = 0 ] || die "enqueue run $r of $t ($n recipients) did not pass its checks"
        return 0
    done
}

# watch_sent N: start watching the upstream log for N more lines (read
# every 20 ms, only the new bytes; up to 300 s); wait_sent then waits for it
# and sets SEEN_AT to the time (s since the epoch) they were all there
watch_sent() {
    /usr/bin/python3 "$STATS" waitlines "$TMP/php/upstream-access.log" \
        "$(stat -c %s "$TMP/php/upstream-access.log")" "$1" 300 > "$TMP/seen_at" &
    WATCH_PID=$!
}
wait_sent() {
    wait "$WATCH_PID" || log "WARNING: the upstream did not see all requests in 300 s"
    WATCH_PID=""
    SEEN_AT="$(cat "$TMP/seen_at")"
}

# wait_worker_ready: every sesgate work process polls the (empty) queue
# stream: the group exists (a worker creates it when the stream is missing)
# and as many clients' last command was XREADGROUP (an empty read registers
# no consumer) as there are workers
wait_worker_ready() {
    local i p n
    n=$(echo $WK_PIDS | wc -w)
    for i in $(seq 1 200); do
        for p in $WK_PIDS; do
            [ -d "/proc/$p" ] || die "sesgate work stopped: $(tail -3 "$TMP/sesgate-work.log" | tr '\n' ' ')"
        done
        if RS XINFO GROUPS "$KQ" 2>/dev/null | grep -qx w &&
            [ "$(RS CLIENT LIST | grep -c ' cmd=xreadgroup' || true)" -ge "$n" ]; then
            return 0
        fi
        sleep 0.05
    done
    die "sesgate work did not start reading within 10 s"
}

# measure_drain TARGET RUN: queue DRAIN_N recipients through the front with
# no worker running, set the queue aside (RENAME), start the workers and
# wait until they wait on the empty queue, then RENAME it back (the clock
# starts) and stop the clock when the upstream has seen DRAIN_N more requests
measure_drain() {
    local t="$1" r="$2" try rc q l0 t0 t1 secs sent left pend dlq dly workers i
    local msgs=$(( (DRAIN_N + 49) / 50 ))
    for try in $(seq 1 "$TRIES"); do
        wait_idle
        alive
        rcli "$t" FLUSHALL > /dev/null
        post_many "$t" "$msgs" 51
        q=$(qlen "$t")
        [ "$q" = $(( msgs * 50 )) ] || die "$t: $q recipients queued for $msgs requests of 51"
        if [ "$t" = php ]; then
            RP RENAME mail mail_hold > /dev/null
            RUN_DIR="$TMP/php" "$SEED_PHP/workers.sh" start "$PHP_WORKERS"
            for i in $(seq 1 200); do
                [ "$(RP INFO clients | awk -F: '/^blocked_clients:/{print $2+0}')" = "$PHP_WORKERS" ] && break
                sleep 0.05
            done
            workers="$PHP_WORKERS worker.php"
            l0=$(uplines); watch_sent "$q"
            snap php_drain "$TMP/cpu_a.json"
            t0=$(date +%s.%N)
            RP RENAME mail_hold mail > /dev/null
        else
            RS RENAME "$KQ" "$KQ_HOLD" > /dev/null
            start_worker
            wait_worker_ready
            workers="$SG_WORKERS sesgate work, concurrency $SG_CONCURRENCY each"
            l0=$(uplines); watch_sent "$q"
            snap sesgate_drain "$TMP/cpu_a.json"
            RS CONFIG RESETSTAT > /dev/null
            t0=$(date +%s.%N)
            RS RENAME "$KQ_HOLD" "$KQ" > /dev/null
        fi
        wait_sent
        t1="$SEEN_AT"
        if [ "$t" = php ]; then snap php_drain "$TMP/cpu_b.json"; else snap sesgate_drain "$TMP/cpu_b.json"; fi
        sleep 0.5   # outcomes of the last sends; any extra upstream request would show now
        sent=$(( $(uplines) - l0 ))
        if [ "$t" = php ]; then
            RUN_DIR="$TMP/php" "$SEED_PHP/workers.sh" stop
            left=$(RP LLEN mail); pend=0; dlq=0; dly=0
        else
            left=$(RS XLEN "$KQ"); pend=$(pending); dlq=$(RS XLEN "$KDLQ"); dly=$(RS ZCARD "$KD")
            # Redis commands per sent recipient: every command Redis ran (those
            # inside scripts included), and the calls the workers made
            RS INFO commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$sent" '
                /^cmdstat_/ { c = substr($1, 9); all += $3; calls[c] = $3 }
                END { scripts = calls["evalsha"] + calls["eval"]
                      printf "sesgate drain run: Redis commands per sent recipient %.2f in all (scripts included); evalsha %.2f, xreadgroup %.3f, lindex %.2f\n",
                             all / n, scripts / n, calls["xreadgroup"] / n, calls["lindex"] / n }' | tee -a "$LOG" >&2
            stop_worker
        fi
        secs=$(echo "$t1 $t0" | awk '{printf "%.3f", $1-$2}')
        rc=0
        /usr/bin/python3 "$STATS" drain "$RAW" "$t" "$r" "$q" "$sent" "$secs" "$left" "$pend" "$dlq" "$dly" \
            "$TMP/cpu_a.json" "$TMP/cpu_b.json" "$workers" \
            "$([ "$try" = "$TRIES" ] && echo 1 || echo 0)" > "$TMP/record.txt" 2>&1 || rc=$?
        tee -a "$LOG" < "$TMP/record.txt" >&2
        rcli "$t" FLUSHALL > /dev/null
        [ "$rc" = 2 ] && continue
        [ "$rc" = 0 ] || die "drain run $r of $t did not pass its checks"
        return 0
    done
}

# measure_mem TARGET RUN: used_memory before and after queueing MEM_MSGS x 50
# recipients through the front, then after the workers delivered them all
measure_mem() {
    local t="$1" r="$2" m0 m1 m2 q nk nk2 su1 su2 l0 detail b sent left pend dlq ttl
    wait_idle
    alive
    rcli "$t" FLUSHALL > /dev/null; sleep 0.5; m0=$(used_memory "$t")
    post_many "$t" "$MEM_MSGS" 51
    sleep 0.5; m1=$(used_memory "$t"); q=$(qlen "$t"); nk=$(rcli "$t" DBSIZE); su1=$(sum_usage "$t")
    if [ "$t" = php ]; then
        b=$(RP --scan --pattern 'm:*' | awk 'NR==1')
        detail="{\"list mail\":$(RP MEMORY USAGE mail),\"one m: template\":$(RP MEMORY USAGE "$b"),\"one a: hash\":$(RP MEMORY USAGE "a:${b#m:}")}"
        l0=$(uplines); watch_sent "$q"
        RUN_DIR="$TMP/php" "$SEED_PHP/workers.sh" start "$PHP_WORKERS"
        wait_sent; sleep 0.5
        sent=$(( $(uplines) - l0 ))
        RUN_DIR="$TMP/php" "$SEED_PHP/workers.sh" stop
        left=$(RP LLEN mail); pend=0; dlq=0; ttl=-1
    else
        b=$(RS --scan --pattern "$PFX:{$PFX}:b:*" | awk 'NR==1'); b="${b##*:b:}"
        detail="{\"stream q\":$(RS MEMORY USAGE "$KQ"),\"one b: hash\":$(RS MEMORY USAGE "$PFX:{$PFX}:b:$b"),\"one r: list\":$(RS MEMORY USAGE "$PFX:{$PFX}:r:$b"),\"one o: hash\":$(RS MEMORY USAGE "$PFX:{$PFX}:o:$b"),\"recent\":$(RS MEMORY USAGE "$PFX:{$PFX}:recent")}"
        l0=$(uplines); watch_sent "$q"
        start_worker
        wait_sent; sleep 0.5
        sent=$(( $(uplines) - l0 ))
        left=$(RS XLEN "$KQ"); pend=$(pending); dlq=$(RS XLEN "$KDLQ")
        ttl=$(RS PTTL "$PFX:{$PFX}:b:$b")
        stop_worker
    fi
    sleep 0.5; m2=$(used_memory "$t"); nk2=$(rcli "$t" DBSIZE); su2=$(sum_usage "$t")
    /usr/bin/python3 "$STATS" mem "$RAW" "$t" "$r" \
        "{\"queued\":$q,\"sent\":$sent,\"keys\":$nk,\"used_before\":$m0,\"used_after\":$m1,\"sum_memory_usage\":$su1,\"used_after_drain\":$m2,\"keys_after_drain\":$nk2,\"sum_memory_usage_after_drain\":$su2,\"left_after_drain\":$left,\"pending\":$pend,\"dlq\":$dlq,\"batch_pttl_ms\":$ttl,\"detail\":$detail}" \
        > "$TMP/record.txt" 2>&1 || { tee -a "$LOG" < "$TMP/record.txt" >&2; die "memory run $r of $t did not pass its checks"; }
    tee -a "$LOG" < "$TMP/record.txt" >&2
    rcli "$t" FLUSHALL > /dev/null
}

# --- preflight -------------------------------------------------------------
for t in wrk nginx redis-server redis-cli curl; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y wrk nginx-light redis-server curl (scripts/deps test)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "missing python3-botocore" >&2; exit 1; }
[ "$SG_RATE" != auto ] || { echo "SG_RATE auto: the fake upstream does not answer GetSendQuota; give a number or off" >&2; exit 1; }
if [ -n "$SEED_PHP" ]; then
    [ -x "$SEED_PHP/run.sh" ] || { echo "no seed-php baseline at $SEED_PHP (SEED_PHP)" >&2; exit 1; }
    command -v php >/dev/null || { echo "missing php: apt-get install -y php-cli php-fpm php-redis php-curl (scripts/deps test)" >&2; exit 1; }
elif [[ " $ENQ_TARGETS " == *" php "* ]]; then
    echo "target php needs the seed-php baseline: set SEED_PHP to its folder" >&2; exit 1
else
    echo "SEED_PHP unset: sesgate alone; the fake upstream is bench/nginx-upstream.conf.in" >&2
fi
for p in "$FRONT_PORT" "$UPSTREAM_PORT" "$CAPTURE_PORT" "$REDIS_PORT" "$SESGATE_PORT" "$SESGATE_QPORT" "$SG_REDIS_PORT"; do
    if port_busy "$p"; then echo "127.0.0.1:$p is in use; stop what uses it (or change SESGATE_PORT/SESGATE_QPORT/SG_REDIS_PORT)" >&2; exit 1; fi
done
mkdir -p "$OUT"; : > "$RAW"; : > "$LOG"
[ -n "${SESGATE_BIN:-}" ] || make -C "$MAIN" -s >/dev/null   # a given SESGATE_BIN is measured as it is
TMP="$(mktemp -d /tmp/sesgate-fanout.XXXXXX)"
chmod 755 "$TMP"   # php-fpm and nginx workers (www-data) reach their socket under it
# a copy of the binary: the same one for every run and for perf's symbols,
# even when the tree is rebuilt meanwhile
SG_BIN="$TMP/sesgate"
cp "${SESGATE_BIN:-$MAIN/build/sesgate}" "$SG_BIN"
log "=== fanout.sh $(date -u +%FT%TZ) at $(git -C "$MAIN" describe --always --dirty 2>/dev/null || echo '?'): SYSTEMS='$SYSTEMS' SG_RATE=$SG_RATE ONLY='$ONLY' RUNS=$RUNS DUR=$DUR WARM=$WARM CONNS=$CONNS SIZES='$SIZES' DRAIN_N=$DRAIN_N PHP_WORKERS=$PHP_WORKERS SG_WORKERS=$SG_WORKERS SG_CONCURRENCY=$SG_CONCURRENCY MEM_MSGS=$MEM_MSGS tmp=$TMP load: $(cut -d' ' -f1-3 /proc/loadavg)"
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

# sesgate's Redis: the baseline's settings (run.sh), its own port
mkdir -p "$TMP/sg-redis"
SGR_STARTED=1
redis-server --bind 127.0.0.1 --port "$SG_REDIS_PORT" --save "" --appendonly no \
    --dir "$TMP/sg-redis" --daemonize yes --pidfile "$TMP/sg-redis/redis.pid" --logfile "$TMP/sg-redis/redis.log"
wait_port "$SG_REDIS_PORT"
for i in $(seq 1 50); do [ -s "$TMP/sg-redis/redis.pid" ] && break; sleep 0.05; done

for mode in sync queue; do
    port="$SESGATE_PORT"; [ "$mode" = queue ] && port="$SESGATE_QPORT"
    cat > "$TMP/sesgate-$mode.ini" <<EOF
[server]
listen = 127.0.0.1:$port
admin_listen =

[upstream]
endpoint = http://127.0.0.1:$UPSTREAM_PORT
region = us-east-1
access_key_id = AKIDBENCHUPSTREAM001
secret_access_key = bench-upstream-secret-never-checked

[redis]
url = redis://127.0.0.1:$SG_REDIS_PORT
prefix = $PFX

[send]
rate = $SG_RATE
first_recipient = $mode
concurrency = $SG_CONCURRENCY
max_recipients = 10000

[client.bench]
access_key_id = $CLIENT_KEY
secret_access_key = $CLIENT_SECRET
EOF
done
start_serve SG_PID "$TMP/sesgate-sync.ini"
start_serve SGQ_PID "$TMP/sesgate-queue.ini"
wait_port "$SESGATE_PORT"; wait_port "$SESGATE_QPORT"

# --- correctness checks before measuring ----------------------------------
curl -s -o "$TMP/upstream.xml" --max-time 5 --data-binary x "http://127.0.0.1:$UPSTREAM_PORT/"
grep -q '<SendEmailResponse' "$TMP/upstream.xml" || die "the fake upstream does not answer a SendEmailResponse"
RS FLUSHALL > /dev/null; [ "$PHP_STARTED" = 0 ] || RP FLUSHALL > /dev/null
for t in ${SYSTEMS/sesgate/sesgate sesgate_queue}; do
    request "$t" 50
    l0=$(uplines); q0=$(qlen "$t")
    code=$(curl -s -o "$TMP/answer.xml" -D "$TMP/answer.hdr" -w '%{http_code}' --max-time 10 "${HDRS[@]}" \
        --data-binary @"$TMP/body" "http://127.0.0.1:$(port_of "$t")/")
    sleep 0.2
    q=$(( $(qlen "$t") - q0 )); up=$(( $(uplines) - l0 ))
    [ "$code" = 200 ] || die "$t: status $code, body $(head -c 300 "$TMP/answer.xml")"
    case "$t" in
    php) [ "$q" = 49 ] && [ "$up" = 1 ] && cmp -s "$TMP/answer.xml" "$TMP/upstream.xml" ||
            die "php: 50 recipients gave queue $q, upstream $up, body $(head -c 300 "$TMP/answer.xml")" ;;
    sesgate) [ "$q" = 49 ] && [ "$up" = 1 ] && cmp -s "$TMP/answer.xml" "$TMP/upstream.xml" &&
            grep -qi '^X-Sesgate-Batch-Id:' "$TMP/answer.hdr" ||
            die "sesgate sync: 50 recipients gave queue $q, upstream $up, body $(head -c 300 "$TMP/answer.xml")" ;;
    sesgate_queue) [ "$q" = 50 ] && [ "$up" = 0 ] && grep -q '<SendEmailResponse' "$TMP/answer.xml" &&
            grep -qi '^X-Sesgate-Batch-Id:' "$TMP/answer.hdr" ||
            die "sesgate queue: 50 recipients gave queue $q, upstream $up, body $(head -c 300 "$TMP/answer.xml")" ;;
    esac
done
# the queued copies of both sesgate batches go out, each to one recipient
l0=$(uplines); watch_sent 99; start_worker; wait_sent; sleep 0.3
up=$(( $(uplines) - l0 )); left=$(RS XLEN "$KQ"); dlq=$(RS XLEN "$KDLQ"); stop_worker
[ "$up" = 99 ] && [ "$left" = 0 ] && [ "$dlq" = 0 ] || die "sesgate work: $up upstream requests for 99 queued, $left left, $dlq dead"
RS FLUSHALL > /dev/null; [ "$PHP_STARTED" = 0 ] || RP FLUSHALL > /dev/null
log "checks passed: $([ "$PHP_STARTED" = 1 ] && echo "PHP and sesgate (sync) answer" || echo "sesgate (sync) answers") a 50-recipient SendEmail with the upstream's SendEmailResponse after one upstream request and 49 queued; sesgate (queue) queues 50 and sends none; sesgate work sent the 99 queued copies, nothing left or dead"

# --- measurements ------------------------------------------------------------
# Rounds: each round measures every target once, so a slow drift of the
# machine's speed touches all targets alike.
if want enqueue; then
    for r in $(seq 1 "$RUNS"); do
        for n in $SIZES; do
            log "--- enqueue $n recipients, round $r"
            for t in $ENQ_TARGETS; do measure_enqueue "$t" "$n" "$r"; done
        done
    done
fi
if want drain; then
    for r in $(seq 1 "$RUNS"); do
        log "--- drain $DRAIN_N, round $r"
        for t in $SYSTEMS; do measure_drain "$t" "$r"; done
    done
fi
if want mem; then
    for r in $(seq 1 "$RUNS"); do
        log "--- memory $MEM_MSGS x 51 recipients, round $r"
        for t in $SYSTEMS; do measure_mem "$t" "$r"; done
    done
fi

# --- profiles of sesgate (after the measurements; perf costs CPU) -----------
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
    report() {  # report PERFDATA TITLE
        echo "== $2: top 25 by self cost (symbol, DSO) =="
        perf report -i "$1" --stdio --no-children --sort symbol,dso -g none --percent-limit 0.3 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -25 || true
        echo
        echo "== $2: self cost per DSO =="
        perf report -i "$1" --stdio --no-children --sort dso -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -12 || true
        echo
        echo "== $2: top 15 in the sesgate binary by self cost (share of all samples) =="
        perf report -i "$1" --stdio --no-children --dsos sesgate --sort symbol -g none 2>/dev/null \
            | sed -e '/^#/d' -e '/^$/d' -e 's/[ -]*$//' | head -15 || true
        echo
    }
    # syscalls PID TITLE: strace -c of PID for 3 s, per upstream request seen meanwhile
    syscalls() {
        local l0 l1
        command -v strace > /dev/null || return 0
        l0=$(uplines)
        timeout -s INT 3 strace -c -p "$1" -o "$TMP/strace.txt" 2>> "$LOG" || true
        l1=$(uplines)
        echo "== $2: strace -c for 3 s (slowed by strace), $((l1 - l0)) upstream requests =="
        awk -v n=$((l1 - l0)) 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ && n > 0 {
            printf "%-14s %9d calls %6.2f per upstream request\n", $NF, $4, $4 / n }' "$TMP/strace.txt" | head -12
        echo
    }
    {
        echo "perf record -F 999 -g of sesgate; the figures under perf are lower than without"
        echo
    } > "$OUT/fanout-profile.txt"
    log "--- perf profile of sesgate serve (sync) during a 10 s run of 50-recipient requests"
    wait_idle; alive
    RS FLUSHALL > /dev/null
    prepare sesgate 50
    wrk -t1 -c"$CONNS" -d10s --timeout "$WRK_TIMEOUT" --latency "${WRK_ARGS[@]}" > "$TMP/wrk-perf.txt" 2>&1 &
    WRK_PID=$!
    sleep 1
    perf record -q -F 999 -g -p "$SG_PID" -o "$TMP/perf-serve.data" -- sleep 8 >> "$LOG" 2>&1 &
    PERF_PID=$!; wait "$PERF_PID" || log "perf record exited with $?"; PERF_PID=""
    wait "$WRK_PID" || true; WRK_PID=""
    { grep 'Requests/sec' "$TMP/wrk-perf.txt" | sed 's/^/serve, 50 recipients, wrk under perf: /' || true
      echo; report "$TMP/perf-serve.data" "sesgate serve, enqueue of 50-recipient requests"; } >> "$OUT/fanout-profile.txt"
    RS FLUSHALL > /dev/null
    prepare sesgate 50
    wrk -t1 -c"$CONNS" -d6s --timeout "$WRK_TIMEOUT" "${WRK_ARGS[@]}" > "$TMP/wrk-strace.txt" 2>&1 &
    WRK_PID=$!
    sleep 1
    syscalls "$SG_PID" "sesgate serve, 50-recipient requests (one upstream request each)" >> "$OUT/fanout-profile.txt"
    wait "$WRK_PID" || true; WRK_PID=""
    RS FLUSHALL > /dev/null
    log "--- perf profile of sesgate work draining $(( MEM_MSGS * 50 )) recipients"
    post_many sesgate "$MEM_MSGS" 51
    q=$(RS XLEN "$KQ"); watch_sent "$q"
    start_worker 1
    perf record -q -F 999 -g -p "$WK_PIDS" -o "$TMP/perf-work.data" -- sleep 8 >> "$LOG" 2>&1 &
    PERF_PID=$!; t0=$(date +%s.%N)
    wait_sent; t1="$SEEN_AT"
    wait "$PERF_PID" || log "perf record exited with $?"; PERF_PID=""
    stop_worker
    RS FLUSHALL > /dev/null
    post_many sesgate "$MEM_MSGS" 51
    start_worker 1
    sleep 0.2
    syscalls "$WK_PIDS" "sesgate work, drain (one upstream request per recipient)" > "$TMP/strace-work.txt"
    stop_worker
    { echo "work, drain under perf: $q recipients in $(echo "$t1 $t0" | awk '{printf "%.2f", $1-$2}') s (start-up included)"
      echo; report "$TMP/perf-work.data" "sesgate work, drain"; cat "$TMP/strace-work.txt"; } >> "$OUT/fanout-profile.txt"
    RS FLUSHALL > /dev/null
    cat "$OUT/fanout-profile.txt" >> "$LOG"
fi

# --- report ------------------------------------------------------------------
{
    echo "### Machine"
    echo
    machine
    echo
    echo "### Bulk fan-out: $([ "$PHP_STARTED" = 1 ] && echo "sesgate and the seed-php baseline" || echo "sesgate alone") (wrk -t1 -c$CONNS -d$DUR, $RUNS runs each, medians)"
    echo
    /usr/bin/python3 "$STATS" table "$RAW"
} > "$OUT/fanout-table.md"
cat "$OUT/fanout-table.md"
log "=== fanout.sh done"
