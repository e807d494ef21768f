#!/usr/bin/env bash
# bench/front-ratio.sh [ROUNDS] [SECONDS]: issue 10's ratio, measured in alternating rounds so
# that the shared machine's load falls on every target alike: new client connections/s
# (`Connection: close`, `wrk -t2 -c16`) for GET /v1/subscription with a valid token, through
# nginx in front of the socat service and of the tcpserver service (pipelines/front's
# defaults: read and write pipelines apart, each pipeline on one CPU), nginx in front of one
# socat service of full pipelines free to move between CPUs (`--pipelines one --no-pin`, the
# setup before these two changes), and the Python reference (bench/python_reference.py). Prints one line
# per target and round, then each front's ratio to the Python reference per round.
#   EDGEPIPE_BIN  release binaries (default .build/release)
# Needs: wrk nginx socat ucspi-tcp python3 with PyJWT.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3} seconds=${2:-4}
export EDGEPIPE_BIN=${EDGEPIPE_BIN:-$top/.build/release}
PATH=$PATH:/usr/sbin:/sbin
work=$(mktemp -d /tmp/front-ratio.XXXXXX)
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "front-ratio: nothing on port $1" >&2; exit 1; }

declare -A port token
for target in socat tcpserver socat-one; do
    data=$work/$target p=$(free)
    shape=()
    [ "$target" = socat-one ] && shape=(--pipelines one --no-pin)
    EDGEPIPE_DATA=$data setsid "$top/pipelines/front" --launcher "${target%-one}" "${shape[@]}" \
        --port "$p" --tls-port "$(free)" --upstream-port "$(free)" --write-upstream-port "$(free)" \
        >"$work/$target.log" 2>&1 &
    pids+=($!)
    wait_port "$p"
    port[$target]=$p
    token[$target]=$(EDGEPIPE_DATA=$data "$EDGEPIPE_BIN/sign-jwt" dev --uid bench-user)
done
p=$(free)
setsid python3 "$top/bench/python_reference.py" --port "$p" --jwks "$work/socat/dev-keys/jwks.json" \
    --kv "$work/socat/kv" >"$work/python.log" 2>&1 &
pids+=($!)
wait_port "$p"
port[python]=$p token[python]=${token[socat]}

echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c16 -d${seconds}s, Connection: close"
for round in $(seq "$rounds"); do
    declare -A rate
    for target in socat tcpserver socat-one python; do
        rate[$target]=$(wrk -t2 -c16 -d"${seconds}s" -H "Authorization: Bearer ${token[$target]}" -H 'Connection: close' \
            "http://127.0.0.1:${port[$target]}/v1/subscription" | awk '/Requests\/sec/ {print $2}')
        echo "round $round: $target ${rate[$target]} conn/s"
    done
    awk -v s="${rate[socat]}" -v t="${rate[tcpserver]}" -v o="${rate[socat-one]}" -v p="${rate[python]}" -v r="$round" \
        'BEGIN { printf "round %d: nginx+socat %.2fx, nginx+tcpserver %.2fx, nginx+socat as before (full pipelines, unpinned) %.2fx the Python reference\n", r, s / p, t / p, o / p }'
done
