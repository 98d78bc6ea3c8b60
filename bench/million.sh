#!/bin/bash
# million.sh -- one SendEmail to 1,000,000 To recipients through `sesgate run`
# with the built-in sandbox upstream, and every recipient accounted for.
#
# The sandbox is set far above what the machine can send ([sandbox] rate
# 200000/s, daily_quota 2000000) so the drain runs at sesgate's own speed
# with the shared limiter on (rate = auto reads the sandbox's quota).
# Measured: the time to answer the send (the whole batch stored in Redis),
# the drain rate, sesgate's and Redis's peak RSS, Redis memory per queued
# recipient, and at the end: `sesgate batch show` says total = sent =
# 1,000,000, dead 0, and the outbox holds exactly one .eml per recipient,
# each addressed to its own recipient (checked by name).
#
# Settings (environment): N (1000000), CONCURRENCY (64), KEEP (0: delete the
# work directory at the end), SESGATE_BIN (build/sesgate, made first; a given
# one is measured as it is). SMOKE=1: N=2000 and TIMEOUT=60, what `make bench`
# and tests/integration/test_bench_smoke.py run. Loopback only; bounded in
# time (TIMEOUT, 1800 s).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "${SMOKE:-0}" = 1 ]; then N=${N:-2000}; TIMEOUT=${TIMEOUT:-60}; fi
N=${N:-1000000}
CONCURRENCY=${CONCURRENCY:-64}
TIMEOUT=${TIMEOUT:-1800}
command -v /usr/bin/aws >/dev/null || { echo "million: needs /usr/bin/aws (apt-get install awscli)" >&2; exit 1; }
if [ -n "${SESGATE_BIN:-}" ]; then bin=$(readlink -f "$SESGATE_BIN"); else make -s -j2 all; bin=$root/build/sesgate; fi
unset SESGATE_BIN   # sesgate reads SESGATE_* variables as settings
work=$(mktemp -d "${TMPDIR:-/tmp}/sesgate-million.XXXXXX")
port=$((20000 + RANDOM % 20000))
admin=$((port + 1))
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
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
max_recipients = $N
concurrency = $CONCURRENCY
first_recipient = queue
[sandbox]
rate = 200000
daily_quota = 2000000
# no SNS events: signing and verifying one per recipient would compete
# with the sending measured here (docs/SANDBOX.md, "Events")
events = off
EOF
cd "$work"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$bin" run -c sesgate.ini > run.out 2> run.err &
pid=$!
for _ in $(seq 100); do grep -q "try it from another terminal" run.out 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
redis_pid=$(pgrep -P "$pid" redis-server)
export AWS_SHARED_CREDENTIALS_FILE=$work/var/credentials AWS_PROFILE=sesgate AWS_DEFAULT_REGION=us-east-1
seq -f '"r%07.0f@example.com"' 1 "$N" | paste -sd, | sed 's/.*/{"ToAddresses": [&]}/' > to.json
echo "million: $N recipients, request body $(stat -c %s to.json) bytes of addresses"
t0=$(date +%s.%N)
timeout 600 /usr/bin/aws --cli-read-timeout 600 --endpoint-url "http://127.0.0.1:$port" ses send-email \
    --from news@example.com --destination file://to.json --subject 'A million' --text 'Each its own copy' > send.out
t1=$(date +%s.%N)
mem=$(redis-cli -s var/redis/redis.sock INFO memory | awk -F: '/^used_memory:/{print $2+0}')
echo "million: answered in $(echo "$t1 - $t0" | bc) s ($(cat send.out | tr -d ' \n')); Redis used_memory $mem bytes after the enqueue"
echo "million: peak RSS after the enqueue: sesgate $(rss "$pid") kB, redis-server $(rss "$redis_pid") kB"
timeout "$TIMEOUT" "$bin" batch show last --watch -c sesgate.ini > batch.out
t2=$(date +%s.%N)
grep -E "^(total|sent|dead|queued) " batch.out
drain=$(echo "$t2 - $t1" | bc)
echo "million: complete $(echo "$t2 - $t0" | bc) s after the send; drain $drain s = $(echo "$N / $drain" | bc) recipients/s"
echo "million: peak RSS sesgate $(rss "$pid") kB, redis-server $(rss "$redis_pid") kB"
files=$(find var/outbox -name '*.eml' | wc -l)
echo "million: $files .eml files in the outbox"
# every recipient exactly once, each file addressed to its own recipient
find var/outbox -name '*.eml' -print0 | xargs -0 -n 2000 awk 'FNR==1{sub(/^Delivered-To: /,""); d=$0} /^To: /{print d, substr($0,5); nextfile}' |
    awk -v n="$N" '$1 != $2 {bad++} {seen[$1]++} END {
        for (k in seen) if (seen[k] != 1) dup++
        printf "million: %d distinct recipients, %d twice or more, %d addressed to someone else\n", length(seen), dup, bad
        exit !(length(seen) == n && dup == 0 && bad == 0) }'
grep -qx "total $N" batch.out && grep -qx "sent $N" batch.out && grep -qx "dead 0" batch.out && [ "$files" = "$N" ]
echo "million: every recipient accounted for"
