# Shared helpers for the load-test scripts: sourced, not run.
# Every server runs pinned to CPU 0 and every load generator to CPU 1, so the two never
# compete for a core; every target is 127.0.0.1.
# env: SKIP_BUILD=1 (use target/release/pipelined as it is), PEERS=0 (leave the peers out),
#      PEERS_DIR (where the built peers are; default below), SERVER_CPU (0), LOAD_CPU (1)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN="$ROOT/target/release/pipelined"
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
# The peers (hyper-peer, actix-peer, raw-limit) are their own Cargo workspace in
# loadtest/peers, with its own Cargo.lock; built into $CARGO_TARGET_DIR when set, else
# loadtest/peers/target.
PEERS_MANIFEST="$HERE/peers/Cargo.toml"
PEERS_DIR=${PEERS_DIR:-${CARGO_TARGET_DIR:-$HERE/peers/target}/release}

need() {
  command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 2; }
}

# The main binary, always into ./target (BIN), whatever CARGO_TARGET_DIR says.
build() {
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    [ -x "$BIN" ] || { echo "SKIP_BUILD=1 but $BIN is missing: cargo build --release" >&2; exit 2; }
    return 0
  fi
  (cd "$ROOT" && env -u CARGO_TARGET_DIR cargo build --release --quiet)
}

# The peers, once per script run, from the vendored lock file (--locked).
build_peers() {
  [ "${PEERS:-1}" = 0 ] && return 0
  [ -n "${PEERS_BUILT:-}" ] && return 0
  if [ -n "${CARGO_TARGET_DIR:-}" ] || [ "$PEERS_DIR" = "$HERE/peers/target/release" ]; then
    # One package per build: built together, Cargo would unify their dependencies' features,
    # and actix-peer's tracing/log would make pipelined-peer log every span (~150
    # instructions per request that a pipelined app would not pay).
    local peer
    for peer in hyper-peer actix-peer raw-limit pipelined-peer axum-peer; do
      echo "building $peer (cargo build --release --locked -p $peer --manifest-path loadtest/peers/Cargo.toml)" >&2
      cargo build --release --locked --quiet -p "$peer" --manifest-path "$PEERS_MANIFEST" \
        --target-dir "${CARGO_TARGET_DIR:-$HERE/peers/target}" \
        || { echo "building $peer failed (PEERS=0 leaves the peers out)" >&2; exit 2; }
    done
  fi   # else PEERS_DIR points at peers built elsewhere: use them as they are
  PEERS_BUILT=1
}

# alive PID: running (not gone, and not a zombie waiting to be reaped)
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ]
}

# start NAME PORT CMD... : start a pinned server, wait until it accepts; sets SERVER_PID.
# env: START_TRIES (100 tries, 50 ms apart)
start() {
  local name=$1 port=$2; shift 2
  taskset -c "$SERVER_CPU" "$@" >/dev/null 2>&1 &
  SERVER_PID=$!
  for _ in $(seq "${START_TRIES:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    alive "$SERVER_PID" || break
    sleep 0.05
  done
  echo "$name did not start on port $port" >&2
  kill "$SERVER_PID" 2>/dev/null
  exit 1
}

stop() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null || true
}

# Servers to compare: "name|command with {PORT}".
# ordered: the binary's defaults (metrics and Server-Timing on: what issue #9 measures);
# ordered-bare: the same engine with neither; hyper-engine: --engine hyper with no metrics
# (Server-Timing is the ordered engine's own), so it compares with ordered-bare; then the
# peers from loadtest/peers when built.
servers() {
  echo "ordered|$BIN serve --bind 127.0.0.1:{PORT}"
  echo "ordered-bare|$BIN serve --no-metrics --no-server-timing --bind 127.0.0.1:{PORT}"
  echo "hyper-engine|$BIN serve --engine hyper --no-metrics --bind 127.0.0.1:{PORT}"
  [ "${PEERS:-1}" = 0 ] && return 0
  for peer in hyper-peer pipelined-peer actix-peer raw-limit; do
    if [ -x "$PEERS_DIR/$peer" ]; then
      echo "$peer|$PEERS_DIR/$peer 127.0.0.1:{PORT}"
    else
      echo "($peer not built in $PEERS_DIR: left out)" >&2
    fi
  done
  # One axum app, through axum's own server and through pipelined's.
  if [ -x "$PEERS_DIR/axum-peer" ]; then
    echo "axum-serve|$PEERS_DIR/axum-peer axum 127.0.0.1:{PORT}"
    echo "axum-pipelined|$PEERS_DIR/axum-peer pipelined 127.0.0.1:{PORT}"
  else
    echo "(axum-peer not built in $PEERS_DIR: left out)" >&2
  fi
  return 0
}

# The settings compare.sh and tls.sh share: ROUNDS (2; the best round per cell is kept),
# DURATION (5s, whole seconds), DEPTH (16); sets SECS and TCK for the measurements below.
load_settings() {
  need wrk "apt-get install wrk"
  need h2load "apt-get install nghttp2-client"
  need taskset "apt-get install util-linux"
  ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-5s}; DEPTH=${DEPTH:-16}
  SECS=${DURATION%s}
  case "$SECS" in ''|*[!0-9]*) echo "DURATION must be whole seconds, like 5s" >&2; exit 2;; esac
  TCK=$(getconf CLK_TCK)
}

# The measurements compare.sh and tls.sh share (after load_settings).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in CLK_TCK

# wrk_run URL [CONNS]: pipelined at CONNS connections, or plain at 64 without CONNS.
# Prints "REQ_PER_SEC[!] REQUESTS" (! when wrk saw socket errors or non-2xx answers).
wrk_run() {
  local url=$1; shift
  if [ $# -gt 0 ]; then
    taskset -c "$LOAD_CPU" wrk -t1 -c"$1" -d"$DURATION" -s "$HERE/pipeline.lua" "$url" -- /plaintext "$DEPTH"
  else
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"$DURATION" "$url/plaintext"
  fi | awk '/requests in/{n=$1} /Requests\/sec/{r=int($2)} /Non-2xx|Socket errors/{err="!"}
            END{printf "%s%s %s\n", r, err, n}'
}

# pload_run URL CONNS PIPELINE: `pipelined load` ($BIN) on one thread, PIPELINE requests
# outstanding per connection (1: one at a time), on /plaintext for SECS, pinned to LOAD_CPU and
# bounded by a timeout. Prints "REQ_PER_SEC[!] ANSWERED", as wrk_run does (! on failed requests,
# non-2xx answers, or none answered; the requests still in flight at the deadline are not
# errors); "0! 0" when it printed nothing.
pload_run() {
  timeout -k 5 $((SECS + 30)) taskset -c "$LOAD_CPU" "$BIN" load --no-tui --json --threads 1 \
    -c "$2" --pipeline "$3" -z "${SECS}s" "$1/plaintext" 2>/dev/null \
    | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(print("0! 0"))
bad = not d["requests"]["answered"] or d["requests"]["errors"] + sum(n for c, n in d["status_codes"].items() if not c.startswith("2"))
print(str(int(d["req_per_sec"])) + ("!" if bad else ""), d["requests"]["answered"])' || true
}

# cpu_ns TICKS_BEFORE TICKS_AFTER REQUESTS: server CPU per request in ns.
cpu_ns() {
  awk -v a="$1" -v b="$2" -v n="$3" -v t="$TCK" \
    'BEGIN { if (n > 0) printf "%d", (b - a) / t * 1e9 / n; else printf "" }'
}

# h2load_run URL CONNS: h2load --h1 pipelining DEPTH deep for SECS.
# Prints "REQ_PER_SEC[!] REQUESTS" (! on failures), as wrk_run does.
h2load_run() {
  taskset -c "$LOAD_CPU" h2load --h1 -t1 -c"$2" -m"$DEPTH" -D"$SECS" "$1/plaintext" 2>&1 \
    | awk '/^finished in/{r=int($4)}
           /^requests:/{n=$8; if ($10 + $12 > 0) err="!"}
           /^status codes:/{if ($5 + $7 + $9 > 0) err="!"}
           END{printf "%s%s %s\n", r, err, n}'
}

# idle_pct TICKS_BEFORE TICKS_AFTER NS_BEFORE NS_AFTER: the share of a window (wall clock,
# nanoseconds) the server's CPU was not busy, in percent. When the load generator, not the
# server, is the bottleneck, req/s says little and this says by how much.
idle_pct() {
  awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v t="$TCK" \
    'BEGIN { w = (e - s) / 1e9; if (w > 0) printf "%d", 100 * (1 - (b - a) / t / w); else printf "" }'
}

# h2load_rows ROUND NAME URL RAW CONNS...: h2load at each CONNS with the server's CPU per
# request and its idle share over the window (SERVER_PID); appends lines to RAW.
h2load_rows() {
  local round=$1 name=$2 url=$3 raw=$4 c t0 t1 w0 w1 rps n
  shift 4
  for c in "$@"; do
    t0=$(cpu_ticks "$SERVER_PID"); w0=$(date +%s%N)
    read -r rps n < <(h2load_run "$url" "$c")
    t1=$(cpu_ticks "$SERVER_PID"); w1=$(date +%s%N)
    echo "$round $name h2load_c$c $rps" >> "$raw"
    echo "$round $name cpu_ns_h2load_c$c $(cpu_ns "$t0" "$t1" "$n")" >> "$raw"
    echo "$round $name idle_pct_h2load_c$c $(idle_pct "$t0" "$t1" "$w0" "$w1")" >> "$raw"
  done
}

# pipelined_rows ROUND NAME URL RAW: wrk pipelining DEPTH deep at 64 and 256 connections with the
# server's CPU per request over each window (SERVER_PID), then one request at a time at 64;
# appends "ROUND NAME MEASURE VALUE" lines to RAW.
pipelined_rows() {
  local round=$1 name=$2 url=$3 raw=$4 c t0 t1 rps n
  for c in 64 256; do
    t0=$(cpu_ticks "$SERVER_PID")
    read -r rps n < <(wrk_run "$url" "$c")
    t1=$(cpu_ticks "$SERVER_PID")
    echo "$round $name pipelined${DEPTH}_c$c $rps" >> "$raw"
    echo "$round $name cpu_ns_c$c $(cpu_ns "$t0" "$t1" "$n")" >> "$raw"
  done
  read -r rps _ < <(wrk_run "$url")
  echo "$round $name plain_c64_wrk $rps" >> "$raw"
}
