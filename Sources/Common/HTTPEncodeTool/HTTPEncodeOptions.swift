import Records

/// http-encode's command line, declared once (docs/http-encode.md has the same in more words).
public enum HTTPEncodeOptions {
    public static let table = OptionTable(
        program: "http-encode",
        synopsis: ["http-encode [--access-log DEST] [--access-log-query]"],
        summary: """
        Reads response records on standard input (docs/protocol.md) and writes each as an
        HTTP/1.1 response on standard output (the client socket), in order, one write each.
        Sets Date, Content-Length and Content-Type (application/octet-stream when the record has
        none) and its own Connection header; ignores connection, keep-alive, transfer-encoding,
        content-length, date, upgrade, te, trailer and proxy-connection set by filters. HEAD
        responses carry Content-Length but no body; 204 and 304 carry neither. An interim
        record (status 100 or 103, "interim": true) is written as that 1xx response. A record
        with annotations.cors (route --cors) gets Access-Control-Allow-Origin and Vary: Origin
        (docs/cors.md). A request record nobody answered becomes 502 no_response; a line that
        is not a record, or a response it cannot write safely (bad status, control characters
        in a header), becomes 500 internal_error and closes the connection. Error bodies are
        JSON {"error","message"}. Exits after writing a response whose keep_alive is false, or
        at end of input; either way it half-closes standard output first (shutdown(2)) so the
        client sees the end at once.

        Every response carries x-request-id (the record's request_id). Once a response is
        written, one access-log line (JSON) is appended and the request metrics are counted.
        """,
        options: [
            .value("--access-log", "DEST", env: "EDGEPIPE_ACCESS_LOG",
                   "a file, - for stderr, or off (default $EDGEPIPE_DATA/log/access.log;\noff without EDGEPIPE_DATA)"),
            .flag("--access-log-query", env: "EDGEPIPE_ACCESS_LOG_QUERY", "log the query too (off: queries carry secrets)"),
        ],
        variables: [
            .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to Date"),
            .init("EDGEPIPE_METRICS", "the metrics file, or off (default $EDGEPIPE_DATA/run/metrics)"),
            .init("EDGEPIPE_DATA", "the data directory"),
        ],
        epilogue: """
        exit status: 0 when done, 1 when standard output is closed, 2 on bad usage.
        See docs/http-encode.md.
        """)
}
