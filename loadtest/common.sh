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
    echo "building the peers (cargo build --release --locked --manifest-path loadtest/peers/Cargo.toml)" >&2
    cargo build --release --locked --quiet --manifest-path "$PEERS_MANIFEST" \
      --target-dir "${CARGO_TARGET_DIR:-$HERE/peers/target}" \
      || { echo "building the peers failed (PEERS=0 leaves them out)" >&2; exit 2; }
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
  for peer in hyper-peer actix-peer raw-limit; do
    if [ -x "$PEERS_DIR/$peer" ]; then
      echo "$peer|$PEERS_DIR/$peer 127.0.0.1:{PORT}"
    else
      echo "($peer not built in $PEERS_DIR: left out)" >&2
    fi
  done
  return 0
}
