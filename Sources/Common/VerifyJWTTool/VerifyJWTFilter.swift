import Records
import Crypto
import JWT

struct GateSettings {
    /// Route names (annotations.route.name, from `route`) that need no token.
    var publicRoutes: Set<String> = []
    /// Path prefixes that need no token (segment-wise: /healthz covers /healthz/x, not /healthzz).
    var publicPrefixes: [String] = []
    /// Claims forwarded as headers on success, e.g. ("email", "x-authenticated-email").
    var claimHeaders: [(claim: String, header: String)] = []
    /// Add annotations.audit to every rejection.
    var auditFailures = false
    /// Skip signature and claim checks, keeping only the token's sub (EDGEPIPE_ENV=local only).
    var insecureNoVerify = false
    /// Retry-After on a 503, in seconds.
    var retryAfter = 30
    /// The route answered here for forward-auth proxies (nginx auth_request, Caddy
    /// forward_auth, Traefik forwardAuth); nil: none.
    var authRoute: String? = "auth"
    /// Per-route `optional` and required claims (AccessRules.swift).
    var access = AccessRules()
}

/// The per-record logic of verify-jwt.
///
/// First, always: remove every header this tool injects (x-authenticated-* and the
/// configured claim headers), so a client can never claim an identity, whatever the route.
/// Public routes then pass (with any Bearer credential dropped: downstream never sees a raw
/// token). Other requests need exactly one `Authorization: Bearer <jwt>` that verifies; it
/// is replaced by `x-authenticated-uid` (and the configured claim headers) and
/// annotations.auth = {"uid": sub}. Anything else is answered here: 401 (400 for two
/// Authorization headers), or 503 when no signing keys can be had.
///
/// The auth route makes the same decision but answers it: 200 with the identity headers in
/// the response, for a proxy that forwards by itself to copy onto the request it forwards.
/// Such a proxy forwards the client's own headers too, and not every proxy can remove them
/// by prefix, so a request there that carries an identity header is refused (400): a 200
/// would vouch for a request that still holds a forged identity.
final class VerifyJWTFilter {
    let settings: GateSettings
    let verifier: JWTVerifier
    let keys: KeyStore?
    let now: () -> Int
    private let injectedNames: Set<String>
    private(set) var cache = VerifiedTokenCache()

    init(settings: GateSettings, verifier: JWTVerifier, keys: KeyStore?, now: @escaping () -> Int = { Clock.now() }) {
        self.settings = settings
        self.verifier = verifier
        self.keys = keys
        self.now = now
        injectedNames = Set(settings.claimHeaders.map { $0.header })
    }

    static let uidHeader = "x-authenticated-uid"

    func handle(_ record: inout Record) {
        // The auth route always wants a token, whatever public prefix covers its path.
        let routeName = settings.authRoute != nil || !settings.publicRoutes.isEmpty ? record.routeName : nil
        let authRoute = routeName != nil && routeName == settings.authRoute
        let publicRoute = !authRoute && isPublic(record, routeName: routeName)
        if !publicRoute, let raw = record.rawHeaders(), handleRaw(&record, raw, authRoute: authRoute) { return }
        var kept: [JSON] = []
        var authorizations: [JSON] = []
        var changed = false
        var identityHeaders = false
        if case .array(let list)? = record.object["headers"] {
            kept.reserveCapacity(list.count + 1 + settings.claimHeaders.count)
            for item in list {
                if case .array(let pair) = item, pair.count == 2, case .string(let rawName) = pair[0] {
                    let name = Self.lowercased(rawName)
                    if Self.isInjectedPrefix(name) || (!injectedNames.isEmpty && injectedNames.contains(name)) {
                        changed = true
                        identityHeaders = true
                        continue
                    }
                    if name == "authorization" {
                        // On a public route other schemes (Basic for some webhook) are not this
                        // gate's business and stay where they were; Bearer tokens never pass.
                        if publicRoute, case .string(let v) = pair[1], Self.bearerToken(v) == nil {
                            kept.append(item)
                        } else {
                            authorizations.append(pair[1])
                            changed = true
                        }
                        continue
                    }
                }
                kept.append(item)
            }
        }

        if publicRoute {
            if changed { record.object["headers"] = .array(kept) }
            return
        }

        var token: Substring = ""
        let credential: Credential
        if authRoute && identityHeaders {
            credential = .identityHeaders
        } else if authorizations.count > 1 {
            credential = .twice
        } else if case .string(let credentials)? = authorizations.first {
            if let bearer = Self.bearerToken(credentials) { token = bearer; credential = .token } else { credential = .notBearer }
        } else {
            credential = .missing
        }
        let admitted = admit(credential, &record) { () throws(JWTError) in
            let contiguous: Result<(String, JSONObject), JWTError>? = token.utf8.withContiguousStorageIfAvailable { bytes in
                Result { () throws(JWTError) in try identify(bytes) }
            }
            if let contiguous { return try contiguous.get() }
            return try Array(token.utf8).withUnsafeBufferPointer { bytes throws(JWTError) in try identify(bytes) }
        }
        guard let admitted else { return }
        if authRoute { return authorize(&record, admitted) }
        kept.append(contentsOf: admitted.headers.map { .array([.string($0.name), .string($0.value)]) })
        record.object["headers"] = .array(kept)
        if let subject = admitted.subject { record.setAnnotation(AnnotationKey.auth, .object(JSONObject([("uid", .string(subject))]))) }
    }

    /// What a protected request's Authorization headers amount to, however they were read
    /// (identityHeaders: on the auth route, the client also sent an identity header).
    private enum Credential { case missing, twice, notBearer, token, identityHeaders }

    /// The decision on a protected route, the same for both ways of reading the headers:
    /// answers the record (400, 401, 403 or 503) and returns nil, or returns the verified
    /// subject (nil: anonymous on an optional route) and the headers to add.
    /// `identifyToken` checks the token where the caller holds it.
    private func admit(_ credential: Credential, _ record: inout Record,
                       identifyToken: () throws(JWTError) -> (String, JSONObject)) -> (subject: String?, headers: [Header])? {
        switch credential {
        case .identityHeaders:
            reject(&record, status: 400, code: "invalid_request", refused: "identity_headers", reason: Self.identityHeadersReason)
            return nil
        case .twice:
            reject(&record, status: 400, code: "invalid_request", refused: "two_authorizations", reason: "more than one Authorization header",
                   challenge: "Bearer error=\"invalid_request\", error_description=\"more than one Authorization header\"")
            return nil
        case .missing:
            if settings.access.isOptional(record) { return (nil, []) }
            reject(&record, status: 401, code: "unauthorized", refused: "missing_token", reason: "a Bearer token is required", challenge: "Bearer")
            return nil
        case .notBearer:
            reject(&record, status: 401, code: "unauthorized", refused: "not_bearer", reason: "the Authorization scheme must be Bearer",
                   challenge: "Bearer")
            return nil
        case .token:
            break
        }
        let subject: String
        let claims: JSONObject
        do {
            (subject, claims) = try identifyToken()
        } catch .keysUnavailable {
            reject(&record, status: 503, code: "keys_unavailable", refused: "keys_unavailable",
                   reason: "token signing keys are unavailable; try again later",
                   extra: [Header("retry-after", String(settings.retryAfter))], audit: "signing keys unavailable")
            return nil
        } catch {
            let reason = error.reason
            reject(&record, status: 401, code: "invalid_token", refused: error.code, reason: reason,
                   challenge: "Bearer error=\"invalid_token\", error_description=\"\(reason)\"")
            return nil
        }
        if let unmet = settings.access.unmet(record, claims) {
            reject(&record, status: 403, code: "forbidden", refused: "forbidden", reason: "this route requires \(unmet.text)")
            return nil
        }
        var headers = [Header(Self.uidHeader, subject)]
        for (claim, header) in settings.claimHeaders {
            if let value = claims[claim].flatMap(Self.headerValue) { headers.append(Header(header, value)) }
        }
        return (subject, headers)
    }

    /// The subject and claims a token carries: verified in full, or with the local bypass
    /// only its structure and subject.
    private func identify(_ token: UnsafeBufferPointer<UInt8>) throws(JWTError) -> (String, JSONObject) {
        if settings.insecureNoVerify { return try Self.unverifiedSubject(token, maxBytes: verifier.maxTokenBytes) }
        return try verify(bytes: token)
    }

    /// The subject and claims of a valid token: from the cache when this exact token verified
    /// before and is still within its window under the same key, else verified in full.
    private func verify(bytes: UnsafeBufferPointer<UInt8>) throws(JWTError) -> (String, JSONObject) {
        let keys = self.keys
        return try verify(bytes: bytes, now: now()) { kid, algorithm throws(JWTError) in
            guard let keys else { throw .keysUnavailable }
            return try keys.verifier(kid: kid, algorithm: algorithm)
        }
    }

    private func verify(bytes: UnsafeBufferPointer<UInt8>, now: Int,
                        _ currentVerifier: (String, SignatureAlgorithm) throws(JWTError) -> SignatureVerifier?) throws(JWTError) -> (String, JSONObject) {
        if let hit = cache.lookup(bytes, now: now, isCurrent: { entry in
            // A key store that cannot answer now is no hit: the full path reports why.
            (try? currentVerifier(entry.keyID, entry.algorithm)) === entry.verifier
        }) {
            return (hit.subject, hit.claims)
        }
        var used: SignatureVerifier?
        let verified = try verifier.verify(bytes: bytes, now: now) { kid, alg throws(JWTError) in
            used = try currentVerifier(kid, alg)
            return used
        }
        if let used {
            cache.insert(VerifiedTokenCache.Entry(token: Array(bytes), subject: verified.subject, claims: verified.claims,
                                                  keyID: verified.keyID, algorithm: verified.algorithm, verifier: used,
                                                  verifiedAt: now, expiresAt: verified.expiresAt))
        }
        return (verified.subject, verified.claims)
    }

    /// `handle` for a protected route whose headers are still the line's bytes: the same
    /// decisions, made on the pairs' bytes, and the token verified where it lies. Without
    /// this, the header list (with its ~1 KB token) was built as JSON, the token made a
    /// String, and the kept headers re-escaped on output. Returns false, having changed
    /// nothing, for what it leaves to the general path (upper-case names, an escaped token).
    private func handleRaw(_ record: inout Record, _ list: RawHeaders, authRoute: Bool) -> Bool {
        // nil: left to the general path.
        var token = 0..<0
        let credential: Credential? = list.withBytes { p in
            var authorization: RawHeaders.Pair?
            for pair in list.pairs {
                let name = UnsafeBufferPointer(rebasing: p[pair.name])
                for b in name where b >= 0x41 && b <= 0x5A { return nil }
                if name.starts(with: Self.injectedPrefix)
                    || (!injectedNames.isEmpty && injectedNames.contains(String(decoding: name, as: UTF8.self))) {
                    if authRoute { return .identityHeaders }
                    continue
                }
                if name.elementsEqual(Self.authorizationName) {
                    if authorization != nil { return .twice }
                    authorization = pair
                }
            }
            guard let authorization else { return .missing }
            guard !authorization.valueEscaped else { return nil }
            guard let start = Self.bearerTokenStart(UnsafeBufferPointer(rebasing: p[authorization.value])) else { return .notBearer }
            token = authorization.value.lowerBound + start..<authorization.value.upperBound
            return .token
        }
        guard let credential else { return false }
        let admitted = admit(credential, &record) { () throws(JWTError) in
            try list.withBytes { p in
                Result { () throws(JWTError) in try identify(UnsafeBufferPointer(rebasing: p[token])) }
            }.get()
        }
        guard let admitted else { return true }
        if authRoute {
            authorize(&record, admitted)
            return true
        }
        // Kept: every pair but the injected names and the Authorization (all lower-case here).
        let kept = list.withBytes { p in
            list.pairs.filter { pair in
                let name = UnsafeBufferPointer(rebasing: p[pair.name])
                return !name.starts(with: Self.injectedPrefix) && !name.elementsEqual(Self.authorizationName)
                    && (injectedNames.isEmpty || !injectedNames.contains(String(decoding: name, as: UTF8.self)))
            }
        }
        record.setHeaders(keeping: kept, of: list, adding: admitted.headers)
        if let subject = admitted.subject { record.setAnnotation(AnnotationKey.auth, .object(JSONObject([("uid", .string(subject))]))) }
        return true
    }

    private static let authorizationName = Array("authorization".utf8)

    static let identityHeadersReason = "identity headers (x-authenticated-*, claim headers) are set by the gateway, not by clients"

    /// The auth route's 200: the identity in the response headers, where forward-auth
    /// proxies copy it from. No body: Caddy drops a 200's body unread, and Go then closes
    /// the connection, so every request would start a pipeline (12.5 instead of 1.6 ms a
    /// request). no-store: a cached 200 would outlive the token's exp. Every claim header
    /// is present, empty when the token lacks the claim: a proxy copying a header the
    /// answer lacks may leave the client's value in place, or its own placeholder text
    /// (Caddy 2.6).
    private func authorize(_ record: inout Record, _ admitted: (subject: String?, headers: [Header])) {
        // The auth route vouches for a user: an `optional` access rule cannot make it anonymous.
        guard let subject = admitted.subject else {
            reject(&record, status: 401, code: "unauthorized", refused: "missing_token", reason: "a Bearer token is required", challenge: "Bearer")
            return
        }
        var headers = [Header("cache-control", "no-store"), Header(Self.uidHeader, subject)]
        for (_, name) in settings.claimHeaders {
            headers.append(Header(name, admitted.headers.first { $0.name == name }?.value ?? ""))
        }
        record = record.response(status: 200, headers: headers)
        record.setAnnotation(AnnotationKey.auth, .object(JSONObject([("uid", .string(subject))])))
    }

    /// Where the token of `Bearer <token>` starts in a header value's bytes (scheme
    /// case-insensitive, RFC 7235 §2.1), else nil.
    static func bearerTokenStart(_ value: UnsafeBufferPointer<UInt8>) -> Int? {
        guard value.count > 7 else { return nil }
        var i = 0
        for expected in "bearer".utf8 {
            guard value[i] | 0x20 == expected else { return nil }
            i += 1
        }
        guard value[i] == UInt8(ascii: " ") else { return nil }
        while i < value.count && value[i] == UInt8(ascii: " ") { i += 1 }
        return i < value.count ? i : nil
    }

    /// `refused` (a slug from MetricsLayout.refusalReasons) goes to annotations.auth, where
    /// http-encode reads it for the access log and edgepipe_token_refusals_total.
    private func reject(_ record: inout Record, status: Int, code: String, refused: String, reason: String, challenge: String? = nil,
                        extra: [Header] = [], audit: String? = nil) {
        if settings.auditFailures {
            record.setAnnotation(AnnotationKey.audit, .object(JSONObject([
                ("kind", "auth"), ("outcome", "rejected"), ("reason", .string(audit ?? reason)),
            ])))
        }
        var headers = extra
        if let challenge { headers.insert(Header("www-authenticate", challenge), at: 0) }
        record.setAnnotation(AnnotationKey.auth, .object(JSONObject([("refused", .string(refused))])))
        record = record.errorResponse(status: status, error: code, message: reason, headers: headers)
    }

    func isPublic(_ record: Record, routeName: String?) -> Bool {
        if let routeName, settings.publicRoutes.contains(routeName) { return true }
        return !settings.publicPrefixes.isEmpty && Self.matchesPrefix(record.path, settings.publicPrefixes)
    }

    /// Segment-wise prefix match on a path that has no dot segments and no encoded slash,
    /// dot or backslash: otherwise /healthz/../v1/subscription would count as public here
    /// and be normalised into a protected path further on.
    static func matchesPrefix(_ path: String, _ prefixes: [String]) -> Bool {
        guard path.hasPrefix("/"), !path.contains("\\"), !path.contains("//") else { return false }
        let lower = path.lowercased()
        for bad in ["%2e", "%2f", "%5c", "/./", "/../"] where lower.contains(bad) { return false }
        if lower.hasSuffix("/.") || lower.hasSuffix("/..") { return false }
        for prefix in prefixes {
            if path == prefix { return true }
            if path.hasPrefix(prefix) && (prefix.hasSuffix("/") || path.utf8.dropFirst(prefix.utf8.count).first == UInt8(ascii: "/")) {
                return true
            }
        }
        return false
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235 §2.1), else nil:
    /// the rules of `bearerTokenStart`, on a String.
    static func bearerToken(_ credentials: String) -> Substring? {
        let utf8 = credentials.utf8
        let start = utf8.withContiguousStorageIfAvailable(bearerTokenStart)
            ?? Array(utf8).withUnsafeBufferPointer(bearerTokenStart)
        guard let start else { return nil }
        return credentials[utf8.index(utf8.startIndex, offsetBy: start)...]
    }

    /// The bypass: structure and subject only, no signature, no claims.
    static func unverifiedSubject(_ token: UnsafeBufferPointer<UInt8>, maxBytes: Int) throws(JWTError) -> (String, JSONObject) {
        let jws = try CompactJWS.parse(token, maxBytes: maxBytes)
        guard case .string(let sub)? = jws.payload["sub"], ClaimsPolicy.isValidSubject(sub) else { throw .invalidSubject }
        return (sub, jws.payload)
    }

    /// Strings, numbers and booleans become header values; a value with a control
    /// character is dropped rather than forwarded.
    static func headerValue(_ value: JSON) -> String? {
        switch value {
        case .string(let s):
            for scalar in s.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7F { return nil }
            return s
        case .number(let n): return n
        case .bool(let b): return b ? "true" : "false"
        default: return nil
        }
    }

    private static let injectedPrefix = Array("x-authenticated-".utf8)

    static func isInjectedPrefix(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard utf8.count >= injectedPrefix.count else { return false }
        return utf8.prefix(injectedPrefix.count).elementsEqual(injectedPrefix)
    }

    static func lowercased(_ name: String) -> String {
        for b in name.utf8 where b >= 0x41 && b <= 0x5A { return name.lowercased() }
        return name
    }
}
