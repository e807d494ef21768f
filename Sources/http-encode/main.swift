import Records

let usage = """
usage: http-encode

Reads response records on standard input (docs/protocol.md) and writes each as an
HTTP/1.1 response on standard output (the client socket), in order, one write each.
Sets Date, Content-Length and Content-Type (application/octet-stream when the record has
none) and its own Connection header; ignores connection, keep-alive, transfer-encoding,
content-length, date, upgrade, te, trailer and proxy-connection set by filters. HEAD
responses carry Content-Length but no body; 204 and 304 carry neither. A record with
annotations.cors (route --cors) gets Access-Control-Allow-Origin and Vary: Origin (docs/cors.md).
A request record nobody answered becomes 502 no_response; a line that is not a record, or
a response it cannot write safely (bad status, control characters in a header), becomes
500 internal_error and closes the connection. Error bodies are JSON {"error","message"}.
Exits after writing a response whose keep_alive is false, or at end of input; either way
it half-closes standard output first (shutdown(2)) so the client sees the end at once.

Every response carries x-request-id (the record's request_id). Once a response is
written, one access-log line (JSON) is appended and the request metrics are counted.

options (each overrides its environment variable):
  --access-log DEST     a file, - for stderr, or off     EDGEPIPE_ACCESS_LOG
                        (default $EDGEPIPE_DATA/log/access.log; off without EDGEPIPE_DATA)
  --access-log-query    log the query too (off: queries carry secrets)  EDGEPIPE_ACCESS_LOG_QUERY=1
environment: EDGEPIPE_CLOCK_OFFSET (seconds added to Date), EDGEPIPE_METRICS (the metrics
file, or off; default $EDGEPIPE_DATA/run/metrics), EDGEPIPE_DATA.

exit status: 0 when done, 1 when standard output is closed, 2 on bad usage.
See docs/http-encode.md.
"""

var options = Options(program: "http-encode", usage: usage)
let destination = AccessLogDestination.parse(options.value("--access-log", env: "EDGEPIPE_ACCESS_LOG"),
                                             data: environment("EDGEPIPE_DATA"))
let logQuery = options.flag("--access-log-query", env: "EDGEPIPE_ACCESS_LOG_QUERY")
if !options.rest().isEmpty { Log.fatal("no arguments expected (try --help)") }
let log = destination == .off ? nil : AccessLog(destination)
HTTPEncoder(observer: ResponseObserver(log: log, logQuery: logQuery)).run()
