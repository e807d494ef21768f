#!/usr/bin/env bash
# bench/compare.sh OLD_BIN NEW_BIN [N]: two builds of the filters side by side, for
# "what did this change buy": instructions per record (callgrind, 10,000 records minus
# one: repeatable on a shared machine) and records/s over N records (default 100,000;
# the two builds alternate, so load falls on both alike), plus instructions per start.
# OLD_BIN and NEW_BIN are directories of release binaries (e.g. a copy of .build/release
# taken before the change). Needs valgrind. Prints a Markdown table.
set -euo pipefail
old=$1 new=$2 n=${3:-100000}
export EDGEPIPE_BIN=$new
. "$(dirname "$0")/lib.sh"
for kind in request authed other; do python3 "$top/bench/records.py" "$kind" "$n" >"$work/$kind.ndjson"; done
# What http-encode reads: kv serve's answers.
"$BIN/kv" serve <"$work/authed.ndjson" >"$work/response.ndjson"
for kind in request authed other response; do head -10000 "$work/$kind.ndjson" >"$work/$kind.10k"; head -1 "$work/$kind.ndjson" >"$work/$kind.1"; done

ir() {   # input command...: instructions executed
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:2}" <"$1" 2>&1 >/dev/null | awk '/Collected/ {print $NF}'
}
rate() {   # input command...: records/s
    local t0 t1
    t0=$(date +%s%N); "${@:2}" <"$1" >/dev/null; t1=$(date +%s%N)
    awk -v n="$n" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (t / 1e9) }'
}
row() {   # label kind binary args...
    local label=$1 kind=$2 bin=$3 o n1 s_old s_new r_old r_new
    shift 3
    o=$(( ($(ir "$work/$kind.10k" "$old/$bin" "$@") - $(ir "$work/$kind.1" "$old/$bin" "$@")) / 9999 ))
    n1=$(( ($(ir "$work/$kind.10k" "$new/$bin" "$@") - $(ir "$work/$kind.1" "$new/$bin" "$@")) / 9999 ))
    s_old=$(ir "$work/$kind.1" "$old/$bin" "$@")
    s_new=$(ir "$work/$kind.1" "$new/$bin" "$@")
    r_old=$(rate "$work/$kind.ndjson" "$old/$bin" "$@"); r_new=$(rate "$work/$kind.ndjson" "$new/$bin" "$@")
    r_old=$(( (r_old + $(rate "$work/$kind.ndjson" "$old/$bin" "$@")) / 2 ))
    r_new=$(( (r_new + $(rate "$work/$kind.ndjson" "$new/$bin" "$@")) / 2 ))
    printf '| %s | %s | %s | %.2fx | %s | %s | %.2fx | %s | %s |\n' "$label" "$o" "$n1" "$(awk -v a="$o" -v b="$n1" 'BEGIN{print a/b}')" \
        "$r_old" "$r_new" "$(awk -v a="$r_new" -v b="$r_old" 'BEGIN{print a/b}')" "$s_old" "$s_new"
}
echo "| filter | instr/record before | after | fewer | records/s before | after | faster | instr/start before | after |"
echo "|---|---|---|---|---|---|---|---|---|"
row "route" request route --table "$top/pipelines/routes"
row "audit (pass-through)" request audit --file "$work/audit.log"
row "kv serve (pass-through)" other kv serve
row "kv serve (key read)" authed kv serve
row "http-encode (200 responses)" response http-encode
