#!/usr/bin/env bash
# bench/verify-jwt.sh [N]: RS256 verifications per second through verify-jwt, against
# `openssl speed -seconds 3 rsa2048` verify/s measured in the same run on the same core,
# and verify-jwt's start-up time.
#
#   EDGEPIPE_BIN   where the release binaries are (default .build/release)
#   BENCH_CPU      the core both measurements are pinned to (default 1; needs taskset)
#
# N distinct tokens (default 20000, each with its own jti and signature) are minted with
# Python's cryptography (the slow part: ~N/2000 s), then piped once through one verify-jwt
# as request records. Every output record must carry x-authenticated-uid, or the run fails.
# Rates are given by CPU time (what `openssl speed` reports by default, and steady on a
# busy machine) and by wall clock (against `openssl speed -elapsed`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
N=${1:-20000}
BIN=${EDGEPIPE_BIN:-$top/.build/release}
CPU=${BENCH_CPU:-1}
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c "$CPU")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$N" <<'PY'
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

work, n = sys.argv[1], int(sys.argv[2])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = key.public_key().public_numbers()
num = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))
with open(f"{work}/jwks.json", "w") as f:
    json.dump({"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig", "n": num(pub.n), "e": num(pub.e)}]}, f)
header = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}, separators=(",", ":")).encode())
now = int(time.time())
with open(f"{work}/records.ndjson", "w") as out:
    for i in range(n):
        claims = {"iss": "https://securetoken.google.com/bench", "aud": "bench", "sub": f"user-{i}",
                  "iat": now, "exp": now + 3600, "auth_time": now, "jti": str(i)}
        payload = b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        sig = b64(key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))
        record = {"id": str(i), "method": "GET", "path": "/v1/subscription", "query": "", "version": "HTTP/1.1",
                  "headers": [["host", "localhost:8080"], ["user-agent", "bench"], ["accept", "*/*"],
                              ["authorization", f"Bearer {header}.{payload}.{sig}"]],
                  "body": "", "remote": "127.0.0.1", "keep_alive": True,
                  "annotations": {"route": {"name": "subscription", "params": {}}}}
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
PY

args=(--jwks-file "$work/jwks.json" --issuer https://securetoken.google.com/bench --audience bench)
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Wall clock and CPU time (user + sys) of one verify-jwt over all N records.
TIMEFORMAT='%R %U %S'
{ time "${pin[@]}" "$BIN/verify-jwt" "${args[@]}" < "$work/records.ndjson" > "$work/out.ndjson" ; } 2> "$work/time"
read -r real user sys < "$work/time"
verified=$(grep -c '"x-authenticated-uid"' "$work/out.ndjson" || true)
[ "$verified" = "$N" ] || { echo "only $verified of $N records verified" >&2; exit 1; }
ours_wall=$(awk -v n="$N" -v t="$real" 'BEGIN { printf "%.0f", n / t }')
ours_cpu=$(awk -v n="$N" -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", n / (u + s) }')

# openssl speed divides by CPU user time by default; -elapsed by wall-clock time.
theirs_cpu=$("${pin[@]}" openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { print $NF }')
theirs_wall=$("${pin[@]}" openssl speed -elapsed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { print $NF }')
ratio_cpu=$(awk -v a="$ours_cpu" -v b="$theirs_cpu" 'BEGIN { printf "%.0f", 100 * a / b }')
ratio_wall=$(awk -v a="$ours_wall" -v b="$theirs_wall" 'BEGIN { printf "%.0f", 100 * a / b }')

runs=200
start=$(ms)
for _ in $(seq $runs); do "$BIN/verify-jwt" "${args[@]}" < /dev/null; done
startup_file=$(awk -v t=$(( $(ms) - start )) -v r=$runs 'BEGIN { printf "%.2f", t / r }')
start=$(ms)
for _ in $(seq $runs); do "$BIN/verify-jwt" --firebase-project bench --jwks-cache "$work/cache" < /dev/null; done
startup_firebase=$(awk -v t=$(( $(ms) - start )) -v r=$runs 'BEGIN { printf "%.2f", t / r }')
start=$(ms)
for _ in $(seq $runs); do true < /dev/null; done
startup_shell=$(awk -v t=$(( $(ms) - start )) -v r=$runs 'BEGIN { printf "%.2f", t / r }')
start=$(ms)
head -1 "$work/records.ndjson" > "$work/one.ndjson"
for _ in $(seq $runs); do "$BIN/verify-jwt" "${args[@]}" < "$work/one.ndjson" > /dev/null; done
first_token=$(awk -v t=$(( $(ms) - start )) -v r=$runs 'BEGIN { printf "%.2f", t / r }')

cat <<REPORT
verify-jwt RS256, $N distinct tokens through one process on cpu ${CPU}:
  wall ${real} s, cpu ${user} s user + ${sys} s sys
  by CPU time:   ${ours_cpu}/s   vs openssl speed -seconds 3 rsa2048:          ${theirs_cpu} verify/s  = ${ratio_cpu}%
  by wall clock: ${ours_wall}/s   vs openssl speed -elapsed -seconds 3 rsa2048: ${theirs_wall} verify/s  = ${ratio_wall}%
  (target: >= 70%)
start-up, empty input (--jwks-file):           ${startup_file} ms per process
start-up, empty input (--firebase-project):    ${startup_firebase} ms per process
one record: start, key parse, one verification: ${first_token} ms per process
(loop overhead of the shell:                   ${startup_shell} ms per iteration)
REPORT
