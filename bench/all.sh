#!/bin/bash
# all.sh -- every benchmark in bench/ in its short mode, one after the other
# (what `make bench` runs): a check that each still runs at this commit, with
# figures too short and too noisy to quote. Each script's own settings give
# the real runs (bench/README.md).
#
#   passthrough.sh     SMOKE=1: one round of 1 s wrk runs, -c16
#   fanout.sh          SMOKE=1: 1 s enqueue runs of 50 recipients, a drain of
#                      400, the memory of 20 requests
#   million.sh         SMOKE=1: 2,000 recipients
#   enqueue_stall.sh   SMOKE=1: 2,000 recipients
#   feedback_ingest.sh SMOKE=1: 300 signed SNS notifications
#   smtp.sh            SMOKE=1: 4 sessions, 2 s a run (as root: a private Postfix)
#   bigmsg.py          --cases 256k:20:v1 --modes run,work --front 1m:50:v2
#   connections.py     200 connections held 1 s
#   soak.py            20 s, sampled every 2 s
#   wait_replicas.py   20 batches after the warm-up, 1 client
#
# Settings (environment): SESGATE_BIN (build/sesgate, made first), SEED_PHP
# (the seed-php baseline: passthrough.sh and fanout.sh add its PHP front when
# given), ONLY (the scripts to run, by name, e.g. "passthrough fanout"),
# RESULTS_DIR (bench/results/smoke: the short runs' tables, apart from the
# real figures). Each script is bounded in time (timeout). Prints one line
# per script, ok or FAILED with its log; exits 1 when one failed.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MAIN="$(dirname "$HERE")"
ALL="passthrough fanout million enqueue_stall feedback_ingest smtp bigmsg connections soak wait_replicas limiter"
ONLY="${ONLY:-$ALL}"
OUT="${RESULTS_DIR:-$HERE/results/smoke}"
if [ -z "${SESGATE_BIN:-}" ]; then
    make -C "$MAIN" -s -j2 all || exit 1
    SESGATE_BIN="$MAIN/build/sesgate"
fi
export SESGATE_BIN="$(readlink -f "$SESGATE_BIN")"
mkdir -p "$OUT"
failed=0
for name in $ONLY; do
    case "$name" in
    passthrough) cmd=(env SMOKE=1 RESULTS_DIR="$OUT" "$HERE/passthrough.sh"); t=300 ;;
    fanout) cmd=(env SMOKE=1 RESULTS_DIR="$OUT" "$HERE/fanout.sh"); t=300 ;;
    million | enqueue_stall | feedback_ingest | smtp) cmd=(env SMOKE=1 "$HERE/$name.sh"); t=300 ;;
    bigmsg) cmd=(/usr/bin/python3 "$HERE/bigmsg.py" --cases 256k:20:v1 --modes run,work --front 1m:50:v2
        --out "$OUT/bigmsg.md"); t=200 ;;
    connections) cmd=(/usr/bin/python3 "$HERE/connections.py" 200 1); t=120 ;;
    soak) cmd=(/usr/bin/python3 "$HERE/soak.py" 20 2); t=180 ;;
    wait_replicas) cmd=(env WAIT_TIMEOUT=10s /usr/bin/python3 "$HERE/wait_replicas.py" 20 1); t=120 ;;
    limiter) cmd=(env RUNS=1 DUR=1s WARM=1s "$HERE/limiter.sh"); t=120 ;;
    *) echo "all: no benchmark $name (one of: $ALL)" >&2; exit 2 ;;
    esac
    t0=$SECONDS
    if timeout "$t" "${cmd[@]}" > "$OUT/$name.log" 2>&1; then
        echo "all: $name ok ($((SECONDS - t0)) s, output in $OUT/$name.log)"
    else
        echo "all: $name FAILED ($((SECONDS - t0)) s): the end of $OUT/$name.log:"
        tail -n 15 "$OUT/$name.log" | sed 's/^/    /'
        failed=1
    fi
done
exit "$failed"
