#!/usr/bin/env bash
# Add a worker node to the running local cluster of start.sh (a replacement for a lost node, or
# one more): the same settings as start.sh's workers, recorded in .state/pids so that stop.sh
# stops it too.
#
#   cluster/local/add_worker.sh NAME          # e.g. worker2: resources as start.sh's workers
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV_BIN="${DMT_VENV_BIN:-$REPO/.venv/bin}"
STATE="${DMT_CLUSTER_STATE:-$HERE/.state}"
NAME="${1:?usage: add_worker.sh NAME}"

die() { echo "add_worker.sh: $*" >&2; exit 1; }
[[ -f "$STATE/env.sh" && -f "$STATE/worker_resources" ]] || die "no cluster in $STATE: start.sh first"
[[ "$NAME" =~ ^[A-Za-z0-9_-]+$ ]] || die "NAME: letters, digits, - and _ only"
grep -q "^$NAME " "$STATE/pids" 2>/dev/null && die "$NAME is already in $STATE/pids"

# shellcheck disable=SC1091
source "$STATE/env.sh"  # RAY_ADDRESS, RAY_API_SERVER_ADDRESS, the token
TEMP_ROOT="$(cat "$STATE/temp_dir")"
# shellcheck disable=SC1091
source "$STATE/worker_resources"  # NODE_MEMORY, OBJECT_STORE, WORKER_CPUS, WORKER_GPUS
export PATH="$VENV_BIN:$PATH" RAY_USAGE_STATS_ENABLED=0 RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0
export RAY_DATA_PARQUET_FOOTER_NUM_ACTORS="${RAY_DATA_PARQUET_FOOTER_NUM_ACTORS:-1}"
unset RAY_AUTH_TOKEN_PATH
port="$("$VENV_BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log="$STATE/logs/$NAME.log"
setsid nohup "$VENV_BIN/ray" start --block --address "$RAY_ADDRESS" --node-ip-address 127.0.0.1 \
    --memory "$NODE_MEMORY" --object-store-memory "$OBJECT_STORE" --disable-usage-stats \
    --num-cpus "$WORKER_CPUS" --num-gpus "$WORKER_GPUS" \
    --dashboard-agent-listen-port "$port" --temp-dir "$TEMP_ROOT/$NAME" \
    > "$log" 2>&1 < /dev/null &
pid=$!
echo "$NAME $pid" >> "$STATE/pids"
deadline=$((SECONDS + ${DMT_START_TIMEOUT:-180}))
until grep -q "Ray runtime started" "$log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )) || {
        echo "add_worker.sh: $NAME did not start; last lines of $log:" >&2
        tail -n 30 "$log" >&2; exit 1; }
    sleep 1
done
echo "$NAME joined $RAY_ADDRESS (session $pid)"
