import Records

/// verify-jwt's command line, declared once (docs/verify-jwt.md has the same in more words).
public enum VerifyJWTOptions {
    public static let table = OptionTable(
        program: "verify-jwt",
        synopsis: [
            "verify-jwt [--firebase-project ID | --jwks-url URL | --jwks-file FILE | --discovery-url URL | --dev-keys DIR]",
            "           [--issuer ISS]... [--audience AUD]... [--algorithm ALG]... [--leeway S]",
            "           [--public-route NAME]... [--public-prefix PATH]... [--claim-header CLAIM=HEADER]...",
            "           [--auth-route NAME] [--access FILE] [--limits FILE]",
            "           [--jwks-cache DIR] [--refetch-cooldown S] [--fetch-timeout-ms MS] [--default-max-age S]",
            "           [--stale-grace S] [--max-token-bytes N] [--audit-failures] [--insecure-no-verify]",
            "           [--metrics-route NAME] [--ready-route NAME]",
        ],
        summary: """
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
        identity header of its own gets 400 invalid_request. The operator routes (metrics,
        readyz) need no token and are answered here, in every pipeline.

        Environment: each option has a variable, named beside it below; flags win over them.
        """,
        options: [
            // Keys (one source).
            .value("--firebase-project", "ID", env: "EDGEPIPE_FIREBASE_PROJECT",
                   "issuer https://securetoken.google.com/ID, audience ID, Google's\nsecuretoken X.509 keys (--jwks-url/--jwks-file may relocate them)"),
            .value("--jwks-url", "URL", env: "EDGEPIPE_JWKS_URL", "a JWK Set or X.509 certificate map over https (http: loopback only)"),
            .value("--jwks-file", "FILE", env: "EDGEPIPE_JWKS_FILE", "the same, from a file"),
            .value("--discovery-url", "URL", env: "EDGEPIPE_OIDC_DISCOVERY_URL",
                   "an OpenID configuration; its jwks_uri is fetched, its issuer checked"),
            .value("--dev-keys", "DIR", env: "EDGEPIPE_DEV_KEYS", "the local key set `sign-jwt dev` made (issuer/audience edgepipe-dev)"),
            // Checks.
            .list("--issuer", "ISS", env: "EDGEPIPE_JWT_ISSUER", "an accepted issuer, exact"),
            .list("--audience", "AUD", env: "EDGEPIPE_JWT_AUDIENCE", "an accepted audience, exact (aud may be an array in the token)"),
            .list("--algorithm", "ALG", env: "EDGEPIPE_JWT_ALGORITHMS",
                  "allowed algorithms, also comma-separated (default RS256;\nRS384 RS512 PS256 ES256 ES384 EdDSA)"),
            .value("--leeway", "S", env: "EDGEPIPE_JWT_LEEWAY", "clock skew tolerated for exp, nbf, iat, auth_time (default 60)"),
            .value("--max-token-bytes", "N", env: "EDGEPIPE_JWT_MAX_BYTES", "longer tokens are refused unread (default 8192)"),
            // Routes and headers.
            .list("--public-route", "NAME", env: "EDGEPIPE_JWT_PUBLIC_ROUTES", "a route name that needs no token"),
            .list("--public-prefix", "PATH", env: "EDGEPIPE_JWT_PUBLIC_PREFIXES", "a path prefix that needs no token"),
            .list("--claim-header", "C=H", env: "EDGEPIPE_JWT_CLAIM_HEADERS", "forward claim C as header H on success"),
            .value("--auth-route", "NAME", env: "EDGEPIPE_JWT_AUTH_ROUTE",
                   "the route answered for forward-auth proxies (default auth; - for none)"),
            .value("--access", "FILE", env: "EDGEPIPE_JWT_ACCESS",
                   "per-route rules: ROUTE optional (no token passes anonymously; a bad\none is still 401), ROUTE require CLAIM=V | CLAIM contains V |\nCLAIM in {A, B} (403 forbidden naming the rule)"),
            .value("--limits", "FILE", "apply the uid rules of this limits file to verified requests, as\n`limit --stage uid` would in a stage of its own (docs/limit.md)"),
            .flag("--audit-failures", env: "EDGEPIPE_JWT_AUDIT_FAILURES",
                  "add annotations.audit {\"kind\":\"auth\",\"outcome\":\"rejected\",...} to rejections"),
            // Key cache (fetched sets only).
            .value("--jwks-cache", "DIR", env: "EDGEPIPE_JWKS_CACHE", "shared cache directory (default $EDGEPIPE_DATA/jwks)"),
            .value("--refetch-cooldown", "S", env: "EDGEPIPE_JWKS_COOLDOWN", "minimum seconds between fetches across processes (default 30)"),
            .value("--fetch-timeout-ms", "MS", env: "EDGEPIPE_JWKS_TIMEOUT_MS", "bound on one fetch (default 2000)"),
            .value("--default-max-age", "S", env: "EDGEPIPE_JWKS_MAX_AGE", "freshness without Cache-Control max-age (default 21600)"),
            .value("--stale-grace", "S", env: "EDGEPIPE_JWKS_STALE_GRACE", "use expired keys this long while fetches fail (default 21600)"),
            // Operator routes.
            .value("--metrics-route", "NAME", env: "EDGEPIPE_METRICS_ROUTE",
                   "Prometheus text of the machine's metrics (default metrics); 403\nto clients outside EDGEPIPE_METRICS_ALLOW"),
            .value("--ready-route", "NAME", env: "EDGEPIPE_READY_ROUTE",
                   "readiness (default readyz): keys usable, EDGEPIPE_KV answers,\nEDGEPIPE_AUDIT_FILE writable, EDGEPIPE_UPSTREAMS reachable; 200 or 503"),
            // Local only.
            .flag("--insecure-no-verify", env: "EDGEPIPE_JWT_INSECURE_NO_VERIFY",
                  "skip all checks but the token's shape and sub; refused unless\nEDGEPIPE_ENV=local; warns on every start"),
        ],
        variables: [
            .init("EDGEPIPE_DATA", "the data directory (the key cache's default place)"),
            .init("EDGEPIPE_METRICS_ALLOW", "CIDRs allowed /metrics (default loopback and the trusted proxies)"),
            .init("EDGEPIPE_READY_CACHE_MS", "how long the upstream check is reused (default 3000)"),
            .init("EDGEPIPE_TRUSTED_PROXIES", "the front proxies (also allowed /metrics)"),
            .init("EDGEPIPE_KV, EDGEPIPE_AUDIT_FILE, EDGEPIPE_UPSTREAMS", "what /readyz checks"),
            .init("EDGEPIPE_METRICS", "the metrics file, or off"),
            .init("EDGEPIPE_ENV", "local allows --insecure-no-verify"),
            .init("EDGEPIPE_CLOCK_OFFSET", "seconds added to the clock"),
            .init("SSL_CERT_FILE, SSL_CERT_DIR", "the CA store for fetched keys"),
        ],
        epilogue: """
        Exit status: 0 at end of input; 1 when standard output closes; 2 on a configuration error.
        Details: docs/verify-jwt.md
        """)
}
