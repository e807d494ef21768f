import Records
import Crypto
/// Signing keys by `kid`, from a JWK Set (RFC 7517 §5) or Google's X.509 certificate map
/// (`{"<kid>": "-----BEGIN CERTIFICATE-----..."}`, what the Firebase Admin SDKs fetch).
///
/// Opening a set only indexes it; a key is parsed into OpenSSL the first time a token
/// names its kid, and then kept, with one reusable verifier per algorithm.
public final class KeySet {
    enum Entry {
        case jwk(JSONObject)
        case certificate(String)
    }

    private var entries: [String: Entry] = [:]
    private var verifiers: [String: SignatureVerifier] = [:]
    private var lastVerifier: SignatureVerifier?
    private var lastKid = ""
    public let format: Format

    public enum Format: String, Sendable { case jwks, x509 }

    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public convenience init(document: [UInt8]) throws(FormatError) {
        guard let json = try? JSONReader.parse(document) else { throw FormatError(description: "not JSON") }
        try self.init(json: json)
    }

    public init(json: JSON) throws(FormatError) {
        guard case .object(let root) = json else { throw FormatError(description: "not a JSON object") }
        if case .array(let keys)? = root["keys"] {
            format = .jwks
            for key in keys {
                // Keys without a kid can never be selected: tokens must name their key.
                guard case .object(let jwk) = key, case .string(let kid)? = jwk["kid"] else { continue }
                if entries[kid] == nil { entries[kid] = .jwk(jwk) }
            }
        } else {
            format = .x509
            for m in root.members {
                guard case .string(let pem) = m.value, pem.hasPrefix("-----BEGIN CERTIFICATE-----") else {
                    throw FormatError(description: "neither a JWK Set nor an X.509 certificate map")
                }
                entries[m.key] = .certificate(pem)
            }
        }
        guard !entries.isEmpty else { throw FormatError(description: "no keys with a kid") }
    }

    public var keyIDs: [String] { entries.keys.sorted() }
    public var count: Int { entries.count }
    public func contains(_ kid: String) -> Bool { entries[kid] != nil }

    /// The verifier for `kid` under `algorithm`; nil when the set has no such kid.
    public func verifier(kid: String, algorithm: SignatureAlgorithm) throws(JWTError) -> SignatureVerifier? {
        // Nearly every token names the same key as the one before: skip the hashing.
        if let last = lastVerifier, last.algorithm == algorithm, lastKid == kid { return last }
        let cacheKey = algorithm.rawValue + " " + kid
        if let v = verifiers[cacheKey] {
            lastVerifier = v
            lastKid = kid
            return v
        }
        guard let entry = entries[kid] else { return nil }
        let key: PublicKey
        switch entry {
        case .certificate(let pem):
            do { key = try PublicKey.certificate(pem: Array(pem.utf8)) } catch { throw .unusableKey }
        case .jwk(let jwk):
            key = try Self.publicKey(jwk, for: algorithm)
        }
        guard algorithm.accepts(key.kind) else { throw .keyMismatch }
        let verifier: SignatureVerifier
        do { verifier = try SignatureVerifier(key: key, algorithm: algorithm) } catch { throw .keyMismatch }
        verifiers[cacheKey] = verifier
        lastVerifier = verifier
        lastKid = kid
        return verifier
    }

    /// A JWK's public key, refused when its own `use`, `key_ops` or `alg` rule out `algorithm`.
    static func publicKey(_ jwk: JSONObject, for algorithm: SignatureAlgorithm) throws(JWTError) -> PublicKey {
        if let use = jwk["use"], use != .string("sig") { throw .keyMismatch }
        if let ops = jwk["key_ops"] {
            guard case .array(let list) = ops, list.contains(.string("verify")) else { throw .keyMismatch }
        }
        if let alg = jwk["alg"], alg != .string(algorithm.rawValue) { throw .keyMismatch }
        func member(_ name: String) throws(JWTError) -> [UInt8] {
            guard case .string(let text)? = jwk[name], let bytes = Base64.urlDecode(text), !bytes.isEmpty else { throw .unusableKey }
            return bytes
        }
        do {
            switch jwk["kty"] {
            case .string("RSA")?:
                return try PublicKey.rsa(modulus: try member("n"), exponent: try member("e"))
            case .string("EC")?:
                guard case .string(let crv)? = jwk["crv"], let curve = ECCurve(rawValue: crv) else { throw JWTError.unusableKey }
                return try PublicKey.ec(curve: curve, x: try member("x"), y: try member("y"))
            case .string("OKP")?:
                guard jwk["crv"] == .string("Ed25519") else { throw JWTError.unusableKey }
                return try PublicKey.ed25519(try member("x"))
            default:
                throw JWTError.unusableKey
            }
        } catch let e as JWTError {
            throw e
        } catch {
            throw .unusableKey
        }
    }
}
