#!/usr/bin/env bash
# Mutation testing of the engine's decision modules (issue #18 point 2), with cargo-mutants:
# every mutant of src/conn/, src/proto/{encode,request,chunk,decode}.rs and src/router.rs is
# built and run against the library's fast test binaries; a mutant no test kills is a rule
# nothing pins (or an equivalent change: list it in docs/TESTING.md with one line of why).
#
# usage: scripts/mutants.sh [FILE...]      (default: every decision module; FILE narrows it)
# env:   JOBS (2): mutants built and tested at once; each needs a build directory of its own.
#        MUTANTS_ARGS: more cargo-mutants arguments (e.g. "--in-diff change.diff", "--list").
# Results: mutants.out/ (caught.txt, missed.txt, unviable.txt, timeout.txt, outcomes.json).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=('src/conn/**/*.rs' src/proto/encode.rs src/proto/request.rs src/proto/chunk.rs
         src/proto/decode.rs src/router.rs)
fi
file_args=()
for f in "${files[@]}"; do file_args+=(--file "$f"); done

# The library's unit tests and its integration tests that finish in about a second or less
# (the slow ones, TLS, HTTP/2 hardening, Prometheus, only add time, and exercise these
# modules through the same paths). `--all-features` so the metrics code is mutated too.
tests=(--lib --test allocations --test barrier --test body_status --test bodies --test concurrency
       --test connection --test conformance --test faults --test fuzz_corpus --test half_close
       --test routing --test server_timing --test shutdown --test slow_reader --test spans
       --test timeouts --test lifecycle --test backpressure --test ordering --test splitting)

# shellcheck disable=SC2086
cargo mutants --package pipelined --all-features --jobs "${JOBS:-2}" "${file_args[@]}" \
  ${MUTANTS_ARGS:-} -- "${tests[@]}"
