#!/usr/bin/env bash
# Installs everything the end-to-end stack needs (real-stack.md §1, §2, §4.1, §5.1, §8.1), into
# the git-ignored cache e2e/.stack/. Idempotent: every step is skipped when the pinned version
# is already present. This is the only phase that talks to package registries; the test run
# itself happens later inside a network namespace without any network.
#
# Environment:
#   E2E_BUILD_JOBS   parallel Go compile jobs (default: Go's default, i.e. all cores)
#   E2E_NO_APT=1     never call apt-get (fail instead when a Debian package is missing)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
E2E="$ROOT/e2e"
STACK="$E2E/.stack"
# shellcheck source=e2e/versions.env
. "$E2E/versions.env"
mkdir -p "$STACK/bin" "$STACK/logs"
TIMINGS="$STACK/timings.txt"
: >"$TIMINGS.new"

say() { printf 'e2e-setup: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# phase NAME CMD... — runs CMD, records its wall time in timings.txt.
phase() {
  local name="$1" start end rc
  shift
  start=$(date +%s)
  set +e
  "$@"
  rc=$?
  set -e
  end=$(date +%s)
  printf '%-22s %4ss %s\n' "$name" "$((end - start))" "$([ $rc -eq 0 ] && echo ok || echo "failed ($rc)")" | tee -a "$TIMINGS.new" >&2
  return $rc
}

check_prerequisites() {
  local missing=()
  for tool in openssl curl ip unshare python3 go; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (install them first)"
  [ "$(id -u)" -eq 0 ] || die "the e2e stack needs root (unshare --net, veth)"
  python3 - <<'EOF' || die "Python >= 3.10 with SQLite >= 3.40.0 is required by Synapse"
import sqlite3, sys
ok = sys.version_info >= (3, 10) and tuple(int(x) for x in sqlite3.sqlite_version.split(".")) >= (3, 40, 0)
sys.exit(0 if ok else 1)
EOF
  local gov
  gov="$(go env GOVERSION | sed 's/^go//')"
  [ "$(printf '%s\n1.26\n' "$gov" | sort -V | head -n1)" = "1.26" ] \
    || die "Go >= 1.26 is required (livekit-server $LIVEKIT_SERVER_VERSION), found $gov"
}

install_debian_packages() {
  local want=()
  command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || want+=(nginx-light)
  [ ${#want[@]} -eq 0 ] && { say "Debian packages present"; return 0; }
  [ "${E2E_NO_APT:-0}" = 1 ] && die "missing Debian packages: ${want[*]}"
  say "installing Debian packages: ${want[*]}"
  apt-get update -qq >"$STACK/logs/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" \
    >>"$STACK/logs/apt.log" 2>&1 || { tail -n 20 "$STACK/logs/apt.log" >&2; return 1; }
  # The packages start system instances in the host namespace; the stack never uses them.
}

install_deno_and_modules() {
  local deno="$ROOT/tools/deno/node_modules/.bin/deno"
  if [ ! -x "$deno" ]; then
    say "installing the pinned Deno (npm ci --prefix tools/deno)"
    npm ci --prefix "$ROOT/tools/deno" --no-audit --no-fund >"$STACK/logs/deno-npm.log" 2>&1
  fi
  export DENO_DIR="${DENO_DIR:-$ROOT/.cache/deno}" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
  # Cache every module the run needs, so nothing is fetched inside the namespace: the npm
  # dependencies of deno.json, the e2e harness, and the service's module graph.
  (cd "$ROOT" && "$deno" install --frozen --quiet) >"$STACK/logs/deno-install.log" 2>&1 \
    || { tail -n 30 "$STACK/logs/deno-install.log" >&2; return 1; }
  (cd "$ROOT" && "$deno" cache --quiet "$E2E"/tests/*_test.ts "$E2E/demo.ts" "$E2E/webhook_capture.ts") \
    >>"$STACK/logs/deno-install.log" 2>&1 || { tail -n 30 "$STACK/logs/deno-install.log" >&2; return 1; }
  if ! (cd "$ROOT" && "$deno" cache --quiet main.ts) >>"$STACK/logs/deno-install.log" 2>&1; then
    say "WARNING: main.ts cannot be cached yet; the service will not start:"
    tail -n 5 "$STACK/logs/deno-install.log" >&2
  fi
}

install_synapse() {
  local venv="$STACK/venv" have=""
  if [ -x "$venv/bin/python" ]; then
    have="$("$venv/bin/python" -c 'import synapse; print(synapse.__version__.split()[0])' 2>/dev/null || true)"
  fi
  if [ "$have" = "$SYNAPSE_VERSION" ]; then
    say "Synapse $SYNAPSE_VERSION present"
    return 0
  fi
  say "installing Synapse $SYNAPSE_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --prefer-binary \
    -c "$E2E/synapse-constraints.txt" "matrix-synapse==$SYNAPSE_VERSION" \
    >"$STACK/logs/synapse-install.log" 2>&1 || { tail -n 30 "$STACK/logs/synapse-install.log" >&2; return 1; }
  "$venv/bin/python" -m synapse.app.homeserver --help >/dev/null
}

go_build_env() {
  export CGO_ENABLED=0
  if [ -n "${E2E_BUILD_JOBS:-}" ]; then
    export GOFLAGS="${GOFLAGS:-} -p=$E2E_BUILD_JOBS"
  fi
}

install_livekit_server() {
  local bin="$STACK/bin/livekit-server" want="${LIVEKIT_SERVER_VERSION#v}"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF "$want"; then
    say "livekit-server $want present"
    return 0
  fi
  say "building livekit-server $LIVEKIT_SERVER_VERSION (go install; minutes on a cold cache)"
  (
    go_build_env
    GOBIN="$STACK/bin" go install "$LIVEKIT_SERVER_MODULE/cmd/server@$LIVEKIT_SERVER_VERSION"
  ) >"$STACK/logs/livekit-build.log" 2>&1 || { tail -n 30 "$STACK/logs/livekit-build.log" >&2; return 1; }
  mv "$STACK/bin/server" "$bin"
  "$bin" --version
}

install_participant() {
  local bin="$STACK/bin/participant" stamp="$STACK/bin/participant.stamp" sum
  sum="$(cat "$E2E/participant/go.mod" "$E2E/participant/go.sum" "$E2E"/participant/*.go | sha256sum | cut -c1-64)"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    say "participant helper up to date"
    return 0
  fi
  say "building the participant helper (Go, server-sdk-go)"
  (
    go_build_env
    cd "$E2E/participant" && go build -trimpath -o "$bin" .
  ) >"$STACK/logs/participant-build.log" 2>&1 || { tail -n 30 "$STACK/logs/participant-build.log" >&2; return 1; }
  echo "$sum" >"$stamp"
}

total_start=$(date +%s)
phase prerequisites check_prerequisites
phase debian-packages install_debian_packages
phase deno-modules install_deno_and_modules
phase synapse-venv install_synapse
phase livekit-server install_livekit_server
phase participant-helper install_participant
printf '%-22s %4ss\n' "setup-total" "$(($(date +%s) - total_start))" | tee -a "$TIMINGS.new" >&2
mv "$TIMINGS.new" "$TIMINGS"
