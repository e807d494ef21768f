#!/usr/bin/env bash
# bench/observe.sh [--paired] [ROUNDS] [SECONDS]: what metrics and the access log cost the
# read path (issue 17: at most 2% of its throughput). Read services (pipelines/serve
# --pipeline read, socat, each with its own data directory), alike but for:
#   off       EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off
#   metrics   metrics on, access log off
#   log       access log on, metrics off
#   both      both on (the default)
# wrk -t2 -c16 keep-alive GET /v1/subscription with a valid token against each, in
# alternating rounds (off, metrics, log, both; the next round starting one later) so that a
# busy machine's load falls on all four alike; prints each run, then per target the median
# requests/s and its cost against "off", and the median of each round's own difference;
# then the same for the CPU the service's pipelines used per request (user and system time
# of every stage, from socat's reaped children). On a VM whose speed moves between seconds,
# these rounds spread by 10-20%, several times the 2% being measured; hence:
#
# --paired: "off" and "metrics" only, loaded at the same moment, each from its own wrk -t1
# -c8, so that whatever the machine does in a round, it does to both. They share the two
# CPUs: the service whose requests cost more CPU serves fewer of them. The first wrk to
# start alternates. Per round: each one's requests/s and CPU per request; then the rounds'
# differences of "metrics" against "off" as median, mean and standard error. The CPU figure
# is the steady one: the scheduler can starve one side's wrk for part of a round, which
# moves requests/s but not what a request costs. SAME=1 runs metrics off in both: an A/A
# check of the method.
#   EDGEPIPE_BIN  release binaries (default .build/release)
# Needs: wrk socat.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
paired=0
[ "${1:-}" = --paired ] && { paired=1; shift; }
rounds=${1:-5} seconds=${2:-5}
export EDGEPIPE_BIN=${EDGEPIPE_BIN:-$top/.build/release}
for tool in wrk socat; do
    command -v "$tool" >/dev/null || { echo "observe.sh: $tool is missing (apt-get install -y $tool)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/observe-bench.XXXXXX)
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "observe.sh: nothing on port $1" >&2; exit 1; }

targets=(off metrics log both)
[ $paired = 1 ] && targets=(off metrics)
declare -A port token pid
for target in "${targets[@]}"; do
    data=$work/$target p=$(free)
    settings=()
    case $target in
        off) settings=(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off) ;;
        metrics) settings=(EDGEPIPE_ACCESS_LOG=off) ;;
        log) settings=(EDGEPIPE_METRICS=off) ;;
    esac
    [ "${SAME:-0}" = 1 ] && settings=(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off)
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

# CPU a service's pipelines used, in clock ticks: socat (the service's process) reaps each
# connection's pipeline, so its children's times hold every stage's user and system time.
ticks() { awk '{ print $16 + $17 }' "/proc/$1/stat"; }
settle() {   # until socat has reaped every pipeline of the run (its children's times stop moving)
    local last=-1 now
    now=$(ticks "$1")
    for _ in $(seq 50); do [ "$now" = "$last" ] && break; sleep 0.2; last=$now now=$(ticks "$1"); done
    echo "$now"
}
hz=$(getconf CLK_TCK)
if [ $paired = 1 ]; then
    echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); paired: two wrk -t1 -c8 -d${seconds}s at once, keep-alive GET /v1/subscription"
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
            grep -q 'Non-2xx' "$work/wrk.$target" && { echo "observe.sh: $target answered non-2xx" >&2; exit 1; }
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
    exit 0
fi
echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c16 -d${seconds}s keep-alive, GET /v1/subscription"
declare -A runs ratios cpu cpuratios
for round in $(seq "$rounds"); do
    # Each round starts one target later, so that no target always runs first or last.
    declare -A rate=() used=()
    for i in "${!targets[@]}"; do
        n=$(( (i + round - 1) % ${#targets[@]} ))
        target=${targets[$n]}
        before=$(ticks "${pids[$n]}")
        out=$(wrk -t2 -c16 -d"${seconds}s" -H "Authorization: Bearer ${token[$target]}" \
            "http://127.0.0.1:${port[$target]}/v1/subscription")
        rate[$target]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        # The run's pipelines end when wrk closes its connections.
        now=$(settle "${pids[$n]}")
        used[$target]=$(awk -v t=$((now - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        echo "round $round: $target ${rate[$target]} req/s, ${used[$target]} us of CPU per request"
        runs[$target]="${runs[$target]:-} ${rate[$target]}"
        cpu[$target]="${cpu[$target]:-} ${used[$target]}"
    done
    for target in "${targets[@]}"; do
        ratios[$target]="${ratios[$target]:-} $(awk -v r="${rate[$target]}" -v b="${rate[off]}" 'BEGIN { print (r - b) * 100 / b }')"
        cpuratios[$target]="${cpuratios[$target]:-} $(awk -v r="${used[$target]}" -v b="${used[off]}" 'BEGIN { print (r - b) * 100 / b }')"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
base=$(echo "${runs[off]}" | median)
# Two figures per target: the medians' difference, and the median of the rounds' own
# differences (each round's run against the same round's "off": drift between rounds cancels).
for target in "${targets[@]}"; do
    m=$(echo "${runs[$target]}" | median)
    r=$(echo "${ratios[$target]}" | median)
    c=$(echo "${cpu[$target]}" | median)
    cr=$(echo "${cpuratios[$target]}" | median)
    awk -v t="$target" -v c="$c" -v r="$cr" \
        'BEGIN { printf "%-8s CPU per request: median %.2f us; median of the per-round differences %+.2f%%\n", t, c, r }' 
    awk -v t="$target" -v m="$m" -v b="$base" -v r="$r" \
        'BEGIN { printf "%-8s median %.0f req/s, %+.2f%% against off; median of the per-round differences %+.2f%%\n", t, m, (m - b) * 100 / b, r }'
done
# The access log of "both" and "log" must hold a line per request served: a check that
# the measured configuration did what it says.
for target in log both; do
    lines=$(wc -l <"$work/$target/log/access.log")
    echo "$target: $lines access-log lines"
done
