import Records

let options = HTTPEncodeOptions.table.parse()
let destination = AccessLogDestination.parse(options.value("--access-log"), data: environment("EDGEPIPE_DATA"))
let log = destination == .off ? nil : AccessLog(destination)
HTTPEncodeFilter(observer: ResponseObserver(log: log, logQuery: options.flag("--access-log-query"))).run()
