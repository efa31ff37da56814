#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the figure that does not drift with the
# VM's neighbours (req/s and CPU seconds do). Each server runs under
# `valgrind --tool=callgrind` with one worker thread, takes `h2load --h1 -n REQUESTS -c 8
# -m 16` on its path, is stopped (our binary: SIGINT, it exits cleanly; hyper-peer: SIGTERM),
# and the `totals:` line of its callgrind output divided by REQUESTS is printed. The counts are
# zeroed once the server has answered one request (`callgrind_control --zero`): start-up is
# left out, so a one-off cost that valgrind inflates (the timing clock's calibration runs
# against real time: ~200 ms under valgrind) does not pass for a cost per request. Shutdown
# stays in (well under 1 M instructions: small against 64,000 requests).
# Servers: ordered (the binary's defaults, metrics and Server-Timing on: /plaintext, answered
# inline), ordered-bare (--no-metrics --no-server-timing), ordered-service and
# ordered-service-bare (the same on /plaintext-service, the same answer through a Service
# handler), hyper-engine (--engine hyper --no-metrics, /plaintext-service), hyper-peer and
# pipelined-peer (hyper-peer's service through `pipelined::serve`, default Config) on /plaintext;
# axum-serve and axum-pipelined (one axum app, loadtest/peers/axum-peer, through `axum::serve`
# and through `pipelined::serve`) on /plaintext.
# usage: loadtest/callgrind.sh [--check]
#   --check: run only the cases loadtest/callgrind.baseline names, and fail (exit 1) when one
#            costs more than 3 % over its recorded figure (CI runs this: the instruction count
#            is the one speed figure stable enough to gate on). Lower the figures in the
#            baseline when a change makes them fall, so the gate keeps what was won.
# env: REQUESTS (64000), OUT (a new /tmp/callgrind.* directory: callgrind.<name>.out, logs),
#      SKIP_BUILD=1, PEERS=0 (see common.sh), HEADERS=techempower (below)
# needs: valgrind, h2load (apt-get install valgrind nghttp2-client)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need valgrind "apt-get install valgrind"
need callgrind_control "apt-get install valgrind"
need h2load "apt-get install nghttp2-client"
need taskset "apt-get install util-linux"
REQUESTS=${REQUESTS:-64000}
# HEADERS=techempower: send the request headers of TechEmpower's wrk runs (Host, a long
# Accept, Connection: keep-alive) instead of h2load's two, which flatter every per-header cost.
HEADER_ARGS=()
if [ "${HEADERS:-}" = techempower ]; then
  HEADER_ARGS=(-H "Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7"
               -H "Connection: keep-alive")
fi
BASELINE="$HERE/callgrind.baseline"
# The most a case may cost over its baseline figure before --check fails, in percent.
TOLERANCE=3
CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  *) echo "usage: loadtest/callgrind.sh [--check]" >&2; exit 2 ;;
esac
# baseline NAME: the recorded instructions per request of case NAME, or nothing.
baseline() { awk -v n="$1" '$1 == n { print $2 }' "$BASELINE"; }
if [ "$CHECK" = 1 ]; then
  [ -f "$BASELINE" ] || { echo "missing $BASELINE" >&2; exit 2; }
  [ "$REQUESTS" = 64000 ] || { echo "--check compares figures taken with REQUESTS=64000" >&2; exit 2; }
  PEERS=0   # the gate is on the binary's own cases: CI need not build the peers
fi
OUT=${OUT:-$(mktemp -d /tmp/callgrind.XXXXXX)}
mkdir -p "$OUT"
build
build_peers

# name|signal|path|command with {PORT}: every case, or with --check those the baseline names
cases() {
  if [ "$CHECK" = 1 ]; then
    all_cases | while IFS='|' read -r name rest; do
      [ -n "$(baseline "$name")" ] && echo "$name|$rest"
    done
    return 0
  fi
  all_cases
}

all_cases() {
  local bare="--no-metrics --no-server-timing"
  echo "ordered|INT|/plaintext|$BIN serve --workers 1 --bind 127.0.0.1:{PORT}"
  echo "ordered-bare|INT|/plaintext|$BIN serve --workers 1 $bare --bind 127.0.0.1:{PORT}"
  echo "ordered-service|INT|/plaintext-service|$BIN serve --workers 1 --bind 127.0.0.1:{PORT}"
  echo "ordered-service-bare|INT|/plaintext-service|$BIN serve --workers 1 $bare --bind 127.0.0.1:{PORT}"
  echo "hyper-engine|INT|/plaintext-service|$BIN serve --workers 1 --engine hyper --no-metrics --bind 127.0.0.1:{PORT}"
  if [ "${PEERS:-1}" != 0 ] && [ -x "$PEERS_DIR/hyper-peer" ]; then
    echo "hyper-peer|TERM|/plaintext|$PEERS_DIR/hyper-peer 127.0.0.1:{PORT}"
  fi
  if [ "${PEERS:-1}" != 0 ] && [ -x "$PEERS_DIR/pipelined-peer" ]; then
    echo "pipelined-peer|INT|/plaintext|$PEERS_DIR/pipelined-peer 127.0.0.1:{PORT}"
  fi
  if [ "${PEERS:-1}" != 0 ] && [ -x "$PEERS_DIR/axum-peer" ]; then
    echo "axum-serve|INT|/plaintext|$PEERS_DIR/axum-peer axum 127.0.0.1:{PORT}"
    echo "axum-pipelined|INT|/plaintext|$PEERS_DIR/axum-peer pipelined 127.0.0.1:{PORT}"
  fi
}

commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<< "$1"; }

declare -A per_req
port=9700
while IFS='|' read -r -u 3 name sig path cmd; do
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
  # One request first: the server has started (past the listener's bind) when it is answered.
  h2load --h1 -n 1 -c 1 "http://127.0.0.1:$port$path" > /dev/null 2>&1 || true
  callgrind_control --zero "$pid" > /dev/null 2>&1
  load=$(timeout 600 taskset -c "$LOAD_CPU" h2load --h1 -n "$REQUESTS" -c 8 -m 16 \
           "${HEADER_ARGS[@]}" "http://127.0.0.1:$port$path" 2>&1 || true)
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
  printf '%-21s %15s instructions  %8s per request\n' "$name" "$(commas "$total")" "$(commas "${per_req[$name]}")"
done 3< <(cases)

if [ "$CHECK" = 1 ]; then
  failed=0
  while read -r name figure; do
    case "$name" in ''|'#'*) continue ;; esac
    got=${per_req[$name]:-}
    if [ -z "$got" ]; then
      echo "FAIL $name: not measured (is it built? PEERS=0 leaves the peers out)" >&2; failed=1; continue
    fi
    if [ $((got * 100)) -gt $((figure * (100 + TOLERANCE))) ]; then
      echo "FAIL $name: $got instructions per request, over $figure + $TOLERANCE %" >&2; failed=1
    else
      echo "ok   $name: $got instructions per request (baseline $figure, limit +$TOLERANCE %)"
    fi
  done < "$BASELINE"
  exit "$failed"
fi

ratio() { # A B
  [ -n "${per_req[$1]:-}" ] && [ -n "${per_req[$2]:-}" ] &&
    awk -v a="${per_req[$1]}" -v b="${per_req[$2]}" -v n="$1/$2" 'BEGIN { printf "%-40s %.2f×\n", n, a / b }'
  return 0
}
echo
ratio ordered hyper-peer
ratio ordered-bare hyper-peer
ratio ordered ordered-bare
ratio pipelined-peer hyper-peer
ratio axum-pipelined axum-serve
ratio ordered-service hyper-peer
ratio ordered-service-bare hyper-engine
ratio ordered-service ordered-service-bare
echo "(h2load --h1 -n $REQUESTS -c 8 -m 16${HEADERS:+, $HEADERS headers}, one worker thread; callgrind files in $OUT)"
