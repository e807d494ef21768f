import Records
import RateLimit

let usage = """
usage: verify-jwt [--firebase-project ID | --jwks-url URL | --jwks-file FILE | --discovery-url URL | --dev-keys DIR]
                  [--issuer ISS]... [--audience AUD]... [--algorithm ALG]... [--leeway S]
                  [--public-route NAME]... [--public-prefix PATH]... [--claim-header CLAIM=HEADER]...
                  [--auth-route NAME] [--access FILE] [--limits FILE]
                  [--jwks-cache DIR] [--refetch-cooldown S] [--fetch-timeout-ms MS] [--default-max-age S]
                  [--stale-grace S] [--max-token-bytes N] [--audit-failures] [--insecure-no-verify]

A filter of the record protocol (docs/protocol.md): verifies the Bearer JWT of each request
record on standard input and writes the record, or its answer, to standard output.
Place it after `route` so public routes can be named. Responses pass through untouched.

Every request first loses any x-authenticated-* header (and configured claim headers) the
client sent. Public routes then pass without a token. Otherwise:
  valid token      Authorization removed; x-authenticated-uid: <sub> (and claim headers)
                   added; annotations.auth = {"uid": <sub>}; passed on
  no token         401, WWW-Authenticate: Bearer, {"error":"unauthorized",...}
  invalid token    401, WWW-Authenticate: Bearer error="invalid_token", error_description="<reason>",
                   {"error":"invalid_token","message":"<reason>"}
  keys unavailable 503 {"error":"keys_unavailable",...} (endpoint down and nothing usable cached)
On the auth route (forward-auth for nginx auth_request, Caddy forward_auth, Traefik
forwardAuth) the same checks are answered here: a valid token gets 200 (no body) with
x-authenticated-uid and the claim headers in the response; a request that carries an
identity header of its own gets 400 invalid_request.

Keys (one source):
  --firebase-project ID   issuer https://securetoken.google.com/ID, audience ID, Google's
                          securetoken X.509 keys (--jwks-url/--jwks-file may relocate them)
  --jwks-url URL          a JWK Set or X.509 certificate map over https (http: loopback only)
  --jwks-file FILE        the same, from a file
  --discovery-url URL     an OpenID configuration; its jwks_uri is fetched, its issuer checked
  --dev-keys DIR          the local key set `sign-jwt dev` made (issuer/audience edgepipe-dev)
Checks:
  --issuer ISS, --audience AUD   exact, repeatable (aud may be an array in the token)
  --algorithm ALG         allowed algorithms, repeatable or comma-separated (default RS256;
                          RS384 RS512 PS256 ES256 ES384 EdDSA)
  --leeway S              clock skew tolerated for exp, nbf, iat, auth_time (default 60)
  --max-token-bytes N     longer tokens are refused unread (default 8192)
Routes and headers:
  --public-route NAME     a route name that needs no token, repeatable
  --public-prefix PATH    a path prefix that needs no token, repeatable
  --claim-header C=H      forward claim C as header H on success, repeatable
  --auth-route NAME       the route answered for forward-auth proxies (default auth; - for none)
  --access FILE           per-route rules: ROUTE optional (no token passes anonymously; a bad
                          one is still 401), ROUTE require CLAIM=V | CLAIM contains V |
                          CLAIM in {A, B} (403 forbidden naming the rule)
  --limits FILE           apply the uid rules of this limits file to verified requests, as
                          `limit --stage uid` would in a stage of its own (docs/limit.md)
  --audit-failures        add annotations.audit {"kind":"auth","outcome":"rejected",...} to rejections
Key cache (fetched sets only):
  --jwks-cache DIR        shared cache directory (default $EDGEPIPE_DATA/jwks)
  --refetch-cooldown S    minimum seconds between fetches across processes (default 30)
  --fetch-timeout-ms MS   bound on one fetch (default 2000)
  --default-max-age S     freshness without Cache-Control max-age (default 21600)
  --stale-grace S         use expired keys this long while fetches fail (default 21600)
Operator routes (no token; answered here, in every pipeline):
  --metrics-route NAME    Prometheus text of the machine's metrics (default metrics); 403 to
                          clients outside EDGEPIPE_METRICS_ALLOW (CIDRs; default loopback and
                          EDGEPIPE_TRUSTED_PROXIES)
  --ready-route NAME      readiness (default readyz): keys usable, EDGEPIPE_KV answers,
                          EDGEPIPE_AUDIT_FILE writable, EDGEPIPE_UPSTREAMS reachable; 200 or 503
Local only:
  --insecure-no-verify    skip all checks but the token's shape and sub; refused unless
                          EDGEPIPE_ENV=local; warns on every start

Environment (flags win): EDGEPIPE_FIREBASE_PROJECT, EDGEPIPE_JWKS_URL, EDGEPIPE_JWKS_FILE,
  EDGEPIPE_OIDC_DISCOVERY_URL, EDGEPIPE_DEV_KEYS, EDGEPIPE_JWT_ISSUER, EDGEPIPE_JWT_AUDIENCE,
  EDGEPIPE_JWT_ALGORITHMS, EDGEPIPE_JWT_LEEWAY, EDGEPIPE_JWT_MAX_BYTES, EDGEPIPE_JWT_PUBLIC_ROUTES,
  EDGEPIPE_JWT_PUBLIC_PREFIXES, EDGEPIPE_JWT_CLAIM_HEADERS (lists comma-separated), EDGEPIPE_JWT_AUTH_ROUTE,
  EDGEPIPE_JWT_ACCESS,
  EDGEPIPE_JWKS_CACHE, EDGEPIPE_DATA, EDGEPIPE_JWKS_COOLDOWN, EDGEPIPE_JWKS_TIMEOUT_MS,
  EDGEPIPE_JWKS_MAX_AGE, EDGEPIPE_JWKS_STALE_GRACE, EDGEPIPE_JWT_AUDIT_FAILURES,
  EDGEPIPE_JWT_INSECURE_NO_VERIFY, EDGEPIPE_METRICS_ROUTE, EDGEPIPE_READY_ROUTE, EDGEPIPE_METRICS_ALLOW,
  EDGEPIPE_READY_CACHE_MS (upstream check reuse, default 3000), EDGEPIPE_TRUSTED_PROXIES, EDGEPIPE_KV, EDGEPIPE_AUDIT_FILE, EDGEPIPE_UPSTREAMS, EDGEPIPE_METRICS, EDGEPIPE_ENV, EDGEPIPE_CLOCK_OFFSET, SSL_CERT_FILE, SSL_CERT_DIR.

Exit status: 0 at end of input; 1 when standard output closes; 2 on a configuration error.
Details: docs/verify-jwt.md
"""

var options = Options(program: "verify-jwt", usage: usage)
let configuration: Configuration
do {
    configuration = try Configuration.parse(&options)
} catch {
    Log.fatal(error.description)
}
let limitsPath = options.value("--limits")
var operationsSettings = OperationsSettings()
operationsSettings.metricsRoute = options.value("--metrics-route", env: "EDGEPIPE_METRICS_ROUTE") ?? operationsSettings.metricsRoute
operationsSettings.readyRoute = options.value("--ready-route", env: "EDGEPIPE_READY_ROUTE") ?? operationsSettings.readyRoute
if let extra = options.rest().first { Log.fatal("unexpected argument '\(extra)' (try --help)") }
if configuration.gate.insecureNoVerify {
    Log.error("WARNING: --insecure-no-verify: tokens are NOT verified; any client can claim any uid (EDGEPIPE_ENV=local)")
}
let store = configuration.source.map { KeyStore(source: $0, settings: configuration.store) }
let gate = Gate(settings: configuration.gate, verifier: configuration.verifier, keys: store)
do throws(CIDRError) {
    operationsSettings.metricsAllow = try OperationsSettings.allowList { environment($0) }
} catch {
    Log.fatal("EDGEPIPE_METRICS_ALLOW: \(error.message)")
}
let insecure = configuration.gate.insecureNoVerify
var readySettings = ReadinessSettings(store: environment("EDGEPIPE_KV"), auditFile: environment("EDGEPIPE_AUDIT_FILE"),
                                     upstreamsFile: environment("EDGEPIPE_UPSTREAMS"))
readySettings.upstreamCacheMillis = environment("EDGEPIPE_READY_CACHE_MS").flatMap { Int($0) } ?? readySettings.upstreamCacheMillis
let readiness = Readiness(settings: readySettings,
                          keys: { store.map { $0.problem() } ?? (insecure ? nil : "no key source configured") })
let operations = Operations(settings: operationsSettings, readiness: readiness)
let limits = limitsPath.flatMap { LimitSetup.inProcess(path: $0, stage: .uid) }
FilterLoop.run { record in
    if operations.handle(&record, route: record.annotation(AnnotationKey.route)?["name"]?.string) { return }
    gate.handle(&record)
    if let limits, !record.isResponse { limits.handle(&record) }
}
