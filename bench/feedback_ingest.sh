#!/bin/bash
# feedback_ingest.sh -- SES events ingested per second through sesgate's SNS
# endpoint, each SNS signature verified (SignatureVersion 1 and 2, the
# signing certificate cached), by `sesgate serve` with its managed Redis
# applying each event (events.lua: replay guard, index, suppression list);
# printed against the events a 14/s and a 500/s SES account produce.
# bench/feedback_ingest.py does the work (see there).
#
# Settings (environment): SESGATE_BIN (build/sesgate), N (80000 signed
# messages, signed beforehand), DURATION (10 s of posting at most), CONNS
# (8 connections), KEEP (0: delete the work directory), TIMEOUT (300 s for
# the whole run). SMOKE=1: N=300, DURATION=3, TIMEOUT=120, what the test
# suite runs (tests/integration/test_bench_smoke.py). Loopback only; needs
# wrk, redis-server, redis-cli and python3-cryptography.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SMOKE:-0}" = 1 ]; then
    export N=${N:-300} DURATION=${DURATION:-3}
    TIMEOUT=${TIMEOUT:-120}
fi
export N=${N:-80000} DURATION=${DURATION:-10} CONNS=${CONNS:-8}
bin=$(readlink -f "${SESGATE_BIN:-build/sesgate}")
[ -x "$bin" ] || { echo "feedback_ingest: no $bin (make, or set SESGATE_BIN)" >&2; exit 1; }
export SESGATE_BIN=$bin
exec timeout "${TIMEOUT:-300}" /usr/bin/python3 bench/feedback_ingest.py
