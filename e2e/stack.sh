#!/usr/bin/env bash
# Start/stop functions for the real stack (real-stack.md §3–§7), sourced by e2e/inside.sh.
# Everything listens on 127.0.0.1 inside the private network namespace; nothing here downloads.
#
# Expects: ROOT (repository), E2E (= $ROOT/e2e), STACK (= $E2E/.stack), RUN (fresh run folder).

# shellcheck source=e2e/versions.env
. "$E2E/versions.env"

SYNAPSE_TEMPLATE="$STACK/synapse-template-$SYNAPSE_VERSION"

log() { printf 'e2e: %s\n' "$*" >&2; }

# wait_until SECONDS DESCRIPTION CMD... — polls CMD every 0.2 s.
wait_until() {
  local limit="$1" what="$2" deadline
  shift 2
  deadline=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

make_certificates() {
  # Test CA + leaf for localhost/127.0.0.1 (real-stack.md §4.2).
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=e2e-ca \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$RUN/ca.key" -out "$RUN/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$RUN/tls.key" -out "$RUN/tls.csr" 2>/dev/null
  printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$RUN/leaf.ext"
  openssl x509 -req -in "$RUN/tls.csr" -CA "$RUN/ca.crt" -CAkey "$RUN/ca.key" -CAcreateserial \
    -days 7 -extfile "$RUN/leaf.ext" -out "$RUN/tls.crt" 2>/dev/null
}

start_redis() {
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log" --dir "$RUN" >/dev/null
  wait_until 10 "Redis" sh -c 'redis-cli -p 6379 ping | grep -q PONG'
}

stop_redis() {
  redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true
}

synapse_ready() {
  curl -fsS "http://127.0.0.1:${1:-8008}/health" >/dev/null 2>&1
}

# Two homeservers: A (localhost:8448, the one every scenario uses) and B (localhost:8449, the
# federating peer of the app-service scenarios). Both run from the same venv.
#   synapse_dir a|b   folder of the instance's config, database, key and log
synapse_dir() { if [ "$1" = a ]; then echo "$RUN"; else echo "$RUN/b"; fi; }
synapse_port() { if [ "$1" = a ]; then echo 8008; else echo 8009; fi; }
synapse_tls_port() { if [ "$1" = a ]; then echo 8448; else echo 8449; fi; }

# launch_synapse a|b — starts Synapse in the background and waits until it answers.
launch_synapse() {
  local dir pid
  dir="$(synapse_dir "$1")"
  # The interpreter itself, not a shell function, so that $! is Synapse's own PID.
  "$STACK/venv/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" \
    >>"$dir/synapse.log" 2>&1 &
  pid=$!
  if [ "$1" = a ]; then SYNAPSE_PID=$pid; else SYNAPSE_B_PID=$pid; fi
  local i
  for i in $(seq 1 900); do
    synapse_ready "$(synapse_port "$1")" && return 0
    kill -0 "$pid" 2>/dev/null || { log "Synapse $1 exited during start"; return 1; }
    sleep 0.2
  done
  log "Synapse $1 not ready after 180 s"
  return 1
}

stop_synapse() {
  local pid
  if [ "${1:-a}" = a ]; then pid="${SYNAPSE_PID:-}"; else pid="${SYNAPSE_B_PID:-}"; fi
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "${1:-a}" = a ]; then SYNAPSE_PID=""; else SYNAPSE_B_PID=""; fi
}

# start_synapse a|b
start_synapse() {
  local name="$1" dir template config
  dir="$(synapse_dir "$name")"
  # The schema-only template is keyed by Synapse version and server name.
  template="$SYNAPSE_TEMPLATE-localhost_$(synapse_tls_port "$name")"
  config="$E2E/config/homeserver.yaml.in"
  [ "$name" = b ] && config="$E2E/config/homeserver-b.yaml.in"
  mkdir -p "$dir/media"
  sed "s|@RUN@|$RUN|g" "$config" >"$dir/homeserver.yaml"
  sed "s|@RUN@|$RUN|g" "$E2E/config/appservice-$name.yaml.in" >"$RUN/appservice-$name.yaml"
  # Homeserver A also has a registration without push (the sweep-only membership scenario).
  if [ "$name" = a ]; then
    cp "$E2E/config/appservice-a-nopush.yaml.in" "$RUN/appservice-a-nopush.yaml"
  fi
  if [ -f "$template/homeserver.db" ]; then
    # Schema-only database of an earlier run: skips the 20–90 s of first-start migrations.
    cp "$template"/homeserver.db* "$template/signing.key" "$dir/"
    launch_synapse "$name" || return 1
  else
    "$STACK/venv/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" --generate-keys \
      >>"$dir/synapse.log" 2>&1
    launch_synapse "$name" || return 1
    # Keep the freshly migrated, still user-free database as the template for later runs.
    stop_synapse "$name"
    rm -rf "$template.tmp"
    mkdir -p "$template.tmp"
    cp "$dir"/homeserver.db* "$dir/signing.key" "$template.tmp/"
    rm -rf "$template"
    mv "$template.tmp" "$template"
    launch_synapse "$name" || return 1
  fi
  # Federation OpenID endpoint over TLS, verified with the test CA: 401 M_MISSING_TOKEN.
  curl -sS --cacert "$RUN/ca.crt" \
    "https://localhost:$(synapse_tls_port "$name")/_matrix/federation/v1/openid/userinfo" \
    | grep -q M_MISSING_TOKEN || { log "Synapse $name openid listener not answering over TLS"; return 1; }
}

livekit_ready() {
  curl -fsS http://127.0.0.1:7880/ 2>/dev/null | grep -q OK
}

start_webhook_capture() {
  "$E2E_DENO" run --cached-only --allow-net=127.0.0.1:8090 --allow-write="$RUN" \
    "$E2E/webhook_capture.ts" "$RUN/webhooks.jsonl" >"$RUN/webhook-capture.log" 2>&1 &
  CAPTURE_PID=$!
  wait_until 15 "webhook capture listener" curl -fsS -X POST -d '{}' http://127.0.0.1:8090/ready
}

stop_webhook_capture() {
  [ -n "${CAPTURE_PID:-}" ] || return 0
  kill -TERM "$CAPTURE_PID" 2>/dev/null || true
  wait "$CAPTURE_PID" 2>/dev/null || true
  CAPTURE_PID=""
}

start_livekit() {
  "$STACK/bin/livekit-server" --config "$E2E/config/livekit.yaml" >"$RUN/livekit.log" 2>&1 &
  LIVEKIT_PID=$!
  wait_until 30 "livekit-server" livekit_ready
}

# The SFU of homeserver B (app-service scenarios): port 7980, UDP 7982.
start_livekit_b() {
  "$STACK/bin/livekit-server" --config "$E2E/config/livekit-b.yaml" >"$RUN/livekit-b.log" 2>&1 &
  LIVEKIT_B_PID=$!
  wait_until 30 "livekit-server B" sh -c 'curl -fsS http://127.0.0.1:7980/ | grep -q OK'
}

# stop_sfu PID — the first TERM waits for participants to leave; the second one hurries it
# (real-stack.md §5.3).
stop_sfu() {
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  sleep 0.5
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_livekit() {
  stop_sfu "${LIVEKIT_PID:-}"
  LIVEKIT_PID=""
  stop_sfu "${LIVEKIT_B_PID:-}"
  LIVEKIT_B_PID=""
}

start_nginx() {
  mkdir -p "$RUN/nginx-tmp"
  # The first ```nginx block of README.md is the documented reverse-proxy configuration; it is
  # included inside a server block. E2E_README tries an edited copy before committing it.
  awk '/^```nginx$/ { on = 1; next } on && /^```$/ { exit } on { print }' "${E2E_README:-$ROOT/README.md}" \
    >"$RUN/nginx-readme.conf"
  sed "s|@RUN@|$RUN|g" "$E2E/config/nginx.conf.in" >"$RUN/nginx.conf"
  if ! grep -q 'location' "$RUN/nginx-readme.conf"; then
    echo "README.md has no nginx block with the reverse-proxy configuration" >"$RUN/nginx-failed"
  elif ! nginx -c "$RUN/nginx.conf" -p "$RUN" -e "$RUN/nginx-error.log" 2>>"$RUN/nginx-error.log"; then
    grep emerg "$RUN/nginx-error.log" | tail -n 1 >"$RUN/nginx-failed"
  fi
  # Only the reverse-proxy scenario needs nginx: it reports this failure; the rest still runs.
  if [ -f "$RUN/nginx-failed" ]; then
    log "nginx not started: $(cat "$RUN/nginx-failed")"
  fi
  return 0
}

stop_nginx() {
  [ -f "$RUN/nginx.pid" ] || return 0
  nginx -c "$RUN/nginx.conf" -p "$RUN" -e "$RUN/nginx-error.log" -s quit 2>/dev/null || true
}

caddy_ready() {
  # Any HTTP answer means Caddy listens (502 while no service runs behind it).
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8087/livekit/jwt/healthz)" != 000 ]
}

start_caddy() {
  # The first ```caddyfile block of README.md, imported inside the site block of
  # e2e/config/Caddyfile.in. E2E_README tries an edited copy before committing it.
  awk '/^```caddyfile$/ { on = 1; next } on && /^```$/ { exit } on { print }' "${E2E_README:-$ROOT/README.md}" \
    >"$RUN/caddy-readme.caddy"
  sed "s|@RUN@|$RUN|g" "$E2E/config/Caddyfile.in" >"$RUN/Caddyfile"
  mkdir -p "$RUN/caddy-home"
  if ! grep -q 'reverse_proxy' "$RUN/caddy-readme.caddy"; then
    echo "README.md has no caddyfile block with the reverse-proxy configuration" >"$RUN/caddy-failed"
  else
    HOME="$RUN/caddy-home" XDG_DATA_HOME="$RUN/caddy-home" XDG_CONFIG_HOME="$RUN/caddy-home" \
      caddy run --config "$RUN/Caddyfile" --adapter caddyfile >"$RUN/caddy-run.log" 2>&1 &
    CADDY_PID=$!
    if ! wait_until 15 "Caddy" caddy_ready; then
      { grep -m1 -i 'error' "$RUN/caddy-run.log" || echo "Caddy did not start"; } >"$RUN/caddy-failed"
    fi
  fi
  # Only the reverse-proxy scenario needs Caddy: it reports this failure; the rest still runs.
  if [ -f "$RUN/caddy-failed" ]; then
    log "Caddy not started: $(cat "$RUN/caddy-failed")"
  fi
  return 0
}

stop_caddy() {
  [ -n "${CADDY_PID:-}" ] || return 0
  kill -TERM "$CADDY_PID" 2>/dev/null || true
  wait "$CADDY_PID" 2>/dev/null || true
  CADDY_PID=""
}

start_stack() {
  make_certificates
  log "starting Redis"
  start_redis
  log "starting Synapse A and B (first start runs migrations: up to 3 min)"
  local t0
  t0=$(date +%s)
  start_synapse a
  start_synapse b
  log "Synapse A and B ready after $(($(date +%s) - t0)) s"
  log "starting the webhook capture listener"
  start_webhook_capture
  log "starting livekit-server A and B"
  start_livekit
  start_livekit_b
  log "starting nginx and Caddy (the README's reverse-proxy blocks)"
  start_nginx
  start_caddy
}

stop_stack() {
  stop_caddy
  stop_nginx
  stop_livekit
  stop_webhook_capture
  stop_synapse b
  stop_synapse a
  stop_redis
  kill_namespace_leftovers
}

# kill_namespace_leftovers — safety net: every process in this private network namespace was
# started by this run; anything still alive apart from this shell is ended (TERM, then KILL).
kill_namespace_leftovers() {
  local me ns pid left=()
  me="$(readlink /proc/$$/ns/net)"
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$pid" = "$$" ] && continue
    [ "$pid" = "${BASHPID:-}" ] && continue
    ns="$(readlink "/proc/$pid/ns/net" 2>/dev/null)" || continue
    [ "$ns" = "$me" ] || continue
    # Skip our own subshells (their parent chain leads to this shell).
    [ "$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" = "$$" ] \
      && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink /proc/$$/exe)" ] && continue
    left+=("$pid")
  done
  [ ${#left[@]} -eq 0 ] && return 0
  log "ending leftover processes: ${left[*]}"
  kill -TERM "${left[@]}" 2>/dev/null || true
  sleep 2
  kill -KILL "${left[@]}" 2>/dev/null || true
}

# print_log_tails — the last lines of every component's log (on failure).
print_log_tails() {
  local f
  for f in "$RUN"/*.log "$RUN"/b/*.log "$RUN"/logs/*.log; do
    [ -s "$f" ] || continue
    printf '\n===== tail of %s =====\n' "${f#"$RUN"/}" >&2
    tail -n "${E2E_LOG_TAIL:-40}" "$f" >&2
  done
}
