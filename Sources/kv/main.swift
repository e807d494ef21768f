#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import KV

var options = Options(program: "kv", usage: usage)
let location = options.value("--store", env: "EDGEPIPE_KV") ?? environment("EDGEPIPE_DATA").map { $0 + "/kv" }
// Two parallel arrays, not a [String: String]: a Dictionary's generic metadata and
// conformance look-ups cost more than the rest of `kv serve`'s start.
var givenNames: [String] = [], givenValues: [String] = []
for name in ["--ttl", "--expires-at", "--metadata", "--version", "--prefix", "--limit", "--cursor", "--route", "--grace"] {
    if let v = options.value(name) { givenNames.append(name); givenValues.append(v) }
}
let entryFlag = options.flag("--entry")
let command: KVCommand
do {
    command = try KVCommand.parse(positional: options.rest(), option: { name in givenNames.firstIndex(of: name).map { givenValues[$0] } },
                                  flag: { $0 == "--entry" && entryFlag },
                                  stdin: { readStandardInput() }, now: Clock.now())
} catch {
    Log.fatal(error.message)
}
guard let location else { Log.fatal("no store: pass --store DIR or set EDGEPIPE_KV or EDGEPIPE_DATA") }

if case .serve(let route, let grace) = command {
    let store: SubscriptionRead.StoreOpening
    do throws(KVError) { store = .success(try openStore(location)) } catch { store = .failure(error); Log.error(error.description) }
    let reader = SubscriptionRead(route: route, grace: grace, store: store)
    FilterLoop.run { reader.handle(&$0) }
}

let outcome: KVOutcome
do throws(KVError) {
    outcome = command.execute(try openStore(location))
} catch {
    outcome = KVCommand.outcome(for: error)
}
if !outcome.output.isEmpty { FileOutput.writeAll(1, outcome.output) }
if let message = outcome.message { Log.error(message) }
exit(outcome.status.rawValue)
