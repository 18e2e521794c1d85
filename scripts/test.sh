#!/bin/sh
# Runs every test of the project: formatting, lint and type checks, unit and process-level
# integration tests against local fakes, then the end-to-end suite against the real stack.
# Installs what is missing first (scripts/bootstrap.sh). Ends with one line "N passed, M failed".
#
#   scripts/test.sh            everything
#   scripts/test.sh --fast     without the real-stack end-to-end suite
set -eu
ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$ROOT"
DENO=$(sh scripts/bootstrap.sh)
export DENO_DIR="${DENO_DIR:-$ROOT/.cache/deno}" DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 LK_JWT_DENO="$DENO"

passed=0
failed=0
out="$ROOT/.cache/test-output"
mkdir -p "$out"

count() { # $1 = log file of one deno test run
  line=$(grep -E '^(ok|FAILED) \| ' "$1" | tail -n 1 || true)
  p=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p')
  f=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-1}))
}

step() { # name, command...
  name=$1
  shift
  if "$@" >"$out/$name.log" 2>&1; then
    passed=$((passed + 1))
    echo "$name: ok"
  else
    failed=$((failed + 1))
    echo "$name: FAILED"
    tail -n 40 "$out/$name.log"
  fi
}

step fmt "$DENO" fmt --check
step lint "$DENO" lint
step check "$DENO" check main.ts lib tests scripts e2e

# Unit and process-level integration tests (fakes on 127.0.0.1 port 0).
"$DENO" test --allow-all --parallel tests/ 2>&1 | tee "$out/unit.log" | grep -E '^(ok|FAILED) \||FAILED|^error' || true
count "$out/unit.log"

if [ "${1:-}" != "--fast" ] && [ -x e2e/run.sh ]; then
  sh e2e/run.sh 2>&1 | tee "$out/e2e.log" | grep --line-buffered -E '^(ok|FAILED) \||FAILED|^error|^e2e(-setup)?:| \.\.\. (ok|FAILED)' || true
  count "$out/e2e.log"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
