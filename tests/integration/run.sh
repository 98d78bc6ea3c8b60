#!/bin/sh
# Run sesgate's integration tests: the real SES clients (boto3, the aws
# command line, the AWS SDK for JavaScript v3, nodemailer) against
# build/sesgate (or $SESGATE_BIN) in front of a fake SES upstream.
#
#   tests/integration/run.sh [pytest arguments]
#   SESGATE_DIRECT=1 tests/integration/run.sh   clients talk to the fake directly
#
# Installs only the Node clients (npm ci in tests/integration/js) when they
# are missing; the system packages (python3-boto3, python3-pytest, awscli,
# nodejs, npm) come from the top-level runner. Exits with pytest's status.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
js="$root/tests/integration/js"
if [ ! -d "$js/node_modules" ]; then
    if [ -f "$js/package-lock.json" ]; then
        (cd "$js" && npm ci --no-audit --no-fund)
    else
        (cd "$js" && npm install --no-audit --no-fund)
    fi
fi
cd "$root"
exec /usr/bin/python3 -m pytest -q tests/integration "$@"
