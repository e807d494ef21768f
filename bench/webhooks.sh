#!/usr/bin/env bash
# bench/webhooks.sh: Stripe events/s applied by `apply-webhook --batch` with durable
# writes, against this disk's fsync rate measured in the same run and the same directory.
#
#   bench/webhooks.sh [DIR] [EVENTS]
#
# DIR (default: a new directory under $TMPDIR or /tmp) must be on the file system to
# measure. EVENTS defaults to 1000 (lifecycles of EVENTS/10 users: checkout, renewals, a
# failed payment, recovery, cancellation). The binary comes from $EDGEPIPE_BIN (default
# .build/release). Needs python3 (the fsync loops and the input).
#
# What bounds it: each applied event makes 2 durable writes (the user's state, then the
# event's marker; a user's first event also writes the customer mapping), and a durable
# write is temporary file + fsync + rename + fsync of the directory: about 4.3 fsyncs per
# event, so expect events/s near (fsync rate) / 4.3. That is --group 1. With --group N
# (default 64) a group of N events is staged in temporary files, fsynced in one pass,
# renamed, and each touched directory fsynced once (3-4 per group): about 2 fsyncs per
# event, whose cost the file system can batch.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${EDGEPIPE_BIN:-$top/.build/release}
dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/webhooks-bench.XXXXXX")}
n=${2:-1000}
mkdir -p "$dir"
[ -x "$B/apply-webhook" ] || { echo "bench/webhooks.sh: $B/apply-webhook is missing (swift build -c release -Xswiftc -static-executable)" >&2; exit 1; }

now() { date +%s%N; }
rate() { awk -v n="$1" -v t0="$2" -v t1="$3" 'BEGIN { s = (t1 - t0) / 1e9; printf "%8.1f /s  (%d in %.3f s)", n / s, n, s }'; }

secret=whsec_bench_0123456789
printf 'price_pro pro\nprice_basic basic\n' > "$dir/plans"

# The input: signed deliveries ({"headers","body"}, the form a capture of live traffic
# takes), and the same events as a trusted export (one raw event per line).
python3 - "$n" "$secret" "$dir" <<'PY'
import hashlib, hmac, json, sys
n, secret, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
T0, M = 1_700_000_000, 2_592_000
def ev(i, typ, created, obj):
    return {"id": f"evt_{i:08d}", "object": "event", "type": typ, "created": created, "data": {"object": obj}}
def sub(u, status, end):
    return {"id": f"sub_{u}", "object": "subscription", "status": status, "customer": f"cus_{u}",
            "items": {"data": [{"price": {"id": "price_pro"}, "current_period_end": end}]}}
def inv(u, reason, end):
    return {"id": f"in_{u}", "object": "invoice", "customer": f"cus_{u}", "billing_reason": reason, "amount_paid": 900,
            "parent": {"subscription_details": {"subscription": f"sub_{u}"}}, "lines": {"data": [{"period": {"end": end}}]}}
events, i = [], 0
for u in range((n + 9) // 10):
    t, p1, p2, p3 = T0 + u, T0 + u + M, T0 + u + 2 * M, T0 + u + 3 * M
    for typ, created, obj in [
        ("checkout.session.completed", t, {"id": f"cs_{u}", "object": "checkout.session", "mode": "subscription",
            "client_reference_id": f"user-{u}", "customer": f"cus_{u}", "subscription": f"sub_{u}", "metadata": {"plan": "price_pro"}}),
        ("customer.subscription.created", t, sub(u, "active", p1)),
        ("invoice.paid", t, inv(u, "subscription_create", p1)),
        ("customer.subscription.updated", p1, sub(u, "active", p2)),
        ("invoice.paid", p1 + 1, inv(u, "subscription_cycle", p2)),
        ("invoice.payment_failed", p2 + 1, inv(u, "subscription_cycle", p3)),
        ("customer.subscription.updated", p2 + 1, sub(u, "past_due", p3)),
        ("invoice.paid", p2 + 9, inv(u, "subscription_cycle", p3)),
        ("customer.subscription.updated", p2 + 9, sub(u, "active", p3)),
        ("customer.subscription.deleted", p2 + 99, sub(u, "canceled", p3))]:
        events.append(ev(i, typ, created, obj)); i += 1
events = events[:n]
with open(f"{out}/deliveries.ndjson", "w") as f, open(f"{out}/export.ndjson", "w") as g:
    for e in events:
        body = json.dumps(e, separators=(",", ":"))
        sig = hmac.new(secret.encode(), f"{T0}.{body}".encode(), hashlib.sha256).hexdigest()
        f.write(json.dumps({"headers": {"Stripe-Signature": f"t={T0},v1={sig}"}, "body": body}) + "\n")
        g.write(body + "\n")
PY

echo "webhooks benchmark: $n events, dir $dir ($(df -PT "$dir" | awk 'NR==2 {print $2}'), $(nproc) cores)"

# 1. The disk, in the same directory: write + fsync of one file, and the durable write
#    the store makes (new temporary file, fsync, rename, fsync the directory). Measured
#    before and after the runs: on a shared machine the rate moves.
probe() {
python3 - "$dir" "$1" <<'PY'
import os, sys, time
d, when = sys.argv[1], sys.argv[2]
def loop(step, seconds=1.5):
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(count); count += 1
    return count / (time.perf_counter() - t0)
fd = os.open(f"{d}/fsync.probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
def append(_):
    os.write(fd, b"x" * 300); os.fsync(fd)
r1 = loop(append)
os.close(fd)
dfd = os.open(d, os.O_RDONLY)
def durable(i):
    tmp = f"{d}/.probe.tmp"
    f = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(f, b"y" * 600); os.fsync(f); os.close(f)
    os.rename(tmp, f"{d}/probe.{i % 64}"); os.fsync(dfd)
r2 = loop(durable)
print(f"  disk {when:6}: fsync {r1:7.1f} /s (append 300 B + fsync); durable write {r2:7.1f} /s (tmp+fsync+rename+fsync dir)")
PY
}
probe before

# 2. apply-webhook --batch: signed deliveries (HMAC checked), then a trusted export,
#    each into a fresh store, with a durable write per event (--group 1) and grouped
#    (--group 16, 64 = the default); then the export replayed (every event a duplicate:
#    reads only). Every grouped store must equal the per-event one.
for run in deliveries/1 export/1 deliveries/64 export/16 export/64 replay/64; do
    group=${run#*/}
    case $run in
        deliveries/*) args=(); input=$dir/deliveries.ndjson ;;
        *) args=(--no-verify-signatures); input=$dir/export.ndjson ;;
    esac
    case $run in replay/*) store=$dir/kv-export-64 ;; *) store=$dir/kv-${run%/*}-$group ;; esac
    t0=$(now)
    summary=$(EDGEPIPE_STRIPE_SECRETS=$secret "$B/apply-webhook" --batch --group "$group" --kv "$store" \
        --plans "$dir/plans" "${args[@]}" "$input" 2>/dev/null)
    t1=$(now)
    printf '  apply-webhook --batch --group %-3s %-10s %s   %s\n' "$group" "${run%/*}" "$(rate "$n" "$t0" "$t1")" "$summary"
done
# Same final store (values, versions, metadata; not the wall-clock times) whatever the grouping.
python3 - "$dir" <<'PY'
import json, os, sys
def entries(kv):
    out = {}
    for root, dirs, files in os.walk(kv):
        dirs[:] = [d for d in dirs if d != "locks"]
        for name in files:
            doc = json.load(open(os.path.join(root, name)))
            value = doc["value"]
            if isinstance(value, dict):
                value.pop("updated", None)   # wall-clock time of the write
            out[doc["key"]] = (value, doc["version"], doc.get("metadata"))
    return out
d = sys.argv[1]
ref = entries(f"{d}/kv-export-1")
for other in ("kv-export-16", "kv-export-64", "kv-deliveries-1", "kv-deliveries-64"):
    same = entries(f"{d}/{other}") == ref
    print(f"  store {other:17} {'equals' if same else 'DIFFERS FROM'} kv-export-1 ({len(ref)} keys)")
PY
probe after
echo "  (command: EDGEPIPE_STRIPE_SECRETS=... $B/apply-webhook --batch --group N --kv DIR --plans FILE [--no-verify-signatures] FILE)"
