import Records
import Crypto
import JWT

/// The local development key pair: an RSA-2048 key (RS256, verify-jwt's default algorithm,
/// so local mode runs exactly the production verification path) and the JWK Set that
/// `verify-jwt --dev-keys DIR` reads. Created on first use, then reused.
struct DevKeys {
    let directory: String

    static let issuer = "edgepipe-dev"
    static let audience = "edgepipe-dev"

    var privateKeyPath: String { directory + "/private.pem" }
    var jwksPath: String { directory + "/jwks.json" }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The key and its kid (the RFC 7638 thumbprint), creating both files if missing.
    /// Concurrent first uses serialise on a lock so they agree on one key.
    func loadOrCreate() throws(Failure) -> (key: PrivateKey, kid: String) {
        do {
            try KeyFiles.ensurePrivateDirectory(directory)
        } catch {
            throw Failure(error.description)
        }
        guard let lock = FileLock(path: directory + "/.lock", timeoutMillis: 10_000) else {
            throw Failure("cannot lock \(directory)/.lock")
        }
        defer { withExtendedLifetime(lock) {} }
        do {
            let key: PrivateKey
            if let pem = readFile(privateKeyPath) {
                key = try PrivateKey.pem(pem)
            } else {
                key = try PrivateKey.generateRSA(bits: 2048)
                try KeyFiles.writeAtomically(privateKeyPath, try key.pemPKCS8(), mode: 0o600)
            }
            let kid = try key.thumbprint()
            let jwks = try Self.jwks(key, kid: kid)
            if readFile(jwksPath) != jwks {
                try KeyFiles.writeAtomically(jwksPath, jwks, mode: 0o644)
            }
            return (key, kid)
        } catch let e as CryptoError {
            throw Failure("dev key \(privateKeyPath): \(e)")
        } catch {
            throw Failure("\(error)")
        }
    }

    static func jwks(_ key: PrivateKey, kid: String) throws(CryptoError) -> [UInt8] {
        var jwk = try key.publicJWK()
        jwk["kid"] = .string(kid)
        jwk["use"] = "sig"
        jwk["alg"] = "RS256"
        return JSONObject([("keys", .array([.object(jwk)]))]).serialized() + [0x0A]
    }

    /// A token for `uid`, shaped like a Firebase ID token (iss, aud, sub, iat, exp, auth_time).
    static func mint(uid: String, ttl: Int, extra: [(String, JSON)], key: PrivateKey, kid: String, now: Int) throws(CryptoError) -> String {
        var claims = JSONObject([("iss", .string(issuer)), ("aud", .string(audience)), ("sub", .string(uid)),
                                 ("iat", JSON(now)), ("exp", JSON(now + ttl)), ("auth_time", JSON(now))])
        for (name, value) in extra { claims[name] = value }
        return try CompactJWS.sign(header: JSONObject([("kid", .string(kid)), ("typ", "JWT")]), payload: claims,
                                   key: key, algorithm: .rs256)
    }

    /// Claims `--claim` may not set: the ones the verifier checks.
    /// `--claim NAME=VALUE` (a string) and `--claim-json NAME=JSON` items as claims, the
    /// strings first; the claims `mint` sets itself cannot be given.
    static func extraClaims(strings: [String], json: [String]) throws(OptionError) -> [(String, JSON)] {
        var claims: [(String, JSON)] = []
        for (item, isJSON) in strings.map({ ($0, false) }) + json.map({ ($0, true) }) {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw OptionError("--claim wants NAME=VALUE, got '\(item)'") }
            let name = String(parts[0])
            guard !reservedClaims.contains(name) else { throw OptionError("--claim cannot set \(name)") }
            if isJSON {
                guard let value = try? JSONReader.parse(String(parts[1])) else { throw OptionError("--claim-json \(name): not JSON") }
                claims.append((name, value))
            } else {
                claims.append((name, .string(String(parts[1]))))
            }
        }
        return claims
    }

    static let reservedClaims: Set<String> = ["iss", "aud", "sub", "iat", "exp", "nbf", "auth_time"]
}
