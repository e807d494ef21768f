import Records

/// forward's command line, declared once: its --help, parsing and docs/forward.md's table.
public enum ForwardOptions {
    public static let table = OptionTable(
        program: "forward",
        synopsis: ["forward --upstreams FILE [--check]"],
        summary: """
        Reads request records (docs/protocol.md) on stdin and writes one record per line on
        stdout. A request whose route name (annotations.route.name) is listed in the upstreams
        FILE (syntax in docs/forward.md) is sent to that upstream over HTTP/1.1 and answered with
        the upstream's response, annotated {"upstream": {"name", "address", "status", "ms"}}.
        Every other record passes on untouched.
          upstream down                 502 upstream_unavailable
          connect or response too slow  504 upstream_timeout
          malformed response            502 bad_upstream_response
          response over max-response    502 upstream_response_too_large
          Upgrade / WebSocket           501 upgrade_not_supported
        """,
        options: [
            .value("--upstreams", "FILE", env: "EDGEPIPE_UPSTREAMS", "the upstreams file (required)"),
            .flag("--check", "check the file and exit"),
        ],
        variables: [.init("EDGEPIPE_TRUSTED_PROXIES", "set: X-Forwarded-Proto is the proxy's; unset: http")],
        epilogue: """
        exit status: 0 at end of input (or a good file with --check); 1 when stdout closes;
          2 for a bad option or a bad file ("forward: FILE:LINE: reason" on stderr)
        """)
}
