import Records

/// http-decode's command line, declared once (docs/http-decode.md has the same in more words).
public enum HTTPDecodeOptions {
    public static let table = OptionTable(
        program: "http-decode",
        synopsis: ["http-decode [options]", "http-decode --check [options]", "http-decode --incoming-cpu"],
        summary: """
        Reads HTTP/1.1 requests from standard input (the client socket: the launcher, e.g. socat
        EXEC, tcpserver, inetd or systemd Accept=yes, runs pipelines/connection with it as stdin and
        stdout) and writes one request record per request on standard output (docs/protocol.md).
        A request that cannot be read becomes a response record (400, 408, 413, 414, 417, 431, 501
        or 505 with a JSON error body and keep_alive false) and is the last record. For
        Expect: 100-continue it writes an interim response record (status 100, "interim": true)
        first, which http-encode writes to the client as "HTTP/1.1 100 Continue".
        Exits after the connection's last request, closing standard output.

        "remote" is the peer address, except when the peer is a trusted proxy: then the right-most
        X-Forwarded-For address that is not itself a trusted proxy, else X-Real-IP. From any other
        peer those headers are ignored for "remote" (a client can send them); they stay headers.
        """,
        options: [
            .value("--max-request-line", "N", env: "EDGEPIPE_MAX_REQUEST_LINE", "request line bytes, CRLF included (414; 8192)"),
            .value("--max-header-bytes", "N", env: "EDGEPIPE_MAX_HEADER_BYTES", "header section bytes (431; 32768)"),
            .value("--max-headers", "N", env: "EDGEPIPE_MAX_HEADERS", "header fields (431; 100)"),
            .value("--max-body", "N", env: "EDGEPIPE_MAX_BODY",
                   "decoded body bytes (413; 1048576); refused at start when its\nworst case cannot fit in a 16 MiB record"),
            .value("--first-byte-timeout-ms", "N", env: "EDGEPIPE_FIRST_BYTE_TIMEOUT_MS",
                   "wait for the first request to start, then close silently\n(a connection that never speaks; 5000)"),
            .value("--idle-timeout-ms", "N", env: "EDGEPIPE_IDLE_TIMEOUT_MS", "wait for a next request, then close silently (60000)"),
            .value("--header-timeout-ms", "N", env: "EDGEPIPE_HEADER_TIMEOUT_MS", "first byte to end of head (408; 10000)"),
            .value("--body-timeout-ms", "N", env: "EDGEPIPE_BODY_TIMEOUT_MS", "end of head to end of body (408; 30000)"),
            .value("--linger-ms", "N", env: "EDGEPIPE_LINGER_MS", "drain unread input after the last answer (2000)"),
            .list("--trusted-proxy", "CIDR", env: "EDGEPIPE_TRUSTED_PROXIES",
                  "a front proxy (nginx, HAProxy) whose X-Forwarded-For /\nX-Real-IP name the client; IPv4 or IPv6, e.g. 127.0.0.2/32"),
            .flag("--check", "only check the settings: exit 0, or 2 with the reason"),
            .flag("--incoming-cpu", "only print the CPU that took standard input's packets as they\narrived (SO_INCOMING_CPU) and exit: 1 when it is not a socket\nor the kernel does not know (pipelines/connection pins with it)"),
        ],
        variables: [
            .init("TCPREMOTEIP, REMOTE_ADDR, SOCAT_PEERADDR",
                  "the peer address for \"remote\" (first set wins; else\ngetpeername(2) on standard input)"),
            .init("EDGEPIPE_METRICS", "the metrics file, or off (default $EDGEPIPE_DATA/run/metrics)"),
        ],
        epilogue: """
        exit status: 0 when the connection is done, 1 when standard output is closed, 2 on bad usage.
        See docs/http-decode.md.
        """)
}
