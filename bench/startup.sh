#!/usr/bin/env bash
# bench/startup.sh [RUNS]: start-up of each filter of pipelines/connection, one request's
# record in and out, against a static C cat of the same record (bench/ccat.c) and
# /bin/true, measured in the same run, interleaved (bench/startup.c), RUNS times each
# (default 300). Also, when valgrind is installed, the instructions each process executes
# (callgrind: repeatable on a shared machine where wall time is not).
#
#   EDGEPIPE_BIN   the release binaries (default .build/release; static builds)
# Prints a Markdown table on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
runs=${1:-300}
cc -O2 -o "$work/startup" "$top/bench/startup.c"
cc -O2 -static -o "$work/ccat" "$top/bench/ccat.c"
stage_inputs "$work/s"
export EDGEPIPE_LINGER_MS=0

args=("$work/s/1" "$work/ccat" :: "$work/s/1" /bin/true)
i=0
for st in "${STAGES[@]}"; do
    # shellcheck disable=SC2206
    args+=(:: "$work/s/$i" "$BIN"/$st)
    i=$((i + 1))
done
"$work/startup" "$runs" "${args[@]}" >"$work/times"

instructions() {   # input command...: instructions executed (callgrind), or "n/a"
    command -v valgrind >/dev/null || { echo n/a; return; }
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:2}" <"$1" 2>&1 >/dev/null |
        awk '/Collected/ {print $NF}'
}
row() {   # label input command...
    local label=$1 line median p10 p90 faults ir
    line=$(grep -F "${3}: median" "$work/times" | head -1)
    median=$(echo "$line" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
    p10=$(echo "$line" | sed -E 's/.*p10 ([0-9.]+),.*/\1/')
    p90=$(echo "$line" | sed -E 's/.*p90 ([0-9.]+),.*/\1/')
    faults=$(echo "$line" | sed -E 's/.*, ([0-9]+) page faults.*/\1/')
    ir=$(instructions "${@:2}")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$median" "$p10" "$p90" \
        "$(awk -v a="$median" -v b="$ccat" 'BEGIN { printf "%.2f", a / b }')" "$faults" "$ir"
}
ccat=$(grep -F "$work/ccat: median" "$work/times" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')

echo "Start-up, $runs runs each, interleaved: \`startup $runs INPUT CMD :: INPUT CMD ...\` (bench/startup.c);"
echo "each filter reads its real input for one request (the previous stage's output for"
echo "\`GET /v1/subscription\` with a valid token: verify-jwt verifies one RS256 signature,"
echo "kv reads one key). Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| program | median ms | p10 ms | p90 ms | × C cat | page faults | instructions |"
echo "|---|---|---|---|---|---|---|"
row "C cat (bench/ccat.c, static)" "$work/s/1" "$work/ccat"
row "/bin/true" "$work/s/1" /bin/true
i=0
for st in "${STAGES[@]}"; do
    # shellcheck disable=SC2086
    row "\`${st/$top\//}\`" "$work/s/$i" "$BIN"/$st
    i=$((i + 1))
done
echo
echo "Binary size: $(stat -c %s "$BIN/route") bytes (route), $(stat -c %s "$work/ccat") bytes (C cat)."
