#!/usr/bin/env bash
# Pipelined load against one server: wrk with DEPTH requests per write, and h2load --h1 -m
# DEPTH. Bounded by DURATION; targets 127.0.0.1 only.
# usage: loadtest/pipelined.sh [URL] (default http://127.0.0.1:8080)
# env: DEPTH (16), CONNS (64), DURATION (10s), PATH_ (/plaintext)
# needs: wrk, h2load  (apt-get install wrk nghttp2-client)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need wrk "apt-get install wrk"
URL=${1:-http://127.0.0.1:8080}
DEPTH=${DEPTH:-16}; CONNS=${CONNS:-64}; DURATION=${DURATION:-10s}; P=${PATH_:-/plaintext}
case "$URL" in http://127.0.0.1:*|http://localhost:*) ;; *) echo "loopback targets only" >&2; exit 2;; esac
echo "== wrk, $CONNS connections, $DEPTH pipelined per write, $DURATION"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$HERE/pipeline.lua" "$URL" -- "$P" "$DEPTH"
if command -v h2load >/dev/null; then
  secs=${DURATION%s}
  echo "== h2load --h1, $CONNS clients, -m $DEPTH, ${secs}s"
  taskset -c "$LOAD_CPU" h2load --h1 -c"$CONNS" -m"$DEPTH" -D"$secs" "$URL$P" | grep -E "finished in|requests:|status codes"
else
  echo "(h2load not installed: apt-get install nghttp2-client)"
fi
