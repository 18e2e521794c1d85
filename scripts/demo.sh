#!/bin/sh
# `deno task demo`: brings up Synapse, livekit-server, Redis, nginx and lk-jwt-service on
# loopback inside a private network namespace, performs a real token exchange with a demo user,
# joins the SFU with a real WebRTC participant and shows the delegated leave being sent when it
# exits. Keeps running until Ctrl-C; `--once` runs the demo once and exits (CI).
# Installs missing pieces first (e2e/setup.sh; cached in e2e/.stack/). See docs/testing.md.
set -eu
cd "$(dirname "$0")/.."
exec bash e2e/run.sh demo "$@"
