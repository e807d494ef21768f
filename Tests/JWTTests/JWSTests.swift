import XCTest
@testable import Records
@testable import Crypto
@testable import JWT

/// Builds tokens from raw JSON text, so malformed ones can be made too.
enum Mint {
    static func b64(_ text: String) -> String { Base64.urlEncode(Array(text.utf8)) }

    static func token(header: String, payload: String, key: PrivateKey = TestKeys.rsa,
                      algorithm: SignatureAlgorithm = .rs256) -> String {
        let input = b64(header) + "." + b64(payload)
        return input + "." + Base64.urlEncode(try! key.sign(Array(input.utf8), algorithm: algorithm))
    }

    static let now = 1_800_000_000

    static func claims(_ overrides: [String: String] = [:], dropping: Set<String> = []) -> String {
        var members: [(String, String)] = [
            ("iss", "\"https://issuer.example\""), ("aud", "\"project-1\""), ("sub", "\"user-1\""),
            ("iat", "\(now - 10)"), ("exp", "\(now + 3600)"),
        ]
        for (k, v) in overrides.sorted(by: { $0.key < $1.key }) {
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
        }
        return "{" + members.filter { !dropping.contains($0.0) }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

final class JWSTests: XCTestCase {
    func parse(_ token: String) -> JWTError? {
        do { _ = try CompactJWS.parse(token); return nil } catch { return error }
    }

    func testWellFormedTokenParsesIntoHeaderPayloadAndSignature() throws {
        let jws = try CompactJWS.parse(Vectors.rs256Token)
        XCTAssertEqual(jws.algorithm, "RS256")
        XCTAssertNil(jws.keyID)
        XCTAssertEqual(jws.payload["iss"], "joe")
        XCTAssertEqual(jws.signature.count, 256)
        XCTAssertEqual(String(decoding: jws.signingInput, as: UTF8.self), "eyJhbGciOiJSUzI1NiJ9." + Vectors.payloadB64)
    }

    func testTokensWithoutExactlyThreeSegmentsAreMalformed() {
        let t = Mint.token(header: #"{"alg":"RS256","kid":"k"}"#, payload: Mint.claims())
        let parts = t.split(separator: ".").map(String.init)
        XCTAssertEqual(parse(parts[0] + "." + parts[1]), .malformed("not three segments"))
        XCTAssertEqual(parse(t + ".x"), .malformed("not three segments"))
        XCTAssertEqual(parse(t + ".x.y"), .malformed("not three segments"))   // JWE's five
        XCTAssertEqual(parse(parts[0] + ".." + parts[2]), .malformed("empty segment"))
        XCTAssertEqual(parse(parts[0] + "." + parts[1] + "."), .malformed("empty segment"))
        XCTAssertEqual(parse(""), .malformed("not three segments"))
    }

    func testPaddedOrNonCanonicalBase64urlIsMalformed() {
        let t = Mint.token(header: #"{"alg":"RS256","kid":"k1"}"#, payload: Mint.claims())
        var parts = t.split(separator: ".").map(String.init)
        // The header is 26 bytes: its encoding ends in a partial group that padding would fill.
        XCTAssertEqual(parse(parts[0] + "==." + parts[1] + "." + parts[2]), .malformed("header is not canonical base64url"))
        // The same bits with stray low bits in the last character decode alike elsewhere.
        var last = Array(parts[2].utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let index = alphabet.firstIndex(of: last[last.count - 1])!
        last[last.count - 1] = alphabet[index ^ 1]
        parts[2] = String(decoding: last, as: UTF8.self)
        XCTAssertEqual(parse(parts.joined(separator: ".")), .malformed("signature is not canonical base64url"))
        XCTAssertEqual(parse("eyJhbGciOiJSUzI1NiJ9+." + Vectors.payloadB64 + ".AAAA"), .malformed("header is not canonical base64url"))
        XCTAssertEqual(parse("eyJhbGciOiJSUzI1NiJ9." + Vectors.payloadB64 + ".AA/A"), .malformed("signature is not canonical base64url"))
    }

    func testSegmentsThatAreNotJSONObjectsAreMalformed() {
        XCTAssertEqual(parse(Mint.b64("[1]") + "." + Mint.b64("{}") + ".AAAA"), .malformed("header is not a JSON object"))
        XCTAssertEqual(parse(Mint.b64("{alg:1}") + "." + Mint.b64("{}") + ".AAAA"), .malformed("header is not a JSON object"))
        XCTAssertEqual(parse(Mint.b64(#"{"alg":"RS256"}"#) + "." + Mint.b64("\"hi\"") + ".AAAA"), .malformed("payload is not a JSON object"))
        XCTAssertEqual(parse(Mint.b64(#"{"alg":"RS256"}"#) + "." + Mint.b64("{\"a\":1,}") + ".AAAA"), .malformed("payload is not a JSON object"))
        XCTAssertEqual(parse(Mint.b64(#"{"alg":"RS256","alg":"none"}"#) + "." + Mint.b64("{}") + ".AAAA"),
                       .malformed("header is not a JSON object"))
    }

    func testAlgAndKidMustBeStrings() {
        XCTAssertEqual(parse(Mint.b64(#"{"kid":"a"}"#) + "." + Mint.b64("{}") + ".AAAA"), .malformed("alg is missing or not a string"))
        XCTAssertEqual(parse(Mint.b64(#"{"alg":256}"#) + "." + Mint.b64("{}") + ".AAAA"), .malformed("alg is missing or not a string"))
        XCTAssertEqual(parse(Mint.b64(#"{"alg":"RS256","kid":7}"#) + "." + Mint.b64("{}") + ".AAAA"), .malformed("kid is not a string"))
        XCTAssertEqual(parse(Mint.b64(#"{"alg":"RS256","kid":["a"]}"#) + "." + Mint.b64("{}") + ".AAAA"), .malformed("kid is not a string"))
    }

    func testAnyCritHeaderIsUnsupported() {
        let t = Mint.token(header: #"{"alg":"RS256","kid":"k","crit":["exp"],"exp":1}"#, payload: Mint.claims())
        XCTAssertEqual(parse(t), .unsupportedCritical)
        let b64 = Mint.token(header: #"{"alg":"RS256","kid":"k","b64":false,"crit":["b64"]}"#, payload: Mint.claims())
        XCTAssertEqual(parse(b64), .unsupportedCritical)
    }

    func testOversizedTokenIsRefusedBeforeDecoding() {
        let big = Mint.token(header: #"{"alg":"RS256","kid":"k"}"#, payload: Mint.claims(["pad": "\"" + String(repeating: "x", count: 9000) + "\""]))
        XCTAssertEqual(parse(big), .tooLarge)
        XCTAssertNil(try? CompactJWS.parse(String(repeating: "A", count: 100_000)))
        XCTAssertNoThrow(try CompactJWS.parse(big, maxBytes: 20_000))
    }

    func testTokenDecoderAgreesWithCommonBase64OnEveryShortInput() {
        // Every string of up to three characters over the alphabet plus '=', '+', '/':
        // the decoder accepts exactly the canonical spellings, from bytes as from text.
        let chars = Array("AQgw_-9z=+/.".utf8) + [0xC3, 0x00]
        var inputs: [[UInt8]] = [[]]
        for length in 1...3 {
            var next: [[UInt8]] = []
            for prefix in inputs where prefix.count == length - 1 { for c in chars { next.append(prefix + [c]) } }
            inputs += next
        }
        inputs += [Array(Vectors.payloadB64.utf8), Array("eyJhbGciOiJSUzI1NiJ9".utf8), Array("eyJhbGciOiJSUzI1NiJ9==".utf8)]
        for input in inputs {
            let text = String(decoding: input, as: UTF8.self)
            let fast = input.withUnsafeBufferPointer { Base64.urlDecode($0) }
            if let fast { XCTAssertTrue(Base64.urlEncode(fast).utf8.elementsEqual(input), "\(input)") }
            if text.utf8.elementsEqual(input) { XCTAssertEqual(fast, Base64.urlDecode(text), "\(input)") }
        }
    }

    func testSignProducesACanonicalTokenWithAlgFirst() throws {
        let token = try CompactJWS.sign(header: JSONObject([("kid", "k1"), ("alg", "none")]),
                                        payload: JSONObject([("sub", "u")]), key: TestKeys.p256, algorithm: .es256)
        let jws = try CompactJWS.parse(token)
        XCTAssertEqual(jws.header.keys, ["alg", "kid"])
        XCTAssertEqual(jws.algorithm, "ES256")
        XCTAssertEqual(jws.signature.count, 64)
        XCTAssertTrue(try SignatureVerifier(key: try TestKeys.p256.publicKey(), algorithm: .es256)
            .verify(jws.signingInput, signature: jws.signature))
    }
}

final class ClaimsTests: XCTestCase {
    let policy = ClaimsPolicy(issuers: ["https://issuer.example"], audiences: ["project-1"], leeway: 30)

    func check(_ overrides: [String: String] = [:], dropping: Set<String> = [], now: Int = Mint.now) -> Result<String, JWTError> {
        let claims = (try! JSONReader.parse(Mint.claims(overrides, dropping: dropping))).object!
        return Result { () throws(JWTError) in try policy.validate(claims, now: now) }
    }

    func testValidClaimsReturnTheSubject() {
        XCTAssertEqual(try check().get(), "user-1")
    }

    func testExpiredTokenIsRefusedOnlyAfterTheLeeway() {
        XCTAssertEqual(check(["exp": "\(Mint.now - 31)"]), .failure(.expired))
        XCTAssertEqual(check(["exp": "\(Mint.now - 30)"]), .failure(.expired))
        XCTAssertEqual(check(["exp": "\(Mint.now - 29)"]), .success("user-1"))
    }

    func testNotYetValidTokenIsRefused() {
        XCTAssertEqual(check(["nbf": "\(Mint.now + 31)"]), .failure(.notYetValid))
        XCTAssertEqual(check(["nbf": "\(Mint.now + 30)"]), .success("user-1"))
    }

    func testIssuedAtOrAuthenticatedInTheFutureIsRefused() {
        XCTAssertEqual(check(["iat": "\(Mint.now + 31)"]), .failure(.issuedInFuture))
        XCTAssertEqual(check(["iat": "\(Mint.now + 30)"]), .success("user-1"))
        XCTAssertEqual(check(["auth_time": "\(Mint.now + 120)"]), .failure(.issuedInFuture))
        XCTAssertEqual(check(["auth_time": "\(Mint.now - 120)"]), .success("user-1"))
    }

    func testTimesMustBeNumbers() {
        XCTAssertEqual(check(["exp": "\"\(Mint.now + 100)\""]), .failure(.invalidClaim("exp")))
        XCTAssertEqual(check(["iat": "true"]), .failure(.invalidClaim("iat")))
        XCTAssertEqual(check(["nbf": "null"]), .failure(.invalidClaim("nbf")))
        XCTAssertEqual(check(["auth_time": "[1]"]), .failure(.invalidClaim("auth_time")))
        XCTAssertEqual(check(["exp": "1e400"]), .failure(.invalidClaim("exp")))
        XCTAssertEqual(check(["exp": "\(Mint.now + 100).5"]), .success("user-1"))
    }

    func testExpAndIatAreRequired() {
        XCTAssertEqual(check(dropping: ["exp"]), .failure(.missingClaim("exp")))
        XCTAssertEqual(check(dropping: ["iat"]), .failure(.missingClaim("iat")))
    }

    func testIssuerMustMatchExactly() {
        XCTAssertEqual(check(["iss": "\"https://issuer.example/\""]), .failure(.wrongIssuer))
        XCTAssertEqual(check(["iss": "\"HTTPS://ISSUER.EXAMPLE\""]), .failure(.wrongIssuer))
        XCTAssertEqual(check(["iss": "[\"https://issuer.example\"]"]), .failure(.wrongIssuer))
        XCTAssertEqual(check(dropping: ["iss"]), .failure(.wrongIssuer))
    }

    func testAudienceMustMatchExactlyAndMayBeAnArray() {
        XCTAssertEqual(check(["aud": "\"project-2\""]), .failure(.wrongAudience))
        XCTAssertEqual(check(["aud": "\"project-1 \""]), .failure(.wrongAudience))
        XCTAssertEqual(check(["aud": "[\"other\",\"project-1\"]"]), .success("user-1"))
        XCTAssertEqual(check(["aud": "[\"other\"]"]), .failure(.wrongAudience))
        XCTAssertEqual(check(["aud": "[]"]), .failure(.wrongAudience))
        XCTAssertEqual(check(["aud": "[\"project-1\",7]"]), .failure(.wrongAudience))
        XCTAssertEqual(check(dropping: ["aud"]), .failure(.wrongAudience))
    }

    func testSubjectMustBeANonEmptyShortStringWithoutControlCharacters() {
        XCTAssertEqual(check(["sub": "\"\""]), .failure(.invalidSubject))
        XCTAssertEqual(check(["sub": "\"" + String(repeating: "a", count: 129) + "\""]), .failure(.invalidSubject))
        XCTAssertEqual(check(["sub": "\"" + String(repeating: "a", count: 128) + "\""]), .success(String(repeating: "a", count: 128)))
        XCTAssertEqual(check(["sub": "\"a\\r\\nx-authenticated-uid: admin\""]), .failure(.invalidSubject))
        XCTAssertEqual(check(["sub": "42"]), .failure(.invalidSubject))
        XCTAssertEqual(check(dropping: ["sub"]), .failure(.invalidSubject))
    }
}
