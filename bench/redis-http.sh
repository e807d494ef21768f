#!/usr/bin/env bash
# bench/redis-http.sh [read|webhooks|all]: the HTTP service (pipelines/serve under socat)
# with the KV store on Redis (EDGEPIPE_KV=redis://...) beside the directory store, in the
# same run, each measurement twice with the backends alternating (issue 9's benchmark).
#
#   read      wrk against GET /v1/subscription with a valid RS256 token (the full read
#             path; kv serve reads one key): keep-alive with 1 and 16 connections, and
#             Connection: close with 1
#   webhooks  signed Stripe events POSTed to /v1/webhooks/stripe by 1 and 4 keep-alive
#             clients for BENCH_DURATION s: customer.subscription.updated, each a new
#             event for a new user, so every one is applied; the reference is the disk's
#             fsync and durable-write rates and `apply-webhook --batch` (bench/webhooks.sh)
#   all       both, then redis-benchmark -q -n 20000 -t get,set (50 clients; 1 client;
#             50 clients pipelining 16) against the same Redis
#
# Redis is started on a free loopback port without persistence (--save '' --appendonly
# no): its writes are not on disk, the directory store's are (fsync). The directory store
# and the audit log are under $TMPDIR or /tmp.
#   EDGEPIPE_BIN    the release binaries (default .build/release)
#   BENCH_DURATION  seconds per run (default 5)
# Needs wrk, socat, redis-server, redis-benchmark, curl, python3. Prints Markdown on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
what=${1:-all}
for tool in wrk socat redis-server redis-benchmark curl; do
    command -v "$tool" >/dev/null || { echo "redis-http.sh: $tool is missing (apt-get install -y wrk socat redis-server)" >&2; exit 1; }
done

redis_port=$(free_port)
redis_url=redis://127.0.0.1:$redis_port/0
start redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no
wait_port "$redis_port"
"$BIN/kv" --store "$EDGEPIPE_KV" get sub/bench-user | "$BIN/kv" --store "$redis_url" put sub/bench-user - >/dev/null
declare -A stores=([directory]=$EDGEPIPE_KV [redis]=$redis_url)

serve() {   # BACKEND: starts pipelines/serve on that store; sets url
    local p
    p=$(free_port)
    start env EDGEPIPE_PORT="$p" EDGEPIPE_KV="${stores[$1]}" "$top/pipelines/serve"
    wait_port "$p"
    url=http://127.0.0.1:$p
}

read_path() {
    echo "### Read path: GET /v1/subscription"
    echo
    echo "\`wrk -t1 -c1\` or \`-t2 -c16\`, ${DURATION} s, \`--latency -H 'Authorization: Bearer \$TOKEN'\`;"
    echo "*close* adds \`-H 'Connection: close'\`. Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| store, run | mode | conns | req/s | p50 ms | p99 ms | socket errors |"
    echo "|---|---|---|---|---|---|---|"
    WRK_HEADERS=(-H "Authorization: Bearer $TOKEN")
    local run backend body
    for run in 1 2; do
        for backend in directory redis; do
            serve "$backend"
            body=$(curl -s -H "Authorization: Bearer $TOKEN" "$url/v1/subscription")
            case "$body" in *'"plan":"pro"'*) ;; *) echo "redis-http.sh: $backend answered: $body" >&2; exit 1 ;; esac
            run_wrk "$backend, run $run" "$url/v1/subscription" keep-alive 1
            run_wrk "$backend, run $run" "$url/v1/subscription" keep-alive 16
            run_wrk "$backend, run $run" "$url/v1/subscription" close 1
            stop_last
        done
    done >"$work/read.md"   # not a pipe: a service started in a subshell would escape cleanup
    cat "$work/read.md"
    echo
    echo "Redis / directory req/s, same run:"
    awk -F' *\\| *' '{split($2, a, ", run "); r[a[1], a[2], $3, $4] = $5; k[a[2], $3, $4]}
        END {for (i in k) {split(i, p, SUBSEP); printf "- run %s, %s, %s conn: %.2fx\n", p[1], p[2], p[3], r["redis", p[1], p[2], p[3]] / r["directory", p[1], p[2], p[3]]}}' \
        "$work/read.md" | sort
    echo
}

# hammer PORT LABEL CLIENTS SECONDS: one row | label | clients | events | events/s | p50 ms |
# p99 ms | errors |. The signature is made as Stripe's libraries make it, with the secret
# read from the data directory's file (never argv).
hammer() {
    python3 - "$@" "$EDGEPIPE_STRIPE_SECRETS_FILE" <<'PY'
import hashlib, hmac, http.client, json, sys, threading, time
port, label, clients, seconds, secrets_file = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
secret = next(l.strip() for l in open(secrets_file) if l.strip() and not l.startswith("#")).encode()
tag = label.replace(", ", "-").replace(" ", "-") + f"-c{clients}"   # distinct events in every run
def body(n):
    now, uid = int(time.time()), f"{tag}-{n}"
    item = {"id": f"si_{uid}", "object": "subscription_item", "current_period_start": now, "current_period_end": now + 2592000,
            "price": {"id": "price_pro_m", "object": "price", "lookup_key": "pro_monthly"}}
    sub = {"id": f"sub_{uid}", "object": "subscription", "status": "active", "customer": f"cus_{uid}",
           "cancel_at_period_end": False, "trial_end": None, "metadata": {"uid": uid}, "items": {"object": "list", "data": [item]}}
    return json.dumps({"id": f"evt_{uid}", "object": "event", "type": "customer.subscription.updated", "created": now,
                       "livemode": False, "data": {"object": sub}}, separators=(",", ":"))
latencies, errors = [], []
def client(k):
    conn, n = http.client.HTTPConnection("127.0.0.1", port, timeout=30), k
    while time.perf_counter() < deadline:
        payload, t = body(n), int(time.time())
        signature = hmac.new(secret, f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
        t0 = time.perf_counter()
        conn.request("POST", "/v1/webhooks/stripe", payload, {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={signature}"})
        response = conn.getresponse(); answer = response.read()
        latencies.append(time.perf_counter() - t0)
        if response.status != 200 or b'"received":true' not in answer:
            errors.append(f"{response.status} {answer[:120]!r}")
        n += clients
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
t0 = time.perf_counter(); deadline = t0 + seconds
for t in threads: t.start()
for t in threads: t.join()
elapsed, latencies = time.perf_counter() - t0, sorted(latencies)
pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
print(f"| {label} | {clients} | {len(latencies)} | {len(latencies) / elapsed:.0f} | {pct(0.5):.2f} | {pct(0.99):.2f} | {len(errors)} {errors[:1] or ''} |")
PY
}

webhooks() {
    echo "### Webhooks: POST /v1/webhooks/stripe"
    echo
    echo "Each client a keep-alive \`http.client\` connection, ${DURATION} s; every event a new"
    echo "customer.subscription.updated for a new user, signed \`t=...,v1=hex(HMAC-SHA256(secret, \"t.payload\"))\`."
    echo "Each is applied (three store writes: the user's state, the event's marker, the customer"
    echo "mapping) and audited (one fsync'd append to the local audit log, whatever the store)."
    echo "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| store, run | clients | events | events/s | p50 ms | p99 ms | errors |"
    echo "|---|---|---|---|---|---|---|"
    local run backend clients
    for run in 1 2; do
        for backend in directory redis; do
            serve "$backend"
            for clients in 1 4; do hammer "${url##*:}" "$backend, run $run" "$clients" "$DURATION"; done
            stop_last
            # The first user of each run must now have an active subscription in this store.
            "$BIN/kv" --store "${stores[$backend]}" get "sub/$backend-run-$run-c4-0" | grep -q '"status":"active"' ||
                { echo "redis-http.sh: the $backend store lacks sub/$backend-run-$run-c4-0" >&2; exit 1; }
        done
    done >"$work/hooks.md"
    cat "$work/hooks.md"
    echo
    echo "Redis / directory events/s, same run:"
    awk -F' *\\| *' '{split($2, a, ", run "); r[a[1], a[2], $3] = $5; k[a[2], $3]}
        END {for (i in k) {split(i, p, SUBSEP); printf "- run %s, %s client(s): %.2fx\n", p[1], p[2], r["redis", p[1], p[2]] / r["directory", p[1], p[2]]}}' \
        "$work/hooks.md" | sort
    echo
    echo "Reference, the disk under the directory store (\`bench/webhooks.sh DIR 200\`, same run):"
    echo
    echo '```'
    if "$top/bench/webhooks.sh" "$work/disk" 200 >"$work/disk.log" 2>&1; then
        grep -E 'disk|deliveries' "$work/disk.log"
    else
        echo "bench/webhooks.sh failed: $(tail -1 "$work/disk.log")"
    fi
    echo '```'
    echo
}

redis_reference() {
    echo "### redis-benchmark, the same server"
    echo
    echo '```'
    local args
    for args in "-q -n 20000 -t get,set" "-q -n 20000 -t get,set -c 1" "-q -n 20000 -t get,set -P 16"; do
        # shellcheck disable=SC2086
        redis-benchmark -p "$redis_port" $args 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | sed "s/^/redis-benchmark $args: /"
    done
    echo '```'
    echo
}

echo "The HTTP service with its KV store on Redis beside the directory store (\`bench/redis-http.sh $what\`):"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), kernel $(uname -r);"
echo "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); directory store on $(df -PT "$work" | awk 'NR==2 {print $2}')."
echo
case "$what" in
    read) read_path ;;
    webhooks) webhooks ;;
    all) read_path; webhooks; redis_reference ;;
    *) echo "usage: bench/redis-http.sh [read|webhooks|all]" >&2; exit 2 ;;
esac
