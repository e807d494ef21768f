#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import RateLimit

let options = LimitOptions.table.parse()
guard let rulesPath = options.value("--rules") else { Log.fatal("--rules FILE is required (or set EDGEPIPE_LIMITS)") }
let stageName = options.value("--stage") ?? "all"
guard let stage = LimitStage(rawValue: stageName) else { Log.fatal("--stage must be ip, uid or all, got '\(stageName)'") }

let rules: [LimitRule]
do { rules = try LimitRules.load(path: rulesPath) } catch { Log.fatal(error.report(file: rulesPath)) }
if options.flag("--check") { exit(0) }

let setup: LimitSetup
do {
    setup = try LimitSetup(rules: rules.filter { stage.includes($0.key) }, table: options.value("--table"),
                           store: options.value("--store"))
} catch {
    Log.fatal(error.description)
}
FilterLoop.run { setup.filter.handle(&$0) }
