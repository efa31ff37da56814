#!/usr/bin/env bash
# Mutation testing of the engine's decision modules (issue #18 point 2), with cargo-mutants:
# every mutant of src/conn/, src/proto/{encode,request,chunk,decode}.rs and src/router.rs is
# built and run against the test binaries that pin it; a mutant no test kills is a rule nothing
# pins (or an equivalent change: list it in docs/TESTING.md with one line of why).
#
# usage: scripts/mutants.sh [FILE...]      (default: every decision module; FILE narrows it)
# env:   JOBS (1): mutants built and tested at once. With 1 they share one persistent build
#          directory (target/mutants), so only the first run builds the dependencies; with more,
#          cargo-mutants gives each job a fresh one (a cold build per job, every run).
#        TEST_TIMEOUT: seconds a mutant's tests may run before it counts as a timeout (a hang
#          is a detection too); default per group below.
#        OUT (mutants.out): where each group's results go.
#        MUTANTS_ARGS: more cargo-mutants arguments (e.g. "--in-diff change.diff", "--list").
#        WIDE=1: run the FILEs given against one wide list of test binaries instead (with
#          MUTANTS_ARGS="-F REGEX": the survivors of a first run, to see if any binary kills them).
# Results: $OUT/<group>/mutants.out/ (caught.txt, missed.txt, unviable.txt, timeout.txt,
#          outcomes.json), one group per test list (see `run_group` below).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null; then
  echo "mutants.sh: installing cargo-mutants (cargo install cargo-mutants --locked)" >&2
  cargo install cargo-mutants --locked || {
    echo "mutants.sh: could not install cargo-mutants; install it by hand and rerun" >&2
    exit 1
  }
fi

jobs=${JOBS:-1}
# Each mutant rebuilds the library and every test binary it is run against: without debug info
# there is less to write and link, and no one reads a mutant's backtrace. (A faster linker
# would not help: rustc already links with its bundled lld on x86_64 Linux.)
export CARGO_PROFILE_DEV_DEBUG=0
if [ "$jobs" -eq 1 ]; then
  # One build directory that outlives the run: dependencies are built once, and the library's
  # incremental state carries from one mutant to the next (cargo hashes the crate by its path
  # inside the workspace, not the scratch copy's location). Kept apart from target/debug, whose
  # debug-info build this would otherwise overwrite.
  export CARGO_TARGET_DIR="$PWD/target/mutants"
fi

# What a mutant costs is mostly rebuilding the test binaries it runs against (the library's
# unit tests rebuild in about a second; each integration test binary adds one or two, as it
# recompiles the engine's generic code and relinks), so each group runs only the binaries that
# pin its files (measured in docs/TESTING.md).
# The parser and body decoder: their unit tests, and the integration tests that drive them with
# raw bytes (the RFC tables, the fuzz corpus, split reads, bodies).
parse_tests=(--lib --test=conformance --test=fuzz_corpus --test=splitting --test=bodies)
# The router: its unit tests, the routing tests over a real connection, and the span test
# (the matched route recorded as `http.route`, a tower layer around every route).
router_tests=(--lib --test=routing --test=spans)
# The engine, in four groups by what pins each file (a list of every fast binary costs ~25 s
# per mutant; these cost 5 to 15 s), and its metrics:
# - state: the read state and close decisions, the order, the barrier;
state_tests=(--lib --test=connection --test=ordering --test=barrier --test=half_close
             --test=body_status)
# - start: the state machine's turn, starting requests, the handler's first poll;
start_tests=(--lib --test=connection --test=ordering --test=barrier --test=concurrency
             --test=faults --test=allocations --test=server_timing --test=spans)
# - socket: reading the socket under its deadlines, the body pump;
socket_tests=(--lib --test=timeouts --test=half_close --test=connection --test=shutdown
              --test=bodies --test=splitting)
# - write: encoding and writing responses;
write_tests=(--lib --test=connection --test=slow_reader --test=bodies --test=body_status
             --test=faults --test=conformance --test=server_timing)
# - meter: the per-connection metrics, read back through a recorder.
meter_tests=(--lib --test=gauges)
# A mutant one group misses may be caught by another binary: rerun the missed ones against
# this wider list (MUTANTS_ARGS="--iterate" on the same OUT skips what was caught before) and
# list only what survives it.
wide_tests=(--lib --test=allocations --test=bodies --test=body_status --test=connection
            --test=gauges --test=h2_hardening --test=lifecycle --test=listeners --test=parity
            --test=serve_connection --test=shutdown --test=spans --test=timeouts)

# run_group NAME TIMEOUT TESTS... -- FILES...: one cargo-mutants run over FILES with TESTS.
run_group() {
  local name=$1 timeout=$2
  shift 2
  local tests=() file_args=() target_args=()
  while [ "$1" != -- ]; do tests+=("$1"); shift; done
  shift
  [ $# -gt 0 ] || return 0
  for f in "$@"; do file_args+=(--file "$f"); done
  # As cargo arguments, not test arguments (after `--`): cargo-mutants passes those to the
  # test phase only, and its build phase (`cargo test --no-run`) would build every test,
  # example and bench of the package for each mutant.
  for t in "${tests[@]}"; do target_args+=("--cargo-arg=$t"); done
  mkdir -p "${OUT:-mutants.out}/$name"
  echo "mutants.sh: group $name: $* (tests: ${tests[*]})" >&2
  # shellcheck disable=SC2086
  cargo mutants --package pipelined --all-features --jobs "$jobs" --timeout "$timeout" \
    --output "${OUT:-mutants.out}/$name" "${file_args[@]}" "${target_args[@]}" ${MUTANTS_ARGS:-}
}

parse_files=() router_files=() state_files=() start_files=() socket_files=() write_files=()
meter_files=()
if [ $# -eq 0 ]; then
  set -- src/proto/request.rs src/proto/chunk.rs src/proto/decode.rs src/router.rs \
    src/conn/keep_alive.rs src/conn/order.rs src/conn/spawned.rs src/conn/slot.rs \
    src/conn/connection.rs src/conn/connection/start.rs src/conn/dispatch.rs \
    src/conn/connection/socket.rs src/conn/deadline.rs src/conn/read.rs \
    src/conn/write.rs src/proto/encode.rs src/conn/mod.rs src/conn/meter.rs
fi
for f in "$@"; do
  case $f in
    src/proto/request.rs | src/proto/chunk.rs | src/proto/decode.rs) parse_files+=("$f") ;;
    src/router.rs) router_files+=("$f") ;;
    src/conn/keep_alive.rs | src/conn/order.rs | src/conn/spawned.rs | src/conn/slot.rs)
      state_files+=("$f") ;;
    src/conn/connection.rs | src/conn/connection/start.rs | src/conn/dispatch.rs)
      start_files+=("$f") ;;
    src/conn/connection/socket.rs | src/conn/deadline.rs | src/conn/read.rs) socket_files+=("$f") ;;
    src/conn/meter.rs) meter_files+=("$f") ;;
    *) write_files+=("$f") ;;
  esac
done

# The timeouts are a few times the unmutated run of each list on a 2-core machine: a mutant
# that hangs a test (a parser that never finishes a head, a connection that never closes) is
# a detection, and waiting longer for it only costs time.
status=0
if [ -n "${WIDE:-}" ]; then
  # WIDE=1: every file given, against the wide list (for the survivors of a first run).
  run_group wide "${TEST_TIMEOUT:-60}" "${wide_tests[@]}" -- "$@" || status=$?
  exit "$status"
fi
run_group parse "${TEST_TIMEOUT:-10}" "${parse_tests[@]}" -- "${parse_files[@]}" || status=$?
run_group router "${TEST_TIMEOUT:-10}" "${router_tests[@]}" -- "${router_files[@]}" || status=$?
run_group state "${TEST_TIMEOUT:-30}" "${state_tests[@]}" -- "${state_files[@]}" || status=$?
run_group start "${TEST_TIMEOUT:-30}" "${start_tests[@]}" -- "${start_files[@]}" || status=$?
run_group socket "${TEST_TIMEOUT:-30}" "${socket_tests[@]}" -- "${socket_files[@]}" || status=$?
run_group write "${TEST_TIMEOUT:-30}" "${write_tests[@]}" -- "${write_files[@]}" || status=$?
run_group meter "${TEST_TIMEOUT:-30}" "${meter_tests[@]}" -- "${meter_files[@]}" || status=$?
exit "$status"
