enum Usage {
    static let text = """
    usage: reserve [--store DIR] [--blocklist FILE] [--page FILE] [--admins FILE]
                   [--sendmail CMD | --outbox DIR] [--base-url URL] [--mail-from ADDR]
                   [--token-ttl SECONDS] [--grace SECONDS] [--sendmail-timeout MS]

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

    options:
      --store DIR            the KV store (env EDGEPIPE_KV; else $EDGEPIPE_DATA/kv)
      --blocklist FILE       names and glob patterns nobody may reserve, one a line,
                             read at start (env EDGEPIPE_RESERVE_BLOCKLIST; default none)
      --page FILE            the HTML page for GET / (env EDGEPIPE_RESERVE_PAGE)
      --admins FILE          uids allowed to list, one a line (env EDGEPIPE_RESERVE_ADMINS_FILE);
                             env EDGEPIPE_RESERVE_ADMINS adds a comma-separated list
      --sendmail CMD         mail command run by /bin/sh -c with the message on stdin,
                             e.g. "/usr/sbin/sendmail -t -i" (env EDGEPIPE_RESERVE_SENDMAIL)
      --outbox DIR           maildir the mail goes to when no command is given
                             (env EDGEPIPE_RESERVE_OUTBOX; default $EDGEPIPE_DATA/reserve/outbox)
      --base-url URL         where the page is served; the mailed link is URL/?token=...
                             (env EDGEPIPE_RESERVE_BASE_URL; default http://localhost:8080)
      --mail-from ADDR       the From header (env EDGEPIPE_RESERVE_MAIL_FROM; default
                             noreply@localhost, which real mail relays reject)
      --token-ttl SECONDS    how long a link works (env EDGEPIPE_RESERVE_TOKEN_TTL; 86400)
      --grace SECONDS        when a half-done confirmation counts as crashed and others
                             finish it (env EDGEPIPE_RESERVE_GRACE; 30)
      --sendmail-timeout MS  kill the mail command after this long (env
                             EDGEPIPE_RESERVE_SENDMAIL_TIMEOUT_MS; 10000)

    environment: the variables above, EDGEPIPE_DATA, EDGEPIPE_CLOCK_OFFSET (shifts the clock)
    exit status: 0 at end of input; 1 when stdout closes; 2 for a bad option or an
      unreadable --blocklist, --page or --admins file
    """
}
