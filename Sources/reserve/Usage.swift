import Records

/// reserve's command line, declared once (docs/reserve.md has the same in more words).
enum Usage {
    static let options = OptionTable(
        program: "reserve",
        synopsis: ["reserve [--store DIR] [--blocklist FILE] [--page FILE] [--admins FILE]",
                   "        [--sendmail CMD | --outbox DIR] [--base-url URL] [--mail-from ADDR]",
                   "        [--token-ttl SECONDS] [--grace SECONDS] [--sendmail-timeout MS]"],
        summary: """
        The subdomain reservation service as one filter (docs/reserve.md). Reads request
        records (docs/protocol.md) on stdin, writes one record per line on stdout. It answers
        the requests the route table names (annotations.route.name), or, with no route
        annotation, these paths itself:
          reserve-page     GET /                          the HTML page (--page)
          reserve-submit   POST /v1/reservations          {subdomain, email}, JSON or form:
                           202 verification_sent, 200 already_yours, 422 invalid_field,
                           403 blocked, 409 taken
          reserve-confirm  POST /v1/reservations/confirm  {token}: 201 confirmed, 200 already_yours,
                           409 taken, 410 token_used / token_expired, 403 blocked
          reserve-list     GET /v1/reservations?cursor=&limit=  administrators only
                           (annotations.auth.uid from verify-jwt): 200, 401, 403
        Every reservation event carries annotations.audit = {"kind":"reservation",...}.
        Other records pass through unchanged.
        """,
        options: [
            .value("--store", "DIR", env: "EDGEPIPE_KV", aliases: ["--kv"], "the KV store (default $EDGEPIPE_DATA/kv)"),
            .value("--blocklist", "FILE", env: "EDGEPIPE_RESERVE_BLOCKLIST",
                   "names and glob patterns nobody may reserve, one a line, read at\nstart (default none)"),
            .value("--page", "FILE", env: "EDGEPIPE_RESERVE_PAGE", "the HTML page for GET /"),
            .value("--admins", "FILE", env: "EDGEPIPE_RESERVE_ADMINS_FILE",
                   "uids allowed to list, one a line; EDGEPIPE_RESERVE_ADMINS adds a\ncomma-separated list"),
            .value("--sendmail", "CMD", env: "EDGEPIPE_RESERVE_SENDMAIL",
                   "mail command run by /bin/sh -c with the message on stdin,\ne.g. \"/usr/sbin/sendmail -t -i\""),
            .value("--outbox", "DIR", env: "EDGEPIPE_RESERVE_OUTBOX",
                   "maildir the mail goes to when no command is given\n(default $EDGEPIPE_DATA/reserve/outbox)"),
            .value("--base-url", "URL", env: "EDGEPIPE_RESERVE_BASE_URL",
                   "where the page is served; the mailed link is URL/?token=...\n(default http://localhost:8080)"),
            .value("--mail-from", "ADDR", env: "EDGEPIPE_RESERVE_MAIL_FROM",
                   "the From header (default noreply@localhost, which real mail\nrelays reject)"),
            .value("--token-ttl", "SECONDS", env: "EDGEPIPE_RESERVE_TOKEN_TTL", "how long a link works (86400)"),
            .value("--grace", "SECONDS", env: "EDGEPIPE_RESERVE_GRACE",
                   "when a half-done confirmation counts as crashed and others\nfinish it (30)"),
            .value("--sendmail-timeout", "MS", env: "EDGEPIPE_RESERVE_SENDMAIL_TIMEOUT_MS", "kill the mail command after this long (10000)"),
        ],
        variables: [
            .init("EDGEPIPE_RESERVE_ADMINS", "more administrator uids, comma-separated"),
            .init("EDGEPIPE_DATA", "the data directory (the defaults above)"),
            .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock"),
        ],
        epilogue: """
        exit status: 0 at end of input; 1 when stdout closes; 2 for a bad option or an
          unreadable --blocklist, --page or --admins file
        """)
}
