#!/usr/bin/env bash
# Runs every test of the workspace. The end-to-end tests need RabbitMQ and
# (from the gold issue on) PostgreSQL on 127.0.0.1: this script starts the
# local ones if they are installed but stopped, and fails with a clear
# message if they cannot be had. It never skips the tests that need them.
#   scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

rabbitmq/start-local.sh

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting the local PostgreSQL..." >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  fi
  if ! pg_up; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432 and could not be started." >&2
    echo "Install it (apt-get install postgresql) or run one in Docker." >&2
    exit 1
  fi
fi
echo "PostgreSQL is up on 127.0.0.1:5432" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo ends on its last crate's
# doc-tests, often "0 passed", which says nothing about the run).
read -r passed failed < <(grep -E '^test result:' "$log" \
  | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' \
  | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
echo
echo "tests: ${passed} passed, ${failed} failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "no test ran: that is a failure" >&2
  exit 1
fi
exit "$status"
