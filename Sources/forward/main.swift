#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import ForwardTool

let options = ForwardOptions.table.parse()
let stage = makeForwardStage(options)
if options.flag("--check") { exit(0) }
FilterLoop.run(stage)
