import XCTest
@testable import VerifyJWTTool
@testable import Records
@testable import Crypto
@testable import JWT

final class VerifierTests: XCTestCase {
    nonisolated(unsafe) static let jwks: KeySet = {
        var rsa = try! TestKeys.rsa.publicJWK(); rsa["kid"] = "rsa-1"
        var ec = try! TestKeys.p256.publicJWK(); ec["kid"] = "ec-1"
        var ed = try! TestKeys.ed25519.publicJWK(); ed["kid"] = "ed-1"
        var p384 = try! TestKeys.p384.publicJWK(); p384["kid"] = "p384-1"
        return try! KeySet(json: .object(JSONObject([("keys", .array([.object(rsa), .object(ec), .object(ed), .object(p384)]))])))
    }()

    let verifier = JWTVerifier(algorithms: .all,
                               policy: ClaimsPolicy(issuers: ["https://issuer.example"], audiences: ["project-1"]))

    func verify(_ token: String, verifier: JWTVerifier? = nil, keys: KeySet = VerifierTests.jwks) -> Result<String, JWTError> {
        let v = verifier ?? self.verifier
        return Result { () throws(JWTError) in
            try v.verify(token, now: Mint.now) { kid, alg throws(JWTError) in try keys.verifier(kid: kid, algorithm: alg) }.subject
        }
    }

    func testTokensOfEveryAlgorithmVerifyWithTheirKey() {
        let kids: [SignatureAlgorithm: String] = [.rs256: "rsa-1", .rs384: "rsa-1", .rs512: "rsa-1", .ps256: "rsa-1",
                                                  .es256: "ec-1", .es384: "p384-1", .edDSA: "ed-1"]
        for algorithm in SignatureAlgorithm.allCases {
            let token = Mint.token(header: "{\"alg\":\"\(algorithm.rawValue)\",\"kid\":\"\(kids[algorithm]!)\"}", payload: Mint.claims(),
                                   key: TestKeys.key(for: algorithm), algorithm: algorithm)
            XCTAssertEqual(verify(token), .success("user-1"), "\(algorithm)")
        }
    }

    func testDefaultAllowListIsRS256Only() {
        let rs = JWTVerifier(policy: verifier.policy)
        let es = Mint.token(header: #"{"alg":"ES256","kid":"ec-1"}"#, payload: Mint.claims(), key: TestKeys.p256, algorithm: .es256)
        XCTAssertEqual(verify(es, verifier: rs), .failure(.algorithmNotAllowed))
        let ps = Mint.token(header: #"{"alg":"PS256","kid":"rsa-1"}"#, payload: Mint.claims(), algorithm: .ps256)
        XCTAssertEqual(verify(ps, verifier: rs), .failure(.algorithmNotAllowed))
    }

    func testAlgNoneIsRefused() {
        let token = Mint.b64(#"{"alg":"none","kid":"rsa-1"}"#) + "." + Mint.b64(Mint.claims()) + ".AAAA"
        XCTAssertEqual(verify(token), .failure(.algorithmNotAllowed))
        let empty = Mint.b64(#"{"alg":"none","kid":"rsa-1"}"#) + "." + Mint.b64(Mint.claims()) + "."
        XCTAssertEqual(verify(empty), .failure(.malformed("empty segment")))
    }

    func testHS256SignedWithThePublicKeyAsSecretIsRefused() throws {
        // The classic confusion: an HMAC keyed with the (public) PEM the verifier holds.
        let pem = Array(try TestKeys.rsa.publicJWK().serialized())
        let input = Mint.b64(#"{"alg":"HS256","kid":"rsa-1"}"#) + "." + Mint.b64(Mint.claims())
        let token = input + "." + Base64.urlEncode(Digest.hmacSHA256(key: pem, Array(input.utf8)))
        XCTAssertEqual(verify(token), .failure(.algorithmNotAllowed))
    }

    func testAlgorithmThatDoesNotMatchTheKeyTypeIsRefused() {
        // An ES256 token naming the RSA key's kid, and the reverse.
        let es = Mint.token(header: #"{"alg":"ES256","kid":"rsa-1"}"#, payload: Mint.claims(), key: TestKeys.p256, algorithm: .es256)
        XCTAssertEqual(verify(es), .failure(.keyMismatch))
        let rs = Mint.token(header: #"{"alg":"RS256","kid":"ec-1"}"#, payload: Mint.claims())
        XCTAssertEqual(verify(rs), .failure(.keyMismatch))
        let es384 = Mint.token(header: #"{"alg":"ES384","kid":"ec-1"}"#, payload: Mint.claims(), key: TestKeys.p384, algorithm: .es384)
        XCTAssertEqual(verify(es384), .failure(.keyMismatch))
    }

    func testMissingOrEmptyKidIsRefused() {
        XCTAssertEqual(verify(Mint.token(header: #"{"alg":"RS256"}"#, payload: Mint.claims())), .failure(.missingKeyID))
        XCTAssertEqual(verify(Mint.token(header: #"{"alg":"RS256","kid":""}"#, payload: Mint.claims())), .failure(.missingKeyID))
    }

    func testUnknownKidIsRefused() {
        XCTAssertEqual(verify(Mint.token(header: #"{"alg":"RS256","kid":"nope"}"#, payload: Mint.claims())), .failure(.unknownKey))
    }

    func testEmbeddedKeysAndKeyURLsAreNeverUsed() throws {
        // Signed by a key that is not configured, which the header offers in every way it can.
        var jwk = try TestKeys.rsaOther.publicJWK(); jwk["kid"] = "rsa-1"
        let header = "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"jwk\":\(jwk.text),\"jku\":\"https://evil.example/keys\",\"x5u\":\"https://evil.example/c\"}"
        let token = Mint.token(header: header, payload: Mint.claims(), key: TestKeys.rsaOther)
        XCTAssertEqual(verify(token), .failure(.badSignature))
        let unknown = Mint.token(header: header.replacingOccurrences(of: "\"kid\":\"rsa-1\",\"jwk\"", with: "\"kid\":\"evil\",\"jwk\""),
                                 payload: Mint.claims(), key: TestKeys.rsaOther)
        XCTAssertEqual(verify(unknown), .failure(.unknownKey))
    }

    func testTamperedPayloadFailsTheSignature() {
        let token = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims())
        var parts = token.split(separator: ".").map(String.init)
        parts[1] = Mint.b64(Mint.claims(["sub": "\"admin\""]))
        XCTAssertEqual(verify(parts.joined(separator: ".")), .failure(.badSignature))
    }

    func testTamperedSignatureFails() {
        let token = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims())
        var parts = token.split(separator: ".").map(String.init)
        var sig = Base64.urlDecode(parts[2])!
        sig[100] ^= 0x01
        parts[2] = Base64.urlEncode(sig)
        XCTAssertEqual(verify(parts.joined(separator: ".")), .failure(.badSignature))
    }

    func testTruncatedTokenFails() {
        let token = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims())
        // A 256-byte signature is 342 characters: 340 decode to 255 bytes, 341 to nothing.
        XCTAssertEqual(verify(String(token.dropLast(2))), .failure(.badSignature))
        XCTAssertEqual(verify(String(token.dropLast(1))), .failure(.malformed("signature is not canonical base64url")))
        XCTAssertEqual(verify(String(token.prefix(60))), .failure(.malformed("not three segments")))
    }

    func testSignatureIsCheckedBeforeClaims() {
        let expired = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["exp": "\(Mint.now - 3600)"]),
                                 key: TestKeys.rsaOther)
        XCTAssertEqual(verify(expired), .failure(.badSignature))
    }

    func testX509CertificateMapKeysVerify() throws {
        let map = JSONObject([("cert-1", .string(Fixtures.certificatePEM)), ("cert-2", .string(Fixtures.certificatePEM))])
        let keys = try KeySet(json: .object(map))
        XCTAssertEqual(keys.format, .x509)
        let signer = try PrivateKey.pem(Array(Fixtures.certificateKeyPEM.utf8))
        let token = Mint.token(header: #"{"alg":"RS256","kid":"cert-2"}"#, payload: Mint.claims(), key: signer)
        XCTAssertEqual(verify(token, keys: keys), .success("user-1"))
        let other = Mint.token(header: #"{"alg":"RS256","kid":"cert-1"}"#, payload: Mint.claims())
        XCTAssertEqual(verify(other, keys: keys), .failure(.badSignature))
    }

    func testKeySetRefusesDocumentsThatAreNeitherFormat() {
        XCTAssertThrowsError(try KeySet(document: Array("[]".utf8)))
        XCTAssertThrowsError(try KeySet(document: Array(#"{"keys":[]}"#.utf8)))
        XCTAssertThrowsError(try KeySet(document: Array(#"{"a":"not a certificate"}"#.utf8)))
        XCTAssertThrowsError(try KeySet(document: Array(#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#.utf8)))
    }

    func testJWKUseKeyOpsAndAlgConstrainWhichTokensItVerifies() throws {
        func set(_ extra: [(String, JSON)]) throws -> KeySet {
            var jwk = try TestKeys.rsa.publicJWK(); jwk["kid"] = "rsa-1"
            for (k, v) in extra { jwk[k] = v }
            return try KeySet(json: .object(JSONObject([("keys", .array([.object(jwk)]))])))
        }
        let rs = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims())
        XCTAssertEqual(verify(rs, keys: try set([("use", "enc")])), .failure(.keyMismatch))
        XCTAssertEqual(verify(rs, keys: try set([("key_ops", ["encrypt"])])), .failure(.keyMismatch))
        XCTAssertEqual(verify(rs, keys: try set([("alg", "PS256")])), .failure(.keyMismatch))
        XCTAssertEqual(verify(rs, keys: try set([("use", "sig"), ("alg", "RS256"), ("key_ops", ["verify"])])), .success("user-1"))
    }

    func testKeysAreParsedLazilySoABrokenNeighbourDoesNotMatter() throws {
        var good = try TestKeys.rsa.publicJWK(); good["kid"] = "rsa-1"
        let broken = JSONObject([("kid", "broken"), ("kty", "RSA"), ("n", "!!"), ("e", "AQAB")])
        let keys = try KeySet(json: .object(JSONObject([("keys", .array([.object(broken), .object(good)]))])))
        XCTAssertEqual(verify(Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims()), keys: keys), .success("user-1"))
        XCTAssertEqual(verify(Mint.token(header: #"{"alg":"RS256","kid":"broken"}"#, payload: Mint.claims()), keys: keys), .failure(.unusableKey))
    }

    func testClaimsAreCheckedAfterTheSignature() {
        let token = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["aud": "\"project-2\""]))
        XCTAssertEqual(verify(token), .failure(.wrongAudience))
    }
}
