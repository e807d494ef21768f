#!/usr/bin/env bash
# bench/audit.sh: audit entries/s with an fsync per entry, with grouped fsyncs and with
# concurrent writers, against this disk's raw fsync rate measured in the same run.
#
#   bench/audit.sh [DIR] [ENTRIES]
#
# DIR (default: a new directory under $TMPDIR or /tmp) must be on the file system to
# measure: fsync costs are the file system's. ENTRIES defaults to 2000. The binaries come
# from $EDGEPIPE_BIN (default .build/release). Needs python3 (the raw fsync loop, input).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${EDGEPIPE_BIN:-$top/.build/release}
dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/audit-bench.XXXXXX")}
n=${2:-2000}
mkdir -p "$dir"
[ -x "$B/audit" ] || { echo "bench/audit.sh: $B/audit is missing (swift build -c release -Xswiftc -static-executable)" >&2; exit 1; }

now() { date +%s%N; }
rate() { awk -v n="$1" -v t0="$2" -v t1="$3" 'BEGIN { s = (t1 - t0) / 1e9; printf "%8.0f /s  (%d in %.3f s)", n / s, n, s }'; }

# The input: response records as apply-webhook leaves them (about 300 bytes of entry each).
python3 - "$n" > "$dir/input.ndjson" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": str(i), "method": "POST", "version": "HTTP/1.1", "keep_alive": True,
        "remote": "127.0.0.1", "status": 200, "headers": [["content-type", "application/json"]],
        "body": "{\"received\":true}", "annotations": {"audit": {"kind": "stripe", "event_id": f"evt_{i:08d}",
        "event_type": "customer.subscription.updated", "uid": f"user_{i % 97}", "outcome": "applied",
        "before": {"status": "trialing", "plan": "basic"}, "after": {"status": "active", "plan": "pro"}}}},
        separators=(",", ":")))
PY

echo "audit benchmark: $n entries, dir $dir ($(df -PT "$dir" | awk 'NR==2 {print $2}'))"

# 1. The disk: append ~300 bytes + fdatasync, as the writer does per entry (without the
# lock). Measured again at the end: on a shared machine the rate drifts.
raw() {
    local t0 t1
    t0=$(now)
    python3 - "$dir/fsync.probe" "$n" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
line = b"x" * 299 + b"\n"
for _ in range(int(sys.argv[2])):
    os.write(fd, line)
    os.fdatasync(fd)
PY
    t1=$(now)
    echo "raw write+fdatasync $1    $(rate "$n" "$t0" "$t1")"
}
raw "(before)"

# 2. audit, fsync per entry (the default).
t0=$(now); "$B/audit" --file "$dir/per-entry.log" < "$dir/input.ndjson" > /dev/null; t1=$(now)
echo "audit, fsync per entry         $(rate "$n" "$t0" "$t1")"

# 3. audit, grouped fsyncs.
for g in 10 100; do
    t0=$(now); "$B/audit" --file "$dir/group$g.log" --group-fsync $g < "$dir/input.ndjson" > /dev/null; t1=$(now)
    printf 'audit, --group-fsync %-4s     %s\n' "$g" "$(rate "$n" "$t0" "$t1")"
done

# 4. Four concurrent writers (four connections), fsync per entry, one log.
split -n l/4 "$dir/input.ndjson" "$dir/part."
t0=$(now)
for p in "$dir"/part.*; do "$B/audit" --file "$dir/concurrent.log" < "$p" > /dev/null & done
wait
t1=$(now)
echo "audit, 4 writers, per entry    $(rate "$n" "$t0" "$t1")"

# 5. Records without annotations: the pass-through cost.
python3 -c 'import sys
for i in range(int(sys.argv[1])): print("{\"id\":\"%d\",\"method\":\"GET\",\"path\":\"/x\",\"status\":200,\"body\":\"ok\"}" % i)' "$((n * 10))" > "$dir/plain.ndjson"
t0=$(now); "$B/audit" --file "$dir/unused.log" < "$dir/plain.ndjson" > /dev/null; t1=$(now)
echo "pass-through (no annotation)   $(rate "$((n * 10))" "$t0" "$t1")"

raw "(after) "

# 6. verify, and every log above must verify.
t0=$(now)
for f in per-entry group10 group100 concurrent; do
    "$B/audit" verify --from-start "$dir/$f.log" > /dev/null || { echo "bench/audit.sh: $f.log does not verify" >&2; exit 1; }
done
t1=$(now)
echo "audit verify                   $(rate "$((n * 4))" "$t0" "$t1")"
[ $# -ge 1 ] || rm -rf "$dir"
