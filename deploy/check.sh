#!/usr/bin/env bash
# Runs the Dockerfile's own `cargo build` command outside Docker, then smoke-tests the binary
# the way the container uses it. Needs no Docker engine.
#
#   deploy/check.sh            # build dir: target/deploy-check (reused between runs, like the
#                              # Dockerfile's cache mount); DEPLOY_CHECK_DIR overrides it
#
# The build runs in a copy of the Docker build context (the repo minus .dockerignore), so a
# file the build needs but .dockerignore drops fails here too.
set -euo pipefail
cd "$(dirname "$0")/.."

work="${DEPLOY_CHECK_DIR:-$PWD/target/deploy-check}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
context="$work/context"
target="$work/target"

# --- 1. the build command, parsed from the Dockerfile (exactly one `cargo build` line) --------
mapfile -t builds < <(grep -vE '^[[:space:]]*#' Dockerfile | grep -oE 'cargo build[^&\\]*' | sed -E 's/[[:space:]]+$//')
if [ "${#builds[@]}" -ne 1 ]; then
  echo "deploy/check.sh: expected one \`cargo build\` command in Dockerfile, found ${#builds[@]}" >&2
  exit 1
fi
build="${builds[0]}"
case "$build" in
  *--locked*) ;;
  *) echo "deploy/check.sh: Dockerfile build lacks --locked: $build" >&2; exit 1 ;;
esac
echo "Dockerfile build command: $build"

# --- 2. the build context: the repo minus .dockerignore ---------------------------------------
excludes=()
while IFS= read -r line; do
  line="${line%%#*}"
  line="${line//[[:space:]]/}"
  [ -z "$line" ] && continue
  line="${line%/}"
  line="${line#\*\*/}"
  excludes+=(--exclude="./$line" --exclude="$line")
done < .dockerignore
rm -rf "$context"
mkdir -p "$context"
# Keep the target/ holding this script's own work out of the copy even if .dockerignore changes.
tar -C . --exclude=./target "${excludes[@]}" -cf - . | tar -C "$context" -xf -
for gone in target .git loadtest/results fuzz/target; do
  if [ -e "$context/$gone" ]; then
    echo "deploy/check.sh: .dockerignore does not keep $gone out of the build context" >&2
    exit 1
  fi
done
echo "build context: $(du -sh "$context" | cut -f1) in $context"

# --- 3. run it (word-split on purpose: it is a plain command line without quoting) ------------
read -r -a argv <<<"$build"
(cd "$context" && CARGO_TARGET_DIR="$target" "${argv[@]}")
bin="$target/release/pipelined"
[ -x "$bin" ] || { echo "deploy/check.sh: $bin was not built" >&2; exit 1; }

# --- 4. smoke tests of the built binary -------------------------------------------------------
"$bin" --version
if timeout 10 "$bin" health --url http://127.0.0.1:1/ >/dev/null 2>&1; then
  echo "deploy/check.sh: \`pipelined health\` exited 0 with nothing listening" >&2
  exit 1
fi
echo "ok: pipelined health fails with nothing listening"

log="$work/serve.log"
: >"$log"
PIPELINED_BIND=127.0.0.1:0 RUST_LOG=info "$bin" serve --shutdown-timeout 5 >"$log" 2>&1 &
pid=$!
cleanup() { kill -KILL "$pid" 2>/dev/null || true; }
trap cleanup EXIT
addr=""
for _ in $(seq 100); do
  addr="$(grep -oE 'listening on http://[0-9.:]+' "$log" | head -n1 | sed 's|listening on http://||' || true)"
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "deploy/check.sh: server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log" >&2; echo "deploy/check.sh: server never logged its address" >&2; exit 1; }
echo "server listening on $addr"

timeout 10 "$bin" health --url "http://$addr/healthz"
# The HEALTHCHECK's exact invocation: no --url, the address comes from PIPELINED_BIND.
PIPELINED_BIND="$addr" timeout 10 "$bin" health
echo "ok: pipelined health passes against the running server"

# SIGTERM (the image's STOPSIGNAL, what the kubelet sends) must stop it cleanly and quickly.
kill -TERM "$pid"
status=0
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  echo "deploy/check.sh: server still running 10 s after SIGTERM" >&2
  exit 1
fi
wait "$pid" || status=$?
trap - EXIT
[ "$status" -eq 0 ] || { cat "$log" >&2; echo "deploy/check.sh: server exited $status after SIGTERM" >&2; exit 1; }
echo "ok: SIGTERM stops the server with exit 0"
