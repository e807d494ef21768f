let limitUsage = """
usage: limit --rules FILE [--stage ip|uid|all] [--table FILE] [--store URL] [--check]

A filter of the record protocol (docs/protocol.md): applies the rate limits of FILE
(syntax in docs/limit.md) to each request record and passes it on, or answers it:
  over a limit        429 {"error":"rate_limited",...,"retry_after":N} with Retry-After,
                      RateLimit-Policy and RateLimit
  store unavailable   passed on and counted (the default), or 503 limit_unavailable for
                      a rule with redis-down=closed
Responses already made upstream pass through unchanged.

Rules: ROUTE-or-* KEY RATE [burst=N] [redis-down=open|closed]
  KEY   ip (the record's remote), uid (annotations.auth.uid), header:NAME
  RATE  N/s, N/min, N/h or N/day; burst defaults to N

options:
  --rules FILE    the limits file (default: $EDGEPIPE_LIMITS)
  --stage S       ip: ip and header rules (place before verify-jwt); uid: uid rules (after
                  verify-jwt); all (default): every rule
  --table FILE    this machine's shared state, a fixed-size memory-mapped file
                  (default: $EDGEPIPE_LIMIT_TABLE, else $EDGEPIPE_DATA/limit.slots)
  --store URL     redis://... shares limits across machines (default: $EDGEPIPE_KV when
                  it is a Redis URL; otherwise the table)
  --check         check the rules file and exit

environment: EDGEPIPE_LIMITS, EDGEPIPE_LIMIT_TABLE, EDGEPIPE_DATA, EDGEPIPE_KV,
  EDGEPIPE_REDIS_PASSWORD (and the other Redis settings of docs/scaling.md), EDGEPIPE_CLOCK_OFFSET
exit status: 0 at end of input (or good rules with --check); 1 when stdout closes;
  2 for a bad option, bad rules ("limit: FILE:LINE: reason" on stderr) or an unusable table
"""
