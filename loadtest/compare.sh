#!/usr/bin/env bash
# Side by side, same run: the binary with its defaults (ordered), without metrics and
# Server-Timing (ordered-bare), --engine hyper, and the peers in loadtest/peers (built here
# with --locked). Each server pinned to CPU 0, the load generator to CPU 1. Prints a markdown
# table with ratios against hyper-peer, and writes results/latest.csv for chart.py.
# Per server and round:
#   pipelined16_c64/_c256   wrk, DEPTH requests per write (pipeline.lua), req/s
#   cpu_ns_c64/_c256        the server's user+system CPU (/proc/PID/stat) over those wrk
#                           windows divided by the requests wrk completed (lower is better;
#                           still meaningful when wrk, not the server, is the bottleneck)
#   plain_c64_wrk/_oha      one request at a time per connection, req/s (oha when installed)
#   pload16_c64, pload1_c64 `pipelined load --threads 1 -c 64` (this binary's load generator),
#                           --pipeline DEPTH and --pipeline 1, req/s (answered / elapsed);
#                           beside wrk's pipelined16_c64 and plain_c64_wrk (loadtest/load.sh
#                           compares the generators themselves)
#   h2load_c256/_c1024      h2load --h1 -m DEPTH on /plaintext, req/s; with the server's CPU per
#                           request (cpu_ns_h2load_*) and its idle share (idle_pct_h2load_*:
#                           high when h2load, not the server, is the bottleneck)
#   batch16x20ms_ms         one write of 16 x /delay/20, until all answered (median of 9)
# usage: loadtest/compare.sh
# env: ROUNDS (2; the best round per cell is kept), DURATION (5s, whole seconds), DEPTH (16),
#      CSV (results/latest.csv), SKIP_BUILD=1, PEERS=0 (see common.sh)
# needs: wrk, h2load (apt-get install wrk nghttp2-client); oha optional (cargo install oha);
#        the binary's `load` subcommand (built here unless SKIP_BUILD=1)
set -euo pipefail
source "$(dirname "$0")/common.sh"
load_settings
CSV=${CSV:-$HERE/results/latest.csv}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # h2load at c=1024, and the servers
build
build_peers
mkdir -p "$HERE/results"
raw="$HERE/results/raw-$(date -u +%Y%m%dT%H%M%SZ).txt"
: > "$raw"

port=9400
for round in $(seq "$ROUNDS"); do
  while IFS='|' read -r -u 3 name cmd; do
    port=$((port + 1))
    start "$name" "$port" ${cmd//\{PORT\}/$port}
    url="http://127.0.0.1:$port"
    pipelined_rows "$round" "$name" "$url" "$raw"
    if command -v oha >/dev/null; then
      o=$(taskset -c "$LOAD_CPU" oha --no-tui -c 64 -z "$DURATION" --output-format json "$url/plaintext" \
          | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["summary"]["requestsPerSec"]))')
      echo "$round $name plain_c64_oha $o" >> "$raw"
    fi
    # pipelined load (this binary's generator, one thread), wrk's depth and one at a time.
    read -r rps _ < <(pload_run "$url" 64 "$DEPTH") || rps='0!'
    echo "$round $name pload${DEPTH}_c64 $rps" >> "$raw"
    read -r rps _ < <(pload_run "$url" 64 1) || rps='0!'
    echo "$round $name pload1_c64 $rps" >> "$raw"
    h2load_rows "$round" "$name" "$url" "$raw" 256 1024
    if [ "$name" != raw-limit ]; then
      b=$(taskset -c "$LOAD_CPU" python3 "$HERE/batch_latency.py" "127.0.0.1:$port" /delay/20 16 9)
      echo "$round $name batch16x20ms_ms $b" >> "$raw"
    fi
    stop
    grep "^$round $name " "$raw" | tr '\n' ' ' >&2; echo >&2
  done 3< <(servers)
done

python3 "$HERE/table.py" "$raw" "$CSV"
echo "raw figures: $raw; CSV: $CSV"
