#!/usr/bin/env bash
# The benchmark suite (issue 6): Warren next to a direct-echo ceiling, the
# broker alone and Colyseus 0.18, driven by warren-bots, side by side in one
# run. Builds the release binaries, installs Colyseus from npm if needed,
# makes sure RabbitMQ is up, then runs scripts/bench.py. Results land in
# bench-results/<time>/ (every run's table, JSON and latency plot, plus
# summary.md); BENCHMARKS.md records the last full run.
#   scripts/bench.sh                       # the full suite (about 35 min)
#   BENCH_REPS=1 BENCH_WINDOW=10 scripts/bench.sh   # a quick look
#   BENCH_IDLE=100000 scripts/bench.sh     # also the 100k idle ramp
# See scripts/bench.py for every BENCH_* knob.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=${BENCH_TARGETS:-direct,broker,inproc,rabbitmq,redis,zmq,grpc,http,rabbitmq-http,colyseus}
rabbitmq/start-local.sh
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
if [[ ",$targets," == *",redis,"* ]] && ! redis-cli -u "$redis_url" ping >/dev/null 2>&1; then
  echo "Redis is not reachable at $redis_url: start it" >&2
  echo "(redis-server --daemonize yes --port 6379 --save '' --appendonly no)," >&2
  echo "or leave redis out of BENCH_TARGETS" >&2
  exit 1
fi

echo "building release binaries..." >&2
cargo build --release -p warren -p warren-bots --bins --examples >&2

if [[ ",$targets," == *",colyseus,"* ]]; then
  if ! command -v node >/dev/null 2>&1; then
    echo "node is not installed: the Colyseus peer cannot run (install Node.js 20+," >&2
    echo "or leave colyseus out of BENCH_TARGETS)" >&2
    exit 1
  fi
  if [ ! -d benches/colyseus/node_modules/@colyseus/core ]; then
    echo "installing Colyseus 0.18 from npm..." >&2
    (cd benches/colyseus && npm install --no-audit --no-fund >&2)
  fi
fi
# Bots and servers hold many sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
exec python3 scripts/bench.py
