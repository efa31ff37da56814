#!/usr/bin/env bash
# The issue's other measurements, same run: CPU-bound pipelining, idle memory per connection,
# and 10,000 concurrent pipelining connections. Bounded; targets 127.0.0.1 only.
# usage: loadtest/extras.sh      needs: wrk (apt-get install wrk), python3
# env: WORK_ROUNDS (6000000), IDLE_CONNS (4000), MANY_CONNS (10000), MANY_DURATION (10s),
#      SKIP_BUILD=1, PEERS=0 (see common.sh)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need wrk "apt-get install wrk"
build
build_peers            # hyper-peer, for the idle-memory row (PEERS=0: ours only)
PEER=$PEERS_DIR/hyper-peer
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

IDLE_CONNS=${IDLE_CONNS:-4000}; MANY_CONNS=${MANY_CONNS:-10000}; MANY_DURATION=${MANY_DURATION:-10s}
echo "== RSS per idle keep-alive connection ($IDLE_CONNS connections)"
idle() { # NAME CMD...
  local name=$1; shift
  "$@" >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9602) 2>/dev/null && break; sleep 0.05; done
  echo "$name $(python3 "$HERE/idle_conns.py" 127.0.0.1:9602 "$pid" "$IDLE_CONNS")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
idle ordered "$BIN" serve --no-metrics --bind 127.0.0.1:9602
[ "${PEERS:-1}" != 0 ] && [ -x "$PEER" ] && idle hyper-peer "$PEER" 127.0.0.1:9602

echo "== $MANY_CONNS concurrent connections, 16 pipelined per write, $MANY_DURATION"
"$BIN" serve --no-metrics --bind 127.0.0.1:9603 >/dev/null 2>&1 & pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9603) 2>/dev/null && break; sleep 0.05; done
fds() { ls "/proc/$pid/fd" | wc -l; }
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
echo "before: fds=$(fds) rss_kib=$(rss)"
# Twice: a leak grows RSS and open fds run after run; allocator reuse does not.
for run in 1 2; do
  wrk -t2 -c"$MANY_CONNS" -d"$MANY_DURATION" --timeout 10s -s "$HERE/pipeline.lua" http://127.0.0.1:9603 -- /plaintext 16 \
    | grep -E "requests in|Requests/sec|Socket errors|Non-2xx" || true
  sleep 3   # let the server notice the closed connections
  echo "after run $run: fds=$(fds) rss_kib=$(rss)"
done
kill "$pid"; wait "$pid" 2>/dev/null || true
