#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import CORS
import RateLimit

let usage = """
usage: route --table FILE [--cors FILE] [--limits FILE] [--audit-gone] [--check]

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

options:
  --table FILE    the route table (default: $EDGEPIPE_ROUTES)
  --audit-gone    add annotations.audit = {"kind":"gone","path":...,"outcome":"gone"}
                  to 410 answers (default: $EDGEPIPE_AUDIT_GONE=1)
  --cors FILE     the CORS settings per route name (default: $EDGEPIPE_CORS; none: off)
  --limits FILE   apply the ip and header rules of this limits file here, after routing,
                  as `limit --stage ip` would in a stage of its own (docs/limit.md)
  --check         check the table (and the CORS file) and exit

environment: EDGEPIPE_ROUTES, EDGEPIPE_CORS, EDGEPIPE_AUDIT_GONE
exit status: 0 at end of input (or a good table with --check); 1 when stdout closes;
  2 for a bad option or a bad table or CORS file ("route: FILE:LINE: reason" on stderr)
"""

var options = Options(program: "route", usage: usage)
let tablePath = options.value("--table", env: "EDGEPIPE_ROUTES")
let auditGone = options.flag("--audit-gone", env: "EDGEPIPE_AUDIT_GONE")
let corsPath = options.value("--cors", env: "EDGEPIPE_CORS").flatMap { $0.isEmpty ? nil : $0 }
let limitsPath = options.value("--limits")
let checkOnly = options.flag("--check")
if let extra = options.rest().first { Log.fatal("unexpected argument '\(extra)' (try --help)") }
guard let tablePath else { Log.fatal("--table FILE is required (or set EDGEPIPE_ROUTES)") }

let table: RouteTable
do { table = try RouteTable.load(path: tablePath) } catch { Log.fatal(error.report(file: tablePath)) }
var cors: CORSPolicy?
if let corsPath {
    do { cors = try CORSPolicy.load(path: corsPath) } catch { Log.fatal(error.report(file: corsPath)) }
}
let limits = limitsPath.flatMap { LimitSetup.inProcess(path: $0, stage: .ip, checkOnly: checkOnly) }
if checkOnly { exit(0) }

let filter = RouteFilter(table: table, auditGone: auditGone, cors: cors)
FilterLoop.run { record in
    try filter.handle(&record)
    if let limits, !record.isResponse { limits.handle(&record) }
}
