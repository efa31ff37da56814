#!/usr/bin/env bash
# The pipelining client (examples/client.rs: 100 GETs written before the first answer is read,
# on one connection) against every server loadtest knows: this project's engines, the peers in
# loadtest/peers (hyper, actix-web, axum, raw-limit) and nginx when installed. Each must give
# 100 answers, each 200 with the 13-byte body, and the example must exit 0 (a request left
# unanswered, or an answer handed to the wrong request's framing, fails it). Issue #20 point 5.
# Bounded: each run is one pipeline of 100 requests; servers are stopped on exit.
# env: SKIP_BUILD=1, PEERS=0, PEERS_DIR (see common.sh)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need taskset "apt-get install util-linux"

build
build_peers
(cd "$ROOT" && env -u CARGO_TARGET_DIR cargo build --release --quiet --example client --features client)
CLIENT="$ROOT/target/release/examples/client"
PORT=${PORT:-9011}
NGINX_DIR=""
cleanup() {
  stop || true
  if [ -n "$NGINX_DIR" ] && [ -f "$NGINX_DIR/nginx.pid" ]; then
    kill "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# check NAME: runs the example against 127.0.0.1:$PORT; prints one result line.
failed=0
check() {
  local name=$1 out
  if ! out=$(timeout 30 taskset -c "$LOAD_CPU" "$CLIENT" "http://127.0.0.1:$PORT/plaintext" 2>&1); then
    echo "$name: FAILED (exit code): $(echo "$out" | tail -1)"
    failed=1
    return
  fi
  local ok last
  ok=$(echo "$out" | grep -cE '^ *[0-9]+  200 OK .* 13 bytes$' || true)
  last=$(echo "$out" | tail -1 | awk '{print $(NF-3), $(NF-2)}')
  if [ "$ok" = 100 ]; then
    echo "$name: 100/100 answers 200, 13 bytes each; the last after $last"
  else
    echo "$name: FAILED: $ok of 100 answers were 200 with 13 bytes"
    failed=1
  fi
}

while IFS='|' read -r name cmd; do
  start "$name" "$PORT" ${cmd//\{PORT\}/$PORT}
  check "$name"
  stop || true
done < <(servers)

if command -v nginx >/dev/null; then
  NGINX_DIR=$(mktemp -d)
  cat > "$NGINX_DIR/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $NGINX_DIR;
  proxy_temp_path $NGINX_DIR;
  fastcgi_temp_path $NGINX_DIR;
  uwsgi_temp_path $NGINX_DIR;
  scgi_temp_path $NGINX_DIR;
  server {
    listen 127.0.0.1:$PORT;
    location /plaintext { default_type text/plain; return 200 "Hello, World!"; }
  }
}
CONF
  start nginx "$PORT" nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR"
  check nginx
  stop || true
else
  echo "(nginx not installed: left out; apt-get install nginx)"
fi
exit "$failed"
