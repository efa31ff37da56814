#!/usr/bin/env bash
# Runs the Dockerfile's builder stage in a clean Debian bookworm root standing in for its base
# image (deploy/bookworm-root.sh, deploy/builder-stage.sh), then smoke-tests the binary it built
# the way the container uses it. Needs no Docker engine, but needs root (debootstrap, chroot,
# mounts) and debootstrap (apt-get install debootstrap).
#
#   deploy/check.sh            # work dir: target/deploy-check (the root, the crates and the
#                              # target dir are kept between runs, like BuildKit's layer and
#                              # cache mounts); DEPLOY_CHECK_DIR overrides it
#
# Not exercised: `docker build` itself and the final (distroless) stage; cli/tests/deploy.rs
# checks that stage's instructions.
set -euo pipefail
cd "$(dirname "$0")/.."

work="${DEPLOY_CHECK_DIR:-$PWD/target/deploy-check}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

# --- 1. the builder's base image, once ---------------------------------------------------------
base="$(deploy/bookworm-root.sh "$work/roots")"
echo "bookworm root: $base"

# --- 2. the Dockerfile's builder stage in it ----------------------------------------------------
deploy/builder-stage.sh "$base" "$work"
bin="$work/out/usr/local/bin/pipelined"
[ -x "$bin" ] || { echo "deploy/check.sh: $bin was not built" >&2; exit 1; }

# --- 3. smoke tests of the built binary -------------------------------------------------------
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
