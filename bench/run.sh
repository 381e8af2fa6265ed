#!/usr/bin/env bash
# The benchmark suite: builds the gateway, the ceiling server (bench/ceiling),
# the peer (bench/peer-centrifuge, a server on the centrifuge library, loaded
# through its own client protocol) and the table maker (bench/report); runs
# every workload RUNS times (default 3) against a fresh ceiling, a fresh
# gateway and a fresh peer, in turn, on free loopback ports; prints a
# Markdown table of medians with min–max and the gateway's ratios to the
# ceiling and to the peer; and writes bench/RESULTS.md with the
# machine and the date, followed by bench/NOTES.md (what the profiles
# showed, written by hand). Every process it starts is stopped on exit,
# Ctrl-C included.
#
# The cluster cases run the same load against three gateway processes joined
# over their embedded NATS servers (--cluster embedded, routes on free
# loopback ports) and compare, in the same run, with one node: a fan-out
# whose subscribers are spread over the three nodes against the same on one
# node, and PostToConnection through a node that does not hold the
# connections against through the one that does. Their server CPU is the
# sum over the nodes' processes.
#
# The ordering case runs echo through a hosted Node function that sleeps
# 25 ms, from one connection that keeps 32 messages waiting, against a
# gateway whose route is ordered and one whose route is concurrent (after a
# first, unmeasured run that starts the function's processes).
#
# The function-echo case runs echo from one connection, one message at a
# time, through a gateway with three two-way routes: "http", the http
# integration to a local HTTP backend (examples/http-backend) that answers
# with the message, "node", a hosted Node function that does the same, and
# "go", a hosted Go function built with aws-lambda-go that does the same
# (after a first, unmeasured run that starts its process): a warm
# function's round trip against a local service's.
#
# The consumer cases publish fan-out messages as events to a JetStream
# subject of the gateway's embedded NATS server, which a consumer
# (docs/events.md) reads into the topic the subscribers are on, and compare,
# in the same run, with the same messages published to the topic through the
# management API: consumer as fast as the events are taken (events/s),
# consumer-200 at 200 events/s (the latency from the stream to the subscribers).
#
# The putevents cases send the fan-out messages as EventBridge events, one
# PutEvents call of one entry at a time, to the gateway's listener, and
# compare, in the same run, with the same messages published to the topic
# through the management API: putevents through a rule whose topic target
# publishes them (the short path), as fast as they are taken;
# putevents-queue at 200 events/s through a rule into a queue whose trigger
# runs a hosted Node function (up to 4 processes, started by an unmeasured
# run first) that publishes each to the topic through the management API
# (as fast as they are taken, the latency would be the queue's backlog). Events/s (deliveries/s over the 100
# subscribers) and the latency from the PutEvents call to the subscribers;
# server CPU is the gateway's alone, not its function's.
#
# The offline cases run the WebSocket chat tutorial as its users write it
# (bench/chat-tutorial: Node handlers on the AWS SDK v2, connection IDs in
# a DynamoDB table on dynalite, replies through PostToConnection) under
# serverless-offline and under `switchboard serve --project`, in turn, each
# on a fresh table, after an unmeasured run that starts (or warms) the
# handlers: offline-echo, 20 connections whose messages the echo handler
# posts back to their sender; offline-fanout, 100 subscribers of the
# broadcasts the sendMessage handler makes (a scan, then a post to each),
# ten of them (at fifty serverless-offline's handlers time out).
# Like the start case they install serverless, serverless-offline, the
# AWS SDK v2 and dynalite from npm; without the registry they are skipped.
#
# The start case (not in the default CASES: it installs serverless and
# serverless-offline from npm) runs examples/chat-node's serverless.yml with
# `switchboard serve --project`, with and without --warm, and with
# serverless-offline, each started by `switchboard bench start`: the time
# from the start to the first handshake, the first message's round trip (a
# function's cold start) and a warm one.
#
#   bench/run.sh                 # about 8 minutes on 2 cores
#   RUNS=1 bench/run.sh          # one run of each, quicker
#   CASES="echo mgmt" bench/run.sh
#   SIDES="ceiling gateway" bench/run.sh   # without the peer (it runs conns, echo and the fanouts)
#   CASES="cluster-fanout cluster-mgmt" bench/run.sh   # only the cluster cases
#   CASES=start bench/run.sh     # start to ready and first answers, beside serverless-offline
#   CASES="offline-echo offline-fanout" bench/run.sh   # the chat tutorial, beside serverless-offline
#   CASES=ordering bench/run.sh  # a Node function's route, ordered against concurrent
#   CASES=function-echo bench/run.sh   # a warm Node and Go function's round trip against an http route's
#   CASES="consumer consumer-200" bench/run.sh   # events from a JetStream subject to the subscribers
#   CASES="putevents putevents-queue" bench/run.sh   # PutEvents to the subscribers, through a rule (and a queue)
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
CASES=${CASES:-"conns echo fanout-1k fanout-10k fanout-fresh fanout-mgmt mgmt mgmt-1cpu mgmt-100 mgmt-batch ordering function-echo offline-echo offline-fanout cluster-fanout cluster-mgmt consumer consumer-200 putevents putevents-queue"}
OUT=${OUT:-$(mktemp -d -t switchboard-bench.XXXXXX)}
PROFILE=${PROFILE:-}
SIDES=${SIDES:-"ceiling gateway peer"}
# The versions of the Serverless Framework and serverless-offline the start
# case compares with.
SLS_VERSION=${SLS_VERSION:-3.40.0}
SLS_OFFLINE_VERSION=${SLS_OFFLINE_VERSION:-13.10.1}
for s in $SIDES; do
  case $s in
  ceiling | gateway | peer) ;;
  *) echo "run.sh: unknown side $s in SIDES (want ceiling, gateway or peer)" >&2; exit 1 ;;
  esac
done
mkdir -p "$OUT/bin" "$OUT/logs"
results=$OUT/results.jsonl
: >"$results"
rm -f "$OUT"/cluster-*.jsonl
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
if [[ " $CASES " == *" function-echo "* ]]; then
  go build -o "$OUT/bin/http-backend" ./examples/http-backend/backend
  go build -o "$OUT/bin/goecho" ./internal/server/testdata/goecho
fi
if [[ " $SIDES " == *" peer "* ]]; then
  # A module of its own: the centrifuge library's dependencies stay out of the gateway's.
  (cd bench/peer-centrifuge && go build -o "$OUT/bin/peer-centrifuge" .)
fi
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
# The same gateway without the heap floor's pages touched at start
# (heapFloorResident). The conns case runs it: pages made resident before
# the connections would be filled by the first 13,000 of them, and the RSS
# per connection would hide their memory.
{
  cat "$OUT/gateway.yaml"
  echo "heapFloorResident: false"
} >"$OUT/gateway-untouched.yaml"

# The ordering case's gateways: a Node function that sleeps 25 ms and
# answers with the message, behind $default, ordered or concurrent, with up
# to 16 processes.
mkdir -p "$OUT/fn"
cat >"$OUT/fn/handler.js" <<'EOF'
exports.echo = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, 25));
  return { statusCode: 200, body: event.body };
};
EOF
for o in ordered concurrent; do
  cat >"$OUT/gateway-$o.yaml" <<EOF
ordering: $o
functions:
  sleep25: {runtime: nodejs20.x, handler: handler.echo, codeDir: fn, maxProcesses: 16}
routes:
  \$default: {integration: {type: lambda, function: sleep25}, routeResponse: true}
limits: {messageRate: unlimited, idleTimeout: unlimited, maxLifetime: unlimited, pingInterval: off}
logging: {accessLog: false}
EOF
done

# The putevents cases' gateways: the suite's configuration with a rule on
# the source the load generator sends, whose target is the topic (the
# event's detail names it and holds the data), or a queue whose trigger
# runs a Node function publishing each event's data to its topic through
# the management API (up to 4 processes, started by an unmeasured run).
cat >"$OUT/fn/publish.js" <<'EOF'
exports.handler = async (event) => {
  const failed = [];
  await Promise.all(event.Records.map(async (r) => {
    const { topic, data } = JSON.parse(r.body).detail;
    const res = await fetch(process.env.APIG_ENDPOINT + "/@topics/" + encodeURIComponent(topic), { method: "POST", body: data });
    await res.arrayBuffer();
    if (!res.ok) failed.push({ itemIdentifier: r.messageId });
  }));
  return { batchItemFailures: failed };
};
EOF
{
  cat "$OUT/gateway.yaml"
  cat <<'EOF'
events:
  rules:
    - name: bench
      pattern: {source: [switchboard.bench]}
      targets: [{topic: $.detail.topic, data: $.detail.data}]
EOF
} >"$OUT/putevents.yaml"
{
  cat "$OUT/gateway.yaml"
  cat <<'EOF'
functions:
  publish: {runtime: nodejs20.x, handler: publish.handler, codeDir: fn, maxProcesses: 4}
queues:
  - name: bench
    triggers: [{function: publish, reportBatchItemFailures: true, maxConcurrency: 4}]
events:
  rules:
    - name: bench
      pattern: {source: [switchboard.bench]}
      targets: [{queue: bench}]
EOF
} >"$OUT/putevents-queue.yaml"

# The function-echo case's Node function answers with the message (its Go
# function, internal/server/testdata/goecho, too); its
# gateway's configuration is written once the backend has its port.
mkdir -p "$OUT/fn-echo"
cat >"$OUT/fn-echo/handler.js" <<'EOF'
exports.echo = async (event) => ({ statusCode: 200, body: event.body });
EOF

# wait_banner WHAT PID OUT: waits up to TRIES × 0.1 s for the WebSocket URL
# in a server's output and prints it; fails the run when it never comes.
wait_banner() {
  local what=$1 pid=$2 out=$3 url=""
  for _ in $(seq "${TRIES:-100}"); do
    url=$(grep -m1 -o 'ws://127\.0\.0\.1:[0-9]*' "$out" 2>/dev/null | head -n1 || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "run.sh: the $what did not start:" >&2
    cat "$out" >&2
    return 1
  fi
  echo "$url"
}

# start_server KIND NAME: starts the ceiling, the gateway or the peer on a
# free loopback port and sets server_pid, ws_url, web_url and metrics_url.
start_server() {
  local kind=$1 name=$2 cpu=${3:-} out=$OUT/logs/$2.out
  local pin=()
  [ -n "$cpu" ] && pin=(taskset -c "$cpu")
  case $kind in
  ceiling)
    "${pin[@]}" "$OUT/bin/ceiling" --listen 127.0.0.1:0 >"$out" 2>&1 &
    ;;
  gateway)
    # Word splitting of gateway_env is intended: NAME=value words, or none.
    # shellcheck disable=SC2086
    env ${gateway_env:-} SWITCHBOARD_DATA_DIR="$OUT/data" "${pin[@]}" "$OUT/bin/switchboard" serve --config "${gateway_config:-$OUT/gateway.yaml}" --listen 127.0.0.1:0 --pprof \
      --log-level warn --log-format text >"$out" 2>&1 &
    ;;
  peer)
    "${pin[@]}" "$OUT/bin/peer-centrifuge" --listen 127.0.0.1:0 >"$out" 2>&1 &
    ;;
  esac
  server_pid=$!
  pids+=("$server_pid")
  running=("$server_pid")
  ws_url=$(wait_banner "$kind" "$server_pid" "$out") || exit 1
  web_url=http${ws_url#ws}
  [ "$kind" = peer ] && ws_url=$ws_url/connection/websocket
  if [ "$kind" = gateway ]; then
    metrics_url=$web_url/metrics
  else
    metrics_url=$web_url/debug/vars
  fi
}

# free_port [TAKEN...] prints a loopback TCP port nothing listens on, none
# of TAKEN (ports picked for what has not bound yet), picked at random (bash
# alone cannot ask the kernel for one without keeping it) below the
# kernel's range of ports for outgoing connections: a client's socket there
# would make the server's bind fail.
free_port() {
  local p lo=32768
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((lo > 11000)) || lo=32768
  for _ in $(seq 100); do
    p=$((10000 + RANDOM % (lo - 10000)))
    [[ " $* " == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# start_offline SIDE NAME: starts dynalite on a free loopback port, makes
# the chat tutorial's table in it, then serverless-offline or the gateway
# on the project, its handlers told both endpoints; sets server_pid,
# ws_url and web_url. dynalite_pid is stopped after the server.
start_offline() {
  local side=$1 name=$2 out=$OUT/logs/$2.out dport port hp lp
  dport=$(free_port) && port=$(free_port "$dport") || { echo "run.sh: no free loopback port" >&2; exit 1; }
  (cd "$offline_dir" && exec node_modules/.bin/dynalite --port "$dport") >"$OUT/logs/$name-dynalite.out" 2>&1 &
  dynalite_pid=$!
  pids+=("$dynalite_pid")
  local env=(env AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1 "DYNAMODB_ENDPOINT=http://127.0.0.1:$dport")
  if ! (cd "$offline_dir" && "${env[@]}" node create-table.js) >>"$OUT/logs/$name-dynalite.out" 2>&1; then
    echo "run.sh: the chat tutorial's table was not made:" >&2
    cat "$OUT/logs/$name-dynalite.out" >&2
    exit 1
  fi
  case $side in
  serverless-offline)
    # On 127.0.0.1, as the gateway (its default, localhost, may be ::1
    # alone); its HTTP and Lambda ports must be free too.
    hp=$(free_port "$dport" "$port") && lp=$(free_port "$dport" "$port" "$hp") ||
      { echo "run.sh: no free loopback port" >&2; exit 1; }
    (cd "$offline_dir" && exec "${env[@]}" "MGMT_ENDPOINT=http://127.0.0.1:$port" node_modules/.bin/serverless offline \
      --host 127.0.0.1 --websocketPort "$port" --httpPort "$hp" --lambdaPort "$lp") >"$out" 2>&1 &
    ws_url=ws://127.0.0.1:$port
    ;;
  gateway)
    (cd "$offline_dir" && exec "${env[@]}" "MGMT_ENDPOINT=http://127.0.0.1:$port" "SWITCHBOARD_DATA_DIR=$OUT/data" \
      "$OUT/bin/switchboard" serve --project serverless.yml --listen "127.0.0.1:$port" --pprof --log-level warn) >"$out" 2>&1 &
    ws_url=ws://127.0.0.1:$port
    ;;
  esac
  server_pid=$!
  pids+=("$server_pid")
  running=("$server_pid")
  web_url=http${ws_url#ws}
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: $side did not start:" >&2
  cat "$out" >&2
  exit 1
}

# setup_offline makes the offline cases' project: bench/chat-tutorial
# (serverless_project); it fails when npm does.
setup_offline() {
  offline_dir=$OUT/offline-project
  serverless_project bench/chat-tutorial "$offline_dir" handler.js create-table.js package.json package-lock.json serverless.yml
}

# serverless_project SRC DIR FILE...: copies the FILEs of the project in
# SRC (in the repository) to DIR, with its dependencies and, as
# serverless-offline needs them there, the framework and the plugin, which
# its serverless.yml then names. Done once per DIR; fails when npm does.
serverless_project() {
  local src=$1 dir=$2 f
  shift 2
  [ -d "$dir/node_modules" ] && return 0
  mkdir -p "$dir"
  for f; do cp "$repo/$src/$f" "$dir/"; done
  printf 'plugins:\n  - serverless-offline\n' >>"$dir/serverless.yml"
  echo "== npm: $src's dependencies, serverless@$SLS_VERSION and serverless-offline@$SLS_OFFLINE_VERSION" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error &&
    npm install --no-save --no-audit --no-fund --loglevel=error "serverless@$SLS_VERSION" "serverless-offline@$SLS_OFFLINE_VERSION") \
    >>"$OUT/logs/npm.log" 2>&1 || { echo "run.sh: npm failed (see $OUT/logs/npm.log)" >&2; rm -rf "$dir/node_modules"; return 1; }
}

# start_cluster NAME N: starts N gateways, nodes node1…nodeN, each with the
# suite's configuration and an embedded NATS server routed to the others'
# (--cluster embedded), every port a free loopback one, and a data
# directory (local CA, JetStream store) of their own for this start. Sets
# node_ws and node_web (one URL per node), server_pid (the PIDs, comma
# separated) and metrics_url (node 1's).
start_cluster() {
  local name=$1 n=$2 i port routes=() list out
  for i in $(seq "$n"); do
    port=$(free_port "${routes[@]#127.0.0.1:}") || { echo "run.sh: no free loopback port for a route" >&2; exit 1; }
    routes+=("127.0.0.1:$port")
  done
  list=$(IFS=,; echo "${routes[*]}")
  running=()
  for i in $(seq "$n"); do
    SWITCHBOARD_DATA_DIR="$OUT/data/$name" "$OUT/bin/switchboard" serve --config "$OUT/gateway.yaml" --listen 127.0.0.1:0 --pprof \
      --log-level warn --log-format text --cluster embedded --node "node$i" \
      --cluster-listen "${routes[i - 1]}" --cluster-peers "$list" >"$OUT/logs/$name-node$i.out" 2>&1 &
    pids+=("$!")
    running+=("$!")
  done
  node_ws=() node_web=()
  for i in $(seq "$n"); do
    # The nodes elect the JetStream meta leader before they serve: allow a minute.
    out=$(TRIES=600 wait_banner "cluster node $i" "${running[i - 1]}" "$OUT/logs/$name-node$i.out") || exit 1
    node_ws+=("$out")
    node_web+=("http${out#ws}")
  done
  server_pid=$(IFS=,; echo "${running[*]}")
  metrics_url=${node_web[0]}/metrics
}

# stop_server stops the processes of the last start_server or start_cluster.
stop_server() {
  local p keep=()
  for p in "${running[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${running[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  # The offline cases' DynamoDB, once the server's $disconnect handlers
  # have had it.
  if [ -n "${dynalite_pid:-}" ]; then
    kill -TERM "$dynalite_pid" 2>/dev/null || true
    wait "$dynalite_pid" 2>/dev/null || true
    running+=("$dynalite_pid")
    dynalite_pid=""
  fi
  for p in "${pids[@]}"; do
    [[ " ${running[*]} " == *" $p "* ]] || keep+=("$p")
  done
  pids=("${keep[@]}")
  running=()
}

# sides CASE: the servers a case compares, the baseline first: of SIDES,
# those that run it (the peer speaks centrifuge's protocol, which has no
# management API of connections). Each name is a column of its table;
# start_side starts one.
sides() {
  local s out=()
  case $1 in
  cluster-fanout) echo "one-node three-nodes" ;;
  fanout-fresh) echo "warmed fresh fresh-untouched warmed-nofloor fresh-nofloor" ;;
  cluster-mgmt) echo "via-holder via-other-node" ;;
  consumer | consumer-200) echo "via-mgmt via-jetstream" ;;
  putevents) echo "via-mgmt via-putevents" ;;
  putevents-queue) echo "via-mgmt via-queue" ;;
  start) echo "serverless-offline gateway gateway-warm" ;;
  ordering) echo "ordered concurrent" ;;
  function-echo) echo "http node go" ;;
  offline-*) echo "serverless-offline gateway" ;;
  *)
    for s in $SIDES; do
      if [ "$s" = peer ]; then
        case $1 in
        conns | echo | fanout-*) ;;
        *) continue ;;
        esac
      fi
      out+=("$s")
    done
    echo "${out[*]}"
    ;;
  esac
}

# start_side SIDE NAME CPU: starts what SIDE names and sets ws_url, web_url,
# server_pid and metrics_url for case_args.
start_side() {
  local side=$1 name=$2 cpu=$3
  if [ "$case_now" = start ]; then
    # bench start runs the server itself: only its port is picked here.
    start_port=$(free_port) || { echo "run.sh: no free loopback port" >&2; exit 1; }
    running=()
    return
  fi
  if [[ $case_now == offline-* ]]; then
    start_offline "$side" "$name"
    return
  fi
  case $side in
  gateway)
    if [ "$case_now" = conns ]; then
      gateway_config=$OUT/gateway-untouched.yaml
    fi
    start_server gateway "$name" "$cpu"
    gateway_config=""
    ;;
  ceiling | peer) start_server "$side" "$name" "$cpu" ;;
  one-node | warmed | fresh) start_server gateway "$name" ;;
  fresh-untouched)
    gateway_config=$OUT/gateway-untouched.yaml
    start_server gateway "$name"
    gateway_config=""
    ;;
  warmed-nofloor | fresh-nofloor)
    gateway_env=GOGC=100 start_server gateway "$name" # GOGC set: no heap floor
    ;;
  ordered | concurrent)
    gateway_config=$OUT/gateway-$side.yaml
    start_server gateway "$name"
    gateway_config=""
    ;;
  http | node | go)
    # The backend of the http route, then the gateway with all three routes.
    "$OUT/bin/http-backend" --listen 127.0.0.1:0 >"$OUT/logs/$name-backend.out" 2>&1 &
    local backend_pid=$! backend_url=""
    pids+=("$backend_pid")
    for _ in $(seq 100); do
      backend_url=$(grep -m1 -o 'http://127\.0\.0\.1:[0-9]*' "$OUT/logs/$name-backend.out" 2>/dev/null || true)
      [ -n "$backend_url" ] && break
      kill -0 "$backend_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$backend_url" ]; then
      echo "run.sh: the http backend did not start:" >&2
      cat "$OUT/logs/$name-backend.out" >&2
      exit 1
    fi
    cat >"$OUT/gateway-function-echo.yaml" <<EOF
functions:
  echo: {runtime: nodejs20.x, handler: handler.echo, codeDir: fn-echo, maxProcesses: 1}
  goecho: {command: ["$OUT/bin/goecho"], codeDir: fn-echo, maxProcesses: 1}
routes:
  http: {integration: {type: http, url: "$backend_url/default"}, routeResponse: true}
  node: {integration: {type: lambda, function: echo}, routeResponse: true}
  go: {integration: {type: lambda, function: goecho}, routeResponse: true}
limits: {messageRate: unlimited, idleTimeout: unlimited, maxLifetime: unlimited, pingInterval: off}
logging: {accessLog: false}
EOF
    gateway_config=$OUT/gateway-function-echo.yaml
    start_server gateway "$name"
    gateway_config=""
    running+=("$backend_pid")
    ;;
  three-nodes)
    start_cluster "$name" 3
    ws_url=$(IFS=,; echo "${node_ws[*]}") # subscribers spread over the nodes; sent through node 1
    web_url=${node_web[0]}
    ;;
  via-holder | via-other-node)
    start_cluster "$name" 3
    ws_url=${node_ws[0]} # the connections are node 1's
    web_url=${node_web[0]}
    if [ "$side" = via-other-node ]; then
      web_url=${node_web[1]}
    fi
    ;;
  via-mgmt | via-putevents | via-queue)
    if [[ $case_now == putevents* ]]; then
      # The same gateway on both sides: the messages go through the rule,
      # or straight to the topic through the management API.
      gateway_config=$OUT/$case_now.yaml start_server gateway "$name"
      return
    fi
    ;;&
  via-mgmt | via-jetstream)
    # The suite's gateway on an embedded NATS server whose client port is
    # known, with a consumer of the subject the load generator publishes to.
    nats_port=$(free_port) || { echo "run.sh: no free loopback port" >&2; exit 1; }
    {
      cat "$OUT/gateway.yaml"
      echo "cluster: {url: embedded, node: bench, embedded: {listen: \"127.0.0.1:$nats_port\", storeDir: \"$OUT/data/$name-nats\"}}"
      echo "consumers:"
      echo "  - name: bench"
      echo "    nats: {stream: BENCH, subjects: [switchboard.bench]}"
      echo "    topic: \$.topic"
      echo "    data: \$.data"
    } >"$OUT/consumer.yaml"
    gateway_config=$OUT/consumer.yaml start_server gateway "$name"
    ;;
  esac
}

# The workloads. Each prints the arguments of `switchboard bench` for the
# server just started; case_args CASE SIDE, for the peer, the same load in
# its protocol (echo by the RPC "echo", the fanouts by a channel).
case_title() {
  case $1 in
  conns) echo "conns 15000 (4 sources; the gateway with heapFloorResident: false)" ;;
  echo) echo "echo 50 × 2000 × 100 B" ;;
  fanout-1k) echo "fanout 1000 × 200 × 100 B, broadcast via ws" ;;
  fanout-10k) echo "fanout 10000 × 200 × 100 B, broadcast via ws (machine-bound)" ;;
  fanout-fresh) echo "fanout 1000 × 200 × 100 B, broadcast via ws: a fresh process's first burst ÷ its third" ;;
  fanout-mgmt) echo "fanout 1000 × 200 × 100 B, topic via mgmt" ;;
  mgmt) echo "mgmt 32 × 50000" ;;
  mgmt-1cpu) echo "mgmt 32 × 50000, server on CPU 0, load generator on CPU 1" ;;
  mgmt-100) echo "mgmt 50000 pushes to 100 connections, one PostToConnection each" ;;
  mgmt-batch) echo "mgmt 50000 pushes to 100 connections, POST /@connections of 100 IDs" ;;
  cluster-fanout) echo "fanout 1000 × 200 × 100 B, broadcast via ws: subscribers spread over 3 nodes ÷ all on 1 node" ;;
  cluster-mgmt) echo "mgmt 32 × 20000 to connections of node 1: through node 2 ÷ through node 1 (3 nodes)" ;;
  consumer) echo "fanout 100 × 5000 × 100 B to a topic: from a JetStream subject through a consumer ÷ via mgmt" ;;
  consumer-200) echo "fanout 100 × 5000 × 100 B to a topic at 200/s: from a JetStream subject through a consumer ÷ via mgmt" ;;
  putevents) echo "fanout 100 × 5000 × 100 B to a topic: PutEvents through a rule's topic target ÷ via mgmt" ;;
  putevents-queue) echo "fanout 100 × 2000 × 100 B to a topic at 200/s: PutEvents through a rule, a queue and a Node function ÷ via mgmt" ;;
  start) echo "start examples/chat-node (serverless.yml, 4 Node functions), then whoami" ;;
  ordering) echo "echo 1 × 400 × 100 B, window 32, through a Node function (16 processes) that sleeps 25 ms: concurrent ÷ ordered" ;;
  function-echo) echo "echo 1 × 2000 × 100 B through a warm hosted function ÷ through the http integration to a local backend" ;;
  offline-echo) echo "echo 20 × 100 × 100 B through the chat tutorial's echo handler: gateway ÷ serverless-offline" ;;
  offline-fanout) echo "fanout 100 × 10 × 100 B through the chat tutorial's sendMessage handler: gateway ÷ serverless-offline" ;;
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
  local proto=()
  [ "${2:-}" = peer ] && proto=(--protocol centrifuge)
  case $1 in
  conns)
    echo conns --url "$ws_url" -n 15000 --concurrency 200 --sources 4 --pid "$server_pid" --hold 5s --timeout 2m \
      --gc-url "$web_url/debug/pprof/heap?gc=1" --metrics-url "$metrics_url" "${proto[@]}"
    ;;
  echo)
    if [ ${#proto[@]} -gt 0 ]; then
      echo echo --url "$ws_url" -c 50 -m 2000 -s 100 --pid "$server_pid" "${proto[@]}"
    else
      echo echo --url "$ws_url" -c 50 -m 2000 -s 100 --route '{"action":"echo","data":"%s"}' --pid "$server_pid"
    fi
    ;;
  fanout-1k | fanout-fresh | cluster-fanout)
    echo fanout --url "$ws_url" --subscribers 1000 --messages 200 --size 100 --pid "$server_pid" "${proto[@]}"
    ;;
  fanout-10k)
    echo fanout --url "$ws_url" --subscribers 10000 --messages 200 --size 100 --concurrency 200 --sources 2 --pid "$server_pid" "${proto[@]}"
    ;;
  fanout-mgmt)
    # The peer's server API is not under its WebSocket path.
    [ ${#proto[@]} -gt 0 ] && proto+=(--mgmt-url "$web_url")
    echo fanout --url "$ws_url" --subscribers 1000 --messages 200 --size 100 --via mgmt --topic t --pid "$server_pid" "${proto[@]}"
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
  cluster-mgmt)
    echo mgmt --url "$ws_url" --mgmt-url "$web_url" -c 32 -n 20000 --pid "$server_pid"
    ;;
  ordering)
    echo echo --url "$ws_url" -c 1 -m 400 -s 100 --window 32 --any-order --pid "$server_pid"
    ;;
  offline-echo)
    echo echo --url "$ws_url" -c 20 -m 100 -s 100 --route '{"action":"echo","data":"%s"}' --pid "$server_pid"
    ;;
  offline-fanout)
    # serverless-offline times out its handlers beyond a few connects at
    # once, or fifty broadcasts at once.
    echo fanout --url "$ws_url" --subscribers 100 --messages 10 --size 100 --concurrency 5 --pid "$server_pid"
    ;;
  function-echo)
    echo echo --url "$ws_url" -c 1 -m 2000 -s 100 --route "{\"action\":\"$2\",\"data\":\"%s\"}" --pid "$server_pid"
    ;;
  consumer | consumer-200)
    local via=(--via mgmt)
    [ "${2:-}" = via-jetstream ] && via=(--via jetstream --nats-url "nats://127.0.0.1:$nats_port" --subject switchboard.bench)
    [ "$1" = consumer-200 ] && via+=(--rate 200)
    echo fanout --url "$ws_url" --subscribers 100 --messages 5000 --size 100 --topic t --pid "$server_pid" "${via[@]}"
    ;;
  putevents | putevents-queue)
    local via=(--via mgmt) n=5000
    case ${2:-} in via-putevents | via-queue) via=(--via putevents) ;; esac
    [ "$1" = putevents-queue ] && n=2000 && via+=(--rate 200)
    echo fanout --url "$ws_url" --subscribers 100 --messages "$n" --size 100 --topic t --pid "$server_pid" "${via[@]}"
    ;;
  start)
    local common=(start --message '{"action":"whoami"}' --expect welcome --repeat 20 --duration 3m --dir "$start_dir")
    case ${2:-gateway} in
    serverless-offline)
      # It listens on localhost; its HTTP and Lambda ports must be free too.
      local hp='$HTTP_PORT' lp='$LAMBDA_PORT'
      if [ "$start_port" != '$PORT' ]; then
        hp=$(free_port "$start_port") && lp=$(free_port "$start_port" "$hp") || { echo "run.sh: no free loopback port" >&2; exit 1; }
      fi
      echo "${common[@]}" --url "ws://localhost:$start_port" --log "$OUT/logs/$3.out" -- \
        "$start_dir/node_modules/.bin/serverless" offline --websocketPort "$start_port" --httpPort "$hp" --lambdaPort "$lp"
      ;;
    gateway | gateway-warm)
      local warm=()
      [ "$2" = gateway-warm ] && warm=(--warm)
      echo "${common[@]}" --url "ws://127.0.0.1:$start_port" --log "$OUT/logs/$3.out" -- \
        env "SWITCHBOARD_DATA_DIR=$OUT/data" "$OUT/bin/switchboard" serve --project serverless.yml \
        --listen "127.0.0.1:$start_port" --log-level warn "${warm[@]}"
      ;;
    esac
    ;;
  esac
}

# setup_start makes the start case's project: examples/chat-node
# (serverless_project).
setup_start() {
  start_dir=$OUT/start-project
  serverless_project examples/chat-node "$start_dir" handler.js package.json package-lock.json serverless.yml || exit 1
}

# results_of CASE: the file of raw results the case's table is made from:
# the suite's cases share one (ceiling, gateway and peer); each cluster case has
# its own, as it compares other servers.
results_of() {
  case $1 in
  cluster-* | start | ordering | function-echo | offline-* | consumer* | putevents* | fanout-fresh) echo "$1.jsonl" ;;
  *) echo results.jsonl ;;
  esac
}

# runs_of CASE: how many times each side runs the case: RUNS, and three
# times as many for fanout-fresh, whose bursts are short and whose figure
# is the spread between two sides, and for echo, whose messages/s moves by
# ±4% from one pair of runs to the next on a machine the load generator
# shares, more than the margin its target is about.
runs_of() {
  case $1 in
  fanout-fresh | echo) echo $((3 * RUNS)) ;;
  *) echo "$RUNS" ;;
  esac
}

load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
started=$(date +%s)
cluster_load=""
for c in $CASES; do
  case_now=$c
  [ "$c" = start ] && setup_start
  if [[ $c == offline-* ]] && ! setup_offline; then
    echo "run.sh: $c skipped: the npm registry is needed for it" >&2
    continue
  fi
  if [ -z "$cluster_load" ] && [ "$(results_of "$c")" != results.jsonl ]; then
    cluster_load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
  fi
  title=$(case_title "$c")
  [ -n "$title" ] || { echo "run.sh: unknown case $c" >&2; exit 1; }
  runs=$(runs_of "$c")
  for run in $(seq "$runs"); do
    for kind in $(sides "$c"); do
      cpu=$(pinned "$c")
      start_side "$kind" "$c-$kind-$run" "$cpu"
      lg=("${loadgen[@]}")
      [ -n "$cpu" ] && lg=(taskset -c 1 "${loadgen[@]}")
      # Word splitting of case_args is intended; the route template has no spaces.
      read -r -a args <<<"$(case_args "$c" "$kind" "$c-$kind-$run")"
      prof_pid=""
      if [ -n "$PROFILE" ] && [ "$kind" = gateway ] && [ "$run" = 1 ] && [ "$c" != conns ]; then
        mkdir -p "$OUT/profiles"
        curl -sS -o "$OUT/profiles/$c.cpu.pprof" "$web_url/debug/pprof/profile?seconds=10" &
        prof_pid=$!
        pids+=("$prof_pid")
      fi
      echo "== $title: $kind, run $run/$runs" >&2
      if [[ $kind == warmed* ]]; then
        # Two unmeasured bursts: the measured one is the process's third.
        "${lg[@]}" "${args[@]}" >/dev/null 2>>"$OUT/logs/progress.log" || true
        "${lg[@]}" "${args[@]}" >/dev/null 2>>"$OUT/logs/progress.log" || true
      fi
      if [ "$c" = ordering ] || [ "$c" = function-echo ] || [[ $c == offline-* ]] || [ "$kind" = via-queue ]; then
        # Unmeasured: starts the function's processes, so that the
        # measured run compares warm invocations.
        "${lg[@]}" "${args[@]}" >/dev/null 2>>"$OUT/logs/progress.log" || true
        # The tutorial's $disconnect handlers remove the warm-up's
        # connections from the table before the measured run.
        [[ $c == offline-* ]] && sleep 3
      fi
      status=0
      line=$("${lg[@]}" "${args[@]}" 2>>"$OUT/logs/progress.log") || status=$?
      if [ -n "$prof_pid" ]; then
        wait "$prof_pid" 2>/dev/null || true
        curl -sS -o "$OUT/profiles/$c.heap.pprof" "$web_url/debug/pprof/heap" || true
      fi
      [ -n "$line" ] || line=null
      printf '{"case":"%s","title":"%s","server":"%s","run":%d,"exit":%d,"result":%s}\n' \
        "$c" "$title" "$kind" "$run" "$status" "$line" >>"$OUT/$(results_of "$c")"
      echo "   exit $status: $line" >&2
      stop_server
    done
  done
done
elapsed=$(($(date +%s) - started))

table=""
if [ -s "$results" ]; then
  table=$("$OUT/bin/report" <"$results")
  echo
  echo "$table"
fi
cluster_tables=""
events_tables=""
start_tables=""
ordering_table=""
function_table=""
offline_tables=""
fresh_tables=""
for c in $CASES; do
  f=$OUT/$(results_of "$c")
  [ "$f" != "$results" ] && [ -s "$f" ] || continue
  if [ "$c" = start ]; then
    # Both of the gateway's starts against serverless-offline's, from the same runs.
    start_tables=$("$OUT/bin/report" -base serverless-offline -other gateway <"$f")$'\n\n'
    start_tables+=$("$OUT/bin/report" -base serverless-offline -other gateway-warm <"$f")
    echo
    echo "$start_tables"
    continue
  fi
  if [ "$c" = fanout-fresh ]; then
    fresh_tables=$("$OUT/bin/report" -base warmed -other fresh <"$f")$'\n\n'
    fresh_tables+=$("$OUT/bin/report" -base warmed -other fresh-untouched <"$f")$'\n\n'
    fresh_tables+=$("$OUT/bin/report" -base warmed-nofloor -other fresh-nofloor <"$f")
    echo
    echo "$fresh_tables"
    continue
  fi
  if [ "$c" = ordering ]; then
    ordering_table=$("$OUT/bin/report" -base ordered -other concurrent <"$f")
    echo
    echo "$ordering_table"
    continue
  fi
  if [[ $c == offline-* ]]; then
    offline_tables+=$("$OUT/bin/report" -base serverless-offline -other gateway <"$f")$'\n\n'
    continue
  fi
  if [ "$c" = function-echo ]; then
    function_table=$("$OUT/bin/report" -base http -other node <"$f")$'\n\n'
    function_table+=$("$OUT/bin/report" -base http -other go <"$f")
    echo
    echo "$function_table"
    continue
  fi
  read -r base other <<<"$(sides "$c")"
  case $c in
  consumer* | putevents*) events_tables+=$("$OUT/bin/report" -base "$base" -other "$other" <"$f")$'\n\n' ;;
  *) cluster_tables+=$("$OUT/bin/report" -base "$base" -other "$other" <"$f")$'\n\n' ;;
  esac
done
if [ -n "$cluster_tables" ]; then
  echo
  echo "$cluster_tables"
fi
if [ -n "$events_tables" ]; then
  echo
  echo "$events_tables"
fi

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
  echo "workload ($(runs_of echo) of echo and fanout-fresh) against a fresh ceiling server (\`bench/ceiling\`), a fresh gateway"
  echo "and, where it runs the workload, a fresh peer (\`bench/peer-centrifuge\`), in turn"
  echo "(SIDES=\"$SIDES\"), with the load generator (\`switchboard bench\`) on the same machine."
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
  echo "server's time on a CPU over the measured phase, per unit of work: the sum"
  echo "of its threads' /proc/PID/task/TID/schedstat, to the nanosecond, or the"
  echo "ticks of /proc/PID/stat when threads ended during the phase). The gateway runs with \`--pprof\`, an echo \`\$default\` route"
  echo "beside the zero-config routes, large send queues, no idle or lifetime limits,"
  echo "no pings (the ceiling sends none) and no access log:"
  echo
  echo '```yaml'
  cat "$OUT/gateway.yaml"
  echo '```'
  echo
  echo "The peer is a server on github.com/centrifugal/centrifuge (Centrifugo's"
  echo "core) as its users write one, loaded through the library's own client"
  echo "protocol, JSON over WebSocket (\`--protocol centrifuge\`): a connection is"
  echo "open once its connect command is answered, echo is an RPC answered with its"
  echo "data, a fan-out is a channel every subscriber subscribed to and a client"
  echo "(or, via mgmt, the server API) publishes in. It sends no pings either and"
  echo "queues up to 256 MiB per client. It has no management API of connections:"
  echo "the mgmt cases run without it. Its ratios are the gateway's median over the"
  echo "peer's, read like the ceiling's."
  echo
  echo "$table"
  echo
  echo "The commands, for a server at \$WS (ws://127.0.0.1:PORT) and \$WEB (http://127.0.0.1:PORT):"
  echo
  echo '```sh'
  for c in $CASES; do
    [ "$(results_of "$c")" = results.jsonl ] || continue
    ws_url='$WS' web_url='$WEB' server_pid='$PID' metrics_url='$WEB/metrics'
    prefix=""
    [ -n "$(pinned "$c" 2>/dev/null)" ] && prefix="taskset -c 1 "
    echo "${prefix}switchboard bench $(case_args "$c" | sed -e "s/{\"action\":\"echo\",\"data\":\"%s\"}/'&'/" -e 's/[^ ]*?gc=1/"&"/')"
    if [[ " $(sides "$c") " == *" peer "* ]]; then
      ws_url='$WS/connection/websocket' metrics_url='$WEB/debug/vars'
      echo "switchboard bench $(case_args "$c" peer | sed -e 's/[^ ]*?gc=1/"&"/')   # against the peer"
    fi
  done
  echo '```'
  if [ -f "$repo/bench/NOTES.md" ]; then
    echo
    cat "$repo/bench/NOTES.md"
  fi
  if [ -n "$cluster_tables" ]; then
    echo
    echo "## Across nodes"
    echo
    echo "Three gateway processes with the configuration above, each joined to the"
    echo "others over its embedded NATS server (\`--cluster embedded\`), against one"
    echo "gateway, in the same run; the load generator shares the machine with all"
    echo "of them. Server CPU is the sum over the processes measured (all three"
    echo "nodes on the cluster's side), per unit of work. Load average before the"
    echo "first cluster case (1, 5, 15 min): $cluster_load."
    echo
    echo "$cluster_tables"
    echo "The cluster and the commands, for nodes at \$WS1…\$WS3 (ws://127.0.0.1:PORT)"
    echo "and \$WEB1, \$WEB2 (http://127.0.0.1:PORT), and their PIDs:"
    echo
    echo '```sh'
    echo "switchboard serve --config gateway.yaml --cluster embedded --node node1 \\"
    echo "  --cluster-listen 127.0.0.1:R1 --cluster-peers 127.0.0.1:R1,127.0.0.1:R2,127.0.0.1:R3   # node2, node3 alike"
    for c in $CASES; do
      [ "$(results_of "$c")" = results.jsonl ] && continue
      server_pid='$PID1,$PID2,$PID3'
      case $c in
      cluster-fanout)
        ws_url='$WS1,$WS2,$WS3'
        echo "switchboard bench $(case_args "$c")"
        ws_url='$WS' server_pid='$PID'
        echo "switchboard bench $(case_args "$c")   # against one node"
        ;;
      cluster-mgmt)
        ws_url='$WS1' web_url='$WEB2'
        echo "switchboard bench $(case_args "$c")"
        web_url='$WEB1'
        echo "switchboard bench $(case_args "$c")   # through the holder"
        ;;
      esac
    done
    echo '```'
  fi
  if [ -n "$events_tables" ]; then
    echo
    echo "## Events to the subscribers"
    echo
    echo "100 subscribers of a topic, with the suite's gateway: messages published to the"
    echo "topic through the management API (the baseline), against the same messages as"
    echo "events that reach the topic another way, in the same run. consumer: events on"
    echo "a JetStream subject of the gateway's embedded NATS server, read by a consumer"
    echo "(consumer-200 at 200 events/s). putevents: one PutEvents call of one entry"
    echo "each, through a rule whose target is the topic. putevents-queue: the same at"
    echo "200 events/s, through a rule into a queue whose trigger runs a Node function (up to 4"
    echo "processes, started by an unmeasured run first) that publishes each event to the topic"
    echo "through the management API;"
    echo "server CPU is the gateway's alone, not its function's. Latency is from the"
    echo "publish (or the PutEvents call) to the subscriber."
    echo
    echo "$events_tables"
    echo '```sh'
    ws_url='$WS' server_pid='$PID' nats_port='$NATS_PORT'
    for c in $CASES; do
      case $c in
      consumer* | putevents*)
        read -r base other <<<"$(sides "$c")"
        echo "switchboard bench $(case_args "$c" "$other")   # $c"
        ;;
      esac
    done
    echo '```'
  fi
  if [ -n "$fresh_tables" ]; then
    echo
    echo "## A fresh process's first burst"
    echo
    echo "fanout 1000 × 200 × 100 B against a fresh gateway each run, $(runs_of fanout-fresh) runs a side: fresh measures"
    echo "the process's first burst; warmed the third, after two unmeasured ones on"
    echo "the same process. Ratios are fresh over warmed: 1 means the first burst"
    echo "costs what a warmed process's does. The first table is the gateway as it"
    echo "runs by default, with its heap floor (\`heapFloor\`, 32 MiB) touched at start"
    echo "(\`heapFloorResident\`); the second with the floor's pages left untouched"
    echo "(\`heapFloorResident: false\`), against the same warmed runs; the third"
    echo "with GOGC=100 in the environment, which turns the floor off."
    echo
    echo "$fresh_tables"
    echo
    echo '```sh'
    ws_url='$WS' server_pid='$PID'
    echo "switchboard bench $(case_args fanout-fresh)   # three times against one process: the first and the third"
    echo '```'
  fi
  if [ -n "$ordering_table" ]; then
    echo
    echo "## A hosted function's route, ordered and concurrent"
    echo
    echo "Echo through a Node function (up to 16 processes) that sleeps 25 ms and"
    echo "answers with the message, from one connection that keeps 32 messages"
    echo "waiting, against a gateway whose route is ordered (one message of a"
    echo "connection at a time) and one whose route is concurrent (each at once, as"
    echo "API Gateway), after an unmeasured run that starts the processes. Server"
    echo "CPU is the gateway's alone, not its functions'. Ratios are concurrent over ordered."
    echo
    echo "$ordering_table"
    echo
    echo '```yaml'
    cat "$OUT/gateway-concurrent.yaml"
    echo '```'
    echo
    echo '```sh'
    ws_url='$WS' server_pid='$PID'
    echo "switchboard bench $(case_args ordering)"
    echo '```'
  fi
  if [ -n "$function_table" ]; then
    echo
    echo "## A warm function's round trip, beside the http integration's"
    echo
    echo "Echo from one connection, one message at a time, through a gateway with three"
    echo "two-way routes: http, the http integration to a local HTTP backend"
    echo "(examples/http-backend, whose answer carries the message); node, a hosted"
    echo "Node function that answers with the message; go, a hosted Go function built"
    echo "with aws-lambda-go (internal/server/testdata/goecho) that does the same; each"
    echo "after an unmeasured run that starts its process. Server CPU is the gateway's"
    echo "alone, not its function's nor the backend's. Ratios are node, then go, over http."
    echo
    echo "$function_table"
    echo
    echo '```yaml'
    sed -e 's|127\.0\.0\.1:[0-9]*|127.0.0.1:PORT|' -e "s|$OUT/bin/|./|" "$OUT/gateway-function-echo.yaml"
    echo '```'
    echo
    echo '```sh'
    ws_url='$WS' server_pid='$PID'
    echo "switchboard bench $(case_args function-echo http)"
    echo "switchboard bench $(case_args function-echo node)"
    echo "switchboard bench $(case_args function-echo go)"
    echo '```'
  fi
  if [ -n "$offline_tables" ]; then
    echo
    echo "## The chat tutorial, beside serverless-offline"
    echo
    echo "The WebSocket chat tutorial as its users write it (bench/chat-tutorial:"
    echo "Node handlers on the AWS SDK for JavaScript v2, connection IDs in a"
    echo "DynamoDB table, replies and broadcasts through PostToConnection) run by"
    echo "serverless-offline $SLS_OFFLINE_VERSION under the Serverless Framework $SLS_VERSION"
    echo "and by \`switchboard serve --project\`, in turn, each on a fresh table in"
    echo "dynalite (a DynamoDB on Node) and after an unmeasured run of the same"
    echo "load that starts the handlers. Echo: 20 connections, each sending its next"
    echo "message once the echo handler has posted the last one back. Fan-out: 100"
    echo "subscribers of the broadcasts of one more connection's sendMessage, whose"
    echo "handler scans the table and posts to every connection. Server CPU is the"
    echo "server process's: serverless-offline's includes its handlers (they run in"
    echo "its worker threads), the gateway's does not (each function runs in"
    echo "processes of its own), so its ratio says little. Ratios are the gateway's"
    echo "median over serverless-offline's."
    echo
    echo "$offline_tables"
    echo '```sh'
    ws_url='$WS' server_pid='$PID'
    for c in $CASES; do
      [[ $c == offline-* ]] && echo "switchboard bench $(case_args "$c" gateway)"
    done
    echo '```'
  fi
  if [ -n "$start_tables" ]; then
    echo
    echo "## Start to ready, beside serverless-offline"
    echo
    echo "examples/chat-node (a serverless.yml of four Node functions, the AWS SDK"
    echo "for JavaScript v3 among their dependencies) run by \`switchboard serve"
    echo "--project\`, without and with \`--warm\`, and by serverless-offline"
    echo "$SLS_OFFLINE_VERSION under the Serverless Framework $SLS_VERSION (from npm), in turn,"
    echo "each started by \`switchboard bench start\`: ready is the time from the"
    echo "start to the first WebSocket handshake answered (\$connect ran), first"
    echo "message the round trip of the first whoami (a two-way route: its function's"
    echo "first invocation), first answer their sum, warm message the median of"
    echo "the 20 whoami that follow. Ratios below 1 are better."
    echo
    echo "$start_tables"
    echo
    echo '```sh'
    start_dir='$PROJECT' start_port='$PORT' OUT='$OUT'
    for k in gateway gateway-warm serverless-offline; do
      echo "switchboard bench $(case_args start "$k" "$k" | sed -e "s/{\"action\":\"whoami\"}/'&'/")"
    done
    echo '```'
  fi
} >"$repo/bench/RESULTS.md"
echo >&2
echo "== wrote bench/RESULTS.md; raw results in $results" >&2
