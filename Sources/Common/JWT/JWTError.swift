/// Why a token was refused. `reason` is short and fixed text (never token content), fit for
/// a `WWW-Authenticate` error_description, a JSON error body and a log line.
public enum JWTError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge
    case malformed(String)
    case algorithmNotAllowed
    case missingKeyID
    case unsupportedCritical
    case unknownKey
    case keyMismatch
    case unusableKey
    case badSignature
    case expired
    case notYetValid
    case issuedInFuture
    case wrongIssuer
    case wrongAudience
    case invalidSubject
    case missingClaim(String)
    case invalidClaim(String)
    /// No usable keys at all (endpoint down and nothing cached): a 503, not a 401.
    case keysUnavailable

    public var reason: String {
        switch self {
        case .tooLarge: return "token too large"
        case .malformed(let why): return "malformed token: \(why)"
        case .algorithmNotAllowed: return "algorithm not allowed"
        case .missingKeyID: return "missing kid"
        case .unsupportedCritical: return "unsupported critical header"
        case .unknownKey: return "unknown signing key"
        case .keyMismatch: return "key does not match the algorithm"
        case .unusableKey: return "unusable signing key"
        case .badSignature: return "bad signature"
        case .expired: return "token expired"
        case .notYetValid: return "token not yet valid"
        case .issuedInFuture: return "token issued in the future"
        case .wrongIssuer: return "wrong issuer"
        case .wrongAudience: return "wrong audience"
        case .invalidSubject: return "invalid subject"
        case .missingClaim(let name): return "missing \(name) claim"
        case .invalidClaim(let name): return "invalid \(name) claim"
        case .keysUnavailable: return "signing keys unavailable"
        }
    }

    /// A fixed slug per case (no claim names), for metrics labels and the access log.
    public var code: String {
        switch self {
        case .tooLarge: return "too_large"
        case .malformed: return "malformed"
        case .algorithmNotAllowed: return "algorithm_not_allowed"
        case .missingKeyID: return "missing_kid"
        case .unsupportedCritical: return "unsupported_critical"
        case .unknownKey: return "unknown_key"
        case .keyMismatch: return "key_mismatch"
        case .unusableKey: return "unusable_key"
        case .badSignature: return "bad_signature"
        case .expired: return "expired"
        case .notYetValid: return "not_yet_valid"
        case .issuedInFuture: return "issued_in_future"
        case .wrongIssuer: return "wrong_issuer"
        case .wrongAudience: return "wrong_audience"
        case .invalidSubject: return "invalid_subject"
        case .missingClaim: return "missing_claim"
        case .invalidClaim: return "invalid_claim"
        case .keysUnavailable: return "keys_unavailable"
        }
    }

    public var description: String { reason }
}
