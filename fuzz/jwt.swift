// The JWT parser and verifier (Sources/Common/JWT/: CompactJWS, ClaimsPolicy,
// JWTVerifier, KeySet) and the ECDSA signature conversion under them.
//
// The input is a bearer token. Properties, beyond "no crash":
//   - base64url: Base64.urlDecode from bytes and from text
//     agree on every segment, and whatever decodes re-encodes to the same text (one
//     spelling per value);
//   - the String and byte entry points of CompactJWS.parse agree; a parsed token signs
//     exactly the bytes before its second dot and reports the `alg` it carries;
//   - a subject ClaimsPolicy accepts is one that is safe as a header value;
//   - the full verifier, against a key set holding RSA, P-256, P-384 and Ed25519 keys,
//     refuses everything it did not sign, and a parsed token re-signed under one of those
//     keys gets past the signature check (the claims may still refuse it).
@testable import Records
@testable import Crypto
@testable import JWT

private struct Keys {
    let set: KeySet
    let signers: [String: (PrivateKey, SignatureAlgorithm)]
}

private func makeKeys() -> Keys {
    do {
        let specs: [(String, PrivateKey, SignatureAlgorithm)] = [
            ("rsa", try PrivateKey.generateRSA(bits: 2048), .rs256),
            ("p256", try PrivateKey.generateEC(.p256), .es256),
            ("p384", try PrivateKey.generateEC(.p384), .es384),
            ("ed", try PrivateKey.generateEd25519(), .edDSA),
        ]
        var jwks: [JSON] = []
        var signers: [String: (PrivateKey, SignatureAlgorithm)] = [:]
        for (kid, key, alg) in specs {
            var jwk = try key.publicJWK()
            jwk["kid"] = .string(kid)
            jwks.append(.object(jwk))
            signers[kid] = (key, alg)
        }
        return Keys(set: try KeySet(json: .object(JSONObject([("keys", .array(jwks))]))), signers: signers)
    } catch {
        fatalError("cannot set up the fuzzing keys: \(error)")
    }
}

nonisolated(unsafe) private let keys = makeKeys()
private let now = 1_700_000_000
private let policy = ClaimsPolicy(issuers: ["https://securetoken.google.com/edgepipe"], audiences: ["edgepipe"])
private let verifier = JWTVerifier(algorithms: .init(SignatureAlgorithm.allCases), policy: policy)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let token = UnsafeBufferPointer(start: data, count: size)

    for segment in pieces(token, separator: UInt8(ascii: ".")) {
        let decoded = Base64.urlDecode(segment)
        if let text = String(validating: segment, as: UTF8.self) {
            require(Base64.urlDecode(text) == decoded, "the two base64url decoders disagree on \(text.debugDescription)")
        }
        if let decoded {
            require(Base64.urlEncode(decoded).utf8.elementsEqual(segment), "a second base64url spelling decodes")
        }
    }

    let parsed: Result<CompactJWS, JWTError> = Result { () throws(JWTError) in try CompactJWS.parse(token) }
    let text = String(validating: token, as: UTF8.self)
    if let text {
        let viaString: Result<CompactJWS, JWTError> = Result { () throws(JWTError) in try CompactJWS.parse(text) }
        switch (parsed, viaString) {
        case (.success(let a), .success(let b)):
            require(a.header == b.header && a.payload == b.payload && a.signature == b.signature, "String and bytes parse differently")
        case (.failure(let a), .failure(let b)):
            require(a == b, "String and bytes refuse differently: \(a) / \(b)")
        default:
            require(false, "String and bytes disagree on acceptance")
        }
    }

    if case .success(let jws) = parsed {
        let dots = (0..<size).filter { token[$0] == UInt8(ascii: ".") }
        require(dots.count == 2, "accepted a token with \(dots.count) dots")
        require(jws.signingInput.elementsEqual(token[0..<dots[1]]), "signing input is not the bytes before the second dot")
        require(jws.header["alg"] == .string(jws.algorithm), "alg not as carried")
        require(jws.header["crit"] == nil, "accepted crit")
        if let sub = try? policy.validate(jws.payload, now: now) {
            require(ClaimsPolicy.isValidSubject(sub), "accepted subject \(sub.debugDescription)")
        }
    }

    if let text {
        // Nothing here was signed by these keys, so nothing may verify...
        if let verified = try? verifier.verify(text, now: now, keys: keys.set.verifier) {
            require(false, "verified a token no key signed (kid \(verified.keyID))")
        }
        // ...until it is re-signed: then the signature check passes whatever the token holds.
        if case .success(let jws) = parsed, let kid = jws.keyID, let (key, alg) = keys.signers[kid],
           jws.algorithm == alg.rawValue, alg != .rs256 || size % 16 == 0 {   // RSA signing is slow: sample it
            let signature = (try? key.sign(jws.signingInput, algorithm: alg)) ?? []
            let resigned = String(decoding: jws.signingInput, as: UTF8.self) + "." + Base64.urlEncode(signature)
            do {
                let verified = try verifier.verify(resigned, now: now, keys: keys.set.verifier)
                require(ClaimsPolicy.isValidSubject(verified.subject), "verified subject \(verified.subject.debugDescription)")
            } catch {
                switch error {
                case .badSignature, .unknownKey, .keyMismatch, .algorithmNotAllowed, .malformed, .tooLarge,
                     .missingKeyID, .unusableKey, .keysUnavailable, .unsupportedCritical:
                    require(false, "a token re-signed with key \(kid) was refused before its claims: \(error)")
                default:
                    break   // expired, wrong issuer...: the claims' business
                }
            }
        }
    }
    return 0
}
