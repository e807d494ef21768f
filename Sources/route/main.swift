#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import RouteTool

let options = RouteOptions.table.parse()
let stage = makeRouteStage(options)
if options.flag("--check") { exit(0) }
FilterLoop.run(stage)
