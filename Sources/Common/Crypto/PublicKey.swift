#if canImport(Glibc)
import Glibc
#endif
internal import COpenSSL

/// The JWS signature algorithms edgepipe verifies (RFC 7518 §3, RFC 8037). HMAC and
/// `none` are deliberately absent: a verifier that knows only public keys can never be
/// tricked into using one as an HMAC secret.
public enum SignatureAlgorithm: String, CaseIterable, Sendable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256"
    case es256 = "ES256", es384 = "ES384"
    case edDSA = "EdDSA"

    public enum Digest: Sendable { case sha256, sha384, sha512, none }

    public var digest: Digest {
        switch self {
        case .rs256, .ps256, .es256: return .sha256
        case .rs384, .es384: return .sha384
        case .rs512: return .sha512
        case .edDSA: return .none
        }
    }

    /// Whether `key` is the kind of key this algorithm is defined for; a mismatch is how
    /// algorithm-confusion attacks start, so it is refused before any verification.
    public func accepts(_ kind: PublicKey.Kind) -> Bool {
        switch (self, kind) {
        case (.rs256, .rsa), (.rs384, .rsa), (.rs512, .rsa), (.ps256, .rsa): return true
        case (.es256, .ec(.p256)), (.es384, .ec(.p384)): return true
        case (.edDSA, .ed25519): return true
        default: return false
        }
    }

    /// RSASSA-PKCS1-v1_5 (RS256, RS384, RS512).
    var isPKCS1: Bool { self == .rs256 || self == .rs384 || self == .rs512 }

    var evpDigest: OpaquePointer? {
        switch digest {
        case .sha256: return EVP_sha256()
        case .sha384: return EVP_sha384()
        case .sha512: return EVP_sha512()
        case .none: return nil
        }
    }
}

public enum ECCurve: String, Sendable {
    case p256 = "P-256", p384 = "P-384"

    var groupName: String { self == .p256 ? "prime256v1" : "secp384r1" }
    /// The byte length of a coordinate, of a scalar, and of half a JWS signature.
    public var coordinateSize: Int { self == .p256 ? 32 : 48 }
}

/// A public key: an owned EVP_PKEY and, for RSA, its modulus and exponent as BIGNUMs, with
/// which RS256/384/512 verify (RSAPublicNumbers). An RSA key from a JWK has only the
/// numbers until something needs the EVP_PKEY (PS256): building one costs OpenSSL's
/// configuration load at start-up.
public final class PublicKey {
    public enum Kind: Equatable, Sendable {
        case rsa(bits: Int)
        case ec(ECCurve)
        case ed25519

        var isRSA: Bool { if case .rsa = self { return true } else { return false } }
    }

    /// RSA keys below 2048 bits are refused (RFC 7518 §3.3); above 8192 they only cost CPU.
    public static let minimumRSABits = 2048
    public static let maximumRSABits = 8192

    private var evp: OpaquePointer?    // EVP_PKEY*
    let rsa: RSAPublicNumbers?
    public let kind: Kind

    /// Takes ownership of `pointer` (freed on failure too).
    init(taking pointer: OpaquePointer) throws(CryptoError) {
        evp = pointer
        do {
            kind = try PublicKey.kind(of: pointer)
        } catch {
            EVP_PKEY_free(pointer)
            throw error
        }
        rsa = kind.isRSA ? Self.numbers(of: pointer) : nil
    }

    private init(rsa: RSAPublicNumbers) throws(CryptoError) {
        guard rsa.bits >= Self.minimumRSABits else { throw CryptoError("RSA key of \(rsa.bits) bits is too small") }
        guard rsa.bits <= Self.maximumRSABits else { throw CryptoError("RSA key of \(rsa.bits) bits is too large") }
        self.rsa = rsa
        kind = .rsa(bits: rsa.bits)
    }

    deinit {
        if let evp { EVP_PKEY_free(evp) }
    }

    /// The EVP_PKEY, built from the RSA numbers on first use when the key came from them.
    func evpKey() throws(CryptoError) -> OpaquePointer {
        if let evp { return evp }
        guard let rsa, let (n, e) = rsa.copies() else { throw CryptoError("no key") }
        guard let legacy = RSA_new() else { BN_free(n); BN_free(e); throw CryptoError("RSA_new failed") }
        guard RSA_set0_key(legacy, n, e, nil) == 1 else {
            BN_free(n); BN_free(e); RSA_free(legacy)
            throw CryptoError("invalid RSA parameters")
        }
        defer { RSA_free(legacy) }    // the EVP_PKEY keeps a reference of its own
        guard let pkey = EVP_PKEY_new() else { throw CryptoError("EVP_PKEY_new failed") }
        guard EVP_PKEY_set1_RSA(pkey, legacy) == 1 else { EVP_PKEY_free(pkey); throw CryptoError("invalid RSA public key") }
        evp = pkey
        return pkey
    }

    /// n and e of an RSA EVP_PKEY; nil leaves its signatures to the EVP path.
    private static func numbers(of pkey: OpaquePointer) -> RSAPublicNumbers? {
        var n: OpaquePointer?, e: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pkey, "n", &n) == 1, let n else { return nil }
        guard EVP_PKEY_get_bn_param(pkey, "e", &e) == 1, let e else { BN_free(n); return nil }
        let numbers = try? RSAPublicNumbers(takingModulus: n, exponent: e)
        if numbers == nil { OpenSSLErrors.clear() }
        return numbers
    }

    static func kind(of pkey: OpaquePointer) throws(CryptoError) -> Kind {
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_RSA:
            let bits = Int(EVP_PKEY_get_bits(pkey))
            guard bits >= minimumRSABits else { throw CryptoError("RSA key of \(bits) bits is too small") }
            guard bits <= maximumRSABits else { throw CryptoError("RSA key of \(bits) bits is too large") }
            return .rsa(bits: bits)
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_group_name(pkey, &name, name.count, &length) == 1 else {
                throw CryptoError("EC key without a named curve")
            }
            let group = String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            switch group {
            case "prime256v1", "P-256", "secp256r1": return .ec(.p256)
            case "secp384r1", "P-384": return .ec(.p384)
            default: throw CryptoError("unsupported EC curve \(group)")
            }
        case EVP_PKEY_ED25519:
            return .ed25519
        default:
            throw CryptoError("unsupported key type")
        }
    }

    /// An RSA public key from its modulus and exponent (big-endian, as in a JWK's n and e).
    public static func rsa(modulus: [UInt8], exponent: [UInt8]) throws(CryptoError) -> PublicKey {
        guard !modulus.isEmpty, !exponent.isEmpty, exponent.count <= 8 else { throw CryptoError("invalid RSA parameters") }
        // Numbers only, no EVP_PKEY_fromdata: a key built through a provider costs OpenSSL 3's
        // name map on first use, 4.85 M of verify-jwt's 7.4 M start-up instructions (see evpKey).
        return try PublicKey(rsa: try RSAPublicNumbers(modulus: modulus, exponent: exponent))
    }

    /// An EC public key from its affine coordinates (each exactly the curve's size, as JWK requires).
    public static func ec(curve: ECCurve, x: [UInt8], y: [UInt8]) throws(CryptoError) -> PublicKey {
        guard x.count == curve.coordinateSize, y.count == curve.coordinateSize else {
            throw CryptoError("EC coordinates must be \(curve.coordinateSize) bytes")
        }
        let point = [0x04] + x + y     // SEC 1 uncompressed point
        let key = try fromParameters(type: "EC", [.text("group", curve.groupName), .octets("pub", point)])
        // A point off the curve is the start of an invalid-curve attack.
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, try key.evpKey(), nil) else { throw CryptoError("EVP_PKEY_CTX_new failed") }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_public_check(context) == 1 else { throw CryptoError("EC point is not on the curve") }
        return key
    }

    /// An Ed25519 public key from its 32 raw bytes (a JWK's x for crv Ed25519).
    public static func ed25519(_ x: [UInt8]) throws(CryptoError) -> PublicKey {
        guard x.count == 32 else { throw CryptoError("Ed25519 key must be 32 bytes") }
        let pkey = x.withUnsafeBufferPointer { EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32) }
        guard let pkey else { throw CryptoError("invalid Ed25519 key") }
        return try PublicKey(taking: pkey)
    }

    /// The subject public key of a PEM X.509 certificate (Google's securetoken format).
    /// Only the key is used: the map's URL and TLS are what vouch for it, as in the Admin SDKs.
    /// RSA keys are read from the DER (CertificatePublicKey: n and e, as from a JWK, without
    /// OpenSSL's decoders); other key types still go through PEM_read_bio_X509.
    public static func certificate(pem: [UInt8]) throws(CryptoError) -> PublicKey {
        if case .rsa(let modulus, let exponent) = try CertificatePublicKey.read(pem: pem) {
            return try rsa(modulus: modulus, exponent: exponent)
        }
        let bio = try MemoryBIO(pem)
        guard let cert = PEM_read_bio_X509(bio.pointer, nil, nil, nil) else { throw CryptoError("not a PEM certificate") }
        defer { X509_free(cert) }
        guard let pkey = X509_get_pubkey(cert) else { throw CryptoError("certificate without a usable public key") }
        return try PublicKey(taking: pkey)
    }

    /// A PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    public static func pem(_ bytes: [UInt8]) throws(CryptoError) -> PublicKey {
        let bio = try MemoryBIO(bytes)
        guard let pkey = PEM_read_bio_PUBKEY(bio.pointer, nil, nil, nil) else { throw CryptoError("not a PEM public key") }
        return try PublicKey(taking: pkey)
    }

    enum Parameter {
        case text(String, String)
        case octets(String, [UInt8])
    }

    /// EVP_PKEY_fromdata. OSSL_PARAM_BLD keeps the key names' and values' pointers until
    /// the params are built and used, so they live in C strings owned here, not in Swift
    /// temporaries that are gone when each push returns.
    private static func fromParameters(type: String, _ parameters: [Parameter]) throws(CryptoError) -> PublicKey {
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError("OSSL_PARAM_BLD_new failed") }
        var owned: [UnsafeMutableRawPointer] = []
        defer {
            OSSL_PARAM_BLD_free(builder)
            for p in owned { free(p) }
        }
        func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
            let p = strdup(s)!
            owned.append(UnsafeMutableRawPointer(p))
            return p
        }
        var ok = true
        for parameter in parameters {
            switch parameter {
            case .text(let name, let value):
                ok = ok && OSSL_PARAM_BLD_push_utf8_string(builder, cString(name), cString(value), 0) == 1
            case .octets(let name, let bytes):
                let copy = malloc(max(bytes.count, 1))!
                owned.append(copy)
                bytes.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: bytes.count) } }
                ok = ok && OSSL_PARAM_BLD_push_octet_string(builder, cString(name), copy, bytes.count) == 1
            }
        }
        guard ok, let params = OSSL_PARAM_BLD_to_param(builder) else { throw CryptoError("invalid \(type) key parameters") }
        defer { OSSL_PARAM_free(params) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type, nil) else { throw CryptoError("no \(type) support") }
        defer { EVP_PKEY_CTX_free(context) }
        var pkey: OpaquePointer?
        guard EVP_PKEY_fromdata_init(context) == 1,
              EVP_PKEY_fromdata(context, &pkey, Int32(OSSL_KEYMGMT_SELECT_ALL_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY), params) == 1,
              let pkey else { throw CryptoError("invalid \(type) public key") }
        return try PublicKey(taking: pkey)
    }
}
