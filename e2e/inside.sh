#!/usr/bin/env bash
# Runs inside the private network namespace created by e2e/run.sh: network setup, stack start,
# the requested mode, teardown. On failure it prints the tail of every component's log.
set -euo pipefail

MODE="$1"
shift
: "${ROOT:?}" "${E2E:?}" "${STACK:?}" "${RUN:?}"
# shellcheck source=e2e/stack.sh
. "$E2E/stack.sh"

# Loopback plus one veth address: pion (the participant's WebRTC stack) never gathers loopback
# candidates, so it needs a non-loopback address on an UP interface (real-stack.md §3).
ip link set lo up
ip link add e2e0 type veth peer name e2e1
ip addr add 198.51.100.1/24 dev e2e0
ip link set e2e0 up
ip link set e2e1 up

export DENO_DIR="${DENO_DIR:-$ROOT/.cache/deno}" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
export NO_PROXY="localhost,127.0.0.1" no_proxy="localhost,127.0.0.1"
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy
DENO="$ROOT/tools/deno/node_modules/.bin/deno"
export E2E_DENO="$DENO" E2E_PARTICIPANT_BIN="$STACK/bin/participant" E2E_CA_FILE="$RUN/ca.crt"

status=1
timing() { printf '%-22s %4ss\n' "$1" "$2" | tee -a "$RUN/timings.txt" >&2; }
finish() {
  local t0
  trap - EXIT INT TERM
  t0=$(date +%s)
  stop_stack
  timing stack-stop "$(($(date +%s) - t0))"
  if [ "$status" -ne 0 ]; then
    print_log_tails
    log "FAILED (logs in $RUN)"
  fi
  exit "$status"
}
trap finish EXIT
trap 'status=130; exit 130' INT TERM

t0=$(date +%s)
start_stack
timing stack-start "$(($(date +%s) - t0))"

cd "$ROOT"
# From here on a signal ends the running mode (which handles it itself); its exit status counts.
trap 'log "interrupted"' INT TERM
t0=$(date +%s)
set +e
case "$MODE" in
  test)
    # Without a test file or folder among the arguments, run the whole e2e folder.
    has_path=0
    for arg in "$@"; do [ -e "$arg" ] && has_path=1; done
    [ "$has_path" = 1 ] || set -- "$@" e2e/tests/
    "$DENO" test -A --cached-only "$@"
    status=$?
    ;;
  demo)
    "$DENO" run -A --cached-only e2e/demo.ts "$@"
    status=$?
    ;;
  shell)
    log "stack is up; run dir $RUN; exit the shell to stop it"
    bash -i
    status=0
    ;;
esac
set -e
timing "$MODE" "$(($(date +%s) - t0))"
