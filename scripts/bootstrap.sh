#!/bin/sh
# Installs what a fresh machine lacks for running and testing the service:
# the pinned Deno from the npm registry, the project's npm dependencies (from deno.lock) and,
# when running as root on Debian, the system packages the tests use.
# Safe to run repeatedly: every step is skipped when already done.
set -eu
ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$ROOT"

DENO="$ROOT/tools/deno/node_modules/@deno/linux-x64-glibc/deno"
if [ ! -x "$DENO" ] || ! "$DENO" --version 2>/dev/null | grep -q "^deno 2.9.6 "; then
  echo "bootstrap: installing Deno 2.9.6 from the npm registry" >&2
  npm ci --prefix tools/deno --no-audit --no-fund --loglevel=error >&2
fi

missing=""
for pkg in redis-server:redis-server redis-sentinel:redis-sentinel openssl:openssl nginx:nginx-light ip:iproute2 unshare:util-linux curl:curl; do
  cmd=${pkg%%:*}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing="$missing ${pkg#*:}"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing$missing" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
  else
    echo "bootstrap: please install:$missing" >&2
  fi
fi

export DENO_DIR="${DENO_DIR:-$ROOT/.cache/deno}"
"$DENO" install --frozen --quiet >&2
echo "$DENO"
