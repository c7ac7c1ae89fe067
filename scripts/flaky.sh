#!/usr/bin/env bash
# The flaky scenario (BENCHMARKS.md, "Dropped connections"): BOTS bots in
# resumable sessions (default 1,000) chat in rooms of 10 at one line a
# second each while their connections are cut every CUT seconds (default
# 10; half closed without a websocket close, half stalled in a proxy), and
# an announcement goes to everyone every second; on the in-process bus
# (`warren all`, one connector) and on RabbitMQ (a game and two connectors
# in a vhost of their own, deleted afterwards; bots resume on the other
# connector). Needs release builds of warren and warren-bots:
#   cargo build --release -p warren -p warren-bots && scripts/flaky.sh [inproc|rabbitmq]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
W=$(realpath "$target/warren")
B=$(realpath "$target/warren-bots")
BOTS=${BOTS:-1000}
CUT=${CUT:-10}
DURATION=${DURATION:-60s}
which=${1:-both}
dir=$(mktemp -d)
vhost="warren-flaky-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

wait_ready() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "$1 never came" >&2; exit 1; }

# Announcements every second while the bots run (to everyone: each bot
# gets each one once, numbered like any frame).
announce_while() {
  local bots=$1 i=0
  while kill -0 "$bots" 2>/dev/null; do
    i=$((i + 1))
    (cd "$dir" && "$W" announce --text "tick $i" >/dev/null 2>&1) || true
    sleep 1
  done
}

run_bots() {
  local name=$1; shift
  echo "== $name: $BOTS flaky bots, a cut every ${CUT}s, $DURATION" >&2
  "$B" --scenario flaky --bots "$BOTS" --rate 1 --room-size 10 --cut-every "$CUT" \
    --heartbeat 1s --warmup 5s --duration "$DURATION" --key "$dir/warren-data/jwt-private.pem" \
    --json "$dir/$name.json" "$@" &
  local bots=$!
  announce_while "$bots"
  wait "$bots" || true
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({"flaky": r["flaky"], "resume": r["resume"], "pushes": r["groups"][0]["pushes"], "answered": r["groups"][0]["answered"], "watched": [(w["name"], round(w["cpu_percent"]), round(w["peak_rss_mib"],1)) for w in r.get("watched", [])]}, indent=1))' "$dir/$name.json"
}

if [ "$which" = inproc ] || [ "$which" = both ]; then
  (cd "$dir" && RUST_LOG=warn exec "$W" --ready-file "$dir/all.ready" >"$dir/all.log" 2>&1) &
  pids+=($!)
  wait_ready "$dir/all.ready"
  run_bots inproc --url ws://127.0.0.1:7001/ws
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
  rm -f "$dir/all.ready"
fi

if [ "$which" = rabbitmq ] || [ "$which" = both ]; then
  rabbitmqctl -q add_vhost "$vhost"
  rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*"
  amqp="amqp://guest:guest@127.0.0.1:5672/$vhost"
  mkdir -p "$dir/warren-data"
  [ -s "$dir/warren-data/jwt-private.pem" ] || "$W" keygen --out "$dir/warren-data" >/dev/null
  export WARREN_JWT__PUBLIC_KEY="$dir/warren-data/jwt-public.pem" RUST_LOG=warn
  (cd "$dir" && exec "$W" game --amqp "$amqp" --ready-file "$dir/game.ready" >"$dir/game.log" 2>&1) &
  pids+=($!)
  wait_ready "$dir/game.ready"
  (cd "$dir" && exec "$W" connector --amqp "$amqp" --id c0 --listen 127.0.0.1:7001 \
    --ready-file "$dir/c0.ready" >"$dir/c0.log" 2>&1) &
  pids+=($!)
  (cd "$dir" && WARREN_CONNECTOR__ADMIN_LISTEN=127.0.0.1:7018 exec "$W" connector --amqp "$amqp" \
    --id c1 --listen 127.0.0.1:7011 --ready-file "$dir/c1.ready" >"$dir/c1.log" 2>&1) &
  pids+=($!)
  wait_ready "$dir/c0.ready"
  wait_ready "$dir/c1.ready"
  run_bots rabbitmq --url ws://127.0.0.1:7001/ws --url ws://127.0.0.1:7011/ws
fi
