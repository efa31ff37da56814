#!/usr/bin/env bash
# The issue's other measurements, same run: CPU-bound pipelining, idle memory per connection,
# and 10,000 concurrent pipelining connections. Bounded; targets 127.0.0.1 only.
# usage: loadtest/extras.sh      needs: wrk (apt-get install wrk), python3
set -euo pipefail
source "$(dirname "$0")/common.sh"
need wrk "apt-get install wrk"
build
PEER=${PEERS_DIR:-/tmp/peers/release}/hyper-peer
ROUNDS=${WORK_ROUNDS:-6000000}   # about 50 ms of CPU per /work request on this machine

echo "== CPU-bound: /work/$ROUNDS alone vs 2 pipelined (server unpinned: both cores)"
for engine in ordered hyper; do
  "$BIN" serve --engine "$engine" --no-metrics --bind 127.0.0.1:9601 >/dev/null 2>&1 & pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9601) 2>/dev/null && break; sleep 0.05; done
  one=$(python3 "$HERE/batch_latency.py" 127.0.0.1:9601 "/work/$ROUNDS" 1 9)
  two=$(python3 "$HERE/batch_latency.py" 127.0.0.1:9601 "/work/$ROUNDS" 2 9)
  echo "engine=$engine one_ms=$one two_pipelined_ms=$two ratio=$(python3 -c "print(round($two/$one, 2))")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

echo "== RSS per idle keep-alive connection (4000 connections)"
idle() { # NAME CMD...
  local name=$1; shift
  "$@" >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9602) 2>/dev/null && break; sleep 0.05; done
  echo "$name $(python3 "$ROOT/../shared/bench/idle_conns.py" 127.0.0.1:9602 "$pid" 4000)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
idle ordered "$BIN" serve --no-metrics --bind 127.0.0.1:9602
[ -x "$PEER" ] && idle hyper-peer "$PEER" 127.0.0.1:9602

echo "== 10,000 concurrent connections, 16 pipelined per write, 10 s"
"$BIN" serve --no-metrics --bind 127.0.0.1:9603 >/dev/null 2>&1 & pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9603) 2>/dev/null && break; sleep 0.05; done
fds() { ls "/proc/$pid/fd" | wc -l; }
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
echo "before: fds=$(fds) rss_kib=$(rss)"
# Twice: a leak grows RSS and open fds run after run; allocator reuse does not.
for run in 1 2; do
  wrk -t2 -c10000 -d10s --timeout 10s -s "$HERE/pipeline.lua" http://127.0.0.1:9603 -- /plaintext 16 \
    | grep -E "requests in|Requests/sec|Socket errors|Non-2xx" || true
  sleep 3   # let the server notice the closed connections
  echo "after run $run: fds=$(fds) rss_kib=$(rss)"
done
kill "$pid"; wait "$pid" 2>/dev/null || true
