import XCTest
@testable import Records
@testable import Crypto
@testable import JWT

/// Published vectors: RFC 7515 A.2 (RS256) and A.3 (ES256), RFC 8037 A.4 (EdDSA).
enum Vectors {
    static let payloadB64 = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    static let rs256Token = "eyJhbGciOiJSUzI1NiJ9." + payloadB64 + "."
        + "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
        + "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
        + "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
    static let rsaN = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
    static let rsaE = "AQAB"
    static let es256Token = "eyJhbGciOiJFUzI1NiJ9." + payloadB64 + "."
        + "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    static let ecX = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
    static let ecY = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    static let edToken = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        + "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    static let edX = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"

    static func b64(_ s: String) -> [UInt8] { Base64.urlDecode(s)! }

    /// (signing input, signature) of a compact token.
    static func split(_ token: String) -> ([UInt8], [UInt8]) {
        let dot = token.lastIndex(of: ".")!
        return (Array(token[..<dot].utf8), b64(String(token[token.index(after: dot)...])))
    }
}

/// Keys are slow to generate (RSA especially): one of each per test run.
enum TestKeys {
    nonisolated(unsafe) static let rsa = try! PrivateKey.generateRSA(bits: 2048)
    nonisolated(unsafe) static let rsaOther = try! PrivateKey.generateRSA(bits: 2048)
    nonisolated(unsafe) static let p256 = try! PrivateKey.generateEC(.p256)
    nonisolated(unsafe) static let p384 = try! PrivateKey.generateEC(.p384)
    nonisolated(unsafe) static let ed25519 = try! PrivateKey.generateEd25519()

    static func key(for algorithm: SignatureAlgorithm) -> PrivateKey {
        switch algorithm {
        case .rs256, .rs384, .rs512, .ps256: return rsa
        case .es256: return p256
        case .es384: return p384
        case .edDSA: return ed25519
        }
    }
}

final class CryptoTests: XCTestCase {
    func testRFC7515A2RS256VerifiesWithItsPublishedKey() throws {
        let key = try PublicKey.rsa(modulus: Vectors.b64(Vectors.rsaN), exponent: Vectors.b64(Vectors.rsaE))
        XCTAssertEqual(key.kind, .rsa(bits: 2048))
        let verifier = try SignatureVerifier(key: key, algorithm: .rs256)
        let (input, signature) = Vectors.split(Vectors.rs256Token)
        XCTAssertTrue(verifier.verify(input, signature: signature))
    }

    func testRFC7515A2FailsWhenOneByteOfTheInputChanges() throws {
        let key = try PublicKey.rsa(modulus: Vectors.b64(Vectors.rsaN), exponent: Vectors.b64(Vectors.rsaE))
        let verifier = try SignatureVerifier(key: key, algorithm: .rs256)
        var (input, signature) = Vectors.split(Vectors.rs256Token)
        input[input.count - 1] ^= 1
        XCTAssertFalse(verifier.verify(input, signature: signature))
        signature[0] ^= 1
        XCTAssertFalse(verifier.verify(Vectors.split(Vectors.rs256Token).0, signature: signature))
    }

    func testRFC7515A3ES256RawSignatureVerifiesWithItsPublishedKey() throws {
        let key = try PublicKey.ec(curve: .p256, x: Vectors.b64(Vectors.ecX), y: Vectors.b64(Vectors.ecY))
        let verifier = try SignatureVerifier(key: key, algorithm: .es256)
        let (input, signature) = Vectors.split(Vectors.es256Token)
        XCTAssertEqual(signature.count, 64)
        XCTAssertTrue(verifier.verify(input, signature: signature))
    }

    func testES256SignatureInDERFormIsRefused() throws {
        let key = try PublicKey.ec(curve: .p256, x: Vectors.b64(Vectors.ecX), y: Vectors.b64(Vectors.ecY))
        let verifier = try SignatureVerifier(key: key, algorithm: .es256)
        let (input, signature) = Vectors.split(Vectors.es256Token)
        let der = try XCTUnwrap(SignatureVerifier.derSignature(fromJWS: signature, curve: .p256))
        XCTAssertFalse(verifier.verify(input, signature: der))
        XCTAssertFalse(verifier.verify(input, signature: Array(signature.dropLast())))
    }

    func testRFC8037A4EdDSAVerifiesWithItsPublishedKey() throws {
        let key = try PublicKey.ed25519(Vectors.b64(Vectors.edX))
        let verifier = try SignatureVerifier(key: key, algorithm: .edDSA)
        var (input, signature) = Vectors.split(Vectors.edToken)
        XCTAssertTrue(verifier.verify(input, signature: signature))
        signature[10] ^= 0x40
        XCTAssertFalse(verifier.verify(input, signature: signature))
    }

    func testEveryAlgorithmSignsAndVerifiesWithGeneratedKeys() throws {
        let message = Array("header.payload".utf8)
        for algorithm in SignatureAlgorithm.allCases {
            let key = TestKeys.key(for: algorithm)
            let signature = try key.sign(message, algorithm: algorithm)
            let verifier = try SignatureVerifier(key: try key.publicKey(), algorithm: algorithm)
            XCTAssertTrue(verifier.verify(message, signature: signature), "\(algorithm)")
            XCTAssertFalse(verifier.verify(message + [0x2E], signature: signature), "\(algorithm)")
        }
    }

    func testVerifierIsReusableAcrossManySignatures() throws {
        let verifier = try SignatureVerifier(key: try TestKeys.rsa.publicKey(), algorithm: .rs256)
        for i in 0..<20 {
            let message = Array("message \(i)".utf8)
            let signature = try TestKeys.rsa.sign(message, algorithm: .rs256)
            XCTAssertTrue(verifier.verify(message, signature: signature))
            XCTAssertFalse(verifier.verify(message, signature: [UInt8](repeating: 7, count: 256)))
        }
    }

    func testPS256AndRS256SignaturesDoNotCrossVerify() throws {
        let message = Array("m".utf8)
        let pss = try TestKeys.rsa.sign(message, algorithm: .ps256)
        let pkcs1 = try TestKeys.rsa.sign(message, algorithm: .rs256)
        let public_ = try TestKeys.rsa.publicKey()
        XCTAssertFalse(try SignatureVerifier(key: public_, algorithm: .rs256).verify(message, signature: pss))
        XCTAssertFalse(try SignatureVerifier(key: public_, algorithm: .ps256).verify(message, signature: pkcs1))
    }

    func testVerifierRefusesAKeyOfTheWrongType() throws {
        XCTAssertThrowsError(try SignatureVerifier(key: try TestKeys.p256.publicKey(), algorithm: .rs256))
        XCTAssertThrowsError(try SignatureVerifier(key: try TestKeys.rsa.publicKey(), algorithm: .es256))
        XCTAssertThrowsError(try SignatureVerifier(key: try TestKeys.p384.publicKey(), algorithm: .es256))
        XCTAssertThrowsError(try SignatureVerifier(key: try TestKeys.ed25519.publicKey(), algorithm: .ps256))
    }

    func testRSAKeysBelow2048BitsAreRefused() {
        let modulus1024 = [UInt8](repeating: 0xC5, count: 128)
        XCTAssertThrowsError(try PublicKey.rsa(modulus: modulus1024, exponent: [1, 0, 1]))
    }

    func testECPointOffTheCurveIsRefused() {
        var y = Vectors.b64(Vectors.ecY)
        y[31] ^= 1
        XCTAssertThrowsError(try PublicKey.ec(curve: .p256, x: Vectors.b64(Vectors.ecX), y: y))
        XCTAssertThrowsError(try PublicKey.ec(curve: .p256, x: Array(Vectors.b64(Vectors.ecX).dropFirst()), y: y))
    }

    func testCertificatePublicKeyVerifiesSignaturesOfItsPrivateKey() throws {
        let key = try PublicKey.certificate(pem: Array(Fixtures.certificatePEM.utf8))
        XCTAssertEqual(key.kind, .rsa(bits: 2048))
        let signer = try PrivateKey.pem(Array(Fixtures.certificateKeyPEM.utf8))
        let message = Array("abc".utf8)
        let verifier = try SignatureVerifier(key: key, algorithm: .rs256)
        XCTAssertTrue(verifier.verify(message, signature: try signer.sign(message, algorithm: .rs256)))
        XCTAssertFalse(verifier.verify(message, signature: try TestKeys.rsa.sign(message, algorithm: .rs256)))
    }

    func testGarbageIsNotACertificate() {
        XCTAssertThrowsError(try PublicKey.certificate(pem: Array("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8)))
    }

    func testPrivateKeyPEMRoundTrips() throws {
        for key in [TestKeys.rsa, TestKeys.p256, TestKeys.ed25519] {
            let pem = try key.pemPKCS8()
            XCTAssertTrue(String(decoding: pem, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----"))
            let again = try PrivateKey.pem(pem)
            XCTAssertEqual(try again.publicJWK(), try key.publicJWK())
        }
    }

    func testEncryptedPrivateKeyIsRefusedWithoutPrompting() {
        // openssl genpkey -algorithm ed25519 -aes-128-cbc -pass pass:secret
        let encrypted = """
        -----BEGIN ENCRYPTED PRIVATE KEY-----
        MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjqkH8CzU2DNAICCAAw
        DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEOpp3vnjNHevlcUwIcCSPOMEQIDi
        FtfwFVAfZ1t689/YYsEy3CI5SwCd5Ila0P7ML5xjzYPgtEdxec07+CnQclWVvJ/d
        KWsdoqEKgS0yXoL3qgw=
        -----END ENCRYPTED PRIVATE KEY-----
        """
        XCTAssertThrowsError(try PrivateKey.pem(Array(encrypted.utf8)))
    }

    func testPublicJWKRebuildsTheSameKey() throws {
        let message = Array("jwk".utf8)
        for (key, algorithm) in [(TestKeys.rsa, SignatureAlgorithm.rs256), (TestKeys.p384, .es384), (TestKeys.ed25519, .edDSA)] {
            let jwk = try key.publicJWK()
            let rebuilt = try KeySet.publicKey(jwk, for: algorithm)
            XCTAssertTrue(try SignatureVerifier(key: rebuilt, algorithm: algorithm).verify(message, signature: try key.sign(message, algorithm: algorithm)))
        }
    }

    func testThumbprintIsStableAndDiffersBetweenKeys() throws {
        XCTAssertEqual(try TestKeys.rsa.thumbprint(), try TestKeys.rsa.thumbprint())
        XCTAssertNotEqual(try TestKeys.rsa.thumbprint(), try TestKeys.rsaOther.thumbprint())
        XCTAssertEqual(try TestKeys.rsa.thumbprint().count, 43)
    }

    func testDERAndRawECDSASignaturesConvertBothWays() throws {
        let (_, raw) = Vectors.split(Vectors.es256Token)
        let der = try XCTUnwrap(SignatureVerifier.derSignature(fromJWS: raw, curve: .p256))
        XCTAssertEqual(der.first, 0x30)
        XCTAssertEqual(SignatureVerifier.jwsSignature(fromDER: der, curve: .p256), raw)
        XCTAssertNil(SignatureVerifier.derSignature(fromJWS: raw, curve: .p384))
    }
}
