#!/usr/bin/env bash
# `pipelined load` against wrk, h2load and oha, same run, same server, same connections and
# duration (issue points 4 and 5). For each server in SERVERS (default: ordered, the binary with
# its defaults as in common.sh's servers(); hyper-peer; raw-limit), pinned to SERVER_CPU, with
# every generator pinned to LOAD_CPU and one generating thread each, one after the other:
#   depth DEPTH (16):
#     wrk16    wrk -t1 -cC -dD -s loadtest/pipeline.lua URL -- /plaintext DEPTH
#     h2load16 h2load --h1 -t1 -cC -m DEPTH -D SECS URL/plaintext
#     pload16  pipelined load --no-tui --json --threads 1 -c C --pipeline DEPTH -z D URL/plaintext
#   depth 1 (one request at a time per connection):
#     oha1     oha --no-tui -c C -z D --output-format json URL/plaintext   (when oha is installed)
#     wrk1     wrk -t1 -cC -dD URL/plaintext
#     pload1   pipelined load --no-tui --json --threads 1 -c C --pipeline 1 -z D URL/plaintext
# The server is started afresh each round; the tools run in one order in odd rounds and the
# reverse in even ones (drift on this VM hits all alike). Prints, per server, a markdown table:
# each tool's median req/s over the rounds, its errors, the server's busy share and the tool's
# (each one's user + system CPU over the tool's window: the one near 100 % is the bottleneck;
# when it is the tool, req/s compares the tools' cost per request, not the server), and
# `pipelined load` ÷ that tool at the same depth (the median of the per-round ratios; a ratio
# above 1: pipelined load reported more), checked against point 4 (within ±10 % of wrk and h2load
# at depth 16, of oha at depth 1; this project's server and hyper-peer) and point 5 (raw-limit:
# ≥ 1.00× wrk -t1 at depth 16). A figure from a run with errors (socket errors, failed
# requests, non-2xx answers; not oha's or pipelined load's requests still in flight at the
# deadline) is flagged, and so is every ratio built on it.
# Raw lines "round server tool req_per_sec errors responses server_busy_pct tool_busy_pct" go to
# results/raw-load-*.txt, each tool's own output to results/raw-load-*-out.txt (both ignored by
# git, as compare.sh's raw files are).
# usage: loadtest/load.sh
# env: ROUNDS (3), DURATION (5s, whole seconds; "5" is accepted), CONNS (64), DEPTH (16),
#      SERVER_QUOTA (a percentage of one core the server may use, through a cgroup v1 CPU
#      quota: 40 makes it the bottleneck at /plaintext under every tool, so their figures must
#      agree; needs root and /sys/fs/cgroup/cpu),
#      TARGET (/plaintext: the path every tool asks for; /delay/5 makes the server, not the
#      tools, set the rate: 64 x 16 requests each held 5 ms, which every tool can keep up with,
#      so their figures must agree; raw-limit serves /plaintext only),
#      SERVERS ("ordered hyper-peer raw-limit"; any names common.sh's servers() lists),
#      PORT (9500, the first of ROUNDS × servers ports), SKIP_BUILD=1 (use target/release/pipelined
#      and the built peers as they are), SERVER_CPU (0), LOAD_CPU (1), OHA (oha's path; default
#      oha on PATH or ~/.cargo/bin/oha; OHA= leaves it out)
# needs: wrk (installed with apt-get when missing and run as root), h2load (apt-get install
#        nghttp2-client), taskset, timeout, python3, /usr/bin/time (apt-get install time); oha
#        optional (cargo install oha)
set -euo pipefail
source "$(dirname "$0")/common.sh"
if ! command -v wrk >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing wrk (apt-get install -y wrk)" >&2
  apt-get install -y wrk >/dev/null || true
fi
need wrk "apt-get install -y wrk"
need h2load "apt-get install -y nghttp2-client"
need taskset "apt-get install util-linux"
need timeout "apt-get install coreutils"
need python3 "apt-get install python3"
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 2; }

ROUNDS=${ROUNDS:-3}
SECS=${DURATION:-5s}; SECS=${SECS%s}
case "$SECS" in ''|*[!0-9]*) echo "DURATION must be whole seconds, like 5s" >&2; exit 2;; esac
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-16}
PORT=${PORT:-9500}
SERVERS=${SERVERS:-ordered hyper-peer raw-limit}
TARGET=${TARGET:-/plaintext}
SERVER_QUOTA=${SERVER_QUOTA:-}
case "$SERVER_QUOTA" in ''|[1-9]|[1-9][0-9]) ;; *) echo "SERVER_QUOTA: a percentage of one core, 1-99" >&2; exit 2;; esac
# SERVER_QUOTA: the server may use this share of its core (a cgroup v1 CPU quota over 10 ms
# periods), so that it, not any of the tools, is the bottleneck at /plaintext too.
CGROUP=/sys/fs/cgroup/cpu/pipelined-load-server
throttle() {
  mkdir -p "$CGROUP" || { echo "SERVER_QUOTA needs a writable cgroup v1 cpu controller ($CGROUP)" >&2; exit 2; }
  echo 10000 > "$CGROUP/cpu.cfs_period_us"
  echo $((SERVER_QUOTA * 100)) > "$CGROUP/cpu.cfs_quota_us"
  echo "$1" > "$CGROUP/cgroup.procs"
}
case "$TARGET" in /*) ;; *) echo "TARGET must be a path, like /plaintext or /delay/5" >&2; exit 2;; esac
case "$ROUNDS$CONNS$DEPTH$PORT" in *[!0-9]*) echo "ROUNDS, CONNS, DEPTH, PORT: numbers" >&2; exit 2;; esac
# Every tool stops by itself after SECS; this bounds one that would not (killed 5 s later still).
LIMIT=$((SECS + 30))
if [ -z "${OHA+set}" ]; then
  OHA=$(command -v oha || true)
  if [ -z "$OHA" ] && [ -x "$HOME/.cargo/bin/oha" ]; then OHA=$HOME/.cargo/bin/oha; fi
fi
[ -n "$OHA" ] || echo "(oha not installed: the depth-1 comparison with oha is left out; cargo install oha)" >&2

build
if [ "${SKIP_BUILD:-0}" != 1 ] && [ "${PEERS:-1}" != 0 ]; then
  # Only the peers SERVERS names, one package per build (as build_peers does it).
  for p in $(for s in $SERVERS; do case "$s" in
               hyper-peer|actix-peer|raw-limit|pipelined-peer) echo "$s" ;;
               axum-serve|axum-pipelined) echo axum-peer ;; esac; done | sort -u); do
    echo "building $p (cargo build --release --locked -p $p --manifest-path loadtest/peers/Cargo.toml)" >&2
    cargo build --release --locked --quiet -p "$p" --manifest-path "$PEERS_MANIFEST" \
      --target-dir "${CARGO_TARGET_DIR:-$HERE/peers/target}"
  done
fi
"$BIN" load --help >/dev/null 2>&1 || { echo "$BIN has no \`load\` subcommand: build it" >&2; exit 2; }

# The servers asked for, in SERVERS' order, as "name|command with {PORT}".
picked=()
all=$(servers 2>/dev/null)
for want in $SERVERS; do
  line=$(grep "^$want|" <<< "$all" || true)
  if [ -n "$line" ]; then picked+=("$line"); else echo "($want: not in servers() or not built: left out)" >&2; fi
done
[ "${#picked[@]}" -gt 0 ] || { echo "no server to measure" >&2; exit 2; }

TOOLS="wrk16 h2load16 pload16${OHA:+ oha1} wrk1 pload1"
# tool_cmd TOOL URL: sets CMD to TOOL's command line against the server at URL (no path).
tool_cmd() {
  local base=$1
  case "$2" in
    wrk16)    CMD=(wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$HERE/pipeline.lua" "$base" -- "$TARGET" "$DEPTH") ;;
    h2load16) CMD=(h2load --h1 -t1 -c"$CONNS" -m"$DEPTH" -D"$SECS" "$base$TARGET") ;;
    pload16)  CMD=("$BIN" load --no-tui --json --threads 1 -c "$CONNS" --pipeline "$DEPTH" -z "${SECS}s" "$base$TARGET") ;;
    oha1)     CMD=("$OHA" --no-tui -c "$CONNS" -z "${SECS}s" --output-format json "$base$TARGET") ;;
    wrk1)     CMD=(wrk -t1 -c"$CONNS" -d"${SECS}s" "$base$TARGET") ;;
    pload1)   CMD=("$BIN" load --no-tui --json --threads 1 -c "$CONNS" --pipeline 1 -z "${SECS}s" "$base$TARGET") ;;
  esac
}

# parse TOOL FILE: prints "REQ_PER_SEC ERRORS RESPONSES" from the tool's output (REQ_PER_SEC
# "-" when the output has none: the tool failed or was stopped).
parse() {
  case "$1" in
    wrk*)
      # Errors: every socket error (connect, read, write, timeout) and non-2xx/3xx answer.
      awk '/requests in/{n=$1} /Requests\/sec/{r=$2}
           /Socket errors/{gsub(/,/, ""); e += $4 + $6 + $8 + $10}
           /Non-2xx/{e += $NF}
           END{printf "%s %d %d\n", (r == "" ? "-" : r), e, n}' "$2" ;;
    h2load*)
      # Errors: failed, errored and timed-out requests, and 3xx/4xx/5xx answers.
      awk '/^finished in/{r=$4}
           /^requests:/{n=$8; e += $10 + $12 + $14}
           /^status codes:/{e += $5 + $7 + $9}
           END{printf "%s %d %d\n", (r == "" ? "-" : r), e, n}' "$2" ;;
    pload*)
      python3 - "$2" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    print("-", 0, 0); sys.exit()
bad = sum(n for code, n in d["status_codes"].items() if not code.startswith("2"))
print(f'{d["req_per_sec"]:.0f}', d["requests"]["errors"] + bad, d["requests"]["answered"])
EOF
      ;;
    oha*)
      # oha's own requestsPerSec (as compare.sh reads it); it counts the requests still in flight
      # at the deadline ("aborted due to deadline", C at most), which are not errors here.
      python3 - "$2" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    print("-", 0, 0); sys.exit()
codes = d.get("statusCodeDistribution") or {}
bad = sum(n for code, n in codes.items() if not code.startswith("2"))
errs = sum(n for what, n in (d.get("errorDistribution") or {}).items()
           if what != "aborted due to deadline")
print(f'{d["summary"]["requestsPerSec"]:.0f}', errs + bad, sum(codes.values()))
EOF
      ;;
  esac
}

mkdir -p "$HERE/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$HERE/results/raw-load-$stamp.txt"
log="$HERE/results/raw-load-$stamp-out.txt"
: > "$raw"; : > "$log"
out=$(mktemp); err=$(mktemp); tf=$(mktemp)
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && stop; rm -f "$out" "$err" "$tf"; [ -z "$SERVER_QUOTA" ] || rmdir "$CGROUP" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TCK=$(getconf CLK_TCK)

# The exact commands, so the figures can be reproduced.
header() {
  echo "# pipelined load vs wrk, h2load, oha: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, ROUNDS=$ROUNDS"
  echo
  echo "Servers on CPU $SERVER_CPU (started afresh each round, ports from $PORT):"
  echo
  local s
  for s in "${picked[@]}"; do echo "    ${s%%|*}: taskset -c $SERVER_CPU ${s#*|}"; done
  [ -z "$SERVER_QUOTA" ] || printf '\nEach server held to %s %% of its core (cgroup v1 cpu.cfs_quota_us %s per cpu.cfs_period_us 10000).\n' \
    "$SERVER_QUOTA" "$((SERVER_QUOTA * 100))"
  echo
  echo "Each tool on CPU $LOAD_CPU, one at a time, in this order in odd rounds and the reverse in even ones"
  echo "(each under timeout -k 5 $LIMIT):"
  echo
  local t
  for t in $TOOLS; do
    tool_cmd "http://127.0.0.1:{PORT}" "$t"
    echo "    $t: taskset -c $LOAD_CPU ${CMD[*]}"
  done
  echo
  echo "$BIN: $("$BIN" --version 2>/dev/null || echo '?'); wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2);" \
    "h2load: $(h2load --version 2>&1 | head -1)${OHA:+; $("$OHA" --version 2>&1 | head -1)}"
}
header | sed "s|$HERE|loadtest|g; s|$ROOT/||g" | tee "$log"
echo >&2

# measure ROUND NAME URL TOOL: runs TOOL pinned to LOAD_CPU; appends one raw line.
measure() {
  local round=$1 name=$2 url=$3 tool=$4 t0 t1 w0 w1 rps e n busy tbusy rc=0
  tool_cmd "$url" "$tool"
  t0=$(cpu_ticks "$SERVER_PID"); w0=$(date +%s%N)
  : > "$tf"
  timeout -k 5 "$LIMIT" /usr/bin/time -f "%e %U %S" -o "$tf" \
    taskset -c "$LOAD_CPU" "${CMD[@]}" > "$out" 2> "$err" || rc=$?
  t1=$(cpu_ticks "$SERVER_PID"); w1=$(date +%s%N)
  busy=$(awk -v a="$t0" -v b="$t1" -v s="$w0" -v e="$w1" -v t="$TCK" \
    'BEGIN { printf "%d", 100 * (b - a) / t / ((e - s) / 1e9) }')
  # The tool's whole-process user + system CPU over its own wall-clock time.
  tbusy=$(awk 'NF == 3 && $1 > 0 { printf "%d", 100 * ($2 + $3) / $1; ok = 1 } END { if (!ok) print "-" }' "$tf")
  read -r rps e n < <(parse "$tool" "$out")
  if [ "$rc" != 0 ] || [ "$rps" = - ]; then
    echo "($name $tool, round $round: exit $rc: $(tail -c 300 "$err" | tr '\n' ' '))" >&2
    e=$((e + 1))   # a run that failed or was cut short is flagged, whatever it printed
  fi
  { echo "== round $round, $name, $tool (exit $rc): ${CMD[*]}"; cat "$out"; tail -5 "$err"; } >> "$log"
  echo "$round $name $tool ${rps%.*} $e ${n:-0} $busy $tbusy" | tee -a "$raw" >&2
}

port=$PORT
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order=$TOOLS; else order=$(tr ' ' '\n' <<< "$TOOLS" | tac | tr '\n' ' '); fi
  for s in "${picked[@]}"; do
    name=${s%%|*}; cmd=${s#*|}
    start "$name" "$port" ${cmd//\{PORT\}/$port}
    [ -z "$SERVER_QUOTA" ] || throttle "$SERVER_PID"
    for tool in $order; do measure "$round" "$name" "http://127.0.0.1:$port" "$tool"; done
    stop; SERVER_PID=
    port=$((port + 1))
  done
done

echo
python3 - "$raw" "$DEPTH" "$TOOLS" <<'EOF'
import statistics, sys

raw, depth, tools = sys.argv[1], sys.argv[2], sys.argv[3].split()
runs = {}   # (server, tool) -> {round: (rps or None, errors, server busy, tool busy or None)}
for line in open(raw):
    p = line.split()
    if len(p) != 8:
        continue
    rnd, server, tool, rps, errs, _, busy, tbusy = p
    runs.setdefault((server, tool), {})[rnd] = (
        None if rps == "-" else float(rps), int(errs), int(busy),
        None if tbusy == "-" else int(tbusy))
servers = list(dict.fromkeys(s for s, _ in runs))

label = {
    "wrk16": f"wrk -t1, pipeline.lua, depth {depth}",
    "h2load16": f"h2load --h1 -t1 -m {depth}",
    "pload16": f"**pipelined load --pipeline {depth}**",
    "oha1": "oha",
    "wrk1": "wrk -t1 (no script)",
    "pload1": "**pipelined load --pipeline 1**",
}
# What `pipelined load` at the same depth is compared with, and the check: ("pm", tolerance)
# is within ±tolerance (point 4), ("ge", floor) is at least floor (point 5).
def check(server, tool):
    point4 = server != "raw-limit"
    if tool in ("wrk16", "h2load16"):
        if server == "raw-limit" and tool == "wrk16":
            return "pload16", ("ge", 1.0, "point 5")
        return "pload16", ("pm", 0.10, "point 4") if point4 else None
    if tool == "oha1":
        return "pload1", ("pm", 0.10, "point 4") if point4 else None
    if tool == "wrk1":
        return "pload1", None
    return None, None

def kilo(v):
    return "failed" if v is None else f"{v / 1000:,.1f}k"

for server in servers:
    print(f"### {server}\n")
    print("| depth | tool | median req/s | each round | errors | server busy % | tool busy % | pipelined load ÷ tool | check |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tool in tools:
        r = runs.get((server, tool))
        if not r:
            continue
        ok = [v for v, _, _, _ in r.values() if v is not None]
        med = statistics.median(ok) if ok else None
        errs = sum(e for _, e, _, _ in r.values())
        flagged = errs > 0 or len(ok) < len(r)
        busy = f"{statistics.median(b for _, _, b, _ in r.values()):.0f}"
        tb = [t for _, _, _, t in r.values() if t is not None]
        tbusy = f"{statistics.median(tb):.0f}" if tb else "—"
        each = " ".join(kilo(r[k][0]) for k in sorted(r, key=int))
        mine, rule = check(server, tool)
        ratio_cell = check_cell = "—"
        if mine:
            m = runs.get((server, mine), {})
            ratios = [m[k][0] / r[k][0] for k in r
                      if k in m and m[k][0] is not None and r[k][0]]
            m_flagged = any(e > 0 or v is None for v, e, _, _ in m.values())
            if ratios:
                ratio = statistics.median(ratios)
                ratio_cell = f"{ratio:.2f}×" + (" [errors]" if flagged or m_flagged else "")
                if rule:
                    kind, bound, point = rule
                    good = abs(ratio - 1) <= bound if kind == "pm" else ratio >= bound
                    want = f"within ±{bound * 100:.0f} %" if kind == "pm" else f"≥ {bound:.2f}×"
                    verdict = "yes" if good else "NO" + (" (higher)" if ratio > 1 else " (lower)")
                    check_cell = f"{point}, {want}: **{verdict}**"
        d = depth if tool.endswith("16") else "1"
        print(f"| {d} | {label[tool]} | {kilo(med)}{' [errors]' if flagged else ''} | {each} | "
              f"{errs} | {busy} | {tbusy} | {ratio_cell} | {check_cell} |")
    print()
print("pipelined load ÷ tool: the median over the rounds of the two figures' ratio within a round "
      "(same server, same connections, same duration). Server busy % and tool busy %: each one's "
      "user + system CPU over the tool's window, on its own core; the one near 100 is the "
      "bottleneck. When it is the server, every tool should report the same req/s; when it is "
      "the tool, req/s measures the tool's own cost per request.")
EOF
echo
echo "raw lines (round server tool req_per_sec errors responses server_busy_pct tool_busy_pct): $raw"
echo "each tool's output: $log"
