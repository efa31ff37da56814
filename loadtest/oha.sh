#!/usr/bin/env bash
# Keep-alive (not pipelined) load with oha; prints oha's JSON summary. Bounded by DURATION;
# targets 127.0.0.1 only.
# usage: loadtest/oha.sh [URL] (default http://127.0.0.1:8080/plaintext)
# env: CONNS (64), DURATION (10s)
# needs: oha  (cargo install oha)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need oha "cargo install oha"
URL=${1:-http://127.0.0.1:8080/plaintext}
CONNS=${CONNS:-64}; DURATION=${DURATION:-10s}
case "$URL" in http://127.0.0.1:*|http://localhost:*) ;; *) echo "loopback targets only" >&2; exit 2;; esac
taskset -c "$LOAD_CPU" oha --no-tui -c "$CONNS" -z "$DURATION" --output-format json "$URL"
