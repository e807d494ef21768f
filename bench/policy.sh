#!/usr/bin/env bash
# bench/policy.sh [ROUNDS]: what CORS and rate limits cost on the read path (issue 18's target:
# at most 10% slower with everything on). Run it on a quiet machine.
#
# 1. Each stage's own cost per record in lock-step (bench/lockstep.py, against `cat`): route
#    plain, with --cors (the request carries an Origin) and with --cors --limits (one ip
#    rule); verify-jwt plain and with --limits (one uid rule); the same rules as stages of
#    their own (limit --stage ip / uid: their cost over cat is a hand-off plus the check);
#    http-encode without and with annotations.cors (a batch of records, per-record time).
# 2. GET /v1/subscription with a valid token and an Origin through pipelines/serve in four
#    shapes, in alternating rounds so the machine's load falls on each alike: off, CORS only,
#    limits only (one ip + one uid rule, far above the offered rate), everything; wrk
#    keep-alive (16 connections) and Connection: close (a new pipeline per request).
#    pipelines/connection applies the limits inside route and verify-jwt (no added stage). Prints a table row per shape and round,
#    then each shape's mean req/s relative to off.
#   EDGEPIPE_BIN  release binaries (default .build/release); BENCH_DURATION s per run (default 5)
# Needs: wrk, socat, python3, taskset.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rounds=${1:-3}
ORIGIN=https://app.example.com

cat >"$work/cors" <<CORS
* origins=$ORIGIN methods=GET,POST headers=authorization expose=retry-after credentials=true max-age=600
CORS
cat >"$work/limits" <<'LIMITS'
*              ip    1000000/s
subscription   uid   1000000/s
LIMITS
export EDGEPIPE_LIMIT_TABLE=$work/limit.slots
echo "machine: $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "## each stage in lock-step on CPU 0 (us per record; cat is the floor)"
printf 'GET /v1/subscription HTTP/1.1\r\nHost: localhost\r\nOrigin: %s\r\nAuthorization: Bearer %s\r\nUser-Agent: wrk\r\n\r\n' \
    "$ORIGIN" "$TOKEN" | "$BIN/http-decode" >"$work/r0"
lock() { taskset -c 0 python3 "$top/bench/lockstep.py" "$1" "$2" 2>&1 >"$3" | sed 's/^/  /'; }
lock cat "$work/r0" /dev/null
lock "$BIN/route --table $top/pipelines/routes" "$work/r0" "$work/r1-plain"
lock "$BIN/route --table $top/pipelines/routes --cors $work/cors" "$work/r0" "$work/r1"
grep -q '"cors"' "$work/r1" || { echo "policy: route --cors did not annotate" >&2; exit 1; }
lock "$BIN/route --table $top/pipelines/routes --cors $work/cors --limits $work/limits" "$work/r0" /dev/null
lock "$BIN/limit --rules $work/limits --stage ip" "$work/r1" "$work/r2"
lock "$BIN/verify-jwt" "$work/r2" "$work/r3"
lock "$BIN/verify-jwt --limits $work/limits" "$work/r2" /dev/null
lock "$BIN/limit --rules $work/limits --stage uid" "$work/r3" "$work/r4"
lock "$BIN/kv serve --route subscription" "$work/r4" "$work/r5"
grep -q '"status":200' "$work/r5" || { echo "policy: the read path did not answer 200: $(cat "$work/r5")" >&2; exit 1; }
# http-encode writes HTTP, not lines: a batch of the same response instead, per record.
python3 - "$work/r5" "$work/r5-plain-batch" "$work/r5-cors-batch" <<'PY'
import json, sys
rec = json.loads(open(sys.argv[1]).readline())
with_cors = json.dumps(rec, separators=(",", ":")) + "\n"
rec.get("annotations", {}).pop("cors", None)
plain = json.dumps(rec, separators=(",", ":")) + "\n"
open(sys.argv[2], "w").write(plain * 20000)
open(sys.argv[3], "w").write(with_cors * 20000)
PY
for kind in plain cors; do
    best=999999
    for _ in 1 2 3; do
        t0=$(date +%s%N)
        taskset -c 0 "$BIN/http-encode" <"$work/r5-$kind-batch" >/dev/null
        t=$(( ($(date +%s%N) - t0) / 20000 ))
        [ "$t" -lt "$best" ] && best=$t
    done
    printf '  %7.1f us per record  http-encode (%s)\n' "$(awk -v n="$best" 'BEGIN{print n/1000}')" "$kind"
done

echo "## the read path through pipelines/serve, alternating rounds (wrk, ${DURATION}s each)"
declare -A port
for shape in off cors limits all; do
    cors="" limits=""
    case $shape in cors) cors=$work/cors ;; limits) limits=$work/limits ;; all) cors=$work/cors limits=$work/limits ;; esac
    port[$shape]=$(free_port)
    start env EDGEPIPE_PORT="${port[$shape]}" EDGEPIPE_CORS="$cors" EDGEPIPE_LIMITS="$limits" "$top/pipelines/serve"
    wait_port "${port[$shape]}"
done
WRK_HEADERS=(-H "Authorization: Bearer $TOKEN" -H "Origin: $ORIGIN")
declare -A sum
echo "| shape | mode | conns | req/s | p50 ms | p99 ms | socket errors |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
    for mode in keepalive close; do
        for shape in off cors limits all; do
            row=$(run_wrk "$shape (round $round)" "http://127.0.0.1:${port[$shape]}/v1/subscription" "$mode" 16)
            echo "$row"
            rps=$(echo "$row" | awk -F'|' '{print $5}')
            sum[$shape-$mode]=$(awk -v a="${sum[$shape-$mode]:-0}" -v b="$rps" 'BEGIN{print a+b}')
        done
    done
done
for mode in keepalive close; do
    for shape in cors limits all; do
        awk -v s="${sum[$shape-$mode]}" -v o="${sum[off-$mode]}" -v n="$shape" -v m="$mode" \
            'BEGIN { printf "%s, %s: %.1f%% of off (%+.1f%%)\n", n, m, 100 * s / o, 100 * (s - o) / o }'
    done
done
