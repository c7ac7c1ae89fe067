#!/usr/bin/env bash
# Fuzzes the frame and bus-envelope decoders with cargo-fuzz (libFuzzer) on
# the stable toolchain.
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frame envelope)
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz..." >&2
  cargo install cargo-fuzz
fi
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs}s" >&2
  cargo fuzz run -s none "$t" -- -max_total_time="$secs"
done
