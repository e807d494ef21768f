#!/usr/bin/env bash
# bench/handoff.sh: what a hand-off between pipeline stages costs on this machine, pinned to
# one CPU and free to move (the reason pipelines/connection pins pipelines behind a front,
# docs/deployment.md), then each read-path filter's own cost per record in lock-step
# against `cat` (bench/lockstep.py).
#   EDGEPIPE_BIN  release binaries (default .build/release)
# Needs: cc, taskset, python3.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${EDGEPIPE_BIN:-$top/.build/release}
work=$(mktemp -d /tmp/handoff.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/handoff" "$top/bench/handoff.c"
cpus=$(nproc)
echo "machine: $cpus CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "## hand-offs: pinned to CPU 0 (taskset -c 0), then unpinned"
for n in 2 5 8; do
    for pages in 0 200; do
        echo "pinned:   $(taskset -c 0 "$work/handoff" ring "$n" "$pages")"
        echo "unpinned: $("$work/handoff" ring "$n" "$pages")"
    done
done
for kind in tcp unix; do
    echo "pinned:   $(taskset -c 0 "$work/handoff" "$kind")"
    echo "unpinned: $("$work/handoff" "$kind")"
done

echo "## read-path filters in lock-step on CPU 0 (us per record; cat is the floor)"
export EDGEPIPE_DATA=$work/data EDGEPIPE_KV=$work/data/kv EDGEPIPE_DEV_KEYS=$work/data/dev-keys
export EDGEPIPE_JWT_PUBLIC_ROUTES=healthz,stripe-webhook EDGEPIPE_AUDIT_FILE=$work/data/audit.log
mkdir -p "$EDGEPIPE_KV"
"$B/sign-jwt" dev --init --dev-keys "$EDGEPIPE_DEV_KEYS" >/dev/null
token=$("$B/sign-jwt" dev --uid bench-user)
printf 'GET /v1/subscription HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\nAuthorization: Bearer %s\r\nUser-Agent: wrk\r\n\r\n' "$token" |
    "$B/http-decode" >"$work/r0"
run() { taskset -c 0 python3 "$top/bench/lockstep.py" "$1" "$2" 2>&1 >"$3" | sed 's/^/  /'; }
run cat "$work/r0" /dev/null
run "$B/route --table $top/pipelines/routes" "$work/r0" "$work/r1"
run "$B/verify-jwt" "$work/r1" "$work/r2"
run "$B/kv serve --route subscription" "$work/r2" "$work/r3"
run "$B/audit" "$work/r3" /dev/null
grep -q '"status":200' "$work/r3" || { echo "handoff: the read path did not answer 200" >&2; exit 1; }
