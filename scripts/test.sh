#!/usr/bin/env bash
# Runs every test of the workspace. The end-to-end tests need RabbitMQ,
# PostgreSQL and Redis on 127.0.0.1 (the Redis fault tests also start
# private redis-server processes), and the config admin page's test needs Chromium
# with ChromeDriver: this script starts the local servers if they are
# installed but stopped, installs Chromium (and OpenSSL) from Debian's
# packages if missing, and fails with a clear message if any cannot be had. It never
# skips the tests that need them.
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

# Redis: the shared server the Redis-bus tests use (each test under its own
# key prefix, deleted afterwards; never flushed). Started without
# persistence if installed but stopped.
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting the local Redis..." >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2 || true
    for _ in $(seq 1 60); do redis_up && break; sleep 0.5; done
  fi
  if ! redis_up; then
    echo "Redis is not answering on 127.0.0.1:6379 and could not be started." >&2
    echo "Install it (apt-get install redis-server) or run one in Docker." >&2
    exit 1
  fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is needed for the Redis fault tests (they run private servers):" >&2
  echo "apt-get install redis-server" >&2
  exit 1
fi
echo "Redis is up on 127.0.0.1:6379" >&2

# The config admin page is tested in a real headless Chromium, driven by
# chromedriver (Debian's chromium and chromium-driver packages).
have_chromium() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }
if ! have_chromium; then
  echo "installing Chromium and ChromeDriver for the admin page's browser test..." >&2
  as_root=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver >&2 \
      || { $as_root apt-get update >&2 && $as_root env DEBIAN_FRONTEND=noninteractive \
           apt-get install -y chromium chromium-driver >&2; } || true
  fi
  if ! have_chromium; then
    echo "Chromium and ChromeDriver are needed at /usr/bin/chromium and /usr/bin/chromedriver" >&2
    echo "and could not be installed: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
echo "Chromium is at /usr/bin/chromium" >&2

# The gRPC gateway's example service is Python: grpcio, and grpcio-tools to
# generate its code from proto/proto/gateway.proto (PyPI).
have_grpcio() { python3 -c "import grpc, grpc_tools" 2>/dev/null; }
if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 is needed for the Python service test (examples/services/python):" >&2
  echo "apt-get install python3 python3-pip" >&2
  exit 1
fi
if ! have_grpcio; then
  echo "installing grpcio and grpcio-tools from PyPI for the Python service test..." >&2
  python3 -m pip install --quiet -r examples/services/python/requirements.txt >&2 \
    || python3 -m pip install --quiet --user --break-system-packages \
         -r examples/services/python/requirements.txt >&2 || true
  if ! have_grpcio; then
    echo "grpcio and grpcio-tools could not be installed for python3:" >&2
    echo "python3 -m pip install -r examples/services/python/requirements.txt" >&2
    exit 1
  fi
fi
echo "python3 has grpcio and grpcio-tools" >&2

# login's key test loads the token key files with OpenSSL, the way a
# studio's other tools will.
if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing OpenSSL for the key-file test..." >&2
  as_root=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y openssl >&2 || true
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "OpenSSL is needed for the key-file test and could not be installed: apt-get install openssl" >&2
  exit 1
fi

# The Docker layout (deploy/docker-compose.yml) is checked with
# `docker-compose config` (Debian's docker-compose package; no Docker
# engine needed).
if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing docker-compose to check deploy/docker-compose.yml..." >&2
  as_root=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose >&2 \
    || { $as_root apt-get update >&2 && $as_root env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y docker-compose >&2; } || true
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "docker-compose is needed to check deploy/docker-compose.yml and could not be installed:" >&2
  echo "apt-get install docker-compose" >&2
  exit 1
fi

# The cluster test (tests/cluster.rs) starts three private RabbitMQ nodes
# (warren1..3@localhost, ports 5673-5675): it needs rabbitmq-server and
# rabbitmqctl (installed with the shared broker above) and root, to give
# the nodes' directories to the rabbitmq user.
if ! command -v rabbitmqctl >/dev/null 2>&1; then
  echo "rabbitmqctl is needed for the cluster test: apt-get install rabbitmq-server" >&2
  exit 1
fi

# The TypeScript SDK's tests (tests/sdk.rs runs them against real servers)
# and its browser test need Node >= 20 with npm, and the SDK's packages
# from the npm registry (pinned by its package-lock.json).
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing Node.js and npm for the TypeScript SDK's tests..." >&2
  as_root=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm >&2 \
    || { $as_root apt-get update >&2 && $as_root env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y nodejs npm >&2; } || true
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ! command -v npm >/dev/null 2>&1 || [ "$node_major" -lt 20 ]; then
  echo "Node.js >= 20 with npm is needed for the TypeScript SDK's tests and could not be installed" >&2
  exit 1
fi
if ! (cd clients/typescript && npm ci --no-audit --no-fund --silent >&2); then
  echo "could not install the TypeScript SDK's packages (npm ci in clients/typescript)" >&2
  exit 1
fi
echo "the TypeScript SDK's packages are installed" >&2

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
