internal import COpenSSL
import Records

/// A private key (an owned EVP_PKEY) for signing JWS: loaded from PEM (PKCS#8 or the
/// traditional RSA/EC forms) or freshly generated.
public final class PrivateKey {
    let pointer: OpaquePointer
    public let kind: PublicKey.Kind

    init(taking pointer: OpaquePointer) throws(CryptoError) {
        self.pointer = pointer
        do {
            kind = try PublicKey.kind(of: pointer)
        } catch {
            EVP_PKEY_free(pointer)
            throw error
        }
    }

    deinit { EVP_PKEY_free(pointer) }

    /// Reads an unencrypted PEM private key. An encrypted key is refused instead of
    /// OpenSSL's default of prompting on the terminal.
    public static func pem(_ bytes: [UInt8]) throws(CryptoError) -> PrivateKey {
        let bio = try MemoryBIO(bytes)
        let pkey = PEM_read_bio_PrivateKey(bio.pointer, nil, { _, _, _, _ in 0 }, nil)
        guard let pkey else { throw CryptoError("not an unencrypted PEM private key") }
        return try PrivateKey(taking: pkey)
    }

    public static func generateRSA(bits: Int = 2048) throws(CryptoError) -> PrivateKey {
        try generate("RSA") { EVP_PKEY_CTX_set_rsa_keygen_bits($0, Int32(bits)) == 1 }
    }

    public static func generateEC(_ curve: ECCurve) throws(CryptoError) -> PrivateKey {
        try generate("EC") { EVP_PKEY_CTX_set_group_name($0, curve.groupName) == 1 }
    }

    public static func generateEd25519() throws(CryptoError) -> PrivateKey {
        try generate("ED25519") { _ in true }
    }

    private static func generate(_ type: String, _ configure: (OpaquePointer) -> Bool) throws(CryptoError) -> PrivateKey {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, type, nil) else { throw CryptoError("no \(type) support") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, configure(ctx), EVP_PKEY_generate(ctx, &pkey) == 1, let pkey else {
            throw CryptoError("\(type) key generation failed")
        }
        return try PrivateKey(taking: pkey)
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), unencrypted: the caller stores it 0600.
    public func pemPKCS8() throws(CryptoError) -> [UInt8] {
        let bio = try MemoryBIO()
        guard PEM_write_bio_PrivateKey(bio.pointer, pointer, nil, nil, 0, nil, nil) == 1 else {
            throw CryptoError("cannot write the private key")
        }
        return bio.contents()
    }

    /// The matching public key.
    public func publicKey() throws(CryptoError) -> PublicKey {
        guard EVP_PKEY_up_ref(pointer) == 1 else { throw CryptoError("EVP_PKEY_up_ref failed") }
        return try PublicKey(taking: pointer)
    }

    /// The public half as JWK members (kty and the key's parameters), in RFC 7638's
    /// member order so the same members also give the thumbprint.
    public func publicJWK() throws(CryptoError) -> JSONObject {
        switch kind {
        case .rsa:
            let n = try bigNumberParameter("n"), e = try bigNumberParameter("e")
            return JSONObject([("e", .string(Base64.urlEncode(e))), ("kty", "RSA"), ("n", .string(Base64.urlEncode(n)))])
        case .ec(let curve):
            let x = try bigNumberParameter("qx", padTo: curve.coordinateSize)
            let y = try bigNumberParameter("qy", padTo: curve.coordinateSize)
            return JSONObject([("crv", .string(curve.rawValue)), ("kty", "EC"),
                               ("x", .string(Base64.urlEncode(x))), ("y", .string(Base64.urlEncode(y)))])
        case .ed25519:
            var raw = [UInt8](repeating: 0, count: 32)
            var length = 32
            guard raw.withUnsafeMutableBufferPointer({ EVP_PKEY_get_raw_public_key(pointer, $0.baseAddress, &length) }) == 1,
                  length == 32 else { throw CryptoError("cannot read the Ed25519 public key") }
            return JSONObject([("crv", "Ed25519"), ("kty", "OKP"), ("x", .string(Base64.urlEncode(raw)))])
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id.
    public func thumbprint() throws(CryptoError) -> String {
        Base64.urlEncode(Digest.sha256(try publicJWK().serialized()))
    }

    private func bigNumberParameter(_ name: String, padTo length: Int? = nil) throws(CryptoError) -> [UInt8] {
        var bn: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pointer, name, &bn) == 1, let bn else { throw CryptoError("cannot read key parameter \(name)") }
        return BigNumber(taking: bn).bytes(padTo: length)
    }

    /// Signs `message` with `algorithm`, returning the signature in its JWS form.
    public func sign(_ message: [UInt8], algorithm: SignatureAlgorithm) throws(CryptoError) -> [UInt8] {
        guard algorithm.accepts(kind) else { throw CryptoError("\(algorithm.rawValue) cannot be used with this key type") }
        guard let ctx = EVP_MD_CTX_new() else { throw CryptoError("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer?
        guard EVP_DigestSignInit(ctx, &pctx, algorithm.evpDigest, nil, pointer) == 1 else { throw CryptoError("cannot start signing") }
        if algorithm == .ps256 {
            guard let pctx, EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1,
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 else {
                throw CryptoError("cannot set PSS padding")
            }
        }
        var length = 0
        let sized = message.withUnsafeBufferPointer { EVP_DigestSign(ctx, nil, &length, $0.baseAddress, $0.count) }
        guard sized == 1 else { throw CryptoError("signing failed") }
        var signature = [UInt8](repeating: 0, count: length)
        let signed = signature.withUnsafeMutableBufferPointer { out in
            message.withUnsafeBufferPointer { EVP_DigestSign(ctx, out.baseAddress, &length, $0.baseAddress, $0.count) }
        }
        guard signed == 1 else { throw CryptoError("signing failed") }
        signature.removeSubrange(length...)
        switch algorithm {
        case .es256, .es384:
            guard let raw = SignatureVerifier.jwsSignature(fromDER: signature, curve: algorithm == .es256 ? .p256 : .p384) else {
                throw CryptoError("cannot convert the ECDSA signature")
            }
            return raw
        default:
            return signature
        }
    }
}
