internal import COpenSSL

/// Verifies JWS signatures of one algorithm under one key.
///
/// RS256/384/512 hash with the low-level SHA*_ functions and verify on the key's RSA
/// numbers (RSAPublicNumbers): no provider fetch and no ENGINE lookup, so neither OpenSSL 3's
/// name map (4.85 M instructions) nor its configuration load (1.7 M) at start-up. For PS256
/// and ECDSA the EVP_PKEY_CTX is initialised once and reused for every token (as `openssl
/// speed` does).
public final class SignatureVerifier {
    public let algorithm: SignatureAlgorithm
    public let key: PublicKey
    private let context: OpaquePointer?     // EVP_PKEY_CTX*, nil for EdDSA
    /// Fetched once: handing OpenSSL 3 the legacy EVP_sha256() makes it fetch on every use.
    private let digest: OpaquePointer?      // EVP_MD*
    private let digestContext: OpaquePointer?   // EVP_MD_CTX*, reused

    public init(key: PublicKey, algorithm: SignatureAlgorithm) throws(CryptoError) {
        guard algorithm.accepts(key.kind) else {
            throw CryptoError("\(algorithm.rawValue) cannot be verified with this key type")
        }
        self.algorithm = algorithm
        self.key = key
        if algorithm == .edDSA || (algorithm.isPKCS1 && key.rsa != nil) {
            context = nil
            digest = nil
            digestContext = nil
            return
        }
        let name: String
        switch algorithm.digest {
        case .sha256: name = "SHA256"
        case .sha384: name = "SHA384"
        default: name = "SHA512"
        }
        guard let md = EVP_MD_fetch(nil, name, nil) else { throw CryptoError("no \(name)") }
        guard let mdctx = EVP_MD_CTX_new() else { EVP_MD_free(md); throw CryptoError("EVP_MD_CTX_new failed") }
        let pkey: OpaquePointer
        do { pkey = try key.evpKey() } catch { EVP_MD_free(md); EVP_MD_CTX_free(mdctx); throw error }
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
            EVP_MD_free(md); EVP_MD_CTX_free(mdctx)
            throw CryptoError("EVP_PKEY_CTX_new failed")
        }
        var ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
        switch algorithm {
        case .rs256, .rs384, .rs512:
            ok = ok && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
        case .ps256:
            // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash, nothing else.
            ok = ok && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1
                && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) == 1
                && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1
        default:
            break
        }
        guard ok else {
            EVP_PKEY_CTX_free(ctx); EVP_MD_free(md); EVP_MD_CTX_free(mdctx)
            throw CryptoError("cannot set up \(algorithm.rawValue) verification")
        }
        context = ctx
        digest = md
        digestContext = mdctx
    }

    deinit {
        if let context { EVP_PKEY_CTX_free(context) }
        if let digestContext { EVP_MD_CTX_free(digestContext) }
        if let digest { EVP_MD_free(digest) }
    }

    public func verify(_ message: [UInt8], signature: [UInt8]) -> Bool {
        message.withUnsafeBytes { verify($0, signature: signature) }
    }

    /// True when `signature` (in its JWS form) is valid for `message` under the key.
    public func verify(_ message: UnsafeRawBufferPointer, signature: [UInt8]) -> Bool {
        guard !signature.isEmpty else { return false }
        let valid: Bool
        switch algorithm {
        case .edDSA:
            valid = verifyEdDSA(message, signature)
        case .es256, .es384:
            guard let der = Self.derSignature(fromJWS: signature, curve: algorithm == .es256 ? .p256 : .p384) else { return false }
            valid = verifyDigest(message, der)
        case .rs256, .rs384, .rs512:
            valid = key.rsa != nil ? verifyPKCS1(message, signature) : verifyDigest(message, signature)
        default:
            valid = verifyDigest(message, signature)
        }
        // A failed verification queues errors; a long-running filter must not collect them.
        if !valid { OpenSSLErrors.clear() }
        return valid
    }

    private func verifyDigest(_ message: UnsafeRawBufferPointer, _ signature: [UInt8]) -> Bool {
        guard let context, let digest, let digestContext else { return false }
        var hash = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let hashed = hash.withUnsafeMutableBufferPointer { out in
            EVP_DigestInit_ex2(digestContext, digest, nil) == 1
                && EVP_DigestUpdate(digestContext, message.baseAddress, message.count) == 1
                && EVP_DigestFinal_ex(digestContext, out.baseAddress, &length) == 1
        }
        guard hashed else { return false }
        let result = signature.withUnsafeBufferPointer { sig in
            hash.withUnsafeBufferPointer { d in
                EVP_PKEY_verify(context, sig.baseAddress, sig.count, d.baseAddress, Int(length))
            }
        }
        return result == 1
    }

    /// RSASSA-PKCS1-v1_5 on the key's numbers: the signature's length, s < n, and the whole
    /// encoded message with the exact DigestInfo for the hash.
    private func verifyPKCS1(_ message: UnsafeRawBufferPointer, _ signature: [UInt8]) -> Bool {
        guard let rsa = key.rsa else { return false }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { hash in
            guard let base = hash.baseAddress, let length = Self.hash(algorithm.digest, message, into: base) else { return false }
            return signature.withUnsafeBufferPointer { sig in
                rsa.verifyPKCS1(sig, digest: algorithm.digest, hash: UnsafeBufferPointer(start: base, count: length))
            }
        }
    }

    /// The low-level hash functions: EVP_Digest* with a fetched EVP_MD would work too, but
    /// the fetch is what builds OpenSSL 3's name map.
    private static func hash(_ digest: SignatureAlgorithm.Digest, _ message: UnsafeRawBufferPointer,
                             into out: UnsafeMutablePointer<UInt8>) -> Int? {
        switch digest {
        case .sha256:
            var c = SHA256_CTX()
            guard SHA256_Init(&c) == 1, SHA256_Update(&c, message.baseAddress, message.count) == 1,
                  SHA256_Final(out, &c) == 1 else { return nil }
            return 32
        case .sha384:
            var c = SHA512_CTX()
            guard SHA384_Init(&c) == 1, SHA384_Update(&c, message.baseAddress, message.count) == 1,
                  SHA384_Final(out, &c) == 1 else { return nil }
            return 48
        case .sha512:
            var c = SHA512_CTX()
            guard SHA512_Init(&c) == 1, SHA512_Update(&c, message.baseAddress, message.count) == 1,
                  SHA512_Final(out, &c) == 1 else { return nil }
            return 64
        case .none:
            return nil
        }
    }

    private func verifyEdDSA(_ message: UnsafeRawBufferPointer, _ signature: [UInt8]) -> Bool {
        guard signature.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard let pkey = try? key.evpKey(), EVP_DigestVerifyInit(ctx, nil, nil, nil, pkey) == 1 else { return false }
        let result = signature.withUnsafeBufferPointer { sig in
            EVP_DigestVerify(ctx, sig.baseAddress, sig.count,
                             message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count)
        }
        return result == 1
    }

    /// JWS carries an ECDSA signature as the fixed-width concatenation r || s (RFC 7518
    /// §3.4); OpenSSL wants DER. Any other length is refused rather than guessed at.
    public static func derSignature(fromJWS raw: [UInt8], curve: ECCurve) -> [UInt8]? {
        let size = curve.coordinateSize
        guard raw.count == 2 * size, let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let r = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32(size), nil) }
        let s = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + size, Int32(size), nil) }
        guard let r, let s else {
            if let r { BN_free(r) }
            if let s { BN_free(s) }
            return nil
        }
        guard ECDSA_SIG_set0(sig, r, s) == 1 else { BN_free(r); BN_free(s); return nil }
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_ECDSA_SIG(sig, &cursor)
        }
        return written == length ? der : nil
    }

    /// The inverse: DER from OpenSSL to the JWS r || s form.
    public static func jwsSignature(fromDER der: [UInt8], curve: ECCurve) -> [UInt8]? {
        let sig = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let sig else { return nil }
        defer { ECDSA_SIG_free(sig) }
        guard let r = ECDSA_SIG_get0_r(sig), let s = ECDSA_SIG_get0_s(sig) else { return nil }
        let size = curve.coordinateSize
        var out = [UInt8](repeating: 0, count: 2 * size)
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(r, buffer.baseAddress, Int32(size)) == Int32(size)
                && BN_bn2binpad(s, buffer.baseAddress! + size, Int32(size)) == Int32(size)
        }
        return ok ? out : nil
    }
}
