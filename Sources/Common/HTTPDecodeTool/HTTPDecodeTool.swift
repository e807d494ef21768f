import Records
import SharedMemory

/// http-decode's settings from its options; a bad one is a one-line reason and exit 2.
public func makeDecoderSettings(_ options: ParsedOptions) -> DecoderSettings {
    var settings = DecoderSettings()
    settings.limits.maxRequestLine = options.int("--max-request-line", default: settings.limits.maxRequestLine)
    settings.limits.maxHeaderBytes = options.int("--max-header-bytes", default: settings.limits.maxHeaderBytes)
    settings.limits.maxHeaderCount = options.int("--max-headers", default: settings.limits.maxHeaderCount)
    settings.limits.maxBody = options.int("--max-body", default: settings.limits.maxBody)
    settings.firstByteTimeoutMs = options.int("--first-byte-timeout-ms", default: settings.firstByteTimeoutMs)
    settings.idleTimeoutMs = options.int("--idle-timeout-ms", default: settings.idleTimeoutMs)
    settings.headerTimeoutMs = options.int("--header-timeout-ms", default: settings.headerTimeoutMs)
    settings.bodyTimeoutMs = options.int("--body-timeout-ms", default: settings.bodyTimeoutMs)
    settings.lingerMs = options.int("--linger-ms", default: settings.lingerMs)
    do throws(CIDRError) {
        settings.trustedProxies = try TrustedProxies(parsing: options.values("--trusted-proxy"))
    } catch {
        Log.fatal("--trusted-proxy: \(error.message)")
    }
    if let problem = settings.problem { Log.fatal(problem) }
    return settings
}

/// Serves the connection on standard input, its records going to `output`; returns the
/// exit status. One decoder per pipeline, living as long as its connection: it counts both.
public func runHTTPDecode<Output: DecodedRecords>(_ settings: DecoderSettings, into output: inout Output) -> Int32 {
    let metrics = Metrics.shared
    metrics.map { $0.add($0.layout.pipelinesStarted); $0.add($0.layout.connectionsOpen) }
    let status = HTTPDecodeFilter(settings: settings, remote: RemoteAddress.detect()).run(into: &output)
    metrics.map { $0.add($0.layout.connectionsOpen, delta: -1) }
    return status
}
