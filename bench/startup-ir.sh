#!/usr/bin/env bash
# bench/startup-ir.sh OLD_BIN NEW_BIN: instructions for one start of every filter (callgrind,
# stdin at end of input), OLD against NEW, as a Markdown table. callgrind counts are exact
# whatever the machine's load. Each filter runs twice: "off" with EDGEPIPE_METRICS=off
# EDGEPIPE_ACCESS_LOG=off, "on" with the metrics file and the access log at their defaults
# in the data directory. A filter missing from OLD (forward, limit) gets "(new)".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
old=$1 new=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/edgepipe-startup.XXXXXX")
trap 'rm -rf "$work"' EXIT
export EDGEPIPE_DATA=$work/data
EDGEPIPE_BIN=$new sh "$top/pipelines/setup-data" 2>/dev/null
export EDGEPIPE_KV=$EDGEPIPE_DATA/kv EDGEPIPE_PLANS=$top/pipelines/plans \
    EDGEPIPE_STRIPE_SECRETS_FILE=$EDGEPIPE_DATA/stripe-webhook-secrets
FILTERS=("route --table $top/pipelines/routes"
         "audit --file $work/audit.log"
         "http-decode"
         "http-encode"
         "kv serve"
         "verify-jwt --dev-keys $EDGEPIPE_DATA/dev-keys"
         "forward --upstreams $top/pipelines/upstreams"
         "apply-webhook"
         "limit --rules $top/pipelines/limits"
         "reserve --store $work/reserve")

ir() {   # BIN ARGS...: instructions of one start, or "(new)" when BIN does not exist
    [ -x "$1" ] || { echo "(new)"; return; }
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" </dev/null 2>&1 >/dev/null |
        awk '/Collected/ {print $NF}'
}
pct() { awk -v o="$1" -v n="$2" 'BEGIN { if (o+0 == 0) print ""; else printf " (%+.1f%%)", (n-o)*100/o }'; }

echo "| filter | old, off | new, off | old, on | new, on |"
echo "|---|---|---|---|---|"
for f in "${FILTERS[@]}"; do
    # shellcheck disable=SC2086
    set -- $f
    rm -rf "$EDGEPIPE_DATA/run/metrics"
    of=$(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off ir "$old/$1" "${@:2}")
    nf=$(EDGEPIPE_METRICS=off EDGEPIPE_ACCESS_LOG=off ir "$new/$1" "${@:2}")
    oo=$(ir "$old/$1" "${@:2}")
    no=$(ir "$new/$1" "${@:2}")
    printf '| `%s` | %s | %s%s | %s | %s%s |\n' "${f//$top\//}" "$of" "$nf" "$(pct "$of" "$nf")" "$oo" "$no" "$(pct "$oo" "$no")"
done | sed "s|$work/|\$TMP/|g; s|$EDGEPIPE_DATA|\$EDGEPIPE_DATA|g"
