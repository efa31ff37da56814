# Shared helpers for the load-test scripts: sourced, not run.
# Every server runs pinned to CPU 0 and every load generator to CPU 1, so the two never
# compete for a core; every target is 127.0.0.1.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN="$ROOT/target/release/pipelined"
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

need() {
  command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 2; }
}

build() {
  (cd "$ROOT" && cargo build --release --quiet)
}

# start NAME PORT CMD... : start a pinned server, wait until it accepts; sets SERVER_PID.
start() {
  local name=$1 port=$2; shift 2
  taskset -c "$SERVER_CPU" "$@" >/dev/null 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
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

# Servers to compare: "name|command with {PORT}". The peers from ../shared/bench are added
# when built (see loadtest/README.md).
# The binary runs with --no-metrics: the engines are compared, not the Prometheus recorder
# (with /metrics on, the demo counts every request; see RESULTS.md for what that costs).
servers() {
  echo "ordered|$BIN serve --engine ordered --no-metrics --bind 127.0.0.1:{PORT}"
  echo "hyper-engine|$BIN serve --engine hyper --no-metrics --bind 127.0.0.1:{PORT}"
  local peers=${PEERS_DIR:-/tmp/peers/release}
  for peer in hyper-peer actix-peer raw-limit; do
    [ -x "$peers/$peer" ] && echo "$peer|$peers/$peer 127.0.0.1:{PORT}"
  done
  return 0
}
