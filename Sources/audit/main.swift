import Records

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "verify": VerifyCommand.main(Array(arguments.dropFirst()))
case "query": QueryCommand.main(Array(arguments.dropFirst()))
default: break
}

var options = Options(program: "audit", usage: Usage.text, arguments: arguments)
let path = AuditFilter.logPath(&options)
let log = AuditLog(logPath: path, headPath: options.value("--head"),
                   spillPath: options.value("--spill", env: "EDGEPIPE_AUDIT_SPILL"),
                   groupFsync: options.int("--group-fsync", env: "EDGEPIPE_AUDIT_GROUP_FSYNC", default: 1),
                   lockTimeoutMillis: options.int("--lock-timeout-ms", env: "EDGEPIPE_AUDIT_LOCK_TIMEOUT_MS", default: 2000))
GroupSyncTimer.install(log, millis: options.int("--group-fsync-ms", env: "EDGEPIPE_AUDIT_GROUP_FSYNC_MS", default: 1000))
if !options.rest().isEmpty { Log.fatal("unexpected argument (try --help)") }
let filter = AuditFilter(log: log)
FilterLoop.run(seesResponses: true) { filter.handle(&$0) }
