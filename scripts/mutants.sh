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
# The engine and the encoder it plans with: the library's unit tests and every integration test
# that finishes in about a second (the slow ones, TLS, HTTP/2 hardening, Prometheus, only add
# time, and exercise these modules through the same paths).
engine_tests=(--lib --test=allocations --test=barrier --test=body_status --test=bodies
              --test=concurrency --test=connection --test=conformance --test=faults
              --test=fuzz_corpus --test=half_close --test=routing --test=server_timing
              --test=shutdown --test=slow_reader --test=spans --test=timeouts --test=lifecycle
              --test=backpressure --test=ordering --test=splitting)

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

parse_files=() router_files=() engine_files=()
if [ $# -eq 0 ]; then
  parse_files=(src/proto/request.rs src/proto/chunk.rs src/proto/decode.rs)
  router_files=(src/router.rs)
  engine_files=('src/conn/**/*.rs' src/proto/encode.rs)
fi
for f in "$@"; do
  case $f in
    src/proto/request.rs | src/proto/chunk.rs | src/proto/decode.rs) parse_files+=("$f") ;;
    src/router.rs) router_files+=("$f") ;;
    *) engine_files+=("$f") ;;
  esac
done

# The timeouts are a few times the unmutated run of each list on a 2-core machine: a mutant
# that hangs a test (a parser that never finishes a head, a connection that never closes) is
# a detection, and waiting longer for it only costs time.
status=0
run_group parse "${TEST_TIMEOUT:-10}" "${parse_tests[@]}" -- "${parse_files[@]}" || status=$?
run_group router "${TEST_TIMEOUT:-10}" "${router_tests[@]}" -- "${router_files[@]}" || status=$?
run_group engine "${TEST_TIMEOUT:-30}" "${engine_tests[@]}" -- "${engine_files[@]}" || status=$?
exit "$status"
