#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import RateLimit

var options = Options(program: "limit", usage: limitUsage)
let rulesPath = options.value("--rules", env: "EDGEPIPE_LIMITS")
let stageName = options.value("--stage") ?? "all"
let tablePath = options.value("--table", env: "EDGEPIPE_LIMIT_TABLE")
let storeURL = options.value("--store", env: "EDGEPIPE_KV")
let checkOnly = options.flag("--check")
if let extra = options.rest().first { Log.fatal("unexpected argument '\(extra)' (try --help)") }
guard let rulesPath else { Log.fatal("--rules FILE is required (or set EDGEPIPE_LIMITS)") }
guard let stage = LimitStage(rawValue: stageName) else { Log.fatal("--stage must be ip, uid or all, got '\(stageName)'") }

let rules: [LimitRule]
do { rules = try LimitRules.load(path: rulesPath) } catch { Log.fatal(error.report(file: rulesPath)) }
if checkOnly { exit(0) }

let setup: LimitSetup
do { setup = try LimitSetup(rules: rules.filter { stage.includes($0.key) }, table: tablePath, store: storeURL) }
catch { Log.fatal(error.description) }
FilterLoop.run { setup.filter.handle(&$0) }
