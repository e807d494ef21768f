import Records

/// route's command line, declared once (docs/route.md has the same in more words).
public enum RouteOptions {
    public static let table = OptionTable(
        program: "route",
        synopsis: ["route --table FILE [--cors FILE] [--limits FILE] [--audit-gone] [--check]"],
        summary: """
        Reads request records (docs/protocol.md) on stdin and writes one record per line on
        stdout. Each request is looked up in the route table FILE (syntax in docs/route.md):
          routed        annotations.route = {"name": ..., "params": {...}} is added, passed on
          fixed answer  answered here (e.g. GET /healthz -> 200 {"status":"ok"})
          GONE          410 {"error":"gone","removed_at":...,"replacement":...}
          unknown path  404 not_found; known path, other method: 405 with Allow
          OPTIONS       204 with Allow, unless a route takes OPTIONS itself
          refused path  400 bad_path (encoded slash, dot segment, NUL, bad escape, '//')
        With --cors: a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) is
        answered 204 or 403 cors_forbidden; a request from an allowed origin gets
        annotations.cors, which http-encode turns into Access-Control-* headers (docs/cors.md).
        Responses already made upstream pass through unchanged.
        """,
        options: [
            .value("--table", "FILE", env: "EDGEPIPE_ROUTES", "the route table (required)"),
            .flag("--audit-gone", env: "EDGEPIPE_AUDIT_GONE",
                  "add annotations.audit = {\"kind\":\"gone\",\"path\":...,\"outcome\":\"gone\"}\nto 410 answers"),
            .value("--cors", "FILE", env: "EDGEPIPE_CORS", "the CORS settings per route name (none or empty: off)"),
            .value("--limits", "FILE", "apply the ip and header rules of this limits file here, after\nrouting, as `limit --stage ip` would in a stage of its own"),
            .flag("--check", "check the table (and the CORS and limits files) and exit"),
        ],
        epilogue: """
        exit status: 0 at end of input (or a good table with --check); 1 when stdout closes;
          2 for a bad option or a bad table or CORS file ("route: FILE:LINE: reason" on stderr)
        """)
}
