#!/usr/bin/env bash
# bench/throughput.sh [N]: N request records (default 1,000,000) through single filters,
# against `jq -c .` on the same file and the C cat (bench/ccat.c, the pipe's limit) in the
# same run: records/s and peak RSS (/usr/bin/time -f %M). Records are made by
# bench/records.py: what http-decode writes for `GET /v1/subscription` with a bearer token
# (about 850 bytes), and the same after verify-jwt (about 330 bytes).
#
#   route          the request records (parse, match, add annotations.route, write)
#   audit          the request records: a full parse and a pass-through (no audit annotation)
#   kv, no match   authenticated records routed elsewhere: parse, pass through
#   kv serve       authenticated records for the read route: one key read per record
#   http-decode    the same N requests as HTTP bytes, pipelined (the ratio to jq is only
#                  indicative: the input is HTTP, not JSON)
#   verify-jwt     not here: see bench/verify-jwt.sh
#
# With BENCH_PROFILE=1 and valgrind installed, also the instructions per record of each
# filter (callgrind over 10,000 records minus one record: start-up excluded).
#   EDGEPIPE_BIN   the release binaries (default .build/release)
# Prints a Markdown table on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
n=${1:-1000000}
cc -O2 -static -o "$work/ccat" "$top/bench/ccat.c"
export EDGEPIPE_LINGER_MS=0   # http-decode: no wait for more input at the end
for kind in request authed other; do python3 "$top/bench/records.py" "$kind" "$n" >"$work/$kind.ndjson"; done
# For http-decode: the same requests as HTTP/1.1 bytes, pipelined on one connection.
python3 - "$n" "$TOKEN" >"$work/requests.http" <<'PY'
import sys
n, token = int(sys.argv[1]), sys.argv[2]
request = (f"GET /v1/subscription HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
           f"Authorization: Bearer {token}\r\n\r\n").encode()
out = sys.stdout.buffer
for _ in range(n):
    out.write(request)
PY
# A record of each kind must come out as expected before anything is timed.
head -1 "$work/request.ndjson" | "$BIN/route" --table "$top/pipelines/routes" | grep -q '"route":{"name":"subscription"' ||
    { echo "throughput.sh: route did not route the records" >&2; exit 1; }
head -1 "$work/authed.ndjson" | "$BIN/kv" serve | grep -q '"status":200' ||
    { echo "throughput.sh: kv serve did not answer the records" >&2; exit 1; }

declare -A rate
measure() {   # key label input command...: one row; the output must have one line per record
    local key=$1 label=$2 input=$3 t0 t1 lines rss
    shift 3
    t0=$(date +%s%N)
    /usr/bin/time -f %M -o "$work/rss" "$@" <"$input" >"$work/out"
    t1=$(date +%s%N)
    lines=$(wc -l <"$work/out")
    [ "$lines" = "$n" ] || { echo "throughput.sh: $label wrote $lines lines for $n records" >&2; exit 1; }
    rss=$(cat "$work/rss")
    rate[$key]=$(awk -v n="$n" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (t / 1e9) }')
    printf '| %s | %s | %s | %s | %.1f |\n' "$label" "$(basename "$input" .ndjson)" "${rate[$key]}" \
        "$(awk -v a="${rate[$key]}" -v b="${rate[jq_${input##*/}]:-0}" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')" \
        "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" >>"$work/table"
}
per_record() {   # input command...: instructions per record (callgrind), start-up excluded
    head -10000 "$1" >"$work/10k"
    head -1 "$1" >"$work/1"
    local a b
    a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:2}" <"$work/10k" 2>&1 >/dev/null | awk '/Collected/ {print $NF}')
    b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:2}" <"$work/1" 2>&1 >/dev/null | awk '/Collected/ {print $NF}')
    echo $(((a - b) / 9999))
}

: >"$work/table"
for f in request authed other; do
    measure "jq_$f.ndjson" '`jq -c .`' "$work/$f.ndjson" jq -c .
done
measure cat "C cat (the pipe's limit)" "$work/request.ndjson" "$work/ccat"
measure decode '`http-decode` (pipelined HTTP requests in)' "$work/requests.http" "$BIN/http-decode"
measure route '`route --table pipelines/routes`' "$work/request.ndjson" "$BIN/route" --table "$top/pipelines/routes"
measure audit '`audit` (pass-through: no audit annotation)' "$work/request.ndjson" "$BIN/audit" --file "$work/audit.log"
measure kvpass '`kv serve` (routed elsewhere: pass-through)' "$work/other.ndjson" "$BIN/kv" serve
measure kvread '`kv serve` (one key read per record)' "$work/authed.ndjson" "$BIN/kv" serve

echo "$n records per run, each filter alone, \`FILTER < FILE > FILE\` under \`/usr/bin/time -f %M\`;"
echo "the ratio is against \`jq -c .\` on the same file in the same run. Load average at the"
echo "start: $(cut -d' ' -f1-3 /proc/loadavg). Sizes: request $(($(stat -c %s "$work/request.ndjson") / n)) B/record,"
echo "authed $(($(stat -c %s "$work/authed.ndjson") / n)) B/record."
echo
echo "| filter | records | records/s | × jq | peak RSS MiB |"
echo "|---|---|---|---|---|"
cat "$work/table"
echo
if [ "${BENCH_PROFILE:-0}" = 1 ] && command -v valgrind >/dev/null; then
    echo "Instructions per record (callgrind, 10,000 records minus one record):"
    echo
    echo "| filter | instructions/record |"
    echo "|---|---|"
    echo "| \`jq -c .\` (request records) | $(per_record "$work/request.ndjson" jq -c .) |"
    echo "| route | $(per_record "$work/request.ndjson" "$BIN/route" --table "$top/pipelines/routes") |"
    echo "| audit (pass-through) | $(per_record "$work/request.ndjson" "$BIN/audit" --file "$work/audit.log") |"
    echo "| kv serve (pass-through) | $(per_record "$work/other.ndjson" "$BIN/kv" serve) |"
    echo "| kv serve (key read) | $(per_record "$work/authed.ndjson" "$BIN/kv" serve) |"
    echo
fi
