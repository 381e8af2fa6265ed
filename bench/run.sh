#!/usr/bin/env bash
# The benchmark suite: builds the gateway, the ceiling server (bench/ceiling)
# and the table maker (bench/report); runs every workload RUNS times (default
# 3) against a fresh ceiling and a fresh gateway, alternating, on free
# loopback ports; prints a Markdown table of medians with min–max and the
# gateway's ratio to the ceiling; and writes bench/RESULTS.md with the
# machine and the date, followed by bench/NOTES.md (what the profiles
# showed, written by hand). Every process it starts is stopped on exit,
# Ctrl-C included.
#
#   bench/run.sh                 # about 6 minutes on 2 cores
#   RUNS=1 bench/run.sh          # one run of each, quicker
#   CASES="echo mgmt" bench/run.sh
#   PROFILE=1 bench/run.sh       # also saves a 10s CPU profile of the gateway per case (first run;
#                                # profiling adds to that run's server CPU figure)
#   LOADGEN="/path/to/switchboard bench" bench/run.sh   # another load generator build
#
# Raw results (one JSON line per run), progress and server logs go to $OUT
# (default: a new temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

RUNS=${RUNS:-3}
CASES=${CASES:-"conns echo fanout-1k fanout-10k fanout-mgmt mgmt mgmt-1cpu mgmt-100 mgmt-batch"}
OUT=${OUT:-$(mktemp -d -t switchboard-bench.XXXXXX)}
PROFILE=${PROFILE:-}
mkdir -p "$OUT/bin" "$OUT/logs"
results=$OUT/results.jsonl
: >"$results"
echo "== results and logs in $OUT" >&2

# Processes started by this script, by PID; stopped on any exit.
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

echo "== build" >&2
go build -o "$OUT/bin/switchboard" ./cmd/switchboard
go build -o "$OUT/bin/ceiling" ./bench/ceiling
go build -o "$OUT/bin/report" ./bench/report
read -r -a loadgen <<<"${LOADGEN:-$OUT/bin/switchboard bench}"
if ! "${loadgen[@]}" help >/dev/null 2>&1; then
  echo "run.sh: '${loadgen[*]} help' failed: is 'switchboard bench' wired in cmd/switchboard?" >&2
  exit 1
fi

# The gateway's configuration: an echo $default route beside the zero-config
# routes; queues large enough that a burst of broadcasts is not a slow
# consumer; no per-connection message rate (the load is a few connections
# sending as fast as they can); no idle or lifetime limits; no pings (the ceiling sends none, and
# a client whose own messages wait for their route cannot answer a ping in
# time: its pong is behind them); no access log (one line per message is not
# what is measured). The gateway serves its default listener, plain and TLS
# told apart by the first byte, as `switchboard serve` does; its local CA is
# kept in $OUT/data, not in the runner's home.
cat >"$OUT/gateway.yaml" <<'EOF'
routes:
  $default:    {integration: {type: echo}}
  sendMessage: {integration: {type: broadcast}}
  subscribe:   {integration: {type: subscribe}}
  unsubscribe: {integration: {type: unsubscribe}}
  publish:     {integration: {type: publish}}
limits:
  sendQueueMessages: 100000
  sendQueueBytes: 256MiB
  messageRate: unlimited
  idleTimeout: unlimited
  maxLifetime: unlimited
  pingInterval: off
logging:
  accessLog: false
EOF

# start_server KIND NAME: starts the ceiling or the gateway on a free
# loopback port and sets server_pid, ws_url, web_url and metrics_url.
start_server() {
  local kind=$1 name=$2 cpu=${3:-} out=$OUT/logs/$2.out
  local pin=()
  [ -n "$cpu" ] && pin=(taskset -c "$cpu")
  case $kind in
  ceiling)
    "${pin[@]}" "$OUT/bin/ceiling" --listen 127.0.0.1:0 >"$out" 2>&1 &
    ;;
  gateway)
    SWITCHBOARD_DATA_DIR="$OUT/data" "${pin[@]}" "$OUT/bin/switchboard" serve --config "$OUT/gateway.yaml" --listen 127.0.0.1:0 --pprof \
      --log-level warn --log-format text >"$out" 2>&1 &
    ;;
  esac
  server_pid=$!
  pids+=("$server_pid")
  ws_url=""
  for _ in $(seq 100); do
    ws_url=$(grep -m1 -o 'ws://127\.0\.0\.1:[0-9]*' "$out" 2>/dev/null | head -n1 || true)
    [ -n "$ws_url" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ws_url" ]; then
    echo "run.sh: the $kind did not start:" >&2
    cat "$out" >&2
    exit 1
  fi
  web_url=http${ws_url#ws}
  if [ "$kind" = gateway ]; then
    metrics_url=$web_url/metrics
  else
    metrics_url=$web_url/debug/vars
  fi
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do
    [ "$p" != "$server_pid" ] && keep+=("$p")
  done
  pids=("${keep[@]}")
}

# The workloads. Each prints the arguments of `switchboard bench` for the
# server just started.
case_title() {
  case $1 in
  conns) echo "conns 15000 (4 sources)" ;;
  echo) echo "echo 50 × 2000 × 100 B" ;;
  fanout-1k) echo "fanout 1000 × 200 × 100 B, broadcast via ws" ;;
  fanout-10k) echo "fanout 10000 × 200 × 100 B, broadcast via ws (machine-bound)" ;;
  fanout-mgmt) echo "fanout 1000 × 200 × 100 B, topic via mgmt" ;;
  mgmt) echo "mgmt 32 × 50000" ;;
  mgmt-1cpu) echo "mgmt 32 × 50000, server on CPU 0, load generator on CPU 1" ;;
  mgmt-100) echo "mgmt 50000 pushes to 100 connections, one PostToConnection each" ;;
  mgmt-batch) echo "mgmt 50000 pushes to 100 connections, POST /@connections of 100 IDs" ;;
  esac
}

# pinned CASE: the CPU the server of CASE runs on, or nothing. The
# load generator shares the machine's CPUs with the server; pinning each to
# one of its own measures what one CPU of the server does.
pinned() {
  case $1 in
  mgmt-1cpu)
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
      echo 0
    else
      echo "run.sh: $1 runs unpinned: it needs taskset and 2 CPUs" >&2
    fi
    ;;
  esac
}
case_args() {
  case $1 in
  conns)
    echo conns --url "$ws_url" -n 15000 --concurrency 200 --sources 4 --pid "$server_pid" --hold 5s --timeout 2m \
      --gc-url "$web_url/debug/pprof/heap?gc=1" --metrics-url "$metrics_url"
    ;;
  echo)
    echo echo --url "$ws_url" -c 50 -m 2000 -s 100 --route '{"action":"echo","data":"%s"}' --pid "$server_pid"
    ;;
  fanout-1k)
    echo fanout --url "$ws_url" --subscribers 1000 --messages 200 --size 100 --pid "$server_pid"
    ;;
  fanout-10k)
    echo fanout --url "$ws_url" --subscribers 10000 --messages 200 --size 100 --concurrency 200 --sources 2 --pid "$server_pid"
    ;;
  fanout-mgmt)
    echo fanout --url "$ws_url" --subscribers 1000 --messages 200 --size 100 --via mgmt --topic t --pid "$server_pid"
    ;;
  mgmt | mgmt-1cpu)
    echo mgmt --mgmt-url "$web_url" -c 32 -n 50000 --pid "$server_pid"
    ;;
  mgmt-100)
    echo mgmt --mgmt-url "$web_url" -c 32 -n 50000 --connections 100 --pid "$server_pid"
    ;;
  mgmt-batch)
    echo mgmt --mgmt-url "$web_url" -c 4 -n 50000 --connections 100 --batch 100 --pid "$server_pid"
    ;;
  esac
}

load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
started=$(date +%s)
for c in $CASES; do
  title=$(case_title "$c")
  [ -n "$title" ] || { echo "run.sh: unknown case $c" >&2; exit 1; }
  for run in $(seq "$RUNS"); do
    for kind in ceiling gateway; do
      cpu=$(pinned "$c")
      start_server "$kind" "$c-$kind-$run" "$cpu"
      lg=("${loadgen[@]}")
      [ -n "$cpu" ] && lg=(taskset -c 1 "${loadgen[@]}")
      # Word splitting of case_args is intended; the route template has no spaces.
      read -r -a args <<<"$(case_args "$c")"
      prof_pid=""
      if [ -n "$PROFILE" ] && [ "$kind" = gateway ] && [ "$run" = 1 ] && [ "$c" != conns ]; then
        mkdir -p "$OUT/profiles"
        curl -sS -o "$OUT/profiles/$c.cpu.pprof" "$web_url/debug/pprof/profile?seconds=10" &
        prof_pid=$!
        pids+=("$prof_pid")
      fi
      echo "== $title: $kind, run $run/$RUNS" >&2
      status=0
      line=$("${lg[@]}" "${args[@]}" 2>>"$OUT/logs/progress.log") || status=$?
      if [ -n "$prof_pid" ]; then
        wait "$prof_pid" 2>/dev/null || true
        curl -sS -o "$OUT/profiles/$c.heap.pprof" "$web_url/debug/pprof/heap" || true
      fi
      [ -n "$line" ] || line=null
      printf '{"case":"%s","title":"%s","server":"%s","run":%d,"exit":%d,"result":%s}\n' \
        "$c" "$title" "$kind" "$run" "$status" "$line" >>"$results"
      echo "   exit $status: $line" >&2
      stop_server
    done
  done
done
elapsed=$(($(date +%s) - started))

table=$("$OUT/bin/report" <"$results")
echo
echo "$table"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || echo unknown)
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then
  rev="$rev (with uncommitted changes)"
fi
{
  echo "# Benchmark results"
  echo
  echo "Produced by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), in ${elapsed}s: RUNS=$RUNS runs of each"
  echo "workload against a fresh ceiling server (\`bench/ceiling\`) and a fresh gateway,"
  echo "alternating, with the load generator (\`switchboard bench\`) on the same machine."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| CPUs (nproc) | $(nproc) |"
  echo "| CPU | $cpu |"
  echo "| memory | $mem |"
  echo "| kernel | $(uname -sr) |"
  echo "| Go | $(go version | cut -d' ' -f3-) |"
  echo "| commit | $rev |"
  echo "| open files (ulimit -n) | $(ulimit -n) |"
  echo "| load average before the runs (1, 5, 15 min) | $load |"
  echo
  echo "The ceiling is the gateway's WebSocket library (github.com/gobwas/ws) with"
  echo "nothing else, in the simplest fast design: a reader and a writer goroutine"
  echo "per connection, frames encoded once and every queued frame of a connection"
  echo "written with one writev. The load generator shares the machine with the"
  echo "server, except in mgmt-1cpu, where the server runs on CPU 0 and the load"
  echo "generator on CPU 1. Ratios are the gateway's median over the ceiling's: above 1"
  echo "is better for rates, below 1 for latencies, memory and server CPU (the"
  echo "server's user + system time from /proc/PID/stat over the measured phase, per"
  echo "unit of work). The gateway runs with \`--pprof\`, an echo \`\$default\` route"
  echo "beside the zero-config routes, large send queues, no idle or lifetime limits,"
  echo "no pings (the ceiling sends none) and no access log:"
  echo
  echo '```yaml'
  cat "$OUT/gateway.yaml"
  echo '```'
  echo
  echo "$table"
  echo
  echo "The commands, for a server at \$WS (ws://127.0.0.1:PORT) and \$WEB (http://127.0.0.1:PORT):"
  echo
  echo '```sh'
  for c in $CASES; do
    ws_url='$WS' web_url='$WEB' server_pid='$PID' metrics_url='$WEB/metrics'
    prefix=""
    [ -n "$(pinned "$c" 2>/dev/null)" ] && prefix="taskset -c 1 "
    echo "${prefix}switchboard bench $(case_args "$c" | sed -e "s/{\"action\":\"echo\",\"data\":\"%s\"}/'&'/" -e 's/[^ ]*?gc=1/"&"/')"
  done
  echo '```'
  if [ -f "$repo/bench/NOTES.md" ]; then
    echo
    cat "$repo/bench/NOTES.md"
  fi
} >"$repo/bench/RESULTS.md"
echo >&2
echo "== wrote bench/RESULTS.md; raw results in $results" >&2
