#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import KV

let options = KVOptions.table.parse()
let command: KVCommand
do {
    command = try KVCommand.parse(positional: options.positional, option: { options.value($0) },
                                  flag: { options.flag($0) }, stdin: { readStandardInput() }, now: Clock.now())
} catch {
    Log.fatal(error.message)
}
guard let location = options.value("--store") ?? dataPath("kv") else {
    Log.fatal("no store: pass --store DIR or set EDGEPIPE_KV or EDGEPIPE_DATA")
}

if case .serve(let route, let grace) = command {
    let store: KVServeFilter.StoreOpening
    do throws(KVError) { store = .success(try openStore(location)) } catch { store = .failure(error); Log.error(error.description) }
    let reader = KVServeFilter(route: route, grace: grace, store: store)
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
