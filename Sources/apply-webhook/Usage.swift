// The --help text; docs/apply-webhook.md is the long form.
let usage = """
usage: apply-webhook [--kv DIR] [--plans FILE] [--secrets-file FILE] [--tolerance SECONDS]
                     [--route NAME] [--event-ttl SECONDS] [--pending-ttl SECONDS]
       apply-webhook --batch [--no-verify-signatures] [--group N] [options] [FILE|DIR ...]
       apply-webhook --pending list | --pending purge [--older-than SECONDS] [--kv DIR]

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

Options:
  --kv DIR               the KV store directory (env EDGEPIPE_KV; else $EDGEPIPE_DATA/kv)
  --plans FILE           price id / lookup key -> tier file (env EDGEPIPE_PLANS)
  --secrets-file FILE    webhook signing secrets, one per line (env EDGEPIPE_STRIPE_SECRETS_FILE)
  --tolerance SECONDS    maximum signature age; 0 disables the check
                         (env EDGEPIPE_STRIPE_TOLERANCE; default 300, in batch mode 0)
  --route NAME           the route name to answer (env EDGEPIPE_WEBHOOK_ROUTE; default stripe-webhook)
  --event-ttl SECONDS    how long processed event ids are remembered (default 2592000, 30 days)
  --pending-ttl SECONDS  how long a parked event waits for its user (env
                         EDGEPIPE_STRIPE_PENDING_TTL; default 2592000, 30 days)
  --pending list|purge   list or remove parked events, then exit
  --older-than SECONDS   with --pending purge: only events parked at least this long ago
  --batch                batch mode, see above
  --group N              batch mode: make the writes of N events durable together (one
                         fsync pass, renames, one fsync per directory), then count them
                         (default 64; 1 = one durable write at a time)
  --no-verify-signatures batch mode only: accept unsigned events and skip signature checks
  -h, --help             this text

Environment:
  EDGEPIPE_STRIPE_SECRETS  webhook signing secrets separated by commas or spaces (added to
                           those of --secrets-file). Secrets are never taken from argv.
                           The whole string, whsec_ prefix included, is the HMAC key.
  EDGEPIPE_CLOCK_OFFSET    seconds added to the clock (tests of the tolerance window)

Exit status: 0 at end of input (filter) or when every item was valid (batch); 1 when
standard output closed (filter) or some batch item was invalid; 2 usage or configuration
error; 3 batch stopped because the store failed (re-run to resume: applying is idempotent).
"""
