/// Verifies a compact JWT: strict parsing, the algorithm allow-list, a `kid` that names a
/// configured key of the matching type, the signature, then the claims. The signature
/// comes before the claims so that nothing about a forged token's claims is reported.
public struct JWTVerifier: Sendable {
    /// The allowed algorithms. An array, not a Set: a Set of this enum costs a runtime
    /// conformance lookup at start-up, and the list has at most seven entries.
    public var algorithms: [SignatureAlgorithm]
    public var policy: ClaimsPolicy
    public var maxTokenBytes: Int

    public struct Verified: Sendable {
        public let subject: String
        public let claims: JSONObject
        public let keyID: String
        public let algorithm: SignatureAlgorithm
    }

    public init(algorithms: [SignatureAlgorithm] = [.rs256], policy: ClaimsPolicy,
                maxTokenBytes: Int = CompactJWS.defaultMaxBytes) {
        self.algorithms = algorithms
        self.policy = policy
        self.maxTokenBytes = maxTokenBytes
    }

    /// `keys` returns the verifier for a kid and algorithm, nil for an unknown kid; it may
    /// throw `.keysUnavailable`, `.keyMismatch` or `.unusableKey`.
    public func verify<S: StringProtocol>(_ token: S, now: Int,
                       keys: (String, SignatureAlgorithm) throws(JWTError) -> SignatureVerifier?) throws(JWTError) -> Verified {
        let jws = try CompactJWS.parse(token, maxBytes: maxTokenBytes)
        // "none" and every HMAC name fall out here: they are not SignatureAlgorithm cases.
        guard let algorithm = SignatureAlgorithm(rawValue: jws.algorithm), algorithms.contains(algorithm) else {
            throw .algorithmNotAllowed
        }
        guard let kid = jws.keyID, !kid.isEmpty else { throw .missingKeyID }
        guard let verifier = try keys(kid, algorithm) else { throw .unknownKey }
        guard verifier.algorithm == algorithm else { throw .keyMismatch }
        guard verifier.verify(jws.signingInput, signature: jws.signature) else { throw .badSignature }
        let subject = try policy.validate(jws.payload, now: now)
        return Verified(subject: subject, claims: jws.payload, keyID: kid, algorithm: algorithm)
    }
}
