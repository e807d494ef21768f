#!/usr/bin/env bash
# bench/soak.sh: soak and connection flood of pipelines/serve on loopback, every response
# checked, then what the run left behind checked.
#
#   bench/soak.sh DURATION [--workers N] [--max-connections N] [--flood N]
#                          [--flood-max-connections N] [--flood-timeout S] [--seed N]
#                          [--json FILE] [--keep DIR]
#
# DURATION seconds of mixed load from --workers (6) concurrent keep-alive clients that
# reconnect every 1-25 requests: valid reads (each must return its token's own uid and the
# state that uid has), no or spoofed identity, invalid tokens (tampered, expired, junk,
# huge, alg none), signed webhooks with distinct event ids, redeliveries of acknowledged
# ones, bad signatures, 410s, 404s, refused paths, and malformed requests (smuggling shapes,
# oversized heads and bodies) that must be answered and closed. Afterwards: no unexpected
# response, as many processes and listener open files as before, `audit verify` passes,
# every acknowledged webhook applied exactly once (KV state, event marker, one `applied`
# audit line; one `duplicate` line per redelivery), no torn KV entry, no crash in stderr.
# Then --flood (150) connections at once against a service with max-children
# --flood-max-connections (4), one slot held by a keep-alive connection: each is served,
# refused, or still waiting when its client gives up (--flood-timeout, 60 s), never half
# answered; the held one is served meanwhile; the service recovers. DURATION 0 or
# --flood 0 skips a phase.
#
# Prints a JSON summary on stdout and a short one on stderr; exit 0 when every check passed,
# 1 otherwise. Binaries from $EDGEPIPE_BIN (default .build/release); needs socat and
# python3 with stripe (Tests/system/requirements.txt). Figures: docs/reliability.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export EDGEPIPE_BIN=${EDGEPIPE_BIN:-$top/.build/release}
case "${1:-}" in
    ""|-h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ]; exit ;;
esac
command -v socat >/dev/null || { echo "bench/soak.sh: socat is missing (apt-get install -y socat)" >&2; exit 1; }
python3 -c 'import stripe' 2>/dev/null ||
    { echo "bench/soak.sh: python3 stripe is missing (pip install -r Tests/system/requirements.txt)" >&2; exit 1; }
exec python3 "$top/bench/soak.py" "$@"
