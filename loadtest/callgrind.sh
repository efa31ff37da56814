#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the figure that does not drift with the
# VM's neighbours (req/s and CPU seconds do). Each server runs under
# `valgrind --tool=callgrind` with one worker thread, takes `h2load --h1 -n REQUESTS -c 8
# -m 16` on /plaintext, is stopped (our binary: SIGINT, it exits cleanly; hyper-peer: SIGTERM),
# and the `totals:` line of its callgrind output divided by REQUESTS is printed (start-up and
# shutdown included, well under 1 M instructions in all: small against 64,000 requests).
# Servers: ordered (the binary's defaults: metrics and Server-Timing on), ordered-bare
# (--no-metrics --no-server-timing), hyper-engine (--engine hyper --no-metrics), hyper-peer,
# pipelined-peer (hyper-peer's service through `pipelined::serve`, default Config).
# usage: loadtest/callgrind.sh
# env: REQUESTS (64000), OUT (a new /tmp/callgrind.* directory: callgrind.<name>.out, logs),
#      SKIP_BUILD=1, PEERS=0 (see common.sh)
# needs: valgrind, h2load (apt-get install valgrind nghttp2-client)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need valgrind "apt-get install valgrind"
need h2load "apt-get install nghttp2-client"
need taskset "apt-get install util-linux"
REQUESTS=${REQUESTS:-64000}
OUT=${OUT:-$(mktemp -d /tmp/callgrind.XXXXXX)}
mkdir -p "$OUT"
build
build_peers

# name|signal|command with {PORT}
cases() {
  echo "ordered|INT|$BIN serve --workers 1 --bind 127.0.0.1:{PORT}"
  echo "ordered-bare|INT|$BIN serve --workers 1 --no-metrics --no-server-timing --bind 127.0.0.1:{PORT}"
  echo "hyper-engine|INT|$BIN serve --workers 1 --engine hyper --no-metrics --bind 127.0.0.1:{PORT}"
  if [ "${PEERS:-1}" != 0 ] && [ -x "$PEERS_DIR/hyper-peer" ]; then
    echo "hyper-peer|TERM|$PEERS_DIR/hyper-peer 127.0.0.1:{PORT}"
  fi
  if [ "${PEERS:-1}" != 0 ] && [ -x "$PEERS_DIR/pipelined-peer" ]; then
    echo "pipelined-peer|INT|$PEERS_DIR/pipelined-peer 127.0.0.1:{PORT}"
  fi
}

commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<< "$1"; }

declare -A per_req
port=9700
while IFS='|' read -r -u 3 name sig cmd; do
  port=$((port + 1))
  file="$OUT/callgrind.$name.out"
  cmd=${cmd//\{PORT\}/$port}
  # TOKIO_WORKER_THREADS=1: one worker for hyper-peer too (read by #[tokio::main])
  TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" \
    valgrind --tool=callgrind --callgrind-out-file="$file" $cmd > "$OUT/$name.log" 2>&1 &
  pid=$!
  up=
  for _ in $(seq 600); do   # up to 60 s: start-up under valgrind is slow
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }
    alive "$pid" || break
    sleep 0.1
  done
  if [ -z "$up" ]; then
    echo "$name did not start on port $port (see $OUT/$name.log)" >&2
    kill -KILL "$pid" 2>/dev/null; exit 1
  fi
  load=$(timeout 600 taskset -c "$LOAD_CPU" h2load --h1 -n "$REQUESTS" -c 8 -m 16 \
           "http://127.0.0.1:$port/plaintext" 2>&1 || true)
  echo "$load" > "$OUT/$name.h2load.txt"
  ok=$(awk '/^requests:/{print $8}' <<< "$load")
  kill -"$sig" "$pid"
  for _ in $(seq 600); do alive "$pid" || break; sleep 0.1; done   # 60 s to write its file
  alive "$pid" && { echo "$name did not stop on SIG$sig: killed" >&2; kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null || true
  # totals: (end of file) when present, else summary: (the header)
  total=$(awk '/^summary:/{s=$2} /^totals:/{t=$2} END{print (t != "" ? t : s)}' "$file" 2>/dev/null || true)
  if [ -z "$total" ]; then
    echo "$name: no totals in $file (see $OUT/$name.log)" >&2; continue
  fi
  if [ "${ok:-0}" != "$REQUESTS" ]; then
    echo "$name: h2load: ${ok:-0} of $REQUESTS requests succeeded (see $OUT/$name.h2load.txt)" >&2
  fi
  per_req[$name]=$((total / REQUESTS))
  printf '%-13s %15s instructions  %8s per request\n' "$name" "$(commas "$total")" "$(commas "${per_req[$name]}")"
done 3< <(cases)

ratio() { # A B
  [ -n "${per_req[$1]:-}" ] && [ -n "${per_req[$2]:-}" ] &&
    awk -v a="${per_req[$1]}" -v b="${per_req[$2]}" -v n="$1/$2" 'BEGIN { printf "%-26s %.2f×\n", n, a / b }'
  return 0
}
echo
ratio ordered hyper-engine
ratio ordered hyper-peer
ratio ordered-bare hyper-engine
ratio ordered-bare hyper-peer
ratio ordered ordered-bare
echo "(h2load --h1 -n $REQUESTS -c 8 -m 16 /plaintext, one worker thread; callgrind files in $OUT)"
