#!/usr/bin/env bash
# Issue #20 point 6: the client's CPU per request against wrk's, in the same run. raw-limit
# (canned answers, the fastest server there is here) runs pinned to CPU 1; on CPU 0, for the
# same DURATION and connections, one after the other:
#   wrk -t1 -cC -dD -s pipeline.lua URL -- /plaintext DEPTH    (C, 16 requests per write)
#   client-load --connections C --depth DEPTH --duration D URL  (pipelined::client, one thread)
# Each tool's CPU is its whole process's user + system time (/usr/bin/time, the same way for
# both), divided by the responses it completed: what one response costs the load generator.
# With raw-limit on its own core, the generator is the bottleneck, so req/s follows CPU per
# request; the server's busy share is printed to show it. The order of the two alternates by
# round (drift on this VM hits both alike).
# Prints a markdown table; raw lines go to results/raw-client-*.txt.
# CALLGRIND=1 adds the figure that does not drift: each tool's user-space instructions per
# response under callgrind (runs of 2 s and 5 s at the first CONNS; the difference of their
# instruction counts over the difference of their responses, so start-up and teardown cancel
# out). The kernel's share (sendto, recvfrom: the same syscalls per request for both) is not in
# it.
# usage: loadtest/client.sh
# env: ROUNDS (3), DURATION (10, whole seconds; "10s" is accepted), CONNS (64; a list like
#      "64 256" runs each), DEPTH (16), PORT (9480), SKIP_BUILD=1 (use the built peers as they
#      are), SERVER_CPU (1), LOAD_CPU (0), CALLGRIND=1 (needs valgrind)
# needs: wrk (installed with apt-get when missing and run as root), taskset, /usr/bin/time
set -euo pipefail
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
source "$(dirname "$0")/common.sh"
if ! command -v wrk >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing wrk (apt-get install -y wrk)" >&2
  apt-get install -y wrk >/dev/null || true
fi
need wrk "apt-get install -y wrk"
need taskset "apt-get install util-linux"
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 2; }

ROUNDS=${ROUNDS:-3}
SECS=${DURATION:-10}; SECS=${SECS%s}
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-16}
PORT=${PORT:-9480}
case "$SECS" in ''|*[!0-9]*) echo "DURATION must be whole seconds, like 10" >&2; exit 2;; esac
# Every run stops by itself after SECS; this bounds a tool that would not.
LIMIT=$((SECS + 30))

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for p in raw-limit client-load; do
    echo "building $p (cargo build --release --locked -p $p --manifest-path loadtest/peers/Cargo.toml)" >&2
    cargo build --release --locked --quiet -p "$p" --manifest-path "$PEERS_MANIFEST" \
      --target-dir "${CARGO_TARGET_DIR:-$HERE/peers/target}"
  done
fi
for p in raw-limit client-load; do
  [ -x "$PEERS_DIR/$p" ] || { echo "$PEERS_DIR/$p is not built" >&2; exit 2; }
done

SERVER_PID=
trap '[ -n "$SERVER_PID" ] && stop' EXIT
trap 'exit 130' INT TERM
start raw-limit "$PORT" "$PEERS_DIR/raw-limit" "127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT/plaintext"
TCK=$(getconf CLK_TCK)

mkdir -p "$HERE/results"
# raw-*.txt: ignored by git, as compare.sh's raw files are.
raw="$HERE/results/raw-client-$(date -u +%Y%m%dT%H%M%SZ).txt"
: > "$raw"
tf=$(mktemp); out=$(mktemp); cg=$(mktemp -d)
trap '[ -n "$SERVER_PID" ] && stop; rm -rf "$tf" "$out" "$cg"' EXIT

# measure TOOL CONNS: runs TOOL pinned to LOAD_CPU; appends to $raw one line
# "round conns tool requests secs cpu_s server_busy_pct errors".
measure() {
  local tool=$1 c=$2 t0 t1 w0 w1 cpu n secs err busy
  t0=$(cpu_ticks "$SERVER_PID"); w0=$(date +%s%N)
  case "$tool" in
    wrk)
      timeout -k 5 "$LIMIT" /usr/bin/time -f "%U %S" -o "$tf" \
        taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${SECS}s" -s "$HERE/pipeline.lua" "$URL" \
        -- /plaintext "$DEPTH" > "$out"
      # wrk's own window ("N requests in 10.10s"); errors: socket errors, non-2xx answers.
      read -r n secs err < <(awk '/requests in/{n=$1; s=$4; sub(/s,$/, "", s)}
          /Non-2xx|Socket errors/{e=1} END{print n, s, e+0}' "$out")
      ;;
    client-load)
      timeout -k 5 "$LIMIT" /usr/bin/time -f "%U %S" -o "$tf" \
        taskset -c "$LOAD_CPU" "$PEERS_DIR/client-load" --connections "$c" --depth "$DEPTH" \
        --duration "$SECS" "$URL" > "$out"
      read -r n secs err < <(tr ' ' '\n' < "$out" | awk -F= '$1=="requests"{n=$2}
          $1=="secs"{s=$2} $1=="errors"{e=$2} END{print n, s, e}')
      ;;
  esac
  t1=$(cpu_ticks "$SERVER_PID"); w1=$(date +%s%N)
  cpu=$(awk '{print $1 + $2}' "$tf")
  busy=$(awk -v a="$t0" -v b="$t1" -v s="$w0" -v e="$w1" -v t="$TCK" \
    'BEGIN { printf "%d", 100 * (b - a) / t / ((e - s) / 1e9) }')
  echo "$round $c $tool $n $secs $cpu $busy $err" | tee -a "$raw" >&2
}

for round in $(seq "$ROUNDS"); do
  for c in $CONNS; do
    if [ $((round % 2)) = 1 ]; then order="wrk client-load"; else order="client-load wrk"; fi
    for tool in $order; do measure "$tool" "$c"; done
  done
done

echo
echo "wrk -t1 -cC -d${SECS}s -s loadtest/pipeline.lua $URL -- /plaintext $DEPTH, and"
echo "client-load --connections C --depth $DEPTH --duration $SECS $URL; raw-limit on CPU $SERVER_CPU, the tool on CPU $LOAD_CPU"
echo
awk '
  { key = $1 " " $2; req = $4 / $5; us = $6 * 1e6 / $4
    row[key, $3] = sprintf("| %s | %s | %s | %d | %.2f | %d | %.3f | %d |", $1, $2, $3, req, $6,
                           100 * $6 / $5, us, $7)
    flag[key, $3] = ($8 > 0) ? " (errors: " $8 ")" : ""
    cost[key, $3] = us; if (!(key in seen)) { seen[key] = 1; keys[++k] = key } }
  END {
    print "| round | connections | tool | req/s | CPU s | tool busy % | CPU µs per request | raw-limit busy % | client ÷ wrk |"
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= k; i++) {
      key = keys[i]
      print row[key, "wrk"] " |" flag[key, "wrk"]
      ratio = cost[key, "client-load"] / cost[key, "wrk"]
      printf "%s **%.2f×** |%s\n", row[key, "client-load"], ratio, flag[key, "client-load"]
      split(key, kc, " "); ratios[kc[2]] = ratios[kc[2]] " " ratio
    }
    # The median round per connection count: one round disturbed by the VM moves it least.
    print ""
    for (c in ratios) {
      n = split(substr(ratios[c], 2), r, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
      median = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
      printf "client ÷ wrk, CPU per request, %s connections: median of %d rounds **%.2f×**\n", c, n, median
    }
  }' "$raw"
echo
echo "raw lines (round conns tool requests secs cpu_s server_busy_pct errors; with CALLGRIND=1,"
echo "then: tool instructions_per_response instructions_2s responses_2s instructions_5s responses_5s): $raw"
echo "tool busy %: the tool's CPU over its window (100: it had CPU $LOAD_CPU to itself and was the bottleneck)"

if [ "${CALLGRIND:-0}" = 1 ]; then
  need valgrind "apt-get install valgrind"
  c=${CONNS%% *}
  # callgrind_run TOOL SECS: prints "INSTRUCTIONS RESPONSES".
  callgrind_run() {
    local tool=$1 d=$2 n
    case "$tool" in
      wrk)
        timeout -k 5 $((d * 20 + 60)) taskset -c "$LOAD_CPU" valgrind --tool=callgrind \
          --callgrind-out-file="$cg/$tool.$d" wrk -t1 -c"$c" -d"${d}s" -s "$HERE/pipeline.lua" \
          "$URL" -- /plaintext "$DEPTH" > "$out" 2> "$tf"
        n=$(awk '/requests in/{print $1}' "$out") ;;
      client-load)
        timeout -k 5 $((d * 20 + 60)) taskset -c "$LOAD_CPU" valgrind --tool=callgrind \
          --callgrind-out-file="$cg/$tool.$d" "$PEERS_DIR/client-load" --connections "$c" \
          --depth "$DEPTH" --duration "$d" "$URL" > "$out" 2> "$tf"
        n=$(tr ' ' '\n' < "$out" | awk -F= '$1=="requests"{print $2}') ;;
    esac
    echo "$(awk '/Collected :/{print $NF}' "$tf") $n"
  }
  echo
  echo "user-space instructions per response under callgrind, $c connections, depth $DEPTH:"
  echo
  echo "| tool | instructions per response | client ÷ wrk |"
  echo "|---|---|---|"
  for tool in wrk client-load; do
    read -r i2 n2 < <(callgrind_run "$tool" 2)
    read -r i5 n5 < <(callgrind_run "$tool" 5)
    per=$(awk -v a="$i2" -v b="$i5" -v m="$n2" -v n="$n5" 'BEGIN { printf "%d", (b - a) / (n - m) }')
    echo "$tool $per $i2 $n2 $i5 $n5" >> "$raw"
    if [ "$tool" = wrk ]; then wrk_per=$per; ratio=""; else
      ratio=$(awk -v a="$per" -v b="$wrk_per" 'BEGIN { printf "**%.2f×**", a / b }'); fi
    echo "| $tool | $per | $ratio |"
  done
fi
