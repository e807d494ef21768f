import Records

let options = HTTPEncodeOptions.table.parse()
let destination = AccessLogDestination.parse(options.value("--access-log"), defaultFile: dataPath("log/access.log"))
let log = destination == .off ? nil : AccessLog(destination)
HTTPEncodeFilter(observer: ResponseObserver(log: log, logQuery: options.flag("--access-log-query"))).run()
