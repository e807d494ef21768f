#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import KV

let options = ApplyWebhookOptions.table.parse()
let batch = options.flag("--batch")
let noVerify = options.flag("--no-verify-signatures")
let kvPath = options.value("--store") ?? dataPath("kv")
let plansPath = options.value("--plans")
let secretsFile = options.value("--secrets-file")
let tolerance = options.int("--tolerance", default: batch ? 0 : StripeSignature.defaultTolerance)
let routeName = options.value("--route") ?? "stripe-webhook"
let eventTTL = options.int("--event-ttl", default: WebhookApplier.defaultEventTTL)
let pendingTTL = options.int("--pending-ttl", default: WebhookApplier.defaultPendingTTL)
let pendingCommand = options.value("--pending")
let olderThan = options.value("--older-than")
let groupSize = options.int("--group", default: Batch.defaultGroupSize)
let paths = options.positional

if !batch && noVerify { Log.fatal("--no-verify-signatures is only for --batch (trusted exports)") }
if !batch && !paths.isEmpty { Log.fatal("unexpected argument \(paths[0]) (files are read in --batch mode only)") }
if tolerance < 0 || eventTTL <= 0 || pendingTTL <= 0 {
    Log.fatal("--tolerance must be >= 0, --event-ttl and --pending-ttl > 0")
}
if groupSize < 1 { Log.fatal("--group must be >= 1") }
guard let kvPath else { Log.fatal("no KV store: pass --store DIR or set EDGEPIPE_KV or EDGEPIPE_DATA") }

if let pendingCommand {
    exit(runPendingCommand(pendingCommand, olderThan: olderThan, kvPath: kvPath, extra: paths))
}

var plans = Plans()
if let plansPath {
    guard let bytes = readFile(plansPath) else { Log.fatal("cannot read plans file \(plansPath)") }
    do { plans = try Plans.parse(String(decoding: bytes, as: UTF8.self)) } catch { Log.fatal("\(plansPath): \(error)") }
}

// A secrets problem is fatal in batch mode. In the service it must not take every other
// route down with this process, so webhook requests are answered 503 until it is fixed.
var secretsProblem: String?
var secrets: [String] = []
if let secretsFile {
    if let bytes = readFile(secretsFile) {
        do { secrets = try StripeSecrets.parseFile(String(decoding: bytes, as: UTF8.self)) }
        catch { secretsProblem = "\(secretsFile): \(error)" }
    } else {
        secretsProblem = "cannot read secrets file \(secretsFile)"
    }
}
if let list = environment("EDGEPIPE_STRIPE_SECRETS") {
    for s in StripeSecrets.parseList(list) where !secrets.contains(s) { secrets.append(s) }
}
if secretsProblem == nil && secrets.isEmpty && !noVerify {
    secretsProblem = "no webhook secret: set EDGEPIPE_STRIPE_SECRETS or --secrets-file FILE"
}
if let secretsProblem {
    if batch { Log.fatal(secretsProblem) }
    Log.error("\(secretsProblem); answering webhooks 503")
    FilterLoop.run { record in
        guard record.routeName == routeName else { return }
        throw FilterError(status: 503, code: "webhook_not_configured",
                          message: "the webhook signing secret is not configured")
    }
}

// Grouped durable writes only in batch mode: a live delivery is answered one at a time.
let grouped = batch && groupSize > 1
let processor = WebhookProcessor(secrets: secrets, tolerance: tolerance, plans: plans, eventTTL: eventTTL, pendingTTL: pendingTTL,
                                 store: StoreHandle(open: { () throws(KVError) in
    let store = try openStore(kvPath)
    return grouped ? writeGroup(over: store, publishLast: [WebhookApplier.eventKey("")]) : store
}))

if batch {
    var runner = Batch(processor: processor, verify: !noVerify, showProgress: isatty(2) == 1, groupSize: groupSize)
    exit(runner.run(paths: paths))
}

let filter = ApplyWebhookFilter(routeName: routeName, processor: processor)
FilterLoop.run { record in filter.handle(&record) }
