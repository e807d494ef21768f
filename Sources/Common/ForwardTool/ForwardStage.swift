import Records
import Net

/// forward as a `Stage`: the upstreams file its options name, loaded and checked once (a
/// bad line is `FILE:LINE: reason` and exit 2, before any record is read).
public func makeForwardStage(_ options: ParsedOptions) -> Stage {
    guard let path = options.value("--upstreams") else { Log.fatal("--upstreams FILE is required (or set EDGEPIPE_UPSTREAMS)") }
    let table: UpstreamTable
    do { table = try UpstreamTable.load(path: path) } catch { Log.fatal(error.report(file: path)) }
    let trusted = environment("EDGEPIPE_TRUSTED_PROXIES").map { !$0.isEmpty } ?? false
    let forwarder = ForwardFilter(table: table, trustForwardedProto: trusted)
    return Stage(program: "forward") { try forwarder.handle(&$0) }
}
