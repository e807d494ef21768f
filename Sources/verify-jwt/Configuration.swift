import Records
import Crypto
import Net
import JWT

/// Everything verify-jwt is told, from flags and environment variables (flags win).
struct Configuration {
    var verifier: JWTVerifier
    var source: KeySource?
    var store: KeyStoreSettings
    var gate: GateSettings

    struct Invalid: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static let firebaseKeysURL = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
    static let devIssuer = "edgepipe-dev"
    static let devAudience = "edgepipe-dev"

    /// Reads the options; `env` is the process environment (a parameter for the tests).
    static func parse(_ options: inout Options, env: (String) -> String? = { environment($0) }) throws(Invalid) -> Configuration {
        func list(_ flag: String, _ variable: String) -> [String] {
            let given = options.values(flag)
            if !given.isEmpty { return given }
            return (env(variable) ?? "").split(separator: ",").map { String($0.trimmingSpacesAndTabs()) }.filter { !$0.isEmpty }
        }
        func text(_ flag: String, _ variable: String) -> String? {
            options.values(flag).last ?? env(variable)
        }
        func number(_ flag: String, _ variable: String, default value: Int, min: Int = 0) throws(Invalid) -> Int {
            guard let t = text(flag, variable) else { return value }
            guard let n = Int(t), n >= min else { throw Invalid("\(flag) must be an integer >= \(min), got '\(t)'") }
            return n
        }
        func flag(_ name: String, _ variable: String) -> Bool {
            if options.flag(name) { return true }
            if let v = env(variable) { return ["1", "true", "yes", "on"].contains(v.lowercased()) }
            return false
        }

        let firebase = text("--firebase-project", "EDGEPIPE_FIREBASE_PROJECT")
        var issuers = list("--issuer", "EDGEPIPE_JWT_ISSUER")
        var audiences = list("--audience", "EDGEPIPE_JWT_AUDIENCE")
        let jwksURL = text("--jwks-url", "EDGEPIPE_JWKS_URL")
        let jwksFile = text("--jwks-file", "EDGEPIPE_JWKS_FILE")
        let discovery = text("--discovery-url", "EDGEPIPE_OIDC_DISCOVERY_URL")
        let devKeys = text("--dev-keys", "EDGEPIPE_DEV_KEYS")
        let algorithmNames = list("--algorithm", "EDGEPIPE_JWT_ALGORITHMS").flatMap { $0.split(separator: ",").map(String.init) }
        let leeway = try number("--leeway", "EDGEPIPE_JWT_LEEWAY", default: 60)
        let maxBytes = try number("--max-token-bytes", "EDGEPIPE_JWT_MAX_BYTES", default: CompactJWS.defaultMaxBytes, min: 64)

        var store = KeyStoreSettings()
        store.cooldown = try number("--refetch-cooldown", "EDGEPIPE_JWKS_COOLDOWN", default: store.cooldown)
        store.timeoutMillis = try number("--fetch-timeout-ms", "EDGEPIPE_JWKS_TIMEOUT_MS", default: store.timeoutMillis, min: 1)
        store.defaultMaxAge = try number("--default-max-age", "EDGEPIPE_JWKS_MAX_AGE", default: store.defaultMaxAge)
        store.staleGrace = try number("--stale-grace", "EDGEPIPE_JWKS_STALE_GRACE", default: store.staleGrace)
        let cacheDirectory = text("--jwks-cache", "EDGEPIPE_JWKS_CACHE") ?? env("EDGEPIPE_DATA").map { $0 + "/jwks" }

        var gate = GateSettings()
        gate.publicRoutes = Set(list("--public-route", "EDGEPIPE_JWT_PUBLIC_ROUTES"))
        gate.publicPrefixes = list("--public-prefix", "EDGEPIPE_JWT_PUBLIC_PREFIXES")
        for prefix in gate.publicPrefixes where !prefix.hasPrefix("/") {
            throw Invalid("--public-prefix must start with '/', got '\(prefix)'")
        }
        for mapping in list("--claim-header", "EDGEPIPE_JWT_CLAIM_HEADERS") {
            let parts = mapping.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, isToken(parts[1]) else {
                throw Invalid("--claim-header wants claim=header-name, got '\(mapping)'")
            }
            let header = parts[1].lowercased()
            guard header != "authorization", header != "host", header != "content-length", header != "transfer-encoding" else {
                throw Invalid("--claim-header cannot set \(header)")
            }
            gate.claimHeaders.append((String(parts[0]), header))
        }
        // '-' (never a route name) or an empty flag turns the auth route off; an empty
        // variable counts as unset, as everywhere.
        let authRoute = text("--auth-route", "EDGEPIPE_JWT_AUTH_ROUTE") ?? "auth"
        gate.authRoute = authRoute.isEmpty || authRoute == "-" ? nil : authRoute
        if let authRoute = gate.authRoute, gate.publicRoutes.contains(authRoute) {
            throw Invalid("the auth route '\(authRoute)' cannot also be a --public-route")
        }
        if let path = text("--access", "EDGEPIPE_JWT_ACCESS"), !path.isEmpty {
            do { gate.access = try AccessRules.load(path: path) } catch { throw Invalid(error.report(file: path)) }
        }
        gate.auditFailures = flag("--audit-failures", "EDGEPIPE_JWT_AUDIT_FAILURES")
        gate.insecureNoVerify = flag("--insecure-no-verify", "EDGEPIPE_JWT_INSECURE_NO_VERIFY")
        gate.retryAfter = max(store.cooldown, 1)
        if gate.insecureNoVerify && env("EDGEPIPE_ENV") != "local" {
            throw Invalid("--insecure-no-verify refused: it needs EDGEPIPE_ENV=local (this environment is '\(env("EDGEPIPE_ENV") ?? "unset")')")
        }

        var algorithms = AlgorithmSet.rs256Only
        if !algorithmNames.isEmpty {
            algorithms = AlgorithmSet()
            for name in algorithmNames {
                guard let alg = SignatureAlgorithm(rawValue: name) else {
                    throw Invalid("unsupported algorithm '\(name)' (supported: \(SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                algorithms.insert(alg)
            }
        }

        // One key source. Firebase's key URL may be pointed elsewhere (a mirror, a test server).
        var source: KeySource?
        let explicit = [jwksURL != nil, jwksFile != nil, discovery != nil, devKeys != nil].filter { $0 }.count
        if explicit > 1 { throw Invalid("choose one of --jwks-url, --jwks-file, --discovery-url, --dev-keys") }
        if let project = firebase {
            guard !project.isEmpty, project.utf8.allSatisfy({ isProjectByte($0) }) else { throw Invalid("invalid Firebase project id '\(project)'") }
            if devKeys != nil || discovery != nil { throw Invalid("--firebase-project cannot be combined with --dev-keys or --discovery-url") }
            if !issuers.isEmpty || !audiences.isEmpty { throw Invalid("--firebase-project sets the issuer and audience; do not also give --issuer or --audience") }
            issuers = ["https://securetoken.google.com/\(project)"]
            audiences = [project]
            if jwksFile == nil && jwksURL == nil { source = .url(try url(firebaseKeysURL)) }
        }
        if let devKeys {
            source = .file(devKeys + "/jwks.json")
            if issuers.isEmpty { issuers = [devIssuer] }
            if audiences.isEmpty { audiences = [devAudience] }
        }
        if let jwksFile { source = .file(jwksFile) }
        if let jwksURL { source = .url(try url(jwksURL)) }
        if let discovery { source = .discovery(try url(discovery)) }

        if !gate.insecureNoVerify {
            guard let source else {
                throw Invalid("no signing keys configured: give --firebase-project, --jwks-url, --jwks-file, --discovery-url or --dev-keys")
            }
            guard !issuers.isEmpty else { throw Invalid("no issuer configured (--issuer)") }
            guard !audiences.isEmpty else { throw Invalid("no audience configured (--audience)") }
            switch source {
            case .url, .discovery:
                guard let cacheDirectory else { throw Invalid("no key cache directory: set --jwks-cache or EDGEPIPE_DATA") }
                store.cacheDirectory = cacheDirectory
            case .file:
                break
            }
        }
        store.issuers = issuers
        let policy = ClaimsPolicy(issuers: issuers, audiences: audiences, leeway: leeway)
        return Configuration(verifier: JWTVerifier(algorithms: algorithms, policy: policy, maxTokenBytes: maxBytes),
                             source: source, store: store, gate: gate)
    }

    /// https anywhere; plain http only to this machine (tests, a local mirror).
    static func url(_ text: String) throws(Invalid) -> FetchURL {
        guard let url = FetchURL.parse(text) else { throw Invalid("not an http(s) URL: \(text)") }
        guard url.isTLS || url.isLoopback else { throw Invalid("keys must be fetched over https (plain http only to loopback): \(text)") }
        return url
    }

    private static func isToken<S: StringProtocol>(_ s: S) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
        }
    }

    private static func isProjectByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
    }
}
