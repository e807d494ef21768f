import Records

/// limit's command line, declared once (docs/limit.md has the same in more words).
enum LimitOptions {
    static let table = OptionTable(
        program: "limit",
        synopsis: ["limit --rules FILE [--stage ip|uid|all] [--table FILE] [--store URL] [--check]"],
        summary: """
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
        """,
        options: [
            .value("--rules", "FILE", env: "EDGEPIPE_LIMITS", "the limits file (required)"),
            .value("--stage", "S", "ip: ip and header rules (place before verify-jwt); uid: uid\nrules (after verify-jwt); all (default): every rule"),
            .value("--table", "FILE", env: "EDGEPIPE_LIMIT_TABLE",
                   "this machine's shared state, a fixed-size memory-mapped file\n(default $EDGEPIPE_DATA/limit.slots)"),
            .value("--store", "URL", env: "EDGEPIPE_KV", aliases: ["--kv"],
                   "redis://... shares limits across machines (when it is a Redis\nURL; otherwise the table)"),
            .flag("--check", "check the rules file and exit"),
        ],
        variables: [
            .init("EDGEPIPE_DATA", "the data directory (the table's default place)"),
            .init("EDGEPIPE_REDIS_PASSWORD", "and the other Redis settings of docs/scaling.md"),
            .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock"),
        ],
        epilogue: """
        exit status: 0 at end of input (or good rules with --check); 1 when stdout closes;
          2 for a bad option, bad rules ("limit: FILE:LINE: reason" on stderr) or an unusable table
        """)
}
