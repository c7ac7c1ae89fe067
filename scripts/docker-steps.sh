#!/usr/bin/env bash
# The Dockerfile's steps, run outside Docker (this machine has no Docker
# engine): the build stage's command, then the runtime stage's checks —
# the binary runs as an unprivileged user in an empty directory, links
# only what the runtime stage has (glibc, libgcc_s, and libstdc++6, which
# it installs), and its health
# check passes against a running process and fails once it is gone.
#   scripts/docker-steps.sh      (a release build: about 11 minutes cold)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
out=$(mktemp -d)
chmod 755 "$out"
trap 'rm -rf "$out"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

echo "== build stage: cargo build --release --locked --bin warren" >&2
cargo build --release --locked --bin warren
install -D -m 0755 "$target/release/warren" "$out/usr/local/bin/warren"

echo "== runtime stage: shared libraries the binary needs" >&2
libs=$(ldd "$out/usr/local/bin/warren" | awk '{print $1}' | sed 's/.*\///' | sort -u)
echo "$libs" >&2
for lib in $libs; do
  case "$lib" in
    linux-vdso.so.1|ld-linux-*|libc.so.6|libm.so.6|libgcc_s.so.1|libstdc++.so.6|libpthread.so.0|libdl.so.2|librt.so.1) ;;
    *) echo "the binary needs $lib, which the runtime stage does not install" >&2; exit 1 ;;
  esac
done

echo "== runtime stage: as an unprivileged user, warren all, then warren health" >&2
home="$out/var/lib/warren"
mkdir -p "$home"
user=nobody
chown "$user" "$home" 2>/dev/null || user=$(id -un)
run() { if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
ports="WARREN_CONNECTOR__LISTEN=127.0.0.1:0 WARREN_CONNECTOR__ADMIN_LISTEN=127.0.0.1:0
  WARREN_LOGIN__LISTEN=127.0.0.1:0 WARREN_GOLD__LISTEN=127.0.0.1:0 WARREN_GOLD__ADMIN_LISTEN=127.0.0.1:0
  WARREN_GAME__ADMIN_LISTEN=127.0.0.1:0 WARREN_HTTP__LISTEN=127.0.0.1:0
  WARREN_CONFIG_SVC__LISTEN=127.0.0.1:0 WARREN_CONFIG_SVC__ADMIN_LISTEN=127.0.0.1:0"
ready="$home/ready.json"
(cd "$home" && run env $ports WARREN_DATA_DIR="$home" WARREN_READY_FILE="$ready" \
  "$out/usr/local/bin/warren" all > "$out/all.log" 2>&1) &
pid=$!
for _ in $(seq 1 600); do [ -s "$ready" ] && break; sleep 0.1; done
[ -s "$ready" ] || { echo "warren all did not get ready:" >&2; cat "$out/all.log" >&2; exit 1; }
run env WARREN_READY_FILE="$ready" "$out/usr/local/bin/warren" health
pkill -KILL -f "$out/usr/local/bin/warren" || true
wait "$pid" 2>/dev/null || true
pid=""
if run env WARREN_READY_FILE="$ready" "$out/usr/local/bin/warren" health; then
  echo "warren health passed for a killed process" >&2
  exit 1
fi
echo "== the Dockerfile's steps work outside Docker" >&2
