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

    /// Reads the parsed options; `env` is the process environment (a parameter for the tests)
    /// for what is not an option of its own (EDGEPIPE_DATA, EDGEPIPE_ENV).
    static func parse(_ options: ParsedOptions, env: (String) -> String? = { environment($0) }) throws(Invalid) -> Configuration {
        func number(_ flag: String, default value: Int, min: Int = 0) throws(Invalid) -> Int {
            do { return try options.integer(flag, default: value, min: min) } catch { throw Invalid(error.description) }
        }

        let firebase = options.value("--firebase-project")
        var issuers = options.values("--issuer")
        var audiences = options.values("--audience")
        let jwksURL = options.value("--jwks-url")
        let jwksFile = options.value("--jwks-file")
        let discovery = options.value("--discovery-url")
        let devKeys = options.value("--dev-keys")
        let algorithmNames = options.values("--algorithm").flatMap { $0.split(separator: ",").map(String.init) }
        let leeway = try number("--leeway", default: 60)
        let maxBytes = try number("--max-token-bytes", default: CompactJWS.defaultMaxBytes, min: 64)

        var store = KeyStoreSettings()
        store.cooldown = try number("--refetch-cooldown", default: store.cooldown)
        store.timeoutMillis = try number("--fetch-timeout-ms", default: store.timeoutMillis, min: 1)
        store.defaultMaxAge = try number("--default-max-age", default: store.defaultMaxAge)
        store.staleGrace = try number("--stale-grace", default: store.staleGrace)
        let cacheDirectory = options.value("--jwks-cache") ?? dataPath("jwks", env: env)

        var gate = GateSettings()
        gate.publicRoutes = Set(options.values("--public-route"))
        gate.publicPrefixes = options.values("--public-prefix")
        for prefix in gate.publicPrefixes where !prefix.hasPrefix("/") {
            throw Invalid("--public-prefix must start with '/', got '\(prefix)'")
        }
        for mapping in options.values("--claim-header") {
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
        let authRoute = options.value("--auth-route") ?? "auth"
        gate.authRoute = authRoute.isEmpty || authRoute == "-" ? nil : authRoute
        if let authRoute = gate.authRoute, gate.publicRoutes.contains(authRoute) {
            throw Invalid("the auth route '\(authRoute)' cannot also be a --public-route")
        }
        if let path = options.value("--access"), !path.isEmpty {
            do { gate.access = try AccessRules.load(path: path) } catch { throw Invalid(error.report(file: path)) }
        }
        gate.auditFailures = options.flag("--audit-failures")
        gate.insecureNoVerify = options.flag("--insecure-no-verify")
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
