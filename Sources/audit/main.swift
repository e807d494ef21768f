import Records

let (command, options) = Usage.commands.parse()
switch command {
case "verify": VerifyCommand.main(options)
case "query": QueryCommand.main(options)
default: break
}

let log = AuditLog(logPath: AuditFilter.logPath(options), headPath: options.value("--head"),
                   spillPath: options.value("--spill"),
                   groupFsync: options.int("--group-fsync", default: 1),
                   lockTimeoutMillis: options.int("--lock-timeout-ms", default: 2000))
GroupSyncTimer.install(log, millis: options.int("--group-fsync-ms", default: 1000))
let filter = AuditFilter(log: log)
FilterLoop.run(seesResponses: true) { filter.handle(&$0) }
