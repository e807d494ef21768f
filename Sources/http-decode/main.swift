#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import SharedMemory

let options = HTTPDecodeOptions.table.parse()
if options.flag("--incoming-cpu") {
    guard let cpu = IncomingCPU.of() else { Log.fatal("--incoming-cpu: standard input is not a socket that saw packets", status: 1) }
    print(cpu)
    exit(0)
}
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
if options.flag("--check") { exit(0) }

// One http-decode per pipeline, living as long as its connection: it counts both.
let metrics = Metrics.shared
metrics.map { $0.add($0.layout.pipelinesStarted); $0.add($0.layout.connectionsOpen) }
let status = HTTPDecodeFilter(settings: settings, remote: RemoteAddress.detect()).run()
metrics.map { $0.add($0.layout.connectionsOpen, delta: -1) }
exit(status)
