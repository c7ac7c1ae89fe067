#!/usr/bin/env bash
# Starts a locally installed RabbitMQ (Debian's rabbitmq-server package) if it
# is not already answering on 127.0.0.1:5672, and waits until it does.
#   rabbitmq/start-local.sh            start and wait
#   rabbitmq/start-local.sh --import   also load definitions.json (the topology)
# Exits non-zero with a clear message if no broker can be had.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${WARREN_RABBITMQ_PORT:-5672}

up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! up; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not answering on 127.0.0.1:$port and is not installed here." >&2
    echo "Install it (apt-get install rabbitmq-server) or run it in Docker:" >&2
    echo "  docker compose -f $here/docker-compose.yml up -d" >&2
    exit 1
  fi
  echo "starting the local RabbitMQ..." >&2
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    up && break
    sleep 0.5
  done
  if ! up; then
    echo "RabbitMQ was started but does not answer on 127.0.0.1:$port after 60 s." >&2
    exit 1
  fi
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi

if [[ "${1:-}" == "--import" ]]; then
  rabbitmqctl import_definitions "$here/definitions.json"
fi
echo "RabbitMQ is up on 127.0.0.1:$port" >&2
