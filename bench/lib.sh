# bench/lib.sh: shared set-up for the bench/ scripts (sourced, not run).
#
# Sets top, BIN (release binaries: $EDGEPIPE_BIN, default .build/release), work (a temporary
# directory removed on exit) and a data directory ($work/data) laid out as pipelines/serve
# lays it out, with a dev key pair, 100 users' subscriptions (user0..user99, bench-user)
# in the KV store and TOKEN, a valid RS256 token for bench-user. Helpers: free_port,
# wait_port, start/stop_last (services in their own process group), run_wrk (one table row).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${EDGEPIPE_BIN:-$top/.build/release}
[ -x "$BIN/route" ] || { echo "bench: no binaries in $BIN (swift build -c release -Xswiftc -static-executable)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/edgepipe-bench.XXXXXX")
. "$top/bench/services.sh"   # start, stop_last; the exit trap removes $work

export EDGEPIPE_BIN=$BIN EDGEPIPE_DATA=$work/data
mkdir -p "$EDGEPIPE_DATA"
(cd "$top" && . pipelines/setup-data) 2>/dev/null
export EDGEPIPE_DEV_KEYS=$EDGEPIPE_DATA/dev-keys EDGEPIPE_KV=$EDGEPIPE_DATA/kv \
    EDGEPIPE_AUDIT_FILE=$EDGEPIPE_DATA/audit/audit.log EDGEPIPE_PLANS=$top/pipelines/plans \
    EDGEPIPE_JWT_PUBLIC_ROUTES=healthz,stripe-webhook \
    EDGEPIPE_STRIPE_SECRETS_FILE=$EDGEPIPE_DATA/stripe-webhook-secrets
for u in bench-user $(seq -f 'user%g' 0 99); do
    "$BIN/kv" --store "$EDGEPIPE_KV" put "sub/$u" \
        "{\"uid\":\"$u\",\"status\":\"active\",\"plan\":\"pro\",\"current_period_end\":4102444800,\"trial_end\":null}" >/dev/null
done
TOKEN=$("$BIN/sign-jwt" dev --uid bench-user --ttl 86400)

# The stages of pipelines/connection with their arguments, in order.
STAGES=("http-decode" "route --table $top/pipelines/routes" "verify-jwt" "kv serve --route subscription"
        "apply-webhook" "audit" "http-encode")

# stage_inputs DIR: DIR/0 is one HTTP request (GET /v1/subscription with TOKEN); DIR/N+1
# is what stage N writes for DIR/N: each filter's real input for one request.
stage_inputs() {
    local dir=$1 i=0 st
    mkdir -p "$dir"
    printf 'GET /v1/subscription HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nAuthorization: Bearer %s\r\n\r\n' "$TOKEN" >"$dir/0"
    for st in "${STAGES[@]}"; do
        # shellcheck disable=SC2086
        EDGEPIPE_LINGER_MS=0 "$BIN"/$st <"$dir/$i" >"$dir/$((i + 1))"
        i=$((i + 1))
    done
    grep -q '"plan":"pro"' "$dir/$i" || { echo "bench: the read path did not answer: $(cat "$dir/$i")" >&2; exit 1; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "bench: nothing listens on $1" >&2; return 1
}

ms() {   # wrk's "412.00us" / "1.23ms" / "1.01s" -> milliseconds
    case "$1" in
        *us) awk -v v="${1%us}" 'BEGIN{printf "%.3f", v/1000}' ;;
        *ms) awk -v v="${1%ms}" 'BEGIN{printf "%.3f", v}' ;;
        *s) awk -v v="${1%s}" 'BEGIN{printf "%.3f", v*1000}' ;;
        *) echo "?" ;;
    esac
}
# run_wrk LABEL URL MODE CONNS: one Markdown row | label | mode | conns | req/s | p50 ms | p99 ms
# | socket errors |. `wrk -t1` for 1 connection, `-t2` for more, BENCH_DURATION s (default 5),
# --latency; MODE close adds Connection: close; WRK_HEADERS (-H ... pairs) go on every request.
DURATION=${BENCH_DURATION:-5}
WRK_HEADERS=()
run_wrk() {
    local label=$1 url=$2 mode=$3 conns=$4 threads=1 extra=() out
    [ "$conns" -gt 1 ] && threads=2
    [ "$mode" = close ] && extra=(-H 'Connection: close')
    out=$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency "${WRK_HEADERS[@]}" "${extra[@]}" "$url" 2>&1)
    local rps p50 p99 errors
    rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    p50=$(echo "$out" | awk '$1=="50%"{print $2}')
    p99=$(echo "$out" | awk '$1=="99%"{print $2}')
    errors=$(echo "$out" | sed -n 's/.*Socket errors: \(.*\)/\1/p')
    printf '| %s | %s | %s | %.0f | %s | %s | %s |\n' "$label" "$mode" "$conns" "${rps:-0}" "$(ms "$p50")" "$(ms "$p99")" "$errors"
}
