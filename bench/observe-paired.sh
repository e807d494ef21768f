#!/usr/bin/env bash
# bench/observe-paired.sh [ROUNDS] [SECONDS]: what metrics cost the read path, measured
# with both services loaded at the same time (issue 17: at most 2% of its throughput).
#
# bench/observe.sh runs one service after another; on a VM whose speed moves between
# seconds, its rounds spread by 10% or more, several times the 2% being measured. Here
# two read services alike but for EDGEPIPE_METRICS (off, and on: a fresh file) take load
# at the same moment, each from its own wrk -t1 -c8 (keep-alive GET /v1/subscription with a
# valid token), so whatever the machine does in a round, it does to both. Both share the
# two CPUs: the service whose requests cost more CPU serves fewer of them. Each round
# starts the two wrk in turn, the first alternating. Per round: each service's requests/s
# and the CPU its pipelines used per request (user + system time of every stage, from
# socat's reaped children); then the per-round differences of "metrics" against "off",
# as median, mean and standard error. The access log is off in both. SAME=1 runs metrics off
# in both: an A/A check of the method.
#   EDGEPIPE_BIN  release binaries (default .build/release)
# Needs: wrk socat.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-20} seconds=${2:-5}
export EDGEPIPE_BIN=${EDGEPIPE_BIN:-$top/.build/release}
for tool in wrk socat; do
    command -v "$tool" >/dev/null || { echo "observe-paired.sh: $tool is missing (apt-get install -y $tool)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/observe-paired.XXXXXX)
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "observe-paired.sh: nothing on port $1" >&2; exit 1; }

targets=(off metrics)
declare -A port token pid
for target in "${targets[@]}"; do
    data=$work/$target p=$(free)
    settings=(EDGEPIPE_ACCESS_LOG=off)
    # SAME=1: both services off, an A/A run that shows what the method itself reads as a cost.
    [ "$target" = off ] || [ "${SAME:-0}" = 1 ] && settings+=(EDGEPIPE_METRICS=off)
    env "${settings[@]}" EDGEPIPE_DATA="$data" EDGEPIPE_PORT="$p" setsid "$top/pipelines/serve" --pipeline read \
        >"$work/$target.log" 2>&1 &
    pids+=($!)
    pid[$target]=$!
    wait_port "$p"
    port[$target]=$p
    token[$target]=$(EDGEPIPE_DATA=$data "$EDGEPIPE_BIN/sign-jwt" dev --uid bench-user --ttl 7200)
    "$EDGEPIPE_BIN/kv" --store "$data/kv" put sub/bench-user \
        '{"uid":"bench-user","status":"active","plan":"pro","current_period_end":4102444800,"cancel_at_period_end":false,"customer":"cus_bench","subscription":"sub_bench","updated":1763900000}' >/dev/null
done

echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); two wrk -t1 -c8 -d${seconds}s at once, keep-alive GET /v1/subscription"
ticks() { awk '{ print $16 + $17 }' "/proc/$1/stat"; }
settle() {   # until socat has reaped every pipeline of the run (its children's times stop moving)
    local last=-1 now
    now=$(ticks "$1")
    for _ in $(seq 50); do [ "$now" = "$last" ] && break; sleep 0.2; last=$now now=$(ticks "$1"); done
    echo "$now"
}
hz=$(getconf CLK_TCK)
rate_diffs="" cpu_diffs=""
for round in $(seq "$rounds"); do
    order=("${targets[@]}")
    [ $((round % 2)) = 0 ] && order=(metrics off)
    declare -A before=() rate=() used=()
    for target in "${targets[@]}"; do before[$target]=$(ticks "${pid[$target]}"); done
    loads=()
    for target in "${order[@]}"; do
        wrk -t1 -c8 -d"${seconds}s" -H "Authorization: Bearer ${token[$target]}" \
            "http://127.0.0.1:${port[$target]}/v1/subscription" >"$work/wrk.$target" &
        loads+=($!)
    done
    wait "${loads[@]}"
    for target in "${targets[@]}"; do
        rate[$target]=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.$target")
        requests=$(awk '/requests in/ {print $1}' "$work/wrk.$target")
        grep -q 'Non-2xx' "$work/wrk.$target" && { echo "observe-paired.sh: $target answered non-2xx" >&2; exit 1; }
        now=$(settle "${pid[$target]}")
        used[$target]=$(awk -v t=$((now - before[$target])) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    done
    rd=$(awk -v r="${rate[metrics]}" -v b="${rate[off]}" 'BEGIN { printf "%.2f", (r - b) * 100 / b }')
    cd=$(awk -v r="${used[metrics]}" -v b="${used[off]}" 'BEGIN { printf "%.2f", (r - b) * 100 / b }')
    echo "round $round (${order[0]} first): off ${rate[off]} req/s ${used[off]} us/request; metrics ${rate[metrics]} req/s ${used[metrics]} us/request; metrics against off: ${rd}% req/s, ${cd}% CPU per request"
    rate_diffs+=" $rd" cpu_diffs+=" $cd"
done
summary() {   # label values...: median, mean, standard error of the mean
    echo "$2" | tr ' ' '\n' | grep . | sort -g | awk -v l="$1" '
        { v[NR] = $1; s += $1; q += $1 * $1 }
        END { m = s / NR; sd = sqrt((q - NR * m * m) / (NR - 1));
              med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
              printf "metrics against off, %s: median %+.2f%%, mean %+.2f%%, standard error %.2f%%, %d rounds from %+.2f%% to %+.2f%%\n", l, med, m, sd / sqrt(NR), NR, v[1], v[NR] }'
}
summary "requests/s" "$rate_diffs"
summary "CPU per request" "$cpu_diffs"
