#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Common

let usage = """
usage: apply-webhook [--kv DIR] [--plans FILE] [--secrets-file FILE] [--tolerance SECONDS]
                     [--route NAME] [--event-ttl SECONDS]
       apply-webhook --batch [--no-verify-signatures] [options] [FILE|DIR ...]

Applies Stripe webhook events to the subscription state in the KV store (sub/<uid>,
read by `kv serve`). See docs/apply-webhook.md.

Filter mode (default): reads records on stdin, writes records on stdout. A request
routed to the webhook route (annotations.route.name, default stripe-webhook) has its
Stripe-Signature checked against the raw body and its event applied; it is answered
200 {"received": true} (applied, duplicate, stale, pending or ignored events alike),
400 (bad signature: "check" names the failed check; or a valid signature over a body
that is not a Stripe event), or 503 (store unavailable: Stripe retries). Every answer
carries annotations.audit {"kind":"stripe","event_id","event_type","uid","outcome",
"before","after","reason"}. Other records pass through unchanged.

Batch mode (--batch): applies the events in FILEs (one JSON item per line; stdin when
none) and DIRs (one JSON item per file, names in byte order). An item is a delivery
{"headers":{"Stripe-Signature":"..."},"body":"..."} (signature checked) or a raw event
(only with --no-verify-signatures). Progress on stderr when it is a terminal; a summary
JSON line on stdout: {"events","applied","duplicate","stale","pending","ignored",
"invalid","drained"}.

Options:
  --kv DIR               the KV store directory (env EDGEPIPE_KV; else $EDGEPIPE_DATA/kv)
  --plans FILE           price id / lookup key -> tier file (env EDGEPIPE_PLANS)
  --secrets-file FILE    webhook signing secrets, one per line (env EDGEPIPE_STRIPE_SECRETS_FILE)
  --tolerance SECONDS    maximum signature age; 0 disables the check
                         (env EDGEPIPE_STRIPE_TOLERANCE; default 300, in batch mode 0)
  --route NAME           the route name to answer (env EDGEPIPE_WEBHOOK_ROUTE; default stripe-webhook)
  --event-ttl SECONDS    how long processed event ids are remembered (default 2592000, 30 days)
  --batch                batch mode, see above
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

var options = Options(program: "apply-webhook", usage: usage)
let batch = options.flag("--batch")
let noVerify = options.flag("--no-verify-signatures")
let kvPath = options.value("--kv", env: "EDGEPIPE_KV") ?? environment("EDGEPIPE_DATA").map { $0 + "/kv" }
let plansPath = options.value("--plans", env: "EDGEPIPE_PLANS")
let secretsFile = options.value("--secrets-file", env: "EDGEPIPE_STRIPE_SECRETS_FILE")
let tolerance = options.int("--tolerance", env: "EDGEPIPE_STRIPE_TOLERANCE",
                            default: batch ? 0 : StripeSignature.defaultTolerance)
let routeName = options.value("--route", env: "EDGEPIPE_WEBHOOK_ROUTE") ?? "stripe-webhook"
let eventTTL = options.int("--event-ttl", default: WebhookApplier.defaultEventTTL)
let paths = options.rest()

if !batch && noVerify { Log.fatal("--no-verify-signatures is only for --batch (trusted exports)") }
if !batch && !paths.isEmpty { Log.fatal("unexpected argument \(paths[0]) (files are read in --batch mode only)") }
if tolerance < 0 || eventTTL <= 0 { Log.fatal("--tolerance must be >= 0 and --event-ttl > 0") }
guard let kvPath else { Log.fatal("no KV store: pass --kv DIR or set EDGEPIPE_KV or EDGEPIPE_DATA") }

var plans = Plans()
if let plansPath {
    guard let bytes = readFile(plansPath) else { Log.fatal("cannot read plans file \(plansPath)") }
    do { plans = try Plans.parse(String(decoding: bytes, as: UTF8.self)) } catch { Log.fatal("\(plansPath): \(error)") }
}

var secrets: [String] = []
if let secretsFile {
    guard let bytes = readFile(secretsFile) else { Log.fatal("cannot read secrets file \(secretsFile)") }
    do { secrets = try StripeSecrets.parseFile(String(decoding: bytes, as: UTF8.self)) } catch { Log.fatal("\(secretsFile): \(error)") }
}
if let list = environment("EDGEPIPE_STRIPE_SECRETS") {
    for s in StripeSecrets.parseList(list) where !secrets.contains(s) { secrets.append(s) }
}
if secrets.isEmpty && !noVerify {
    Log.fatal("no webhook secret: set EDGEPIPE_STRIPE_SECRETS or --secrets-file FILE")
}

let processor = WebhookProcessor(secrets: secrets, tolerance: tolerance, plans: plans, eventTTL: eventTTL,
                                 store: StoreHandle(open: { () throws(KVError) in try openStore(kvPath) }))

if batch {
    var runner = Batch(processor: processor, verify: !noVerify, showProgress: isatty(2) == 1)
    exit(runner.run(paths: paths))
}

let filter = WebhookFilter(routeName: routeName, processor: processor)
FilterLoop.run { record in filter.handle(&record) }
