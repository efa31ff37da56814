#!/usr/bin/env bash
# Pipelined HTTP/1.1 over TLS, same run: the ordered engine against `--engine hyper`, both
# behind the binary's TLS listener (rustls, `--tls-cert`/`--tls-key`), with a throw-away
# certificate made here. Where batching matters most: a pipelined batch of answers leaves as
# one write, so as few TLS records as its size allows. Server pinned to CPU 0, load generator
# to CPU 1 (common.sh). Prints a markdown table with ratios against hyper-engine.
# Per server and round:
#   pipelined16_c64/_c256   wrk over https, DEPTH requests per write (pipeline.lua), req/s
#   cpu_ns_c64/_c256        the server's CPU per request over those windows (lower is better)
#   plain_c64_wrk           one request at a time per connection, req/s
#   h2load_c256             h2load --h1 -m DEPTH over TLS (ALPN http/1.1), req/s
# usage: loadtest/tls.sh
# env: ROUNDS (2; the best round per cell is kept), DURATION (5s), DEPTH (16),
#      CSV (results/tls-latest.csv), SKIP_BUILD=1 (see common.sh)
# needs: wrk, h2load, openssl (apt-get install wrk nghttp2-client openssl)
set -euo pipefail
source "$(dirname "$0")/common.sh"
load_settings
need openssl "apt-get install openssl"
CSV=${CSV:-$HERE/results/tls-latest.csv}
build
mkdir -p "$HERE/results"
raw="$HERE/results/tls-raw-$(date -u +%Y%m%dT%H%M%SZ).txt"
: > "$raw"

# A certificate for 127.0.0.1, for this run only.
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
TLS="--tls-cert $certs/cert.pem --tls-key $certs/key.pem"

# Both without metrics or Server-Timing: the engines, not the demo's extras.
servers() {
  echo "ordered-tls|$BIN serve --no-metrics --no-server-timing $TLS --bind 127.0.0.1:{PORT}"
  echo "hyper-engine|$BIN serve --engine hyper --no-metrics $TLS --bind 127.0.0.1:{PORT}"
}

port=9700
for round in $(seq "$ROUNDS"); do
  while IFS='|' read -r -u 3 name cmd; do
    port=$((port + 1))
    start "$name" "$port" ${cmd//\{PORT\}/$port}
    url="https://127.0.0.1:$port"
    pipelined_rows "$round" "$name" "$url" "$raw"
    read -r rps _ < <(h2load_run "$url" 256)
    echo "$round $name h2load_c256 $rps" >> "$raw"
    stop
    grep "^$round $name " "$raw" | tr '\n' ' ' >&2; echo >&2
  done 3< <(servers)
done

python3 "$HERE/table.py" "$raw" "$CSV"
echo "raw figures: $raw; CSV: $CSV"
