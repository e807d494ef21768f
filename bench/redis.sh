#!/usr/bin/env bash
# bench/redis.sh: the KV store on Redis beside the directory store, and redis-benchmark on
# the same machine as the reference.
#
#   bench/redis.sh [N] [RECORDS]
#
# 1. `kv put` then `kv get` of N distinct keys (default 300), one process per command as
#    scripts use it: start-up, connect (AUTH/SELECT when configured), one EVALSHA.
# 2. `kv serve`, one long-lived filter reading RECORDS (default 20000) GET /v1/subscription
#    records: one key read per record on one reused connection, the gateway's read path.
# 3. `redis-benchmark -q -n 20000 -t get,set` against the same server.
#
# A redis-server (apt-get install -y redis-server) is started on a free loopback port,
# without persistence, and stopped at the end; the directory store is under $TMPDIR or
# /tmp (fsync costs are that file system's). EDGEPIPE_BIN: the release binaries
# (default .build/release).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${EDGEPIPE_BIN:-$top/.build/release}
n=${1:-300}
records=${2:-20000}
[ -x "$B/kv" ] || { echo "bench/redis.sh: $B/kv is missing (swift build -c release -Xswiftc -static-executable)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "bench/redis.sh: redis-server is missing (apt-get install -y redis-server)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/redis-bench.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

now() { date +%s%N; }
per_op() { awk -v n="$1" -v t0="$2" -v t1="$3" 'BEGIN { s = (t1 - t0) / 1e9; printf "%7.3f ms/op  %7.0f ops/s  (%d in %.2f s)", s * 1000 / n, n / s, n, s }'; }

value='{"uid":"u","status":"active","plan":"pro","current_period_end":4102444800,"trial_end":null}'
echo "machine: $(nproc) cores, $(uname -sr); redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo
echo "kv commands, one process each (N=$n):"
for store in "$work/dir" "redis://127.0.0.1:$port/0"; do
    label=$([ "${store#redis}" != "$store" ] && echo redis || echo directory)
    t0=$(now); for i in $(seq "$n"); do "$B/kv" --store "$store" put "sub/user$i" "$value" >/dev/null; done; t1=$(now)
    printf "  %-9s put  %s\n" "$label" "$(per_op "$n" "$t0" "$t1")"
    t0=$(now); for i in $(seq "$n"); do "$B/kv" --store "$store" get "sub/user$i" >/dev/null; done; t1=$(now)
    printf "  %-9s get  %s\n" "$label" "$(per_op "$n" "$t0" "$t1")"
done

python3 - "$records" "$n" > "$work/requests.ndjson" <<'PY'
import json, sys
records, users = int(sys.argv[1]), int(sys.argv[2])
for i in range(records):
    uid = f"user{i % users + 1}"
    print(json.dumps({"id": str(i), "method": "GET", "path": "/v1/subscription", "query": "", "version": "HTTP/1.1",
                      "headers": [["host", "localhost"], ["x-authenticated-uid", uid]], "body": "", "keep_alive": True,
                      "annotations": {"route": {"name": "subscription", "params": {}}, "auth": {"uid": uid}}},
                     separators=(",", ":")))
PY
echo
echo "kv serve, one process, $records subscription reads:"
for store in "$work/dir" "redis://127.0.0.1:$port/0"; do
    label=$([ "${store#redis}" != "$store" ] && echo redis || echo directory)
    t0=$(now); "$B/kv" --store "$store" serve < "$work/requests.ndjson" > "$work/out.ndjson"; t1=$(now)
    ok=$(grep -c '"status":200' "$work/out.ndjson" || true)
    [ "$ok" = "$records" ] || { echo "bench/redis.sh: only $ok of $records reads answered 200" >&2; exit 1; }
    printf "  %-9s read %s\n" "$label" "$(per_op "$records" "$t0" "$t1")"
done

echo
echo "redis-benchmark -q -n 20000 -t get,set (50 parallel clients, same server):"
redis-benchmark -p "$port" -q -n 20000 -t get,set 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | sed 's/^/  /'
echo "redis-benchmark -q -n 20000 -t get,set -c 1 (one client, one request at a time, as kv serve):"
redis-benchmark -p "$port" -q -n 20000 -c 1 -t get,set 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | sed 's/^/  /'
