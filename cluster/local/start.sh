#!/usr/bin/env bash
# A local multi-node Ray cluster on this machine (a head + N worker nodes), with token
# authentication on, everything bound to 127.0.0.1, and an MLflow tracking server.
#
#   cluster/local/start.sh [N_WORKERS]        # default 1 (or $DMT_CLUSTER_WORKERS)
#   source cluster/local/.state/env.sh        # the exports it prints
#   dmt submit demo --config jobs/configs/smoke.yaml --set data.root=$PWD/data/smoke ...
#   cluster/local/stop.sh                     # stops exactly what this script started
#
# Every node gets explicit resources (two nodes on one host would otherwise each claim the whole
# machine) and its own temp dir; each `ray start --block` runs in its own session (setsid) and
# its id is recorded in .state/pids, so stop.sh ends only these processes (never `ray stop`,
# which kills every Ray process of the machine, other people's too).
#
# Settings (environment variables, defaults in brackets):
#   DMT_CLUSTER_WORKERS [1]       worker nodes (the first argument wins)
#   DMT_HEAD_CPUS [2]  DMT_WORKER_CPUS [2]  DMT_WORKER_GPUS [0]   logical CPUs/GPUs per node
#   DMT_NODE_MEMORY [4GB]  DMT_OBJECT_STORE_MEMORY [500MB]        per node (bytes, or KB/MB/GB)
#   DMT_GCS_PORT [6379]  DMT_DASHBOARD_PORT [8265]  DMT_MLFLOW_PORT [5000]
#       a default port that is taken is replaced by a free one; an explicit one must be free
#   DMT_MLFLOW [1]                0: no MLflow server
#   DMT_MLFLOW_BACKEND [sqlite:///REPO/mlflow.db]  DMT_MLFLOW_ARTIFACTS [REPO/mlartifacts]
#   DMT_CLUSTER_STATE [cluster/local/.state]       token, pids, logs, env.sh
#   DMT_START_TIMEOUT [180]       seconds each node (and MLflow) may take to come up
#   DMT_RAY_TEMP_DIR [/tmp/dmt-ray-UID-HASH]       Ray's temp dirs (short: socket paths
#                                                   must stay under 107 bytes)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV_BIN="${DMT_VENV_BIN:-$REPO/.venv/bin}"
RAY="$VENV_BIN/ray"
PY="$VENV_BIN/python"
STATE="${DMT_CLUSTER_STATE:-$HERE/.state}"
WORKERS="${1:-${DMT_CLUSTER_WORKERS:-1}}"
HEAD_CPUS="${DMT_HEAD_CPUS:-2}"
WORKER_CPUS="${DMT_WORKER_CPUS:-2}"
WORKER_GPUS="${DMT_WORKER_GPUS:-0}"
MLFLOW="${DMT_MLFLOW:-1}"

die() { echo "start.sh: $*" >&2; exit 1; }

[[ -x "$RAY" ]] || die "$RAY not found: run \`make test\` (or \`make demo\`) first to create .venv"
[[ "$WORKERS" =~ ^[0-9]+$ ]] || die "N_WORKERS must be a number, got '$WORKERS'"

bytes() {  # 4GB / 500MB / 123 -> bytes
    local v="${1^^}"
    case "$v" in
        *GB) echo $(( ${v%GB} * 1024 * 1024 * 1024 ));;
        *MB) echo $(( ${v%MB} * 1024 * 1024 ));;
        *KB) echo $(( ${v%KB} * 1024 ));;
        *[!0-9]*) die "cannot read '$1' as a size (use e.g. 4GB, 500MB or bytes)";;
        *) echo "$v";;
    esac
}
NODE_MEMORY="$(bytes "${DMT_NODE_MEMORY:-4GB}")"
OBJECT_STORE="$(bytes "${DMT_OBJECT_STORE_MEMORY:-500MB}")"

port_free() { "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
pick_port() {  # pick_port NAME VAR DEFAULT: an explicit port must be free; a default may move
    local name="$1" var="$2" default="$3" value="${!2:-}"
    if [[ -n "$value" ]]; then
        port_free "$value" || die "$var=$value: port taken (choose another $name port)"
        echo "$value"
    elif port_free "$default"; then
        echo "$default"
    else
        local p; p="$(free_port)"
        echo "start.sh: $name port $default is taken (another Ray or MLflow?); using $p" >&2
        echo "$p"
    fi
}

if [[ -f "$STATE/pids" ]]; then
    alive=""
    while read -r _name pid; do
        kill -0 "$pid" 2>/dev/null && alive="$alive $pid"
    done < "$STATE/pids"
    [[ -z "$alive" ]] || die "a cluster from $STATE is running (pids$alive): cluster/local/stop.sh first"
    rm -f "$STATE/pids"
fi
mkdir -p "$STATE/logs"
chmod 700 "$STATE"

# ---- token: generated once, kept (0600) so the exports stay valid across restarts
TOKEN_FILE="$STATE/auth_token"
if [[ ! -s "$TOKEN_FILE" ]]; then
    (umask 077; if command -v openssl >/dev/null; then openssl rand -hex 32; else
        "$PY" -c 'import secrets; print(secrets.token_hex(32))'; fi > "$TOKEN_FILE")
fi
chmod 600 "$TOKEN_FILE"
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN="$(tr -d '[:space:]' < "$TOKEN_FILE")"
export RAY_AUTH_TOKEN
unset RAY_AUTH_TOKEN_PATH RAY_ADDRESS

GCS_PORT="$(pick_port GCS DMT_GCS_PORT 6379)"
DASH_PORT="$(pick_port dashboard DMT_DASHBOARD_PORT 8265)"
TEMP_ROOT="${DMT_RAY_TEMP_DIR:-/tmp/dmt-ray-$(id -u)-$(printf %s "$STATE" | cksum | cut -d' ' -f1)}"
mkdir -p "$TEMP_ROOT"
echo "$TEMP_ROOT" > "$STATE/temp_dir"
# what add_worker.sh gives a node it adds (a replacement for a lost one)
printf 'NODE_MEMORY=%s\nOBJECT_STORE=%s\nWORKER_CPUS=%s\nWORKER_GPUS=%s\n' \
    "$NODE_MEMORY" "$OBJECT_STORE" "$WORKER_CPUS" "$WORKER_GPUS" > "$STATE/worker_resources"

# The job driver runs `python` from the nodes' PATH: make it this venv's.
export PATH="$VENV_BIN:$PATH"
export RAY_DATA_PARQUET_FOOTER_NUM_ACTORS="${RAY_DATA_PARQUET_FOOTER_NUM_ACTORS:-1}"
export RAY_USAGE_STATS_ENABLED=0
# SIGTERM to `ray start --block` (stop.sh) tears the node down at once (no Serve drain wait).
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0
# Processes on the nodes that use the state API without an address (Ray Train's placement-group
# cleaner) would otherwise look for "the" local GCS and fail when other Ray instances run on the
# same machine ("Found multiple active Ray instances").
export RAY_API_SERVER_ADDRESS="http://127.0.0.1:$DASH_PORT"

COMMON=(--block --node-ip-address 127.0.0.1 --memory "$NODE_MEMORY"
        --object-store-memory "$OBJECT_STORE" --disable-usage-stats)

launch() {  # launch NAME LOGFILE CMD...: own session, pid recorded
    local name="$1" log="$2"; shift 2
    setsid nohup "$@" > "$log" 2>&1 < /dev/null &
    local pid=$!
    echo "$name $pid" >> "$STATE/pids"
    echo "$pid"
}

wait_until() {  # wait_until NAME PID LOG SECONDS CHECK...: poll CHECK; on death or timeout, clean up
    local name="$1" pid="$2" log="$3" deadline=$((SECONDS + $4)); shift 4
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null || (( SECONDS > deadline )); then
            echo "start.sh: $name did not start; last lines of $log:" >&2
            tail -n 30 "$log" >&2
            "$HERE/stop.sh" >&2 || true
            exit 1
        fi
        sleep 1
    done
}
ray_up() { grep -q "Ray runtime started" "$1" 2>/dev/null; }
mlflow_up() { curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1; }
START_TIMEOUT="${DMT_START_TIMEOUT:-180}"

MLFLOW_URI=""
if [[ "$MLFLOW" != "0" ]]; then
    ML_PORT="$(pick_port MLflow DMT_MLFLOW_PORT 5000)"
    BACKEND="${DMT_MLFLOW_BACKEND:-sqlite:///$REPO/mlflow.db}"
    ARTIFACTS="${DMT_MLFLOW_ARTIFACTS:-$REPO/mlartifacts}"
    mkdir -p "$ARTIFACTS"
    echo "starting MLflow server on 127.0.0.1:$ML_PORT ($BACKEND, artifacts $ARTIFACTS)"
    ML_LOG="$STATE/logs/mlflow.log"
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false  # no job-runner workers on small machines
    ML_PID="$(launch mlflow "$ML_LOG" \
        "$VENV_BIN/mlflow" server --backend-store-uri "$BACKEND" \
        --default-artifact-root "$ARTIFACTS" --host 127.0.0.1 --port "$ML_PORT" --workers 1)"
    wait_until "the MLflow server" "$ML_PID" "$ML_LOG" "$START_TIMEOUT" mlflow_up "$ML_PORT"
    MLFLOW_URI="http://127.0.0.1:$ML_PORT"
    # every job on the nodes logs there unless it sets its own MLFLOW_TRACKING_URI
    export MLFLOW_TRACKING_URI="$MLFLOW_URI"
fi

echo "starting head: $HEAD_CPUS CPUs, memory $NODE_MEMORY, object store $OBJECT_STORE (GCS 127.0.0.1:$GCS_PORT, dashboard 127.0.0.1:$DASH_PORT)"
HEAD_LOG="$STATE/logs/head.log"
HEAD_PID="$(launch head "$HEAD_LOG" "$RAY" start --head "${COMMON[@]}" \
    --port "$GCS_PORT" --num-cpus "$HEAD_CPUS" --num-gpus 0 \
    --dashboard-host 127.0.0.1 --dashboard-port "$DASH_PORT" \
    --ray-client-server-port "$(free_port)" \
    --dashboard-agent-listen-port "$(free_port)" \
    --temp-dir "$TEMP_ROOT/head")"
wait_until head "$HEAD_PID" "$HEAD_LOG" "$START_TIMEOUT" ray_up "$HEAD_LOG"

for i in $(seq 1 "$WORKERS"); do
    echo "starting worker $i: $WORKER_CPUS CPUs, $WORKER_GPUS GPUs, memory $NODE_MEMORY, object store $OBJECT_STORE"
    log="$STATE/logs/worker$i.log"
    pid="$(launch "worker$i" "$log" "$RAY" start --address "127.0.0.1:$GCS_PORT" "${COMMON[@]}" \
        --num-cpus "$WORKER_CPUS" --num-gpus "$WORKER_GPUS" \
        --dashboard-agent-listen-port "$(free_port)" \
        --temp-dir "$TEMP_ROOT/worker$i")"
    wait_until "worker$i" "$pid" "$log" "$START_TIMEOUT" ray_up "$log"
done

ENV_FILE="$STATE/env.sh"
(umask 077; cat > "$ENV_FILE" <<EOF
# written by cluster/local/start.sh; source it to talk to the local cluster
export RAY_ADDRESS=127.0.0.1:$GCS_PORT                     # drivers (dmt train ...) join the cluster
export RAY_API_SERVER_ADDRESS=http://127.0.0.1:$DASH_PORT  # dmt submit / dmt jobs / ray job ...
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN="\$(cat '$TOKEN_FILE')"
EOF
[[ -z "$MLFLOW_URI" ]] || echo "export MLFLOW_TRACKING_URI=$MLFLOW_URI" >> "$ENV_FILE")

echo
echo "cluster up: head + $WORKERS worker node(s); token auth on; process ids in $STATE/pids"
echo "dashboard:  http://127.0.0.1:$DASH_PORT  (the browser asks for the token)"
[[ -z "$MLFLOW_URI" ]] || echo "MLflow:     $MLFLOW_URI"
echo
echo "exports (or: source $ENV_FILE):"
grep '^export' "$ENV_FILE"
echo
echo "stop with: $HERE/stop.sh"
