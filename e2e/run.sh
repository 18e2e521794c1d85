#!/usr/bin/env bash
# Entry point of the end-to-end suite and the demo (real-stack.md §1, §3, §13).
#
#   e2e/run.sh test [FILES... | deno test options]   run the e2e tests (default: e2e/tests/)
#   e2e/run.sh demo [--once]                          bring the stack up and show a token exchange
#   e2e/run.sh shell                                  stack up, then an interactive shell inside
#
# 1. setup (registries reachable): e2e/setup.sh installs/caches everything in e2e/.stack/;
#    skipped with E2E_SKIP_SETUP=1.
# 2. run (no network): a private network namespace (unshare --net) with lo and a veth address,
#    in which e2e/inside.sh starts Redis, Synapse, livekit-server and nginx and runs the mode.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
E2E="$ROOT/e2e"
STACK="$E2E/.stack"
MODE="${1:-test}"
[ $# -gt 0 ] && shift
case "$MODE" in
  test | demo | shell) ;;
  *) echo "usage: e2e/run.sh test|demo|shell [args...]" >&2; exit 2 ;;
esac

if [ "${E2E_SKIP_SETUP:-0}" != 1 ]; then
  bash "$E2E/setup.sh"
fi

mkdir -p "$STACK/runs"
RUN="$STACK/runs/$(date +%Y%m%d-%H%M%S)-$MODE"
mkdir -p "$RUN/logs"
ln -sfn "$RUN" "$STACK/runs/latest"
# Keep the five most recent run folders (logs of earlier runs).
ls -1d "$STACK"/runs/2* 2>/dev/null | head -n -5 | xargs -r rm -rf

export ROOT E2E STACK RUN
exec unshare --net -- bash "$E2E/inside.sh" "$MODE" "$@"
