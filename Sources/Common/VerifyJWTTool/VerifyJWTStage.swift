import Records
import RateLimit

/// verify-jwt as a `Stage`: the key source, the access rules, the operations routes
/// (/metrics, /readyz) and the uid limits its options and environment name, each checked
/// once; a bad one is a one-line reason and exit 2, before any record is read.
public func makeVerifyJWTStage(_ options: ParsedOptions) -> Stage {
    let configuration: Configuration
    do {
        configuration = try Configuration.parse(options)
    } catch {
        Log.fatal(error.description)
    }
    var operationsSettings = OperationsSettings()
    operationsSettings.metricsRoute = options.value("--metrics-route") ?? operationsSettings.metricsRoute
    operationsSettings.readyRoute = options.value("--ready-route") ?? operationsSettings.readyRoute
    if configuration.gate.insecureNoVerify {
        Log.error("WARNING: --insecure-no-verify: tokens are NOT verified; any client can claim any uid (EDGEPIPE_ENV=local)")
    }
    let store = configuration.source.map { KeyStore(source: $0, settings: configuration.store) }
    let gate = VerifyJWTFilter(settings: configuration.gate, verifier: configuration.verifier, keys: store)
    do throws(CIDRError) {
        operationsSettings.metricsAllow = try OperationsSettings.allowList { environment($0) }
    } catch {
        Log.fatal("EDGEPIPE_METRICS_ALLOW: \(error.message)")
    }
    let insecure = configuration.gate.insecureNoVerify
    var readySettings = ReadinessSettings(store: environment("EDGEPIPE_KV"), auditFile: environment("EDGEPIPE_AUDIT_FILE"),
                                         upstreamsFile: environment("EDGEPIPE_UPSTREAMS"))
    readySettings.upstreamCacheMillis = environment("EDGEPIPE_READY_CACHE_MS").flatMap { Int($0) } ?? readySettings.upstreamCacheMillis
    let readiness = Readiness(settings: readySettings,
                              keys: { store.map { $0.problem() } ?? (insecure ? nil : "no key source configured") })
    let operations = Operations(settings: operationsSettings, readiness: readiness)
    let limits = options.value("--limits").flatMap { LimitSetup.inProcess(path: $0, stage: .uid) }
    return Stage(program: "verify-jwt") { record in
        if operations.handle(&record, route: record.routeName) { return }
        gate.handle(&record)
        if let limits, !record.isResponse { limits.handle(&record) }
    }
}
