enum Usage {
    static let text = """
    usage: audit [--file PATH] [--spill PATH] [--head PATH] [--group-fsync N] [--group-fsync-ms MS]
                 [--lock-timeout-ms MS]
           audit verify [--from-start] [--head PATH | --no-head] [--spill PATH | --no-spill] FILE...
           audit query [--uid U] [--type T] [--outcome O] [--kind K] [--event ID] [--request-id ID]
                       [--since TIME] [--until TIME] [--file PATH | FILE...]

    audit (the filter) reads records on stdin, responses included, and writes them to stdout,
    one line out per line in. For each record carrying annotations.audit it appends one line to
    the audit file: {"seq","time","unix","request_id","remote","status", the annotation's
    fields, "prev"}, where prev is the SHA-256 (hex) of the previous line's bytes, so the file
    is a hash chain. The record is passed on after the line is fsynced, with annotations.audit
    removed (and annotations too when it becomes empty); other records pass byte for byte.
    When the file cannot be written the record still flows: the entry goes to stderr and to
    the spill file, and the next successful append records a {"kind":"gap"} line.

      --file PATH         the audit log (env EDGEPIPE_AUDIT_FILE; default
                          $EDGEPIPE_DATA/audit/audit.log)
      --spill PATH        where entries go when the log cannot be written
                          (env EDGEPIPE_AUDIT_SPILL; default PATH.spill)
      --head PATH         lock file holding the last seq and hash, which links a rotated log
                          to the next file (default PATH.head)
      --group-fsync N     fsync once per N entries instead of every entry (env
                          EDGEPIPE_AUDIT_GROUP_FSYNC; default 1); records are then passed on
                          before their entry is durable
      --group-fsync-ms MS with N > 1, fsync at most MS ms after an unsynced entry
                          (env EDGEPIPE_AUDIT_GROUP_FSYNC_MS; default 1000), and at exit
      --lock-timeout-ms MS spill instead of waiting longer than MS for another writer's
                          lock (env EDGEPIPE_AUDIT_LOCK_TIMEOUT_MS; default 2000; 0: wait)

    audit verify checks the chain across the files given oldest first (rotated files, then
    the current log; - is stdin) and prints the first broken or missing line as
    FILE:LINE: reason. The head file beside the last FILE (or --head) is checked too, which
    catches lines removed from the end. --from-start requires the first line to be seq 1.
    Gap lines' spill ranges are checked against the spill file when it can be read.

    audit query prints the lines of FILE... (- is stdin; default: the audit log, as for the
    filter) matching every option given; a repeated option matches any of its values. TIME is RFC 3339
    (2026-01-02T03:04:05Z, 2026-01-02T03:04:05+01:00), a date (2026-01-02, UTC) or Unix
    seconds; --since is inclusive, --until exclusive.

    exit status: filter 0 at end of input, 1 when stdout closes, 2 on bad options;
    verify 0 when the chain is valid, 1 when broken; query 0; 2 on bad options or an
    unreadable file.
    """
}
