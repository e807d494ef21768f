import Records
/// The claim checks Firebase's `verifyIdToken` makes, plus the generic ones: `exp` and
/// `iat` required, `nbf` and `auth_time` honoured when present, all with one leeway for
/// clock skew; `iss` and `aud` exact (an `aud` array must contain a configured audience);
/// `sub` a non-empty string of at most 128 characters.
public struct ClaimsPolicy: Sendable {
    public var issuers: [String]
    public var audiences: [String]
    /// Seconds of clock skew tolerated in each time check.
    public var leeway: Int
    /// Firebase's limit, counted as it counts (UTF-16 code units).
    public var maxSubjectLength: Int

    public init(issuers: [String], audiences: [String], leeway: Int = 60, maxSubjectLength: Int = 128) {
        self.issuers = issuers
        self.audiences = audiences
        self.leeway = leeway
        self.maxSubjectLength = maxSubjectLength
    }

    /// Returns the subject when every check passes.
    public func validate(_ claims: JSONObject, now: Int) throws(JWTError) -> String {
        let now = Double(now), leeway = Double(self.leeway)
        guard let exp = try Self.numericDate(claims, "exp") else { throw .missingClaim("exp") }
        if now >= exp + leeway { throw .expired }
        if let nbf = try Self.numericDate(claims, "nbf"), now + leeway < nbf { throw .notYetValid }
        guard let iat = try Self.numericDate(claims, "iat") else { throw .missingClaim("iat") }
        if iat > now + leeway { throw .issuedInFuture }
        if let authTime = try Self.numericDate(claims, "auth_time"), authTime > now + leeway { throw .issuedInFuture }

        guard case .string(let iss)? = claims["iss"], issuers.contains(iss) else { throw .wrongIssuer }
        switch claims["aud"] {
        case .string(let aud)?:
            guard audiences.contains(aud) else { throw .wrongAudience }
        case .array(let list)?:
            var found = false
            for element in list {
                guard case .string(let aud) = element else { throw .wrongAudience }
                if audiences.contains(aud) { found = true }
            }
            guard found else { throw .wrongAudience }
        default:
            throw .wrongAudience
        }
        guard case .string(let sub)? = claims["sub"], Self.isValidSubject(sub, maxLength: maxSubjectLength) else {
            throw .invalidSubject
        }
        return sub
    }

    /// Non-empty, short, and free of control characters: the subject becomes a header value,
    /// and a CR or LF there would let a token forge headers.
    public static func isValidSubject(_ sub: String, maxLength: Int = 128) -> Bool {
        guard !sub.isEmpty, sub.utf16.count <= maxLength else { return false }
        for scalar in sub.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) {
            return false
        }
        return true
    }

    /// A NumericDate: a JSON number (fractions allowed, RFC 7519 §2). Strings, booleans
    /// and non-finite values are refused rather than coerced.
    package static func numericDate(_ claims: JSONObject, _ name: String) throws(JWTError) -> Double? {
        guard let value = claims[name] else { return nil }
        guard case .number(let text) = value else { throw .invalidClaim(name) }
        if let i = Int(text) { return Double(i) }      // the common case, and cheaper than strtod
        guard let d = Double(text), d.isFinite else { throw .invalidClaim(name) }
        return d
    }
}
