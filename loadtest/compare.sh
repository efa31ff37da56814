#!/usr/bin/env bash
# Side by side, same run: the ordered engine, --engine hyper, and the shared peers when built.
# Each server pinned to CPU 0, the load generator to CPU 1. Prints a markdown table with
# ratios against hyper, and writes results/latest.csv for chart.py.
# usage: loadtest/compare.sh
# env: ROUNDS (2; the best round per cell is kept), DURATION (5s), DEPTH (16)
# needs: wrk (apt-get install wrk); oha optional (cargo install oha)
set -euo pipefail
source "$(dirname "$0")/common.sh"
need wrk "apt-get install wrk"
need taskset "apt-get install util-linux"
ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-5s}; DEPTH=${DEPTH:-16}
build
mkdir -p "$HERE/results"
raw="$HERE/results/raw-$(date -u +%Y%m%dT%H%M%SZ).txt"
: > "$raw"

wrk_rps() { # URL [pipeline args...]
  local url=$1; shift
  if [ $# -gt 0 ]; then
    taskset -c "$LOAD_CPU" wrk -t1 -c"$1" -d"$DURATION" -s "$HERE/pipeline.lua" "$url" -- /plaintext "$DEPTH"
  else
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"$DURATION" "$url/plaintext"
  fi | awk '/Requests\/sec/{printf "%d", $2} /Non-2xx|Socket errors/{err=1} END{if(err) printf "!"}'
}

port=9400
for round in $(seq "$ROUNDS"); do
  while IFS='|' read -r name cmd; do
    port=$((port + 1))
    start "$name" "$port" ${cmd//\{PORT\}/$port}
    url="http://127.0.0.1:$port"
    echo "$round $name pipelined16_c64 $(wrk_rps "$url" 64)" >> "$raw"
    echo "$round $name pipelined16_c256 $(wrk_rps "$url" 256)" >> "$raw"
    echo "$round $name plain_c64_wrk $(wrk_rps "$url")" >> "$raw"
    if command -v oha >/dev/null; then
      o=$(taskset -c "$LOAD_CPU" oha --no-tui -c 64 -z "$DURATION" --output-format json "$url/plaintext" \
          | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["summary"]["requestsPerSec"]))')
      echo "$round $name plain_c64_oha $o" >> "$raw"
    fi
    if [ "$name" != raw-limit ]; then
      b=$(taskset -c "$LOAD_CPU" python3 "$HERE/batch_latency.py" "127.0.0.1:$port" /delay/20 16 9)
      echo "$round $name batch16x20ms_ms $b" >> "$raw"
    fi
    stop
    tail -n 5 "$raw" | grep "^$round $name " >&2
  done < <(servers)
done

python3 "$HERE/table.py" "$raw" "$HERE/results/latest.csv"
echo "raw figures: $raw"
