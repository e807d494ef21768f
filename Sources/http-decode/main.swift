#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import SharedMemory

let usage = """
usage: http-decode [options]

Reads HTTP/1.1 requests from standard input (the client socket: the launcher, e.g. socat
EXEC, tcpserver, inetd or systemd Accept=yes, runs pipelines/connection with it as stdin and
stdout) and writes one request record per request on standard output (docs/protocol.md).
A request that cannot be read becomes a response record (400, 408, 413, 414, 417, 431, 501
or 505 with a JSON error body and keep_alive false) and is the last record. For
Expect: 100-continue it writes an interim response record (status 100, "interim": true)
first, which http-encode writes to the client as "HTTP/1.1 100 Continue".
Exits after the connection's last request, closing standard output.

options (each overrides its environment variable):
  --max-request-line N    request line bytes, CRLF included (414)  EDGEPIPE_MAX_REQUEST_LINE  8192
  --max-header-bytes N    header section bytes (431)               EDGEPIPE_MAX_HEADER_BYTES  32768
  --max-headers N         header fields (431)                      EDGEPIPE_MAX_HEADERS       100
  --max-body N            decoded body bytes (413)                 EDGEPIPE_MAX_BODY          1048576
                          (refused at start when its worst case cannot fit in a 16 MiB record)
  --first-byte-timeout-ms N  wait for the first request to start, then close silently
                          (a connection that never speaks)   EDGEPIPE_FIRST_BYTE_TIMEOUT_MS 5000
  --idle-timeout-ms N     wait for a next request, then close silently EDGEPIPE_IDLE_TIMEOUT_MS 60000
  --header-timeout-ms N   first byte to end of head (408)          EDGEPIPE_HEADER_TIMEOUT_MS 10000
  --body-timeout-ms N     end of head to end of body (408)         EDGEPIPE_BODY_TIMEOUT_MS   30000
  --linger-ms N           drain unread input after the last answer EDGEPIPE_LINGER_MS         2000
  --trusted-proxy CIDR    a front proxy (nginx, HAProxy) whose X-Forwarded-For / X-Real-IP
                          name the client; repeatable; IPv4 or IPv6, e.g. 127.0.0.2/32
                          or 10.0.0.0/8                   EDGEPIPE_TRUSTED_PROXIES (comma-separated)
  --check                 only check the settings: exit 0, or 2 with the reason
  --incoming-cpu          only print the CPU that took standard input's packets as they
                          arrived (SO_INCOMING_CPU) and exit: 1 when it is not a socket
                          or the kernel does not know (pipelines/connection pins with it)

environment:
  TCPREMOTEIP, REMOTE_ADDR, SOCAT_PEERADDR   the peer address for "remote" (first set wins;
                                             else getpeername(2) on standard input)

"remote" is the peer address, except when the peer is a trusted proxy: then the right-most
X-Forwarded-For address that is not itself a trusted proxy, else X-Real-IP. From any other
peer those headers are ignored for "remote" (a client can send them); they stay headers.

exit status: 0 when the connection is done, 1 when standard output is closed, 2 on bad usage.
See docs/http-decode.md.
"""

var options = Options(program: "http-decode", usage: usage)
if options.flag("--incoming-cpu") {
    guard let cpu = IncomingCPU.of() else { Log.fatal("--incoming-cpu: standard input is not a socket that saw packets", status: 1) }
    print(cpu)
    exit(0)
}
let checkOnly = options.flag("--check")
var settings = DecoderSettings()
settings.limits.maxRequestLine = options.int("--max-request-line", env: "EDGEPIPE_MAX_REQUEST_LINE", default: settings.limits.maxRequestLine)
settings.limits.maxHeaderBytes = options.int("--max-header-bytes", env: "EDGEPIPE_MAX_HEADER_BYTES", default: settings.limits.maxHeaderBytes)
settings.limits.maxHeaderCount = options.int("--max-headers", env: "EDGEPIPE_MAX_HEADERS", default: settings.limits.maxHeaderCount)
settings.limits.maxBody = options.int("--max-body", env: "EDGEPIPE_MAX_BODY", default: settings.limits.maxBody)
settings.firstByteTimeoutMs = options.int("--first-byte-timeout-ms", env: "EDGEPIPE_FIRST_BYTE_TIMEOUT_MS", default: settings.firstByteTimeoutMs)
settings.idleTimeoutMs = options.int("--idle-timeout-ms", env: "EDGEPIPE_IDLE_TIMEOUT_MS", default: settings.idleTimeoutMs)
settings.headerTimeoutMs = options.int("--header-timeout-ms", env: "EDGEPIPE_HEADER_TIMEOUT_MS", default: settings.headerTimeoutMs)
settings.bodyTimeoutMs = options.int("--body-timeout-ms", env: "EDGEPIPE_BODY_TIMEOUT_MS", default: settings.bodyTimeoutMs)
settings.lingerMs = options.int("--linger-ms", env: "EDGEPIPE_LINGER_MS", default: settings.lingerMs)
var proxySpecs = options.values("--trusted-proxy")
if proxySpecs.isEmpty, let env = environment("EDGEPIPE_TRUSTED_PROXIES") { proxySpecs = [env] }
do throws(CIDRError) {
    settings.trustedProxies = try TrustedProxies(parsing: proxySpecs)
} catch {
    Log.fatal("--trusted-proxy: \(error.message)")
}
if !options.rest().isEmpty { Log.fatal("no arguments expected (try --help)") }
if let problem = settings.problem { Log.fatal(problem) }
if checkOnly { exit(0) }

// One http-decode per pipeline, living as long as its connection: it counts both.
let metrics = Metrics.shared
metrics.map { $0.add($0.layout.pipelinesStarted); $0.add($0.layout.connectionsOpen) }
let status = HTTPDecoder(settings: settings, remote: RemoteAddress.detect()).run()
metrics.map { $0.add($0.layout.connectionsOpen, delta: -1) }
exit(status)
