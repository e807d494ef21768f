import Records

/// audit's command line: the filter, `audit verify` and `audit query`, one table each.
enum Usage {
    static let filter = OptionTable(
        program: "audit",
        synopsis: ["audit [--file PATH] [--spill PATH] [--head PATH] [--group-fsync N] [--group-fsync-ms MS]",
                   "      [--lock-timeout-ms MS]"],
        summary: """
        audit (the filter) reads records on stdin, responses included, and writes them to stdout,
        one line out per line in. For each record carrying annotations.audit it appends one line to
        the audit file: {"seq","time","unix","request_id","remote","status", the annotation's
        fields, "prev"}, where prev is the SHA-256 (hex) of the previous line's bytes, so the file
        is a hash chain. The record is passed on after the line is fsynced, with annotations.audit
        removed (and annotations too when it becomes empty); other records pass byte for byte.
        When the file cannot be written the record still flows: the entry goes to stderr and to
        the spill file, and the next successful append records a {"kind":"gap"} line.
        """,
        options: [
            Self.logFile,
            .value("--spill", "PATH", env: "EDGEPIPE_AUDIT_SPILL",
                   "where entries go when the log cannot be written (default PATH.spill)"),
            .value("--head", "PATH", "lock file holding the last seq and hash, which links a rotated\n"
                   + "log to the next file (default PATH.head)"),
            .value("--group-fsync", "N", env: "EDGEPIPE_AUDIT_GROUP_FSYNC",
                   "fsync once per N entries instead of every entry (default 1);\n"
                   + "records are then passed on before their entry is durable"),
            .value("--group-fsync-ms", "MS", env: "EDGEPIPE_AUDIT_GROUP_FSYNC_MS",
                   "with N > 1, fsync at most MS ms after an unsynced entry\n(default 1000), and at exit"),
            .value("--lock-timeout-ms", "MS", env: "EDGEPIPE_AUDIT_LOCK_TIMEOUT_MS",
                   "spill instead of waiting longer than MS for another writer's\nlock (default 2000; 0: wait)"),
        ],
        variables: [.init("EDGEPIPE_DATA", "the audit log defaults to $EDGEPIPE_DATA/audit/audit.log")],
        epilogue: "exit status: 0 at end of input, 1 when stdout closes, 2 on bad options.")

    /// The log, shared by the filter and query: --file, else EDGEPIPE_AUDIT_FILE, else the data directory's.
    static let logFile = OptionSpec.value("--file", "PATH", env: "EDGEPIPE_AUDIT_FILE",
                                          "the audit log (default $EDGEPIPE_DATA/audit/audit.log)")

    static let verify = OptionTable(
        program: "audit verify",
        synopsis: ["audit verify [--from-start] [--head PATH | --no-head] [--spill PATH | --no-spill] FILE..."],
        summary: """
        audit verify checks the chain across the files given oldest first (rotated files, then
        the current log; - is stdin) and prints the first broken or missing line as
        FILE:LINE: reason. The head file beside the last FILE (or --head) is checked too, which
        catches lines removed from the end. --from-start requires the first line to be seq 1.
        Gap lines' spill ranges are checked against the spill file when it can be read.
        """,
        options: [
            .flag("--from-start", "the first line must be seq 1"),
            .value("--head", "PATH", "the head file to check (default: the last FILE's FILE.head)"),
            .flag("--no-head", "check no head file"),
            .value("--spill", "PATH", "the spill file gap lines are checked against (default: the one\n" + "each gap line names)"),
            .flag("--no-spill", "check no spill file"),
        ],
        arguments: "FILE...",
        epilogue: "exit status: 0 when the chain is valid, 1 when broken, 2 on bad options or an unreadable file.")

    static let query = OptionTable(
        program: "audit query",
        synopsis: ["audit query [--uid U] [--type T] [--outcome O] [--kind K] [--event ID] [--request-id ID]",
                   "            [--since TIME] [--until TIME] [--file PATH | FILE...]"],
        summary: """
        audit query prints the lines of FILE... (- is stdin; default: the audit log, as for the
        filter) matching every option given; a repeated option matches any of its values. TIME is RFC 3339
        (2026-01-02T03:04:05Z, 2026-01-02T03:04:05+01:00), a date (2026-01-02, UTC) or Unix
        seconds; --since is inclusive, --until exclusive.
        """,
        options: [
            .list("--uid", "U", "entries of this uid"),
            .list("--type", "T", "entries of this event_type"),
            .list("--outcome", "O", "entries with this outcome"),
            .list("--kind", "K", "entries of this kind (stripe, gap, ...)"),
            .list("--event", "ID", "entries with this event_id"),
            .list("--request-id", "ID", "entries with this request_id"),
            .value("--since", "TIME", "entries at or after TIME"),
            .value("--until", "TIME", "entries before TIME"),
            Self.logFile,
        ],
        variables: [.init("EDGEPIPE_DATA", "the audit log defaults to $EDGEPIPE_DATA/audit/audit.log")],
        arguments: "FILE...",
        epilogue: "exit status: 0; 2 on bad options or an unreadable file.")

    static let commands = CommandTable(program: "audit", commands: ["verify", "query"], otherwise: true) { command in
        switch command {
        case "verify": return Usage.verify
        case "query": return Usage.query
        default: return Usage.filter
        }
    }
}
