import Records
import Crypto
import JWT

/// A Google service-account key file (the JSON the Cloud console downloads) and the
/// self-signed JWT it can make: RS256, kid = private_key_id, iss = sub = client_email,
/// exp = iat + 3600. Google APIs accept it as a Bearer token without an OAuth exchange.
struct ServiceAccount {
    let clientEmail: String
    let privateKeyID: String
    let key: PrivateKey

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static let lifetime = 3600

    static func parse(_ bytes: [UInt8]) throws(Failure) -> ServiceAccount {
        guard case .object(let file)? = try? JSONReader.parse(bytes) else { throw Failure("the key file is not a JSON object") }
        if let type = file["type"], type != .string("service_account") { throw Failure("the key file is not a service_account key") }
        guard case .string(let email)? = file["client_email"], !email.isEmpty else { throw Failure("the key file has no client_email") }
        guard case .string(let kid)? = file["private_key_id"], !kid.isEmpty else { throw Failure("the key file has no private_key_id") }
        guard case .string(let pem)? = file["private_key"] else { throw Failure("the key file has no private_key") }
        let key: PrivateKey
        do { key = try PrivateKey.pem(Array(pem.utf8)) } catch { throw Failure("private_key: \(error)") }
        guard case .rsa = key.kind else { throw Failure("private_key is not an RSA key") }
        return ServiceAccount(clientEmail: email, privateKeyID: kid, key: key)
    }

    /// `audience` is the API's URL (e.g. https://firestore.googleapis.com/); with `scopes`
    /// instead (or as well), the token carries a space-separated `scope` claim.
    func token(audience: String?, scopes: [String], now: Int) throws(CryptoError) -> String {
        var claims = JSONObject([("iss", .string(clientEmail)), ("sub", .string(clientEmail))])
        if let audience { claims["aud"] = .string(audience) }
        if !scopes.isEmpty { claims["scope"] = .string(scopes.joined(separator: " ")) }
        claims["iat"] = JSON(now)
        claims["exp"] = JSON(now + Self.lifetime)
        return try CompactJWS.sign(header: JSONObject([("kid", .string(privateKeyID)), ("typ", "JWT")]),
                                   payload: claims, key: key, algorithm: .rs256)
    }
}
