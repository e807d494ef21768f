#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Net

let usage = """
usage: forward --upstreams FILE [--check]

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

options:
  --upstreams FILE  the upstreams file (default: $EDGEPIPE_UPSTREAMS)
  --check           check the file and exit

environment: EDGEPIPE_UPSTREAMS; EDGEPIPE_TRUSTED_PROXIES (set: X-Forwarded-Proto is the
  proxy's; unset: http)
exit status: 0 at end of input (or a good file with --check); 1 when stdout closes;
  2 for a bad option or a bad file ("forward: FILE:LINE: reason" on stderr)
"""

var options = Options(program: "forward", usage: usage)
let path = options.value("--upstreams", env: "EDGEPIPE_UPSTREAMS")
let checkOnly = options.flag("--check")
if let extra = options.rest().first { Log.fatal("unexpected argument '\(extra)' (try --help)") }
guard let path else { Log.fatal("--upstreams FILE is required (or set EDGEPIPE_UPSTREAMS)") }

let table: UpstreamTable
do { table = try UpstreamTable.load(path: path) } catch { Log.fatal(error.report(file: path)) }
if checkOnly { exit(0) }

let trusted = environment("EDGEPIPE_TRUSTED_PROXIES").map { !$0.isEmpty } ?? false
let forwarder = ForwardFilter(table: table, trustForwardedProto: trusted)
FilterLoop.run { try forwarder.handle(&$0) }
