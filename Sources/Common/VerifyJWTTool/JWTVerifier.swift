import Records
import Crypto
import JWT

/// Verifies a compact JWT: strict parsing, the algorithm allow-list, a `kid` that names a
/// configured key of the matching type, the signature, then the claims. The signature
/// comes before the claims so that nothing about a forged token's claims is reported.
public struct JWTVerifier: Sendable {
    public var algorithms: AlgorithmSet
    public var policy: ClaimsPolicy
    public var maxTokenBytes: Int

    public struct Verified: Sendable {
        public let subject: String
        public let claims: JSONObject
        public let keyID: String
        public let algorithm: SignatureAlgorithm
        /// The `exp` claim (a NumericDate, checked by the policy).
        public let expiresAt: Double
    }

    public init(algorithms: AlgorithmSet = .rs256Only, policy: ClaimsPolicy,
                maxTokenBytes: Int = CompactJWS.defaultMaxBytes) {
        self.algorithms = algorithms
        self.policy = policy
        self.maxTokenBytes = maxTokenBytes
    }

    /// `keys` returns the verifier for a kid and algorithm, nil for an unknown kid; it may
    /// throw `.keysUnavailable`, `.keyMismatch` or `.unusableKey`.
    public func verify<S: StringProtocol>(_ token: S, now: Int,
                       keys: (String, SignatureAlgorithm) throws(JWTError) -> SignatureVerifier?) throws(JWTError) -> Verified {
        try verify(CompactJWS.parse(token, maxBytes: maxTokenBytes), now: now, keys: keys)
    }

    /// The same for a token's bytes (as a header list holds them: no String is made).
    public func verify(bytes token: UnsafeBufferPointer<UInt8>, now: Int,
                       keys: (String, SignatureAlgorithm) throws(JWTError) -> SignatureVerifier?) throws(JWTError) -> Verified {
        try verify(CompactJWS.parse(token, maxBytes: maxTokenBytes), now: now, keys: keys)
    }

    private func verify(_ jws: CompactJWS, now: Int,
                        keys: (String, SignatureAlgorithm) throws(JWTError) -> SignatureVerifier?) throws(JWTError) -> Verified {
        // "none" and every HMAC name fall out here: they are not SignatureAlgorithm cases.
        guard let algorithm = SignatureAlgorithm(rawValue: jws.algorithm), algorithms.contains(algorithm) else {
            throw .algorithmNotAllowed
        }
        guard let kid = jws.keyID, !kid.isEmpty else { throw .missingKeyID }
        guard let verifier = try keys(kid, algorithm) else { throw .unknownKey }
        guard verifier.algorithm == algorithm else { throw .keyMismatch }
        guard verifier.verify(jws.signingInput, signature: jws.signature) else { throw .badSignature }
        let subject = try policy.validate(jws.payload, now: now)
        guard let exp = try ClaimsPolicy.numericDate(jws.payload, "exp") else { throw .missingClaim("exp") }
        return Verified(subject: subject, claims: jws.payload, keyID: kid, algorithm: algorithm, expiresAt: exp)
    }
}

/// The allowed algorithms, as bits. Not a Set or an Array of the enum: instantiating
/// either's generic metadata costs a noticeable share of a filter's start-up.
public struct AlgorithmSet: Equatable, Sendable {
    public private(set) var bits: UInt8 = 0

    public init() {}
    public init<S: Sequence>(_ algorithms: S) where S.Element == SignatureAlgorithm {
        for a in algorithms { insert(a) }
    }

    public static var rs256Only: AlgorithmSet { var s = AlgorithmSet(); s.insert(.rs256); return s }
    public static var all: AlgorithmSet { AlgorithmSet(SignatureAlgorithm.allCases) }

    private static func bit(_ a: SignatureAlgorithm) -> UInt8 {
        switch a {
        case .rs256: return 1
        case .rs384: return 2
        case .rs512: return 4
        case .ps256: return 8
        case .es256: return 16
        case .es384: return 32
        case .edDSA: return 64
        }
    }

    public mutating func insert(_ a: SignatureAlgorithm) { bits |= Self.bit(a) }
    public func contains(_ a: SignatureAlgorithm) -> Bool { bits & Self.bit(a) != 0 }
    public var isEmpty: Bool { bits == 0 }
}
