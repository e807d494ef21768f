#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Net

let options = ForwardOptions.table.parse()
guard let path = options.value("--upstreams") else { Log.fatal("--upstreams FILE is required (or set EDGEPIPE_UPSTREAMS)") }

let table: UpstreamTable
do { table = try UpstreamTable.load(path: path) } catch { Log.fatal(error.report(file: path)) }
if options.flag("--check") { exit(0) }

let trusted = environment("EDGEPIPE_TRUSTED_PROXIES").map { !$0.isEmpty } ?? false
let forwarder = ForwardFilter(table: table, trustForwardedProto: trusted)
FilterLoop.run { try forwarder.handle(&$0) }
