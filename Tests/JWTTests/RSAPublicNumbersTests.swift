import XCTest
@testable import Records
@testable import Crypto

/// RS256/384/512 verify on the key's numbers (RSAPublicNumbers), not through RSA_verify:
/// the same answers, including for the malformed signatures RSA_verify refuses.
final class RSAPublicNumbersTests: XCTestCase {
    func jwkKey(_ key: PrivateKey = TestKeys.rsa) throws -> PublicKey {
        let jwk = try key.publicJWK()
        guard case .string(let n)? = jwk["n"], case .string(let e)? = jwk["e"] else { throw CryptoError("no n or e") }
        return try PublicKey.rsa(modulus: Base64.urlDecode(n)!, exponent: Base64.urlDecode(e)!)
    }

    func testKeysFromAJWKVerifyEveryRSAAlgorithmIncludingPS256() throws {
        let message = Array("header.payload".utf8)
        let key = try jwkKey()
        for algorithm in [SignatureAlgorithm.rs256, .rs384, .rs512, .ps256] {
            let signature = try TestKeys.rsa.sign(message, algorithm: algorithm)
            let verifier = try SignatureVerifier(key: key, algorithm: algorithm)
            XCTAssertTrue(verifier.verify(message, signature: signature), "\(algorithm)")
            XCTAssertFalse(verifier.verify(message + [0x2E], signature: signature), "\(algorithm)")
        }
    }

    func testASignatureOfAnotherHashOrKeyIsRefused() throws {
        let message = Array("m".utf8)
        let rs384 = try TestKeys.rsa.sign(message, algorithm: .rs384)
        XCTAssertFalse(try SignatureVerifier(key: try jwkKey(), algorithm: .rs256).verify(message, signature: rs384))
        let other = try TestKeys.rsaOther.sign(message, algorithm: .rs256)
        XCTAssertFalse(try SignatureVerifier(key: try jwkKey(), algorithm: .rs256).verify(message, signature: other))
    }

    func testSignaturesOfTheWrongLengthOrNotBelowTheModulusAreRefused() throws {
        let message = Array("m".utf8)
        let signature = try TestKeys.rsa.sign(message, algorithm: .rs256)
        let verifier = try SignatureVerifier(key: try jwkKey(), algorithm: .rs256)
        XCTAssertTrue(verifier.verify(message, signature: signature))
        XCTAssertFalse(verifier.verify(message, signature: [0] + signature), "a leading zero byte: k + 1 bytes")
        XCTAssertFalse(verifier.verify(message, signature: Array(signature.dropFirst())))
        let jwk = try TestKeys.rsa.publicJWK()
        guard case .string(let n)? = jwk["n"] else { return XCTFail("no n") }
        XCTAssertFalse(verifier.verify(message, signature: Base64.urlDecode(n)!), "s = n")
        XCTAssertFalse(verifier.verify(message, signature: [UInt8](repeating: 0, count: signature.count)))
    }

    func testInvalidNumbersAreRefused() {
        let modulus = [UInt8](repeating: 0xC5, count: 256)
        XCTAssertNoThrow(try PublicKey.rsa(modulus: modulus, exponent: [1, 0, 1]))
        XCTAssertThrowsError(try PublicKey.rsa(modulus: modulus.dropLast() + [0xC4], exponent: [1, 0, 1]), "even modulus")
        XCTAssertThrowsError(try PublicKey.rsa(modulus: modulus, exponent: [1, 0, 0]), "even exponent")
        XCTAssertThrowsError(try PublicKey.rsa(modulus: modulus, exponent: [1]), "e = 1")
        XCTAssertThrowsError(try PublicKey.rsa(modulus: [UInt8](repeating: 0xC5, count: 1025), exponent: [1, 0, 1]), "above 8192 bits")
    }
}
