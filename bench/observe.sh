#!/usr/bin/env bash
# bench/observe.sh [ROUNDS] [SECONDS]: what metrics and the access log cost the read path
# (issue 17: at most 2% of its throughput). Four read services (pipelines/serve --pipeline
# read, socat, each with its own data directory), alike but for:
#   off       EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off
#   metrics   metrics on, access log off
#   log       access log on, metrics off
#   both      both on (the default)
# wrk -t2 -c16 keep-alive GET /v1/subscription with a valid token against each, in
# alternating rounds (off, metrics, log, both; the next round starting one later) so that a
# busy machine's load falls on all four alike; prints each run, then per target the median
# requests/s and its cost against "off", and the median of each round's own difference;
# then the same for the CPU the service's pipelines used per request (user and system time
# of every stage, from socat's reaped children: a steadier measure than requests/s on a
# machine whose other tenants come and go). Run it on a quiet machine: on a shared one the rounds' spread exceeds 2%.
#   EDGEPIPE_BIN  release binaries (default .build/release)
# Needs: wrk socat.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
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
declare -A port token
for target in "${targets[@]}"; do
    data=$work/$target p=$(free)
    settings=()
    case $target in
        off) settings=(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off) ;;
        metrics) settings=(EDGEPIPE_ACCESS_LOG=off) ;;
        log) settings=(EDGEPIPE_METRICS=off) ;;
    esac
    env "${settings[@]}" EDGEPIPE_DATA="$data" EDGEPIPE_PORT="$p" setsid "$top/pipelines/serve" --pipeline read \
        >"$work/$target.log" 2>&1 &
    pids+=($!)
    wait_port "$p"
    port[$target]=$p
    token[$target]=$(EDGEPIPE_DATA=$data "$EDGEPIPE_BIN/sign-jwt" dev --uid bench-user --ttl 7200)
    "$EDGEPIPE_BIN/kv" --store "$data/kv" put sub/bench-user \
        '{"uid":"bench-user","status":"active","plan":"pro","current_period_end":4102444800,"cancel_at_period_end":false,"customer":"cus_bench","subscription":"sub_bench","updated":1763900000}' >/dev/null
done

echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c16 -d${seconds}s keep-alive, GET /v1/subscription"
# CPU a service's pipelines used, in clock ticks: socat (the service's process) reaps each
# connection's pipeline, so its children's times hold every stage's user and system time.
ticks() { awk '{ print $16 + $17 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
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
        # The run's pipelines end when wrk closes its connections; wait until socat has
        # reaped them all (its children's times stop moving).
        last=-1 now=$(ticks "${pids[$n]}")
        for _ in $(seq 50); do [ "$now" = "$last" ] && break; sleep 0.2; last=$now now=$(ticks "${pids[$n]}"); done
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
