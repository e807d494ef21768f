#!/usr/bin/env bash
# bench/metrics-cost.sh DIR...: what metrics cost each stage of the read pipeline, in
# instructions per request (callgrind: exact on a shared machine, unlike bench/observe.sh),
# each stage alone and the six in one `chain` process.
# Each stage's input is captured from the read pipeline itself (http-decode | route |
# verify-jwt | forward | kv serve | http-encode, GET /v1/subscription with a valid token,
# N requests on one keep-alive connection); each stage then runs alone on that input with
# EDGEPIPE_METRICS=off and with metrics on (a fresh file), access log off. Per record:
# (instructions for 2000 requests - for 200) / 1800. DIR: release binaries (default
# .build/release); several DIRs (e.g. a copy taken before a change) print a table each.
# Needs valgrind. Prints Markdown.
set -euo pipefail
dirs=("$@"); [ ${#dirs[@]} -gt 0 ] || dirs=("$(cd "$(dirname "$0")/.." && pwd)/.build/release")
export EDGEPIPE_BIN=${dirs[0]}
. "$(dirname "$0")/lib.sh"
export EDGEPIPE_ACCESS_LOG=off EDGEPIPE_LINGER_MS=0
unset EDGEPIPE_METRICS
STAGES=("http-decode" "route --table $top/pipelines/routes" "verify-jwt" "forward --upstreams $top/pipelines/upstreams"
        "kv serve --route subscription" "http-encode")
printf 'GET /v1/subscription HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nAuthorization: Bearer %s\r\n\r\n' "$TOKEN" >"$work/request"
for n in 200 2000; do
    mkdir -p "$work/in$n"
    for _ in $(seq $n); do cat "$work/request"; done >"$work/in$n/0"
    i=0
    for st in "${STAGES[@]}"; do
        # shellcheck disable=SC2086
        "$BIN"/$st <"$work/in$n/$i" >"$work/in$n/$((i + 1))"
        i=$((i + 1))
    done
    [ "$(grep -c '"plan":"pro"' "$work/in$n/$i")" = $n ] || { echo "metrics-cost: the read path did not answer every request" >&2; exit 1; }
done
ir() {   # input bin args...: instructions executed
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:2}" <"$1" 2>&1 >/dev/null | awk '/Collected/ {print $NF}'
}
per() {   # i bin args...: instructions per record
    local i=$1 a b; shift
    a=$(ir "$work/in2000/$i" "$@"); b=$(ir "$work/in200/$i" "$@")
    echo $(( (a - b) / 1800 ))
}
for dir in "${dirs[@]}"; do
    echo "$dir"
    echo
    echo "| stage | instr/request, metrics off | on | on - off |"
    echo "|---|---|---|---|"
    i=0 toff=0 ton=0
    for st in "${STAGES[@]}"; do
        read -r -a cmd <<<"$st"
        rm -f "$work/metrics"
        off=$(EDGEPIPE_METRICS=off per $i "$dir/${cmd[0]}" "${cmd[@]:1}")
        on=$(EDGEPIPE_METRICS=$work/metrics per $i "$dir/${cmd[0]}" "${cmd[@]:1}")
        printf '| %s | %d | %d | %+d |\n' "${cmd[0]}" "$off" "$on" $((on - off))
        toff=$((toff + off)) ton=$((ton + on)) i=$((i + 1))
    done
    awk -v a="$toff" -v b="$ton" 'BEGIN { printf "| all six | %d | %d | %+d (%+.2f%%) |\n", a, b, b - a, (b - a) * 100 / a }'
    # The same six filters in one chain process, as pipelines/connection runs a read
    # pipeline: the input is the raw requests, the output the HTTP responses.
    chain=(http-decode '|')
    for st in "${STAGES[@]:1}"; do read -r -a cmd <<<"$st"; chain+=("${cmd[@]}" '|'); done
    unset 'chain[${#chain[@]}-1]'
    rm -f "$work/metrics"
    off=$(EDGEPIPE_METRICS=off per 0 "$dir/chain" "${chain[@]}")
    on=$(EDGEPIPE_METRICS=$work/metrics per 0 "$dir/chain" "${chain[@]}")
    awk -v a="$off" -v b="$on" 'BEGIN { printf "| the six in one chain | %d | %d | %+d (%+.2f%%) |\n\n", a, b, b - a, (b - a) * 100 / a }'
done
