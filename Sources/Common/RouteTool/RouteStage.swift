#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import CORS
import RateLimit

/// route as a `Stage`: the route table, the CORS settings and the ip limits its options
/// name, each loaded and checked once. A file that does not check is a one-line
/// `FILE:LINE: reason` and exit 2, before any record is read.
public func makeRouteStage(_ options: ParsedOptions) -> Stage {
    guard let tablePath = options.value("--table") else { Log.fatal("--table FILE is required (or set EDGEPIPE_ROUTES)") }
    let corsPath = options.value("--cors").flatMap { $0.isEmpty ? nil : $0 }
    let table: RouteTable
    do { table = try RouteTable.load(path: tablePath) } catch { Log.fatal(error.report(file: tablePath)) }
    let filter: RouteFilter
    if let corsPath {
        let cors: CORSPolicy
        do { cors = try CORSPolicy.load(path: corsPath) } catch { Log.fatal(error.report(file: corsPath)) }
        filter = RouteFilter(table: table, auditGone: options.flag("--audit-gone"), cors: cors)
    } else {
        filter = RouteFilter(table: table, auditGone: options.flag("--audit-gone"))
    }
    let limits = options.value("--limits").flatMap {
        LimitSetup.inProcess(path: $0, stage: .ip, checkOnly: options.flag("--check"))
    }
    return Stage(program: "route") { record in
        try filter.handle(&record)
        if let limits, !record.isResponse { limits.handle(&record) }
    }
}
