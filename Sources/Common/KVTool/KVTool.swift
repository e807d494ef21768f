#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import KV

/// Runs the kv command its options name: `serve` as a filter, any other command once
/// against the store, with the exit status the command gives.
public func runKV(_ options: ParsedOptions) -> Never {
    let command = kvCommand(options)
    if case .serve(let route, let grace) = command {
        FilterLoop.run(makeKVServeStage(route: route, grace: grace, location: storeLocation(options)))
    }
    let outcome: KVOutcome
    do throws(KVError) {
        outcome = command.execute(try openStore(storeLocation(options)))
    } catch {
        outcome = KVCommand.outcome(for: error)
    }
    if !outcome.output.isEmpty { FileOutput.writeAll(1, outcome.output) }
    if let message = outcome.message { Log.error(message) }
    exit(outcome.status.rawValue)
}

/// `kv serve` as a `Stage`, for `chain`; any other kv command is refused (exit 2).
public func makeKVServeStage(_ options: ParsedOptions) -> Stage {
    guard case .serve(let route, let grace) = kvCommand(options) else {
        Log.fatal("only `kv serve` is a filter; run other kv commands on their own")
    }
    return makeKVServeStage(route: route, grace: grace, location: storeLocation(options))
}

func makeKVServeStage(route: String, grace: Int, location: String) -> Stage {
    let store: KVServeFilter.StoreOpening
    do throws(KVError) { store = .success(try openStore(location)) } catch { store = .failure(error); Log.error(error.description) }
    let reader = KVServeFilter(route: route, grace: grace, store: store)
    return Stage(program: "kv") { reader.handle(&$0) }
}

func kvCommand(_ options: ParsedOptions) -> KVCommand {
    do {
        return try KVCommand.parse(positional: options.positional, option: { options.value($0) },
                                   flag: { options.flag($0) }, stdin: { readStandardInput() }, now: Clock.now())
    } catch {
        Log.fatal(error.message)
    }
}

func storeLocation(_ options: ParsedOptions) -> String {
    guard let location = options.value("--store") ?? dataPath("kv") else {
        Log.fatal("no store: pass --store DIR or set EDGEPIPE_KV or EDGEPIPE_DATA")
    }
    return location
}
