#!/usr/bin/env bash
# Stop the local cluster of cluster/local/start.sh: exactly the processes it started.
#
# start.sh runs each `ray start --block` (and the MLflow server) in its own session (setsid) and
# records its id in .state/pids. Every process of such a session -- raylet, GCS, dashboard, the
# Ray workers of that node -- carries that session id, so this script signals those sessions and
# nothing else. `ray stop` is never used: it kills every Ray process of the machine.
#
#   cluster/local/stop.sh            # SIGTERM, then SIGKILL after ${DMT_STOP_GRACE:-20} s
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${DMT_CLUSTER_STATE:-$HERE/.state}"
PIDS="$STATE/pids"
GRACE="${DMT_STOP_GRACE:-20}"

if [[ ! -f "$PIDS" ]]; then
    echo "stop.sh: no cluster recorded in $STATE (nothing to stop)"
    exit 0
fi

sessions=()
while read -r name pid; do
    [[ "$pid" =~ ^[0-9]+$ ]] && sessions+=("$pid") && echo "stopping $name (session $pid)"
done < "$PIDS"

members() {  # pids of every live process in our sessions
    local sid_list; sid_list="$(IFS=,; echo "${sessions[*]}")"
    ps -e -o pid=,sid=,stat= | awk -v s=",$sid_list," 'index(s, "," $2 ",") && $3 !~ /^Z/ { print $1 }'
}

signal_all() {
    local sig="$1" p
    for p in $(members); do kill "-$sig" "$p" 2>/dev/null; done
}

wait_gone() {  # wait_gone SECONDS: until no member is left (or the time is up)
    local deadline=$((SECONDS + $1))
    while [[ -n "$(members)" ]] && (( SECONDS < deadline )); do
        sleep 1
    done
}

# SIGTERM to each session leader (`ray start --block`, `mlflow server`): Ray's handler stops the
# node's own processes. Workers first, head last, so the GCS sees its nodes leave.
for ((i=${#sessions[@]}-1; i>=0; i--)); do
    kill -TERM "${sessions[$i]}" 2>/dev/null
done
wait_gone "$GRACE"
if [[ -n "$(members)" ]]; then
    signal_all TERM
    wait_gone 5
fi
left="$(members | tr '\n' ' ')"
if [[ -n "$left" ]]; then
    echo "stop.sh: still running after ${GRACE}s, killing: $left"
    signal_all KILL
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        [[ -z "$(members)" ]] && break
        sleep 1
    done
fi
left="$(members | tr '\n' ' ')"
if [[ -n "$left" ]]; then
    echo "stop.sh: could not stop: $left" >&2
    exit 1
fi
rm -f "$PIDS"
TEMP_ROOT="$(cat "$STATE/temp_dir" 2>/dev/null || true)"
if [[ "${DMT_KEEP_TEMP:-0}" == 0 && -n "$TEMP_ROOT" && -d "$TEMP_ROOT" && "$TEMP_ROOT" == /tmp/dmt-ray-* ]]; then
    rm -rf "$TEMP_ROOT"
fi
echo "stopped (the token stays in $STATE/auth_token for the next start)"
