import Records

/// apply-webhook's command line, declared once (docs/apply-webhook.md is the long form).
enum ApplyWebhookOptions {
    static let table = OptionTable(
        program: "apply-webhook",
        synopsis: ["apply-webhook [--store DIR] [--plans FILE] [--secrets-file FILE] [--tolerance SECONDS]",
                   "              [--route NAME] [--event-ttl SECONDS] [--pending-ttl SECONDS]",
                   "apply-webhook --batch [--no-verify-signatures] [--group N] [options] [FILE|DIR ...]",
                   "apply-webhook --pending list | --pending purge [--older-than SECONDS] [--store DIR]"],
        summary: """
        Applies Stripe webhook events to the subscription state in the KV store (sub/<uid>,
        with every subscription of the user inside it, read by `kv serve`). See
        docs/apply-webhook.md.

        Filter mode (default): reads records on stdin, writes records on stdout. A request
        routed to the webhook route (annotations.route.name, default stripe-webhook) has its
        Stripe-Signature checked against the raw body and its event applied; it is answered
        200 {"received": true} (applied, duplicate, stale, pending, ignored or rejected events
        alike; thin/v2 events and other shapes not handled are ignored), 400 (bad signature:
        "check" names the failed check; or a valid signature over a body that is not JSON), or
        503 (store unavailable: Stripe retries). Every answer
        carries annotations.audit {"kind":"stripe","event_id","event_type","uid","outcome",
        "before","after","reason"}; a duplicate adds "original", how the event was first
        processed, so an application whose audit line was lost is logged by its redelivery.
        Other records pass through unchanged.

        Batch mode (--batch): applies the events in FILEs (one JSON item per line, or one
        pretty-printed document; stdin when none) and DIRs (one JSON item per file, names in
        byte order). An item is a delivery {"headers":{"Stripe-Signature":"..."},"body":"..."}
        (signature checked), a raw event or Stripe's list export {"object":"list","data":[...]}
        (only with --no-verify-signatures); any other shape is invalid, named in one line.
        Progress on stderr when it is a terminal; a summary JSON line on stdout: {"events",
        "applied","duplicate","stale","pending","ignored","invalid","rejected","drained"}.

        Parked events (no user known for their customer yet) expire after --pending-ttl;
        --pending list prints them (JSON lines, then {"pending": N}); --pending purge removes
        them, or those parked at least --older-than SECONDS ago, and prints {"purged": N}.
        """,
        options: [
            .value("--store", "DIR", env: "EDGEPIPE_KV", aliases: ["--kv"], "the KV store (default $EDGEPIPE_DATA/kv)"),
            .value("--plans", "FILE", env: "EDGEPIPE_PLANS", "price id / lookup key -> tier file"),
            .value("--secrets-file", "FILE", env: "EDGEPIPE_STRIPE_SECRETS_FILE", "webhook signing secrets, one per line"),
            .value("--tolerance", "SECONDS", env: "EDGEPIPE_STRIPE_TOLERANCE",
                   "maximum signature age; 0 disables the check (default 300,\nin batch mode 0)"),
            .value("--route", "NAME", env: "EDGEPIPE_WEBHOOK_ROUTE", "the route name to answer (default stripe-webhook)"),
            .value("--event-ttl", "SECONDS", "how long processed event ids are remembered (default\n2592000, 30 days)"),
            .value("--pending-ttl", "SECONDS", env: "EDGEPIPE_STRIPE_PENDING_TTL",
                   "how long a parked event waits for its user (default\n2592000, 30 days)"),
            .value("--pending", "list|purge", "list or remove parked events, then exit"),
            .value("--older-than", "SECONDS", "with --pending purge: only events parked at least this\nlong ago"),
            .flag("--batch", "batch mode, see above"),
            .value("--group", "N", "batch mode: make the writes of N events durable together (one\nfsync pass, renames, one fsync per directory), then count\nthem (default 64; 1 = one durable write at a time)"),
            .flag("--no-verify-signatures", "batch mode only: accept unsigned events and skip signature\nchecks"),
        ],
        variables: [
            .init("EDGEPIPE_STRIPE_SECRETS", "webhook signing secrets separated by commas or spaces\n(added to those of --secrets-file). Secrets are never taken\nfrom argv. The whole string, whsec_ prefix included, is the\nHMAC key."),
            .init("EDGEPIPE_DATA", "the data directory (the store's default place)"),
            .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock (tests of the tolerance window)"),
        ],
        arguments: "FILE|DIR ...",
        epilogue: """
        Exit status: 0 at end of input (filter) or when every item was valid (batch); 1 when
        standard output closed (filter) or some batch item was invalid; 2 usage or configuration
        error; 3 batch stopped because the store failed (re-run to resume: applying is idempotent).
        """)
}
