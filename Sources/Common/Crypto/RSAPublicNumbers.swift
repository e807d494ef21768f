internal import COpenSSL

/// An RSA public key as its modulus and exponent (owned BIGNUMs, with the modulus's
/// Montgomery context), verifying RSASSA-PKCS1-v1_5 signatures (RS256/384/512).
///
/// Why not an `RSA*` and RSA_verify: RSA_new asks for a default ENGINE, and that loads
/// openssl.cnf and every error string: 1.7 M of verify-jwt's 3.0 M start-up instructions,
/// about 0.4 ms of each start (BENCHMARKS.md §1). EVP_PKEY_fromdata is worse (the provider
/// name map, 4.85 M). The verification is RFC 8017 §8.2.2 to the letter: s < n, m = s^e
/// mod n with OpenSSL's BN_mod_exp_mont (what RSA_verify runs), then the whole encoded
/// message compared with the one EMSA-PKCS1-v1_5 builds for the hash ("encode and
/// compare": no padding is parsed, so there is no parser to fool).
final class RSAPublicNumbers {
    private let n: OpaquePointer       // BIGNUM*
    private let e: OpaquePointer       // BIGNUM*
    private let montgomery: OpaquePointer   // BN_MONT_CTX* for n
    /// BN_CTX* kept for every verification (like SignatureVerifier's digest context: one key
    /// is used by one thread): no BN_CTX_new, BN_CTX_free and their cleansing per token.
    private let scratch: OpaquePointer
    /// The modulus's length in bytes (k in RFC 8017), which every signature must have.
    let size: Int
    let bits: Int

    /// Takes ownership of `n` and `e` (freed on failure too).
    init(takingModulus n: OpaquePointer, exponent e: OpaquePointer) throws(CryptoError) {
        var failure: CryptoError?
        // An even modulus or exponent is no RSA key (and Montgomery needs an odd n); e < n.
        if BN_is_odd(n) != 1 || BN_is_odd(e) != 1 || BN_is_one(e) == 1 || BN_ucmp(e, n) >= 0 {
            failure = CryptoError("invalid RSA parameters")
        }
        let context = failure == nil ? BN_MONT_CTX_new() : nil
        let scratch = failure == nil ? BN_CTX_new() : nil
        if failure == nil, context == nil || scratch == nil || BN_MONT_CTX_set(context, n, scratch) != 1 {
            failure = CryptoError("cannot prepare the RSA modulus")
        }
        guard failure == nil, let context, let scratch else {
            if let context { BN_MONT_CTX_free(context) }
            if let scratch { BN_CTX_free(scratch) }
            BN_free(n)
            BN_free(e)
            throw failure ?? CryptoError("cannot prepare the RSA modulus")
        }
        self.n = n
        self.e = e
        montgomery = context
        self.scratch = scratch
        bits = Int(BN_num_bits(n))
        size = (bits + 7) / 8
    }

    /// From big-endian bytes (a JWK's n and e).
    convenience init(modulus: [UInt8], exponent: [UInt8]) throws(CryptoError) {
        let n = modulus.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        let e = exponent.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        guard let n, let e else {
            if let n { BN_free(n) }
            if let e { BN_free(e) }
            throw CryptoError("invalid RSA parameters")
        }
        try self.init(takingModulus: n, exponent: e)
    }

    deinit {
        BN_MONT_CTX_free(montgomery)
        BN_CTX_free(scratch)
        BN_free(n)
        BN_free(e)
    }

    /// Copies of n and e, for building an EVP_PKEY when one is needed (PS256).
    func copies() -> (n: OpaquePointer, e: OpaquePointer)? {
        guard let n = BN_dup(n) else { return nil }
        guard let e = BN_dup(e) else { BN_free(n); return nil }
        return (n, e)
    }

    /// The ASN.1 DigestInfo prefixes of RFC 8017 §9.2, note 1 (the hash follows). Constants,
    /// so a verification does not build an array.
    private static let sha256Prefix: [UInt8] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]
    private static let sha384Prefix: [UInt8] = [0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30]
    private static let sha512Prefix: [UInt8] = [0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40]

    static func digestInfoPrefix(_ digest: SignatureAlgorithm.Digest) -> [UInt8]? {
        switch digest {
        case .sha256: return sha256Prefix
        case .sha384: return sha384Prefix
        case .sha512: return sha512Prefix
        case .none: return nil
        }
    }

    /// True when `signature` is the RSASSA-PKCS1-v1_5 signature of a message whose `digest` hash is `hash`.
    func verifyPKCS1(_ signature: UnsafeBufferPointer<UInt8>, digest: SignatureAlgorithm.Digest,
                     hash: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let prefix = Self.digestInfoPrefix(digest), let sig = signature.baseAddress, let h = hash.baseAddress else { return false }
        let k = size
        // RFC 8017 §8.2.2 step 1, and EMSA-PKCS1-v1_5 step 3 (at least 8 bytes of 0xFF).
        guard signature.count == k, k >= prefix.count + hash.count + 11 else { return false }
        let ctx = scratch
        BN_CTX_start(ctx)
        defer { BN_CTX_end(ctx) }
        guard let s = BN_CTX_get(ctx), let m = BN_CTX_get(ctx), let em = BN_CTX_get(ctx),
              BN_bin2bn(sig, Int32(k), s) != nil,
              BN_ucmp(s, n) < 0,                                   // RSAVP1 step 1: s in [0, n-1]
              BN_mod_exp_mont(m, s, e, n, ctx, montgomery) == 1 else { return false }
        // The expected encoded message EM, built in a stack buffer, read as the integer OS2IP(EM)
        // and compared with m: the same comparison as I2OSP(m, k) == EM (both sides are below
        // 256^k, where I2OSP is one-to-one), without BN_bn2binpad's constant-time byte loop
        // (~6 k instructions) or two heap arrays.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: k) { buffer in
            let expected = buffer.baseAddress!
            expected.initialize(repeating: 0xFF, count: k)
            expected[0] = 0x00
            expected[1] = 0x01
            let t = k - prefix.count - hash.count
            expected[t - 1] = 0x00
            for i in 0..<prefix.count { expected[t + i] = prefix[i] }
            (expected + t + prefix.count).update(from: h, count: hash.count)
            return BN_bin2bn(expected, Int32(k), em) != nil && BN_cmp(m, em) == 0
        }
    }
}
