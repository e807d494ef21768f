import Records

/// What http-encode does after each response, from its options: the access log (or none)
/// and the metrics.
public func makeResponseObserver(_ options: ParsedOptions) -> ResponseObserver {
    let destination = AccessLogDestination.parse(options.value("--access-log"), defaultFile: dataPath("log/access.log"))
    return ResponseObserver(log: destination == .off ? nil : AccessLog(destination), logQuery: options.flag("--access-log-query"))
}
