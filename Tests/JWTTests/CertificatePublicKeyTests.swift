import XCTest
@testable import Records
@testable import Crypto

/// RSA keys of X.509 certificates are read from the DER by CertificatePublicKey, not by
/// PEM_read_bio_X509: the same n and e as OpenSSL reads, and malformed DER refused.
final class CertificatePublicKeyTests: XCTestCase {
    static let rsaFixtures: [(String, CertificateFixtures.RSACertificate)] = [
        ("rsa2048", CertificateFixtures.rsa2048), ("rsa4096", CertificateFixtures.rsa4096),
        ("exponent3", CertificateFixtures.exponent3), ("version1", CertificateFixtures.version1),
    ]

    func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    func numbers(_ pem: String) throws -> (n: [UInt8], e: [UInt8]) {
        guard case .rsa(let n, let e) = try CertificatePublicKey.read(pem: Array(pem.utf8)) else {
            throw CryptoError("not read as RSA")
        }
        return (n, e)
    }

    func testModulusAndExponentAreWhatOpenSSLReads() throws {
        for (name, fixture) in Self.rsaFixtures {
            let (n, e) = try numbers(fixture.pem)
            XCTAssertEqual(hex(n), fixture.modulusHex, name)
            XCTAssertEqual(e, fixture.exponent, name)
            let key = try PublicKey.certificate(pem: Array(fixture.pem.utf8))
            XCTAssertEqual(key.kind, .rsa(bits: fixture.modulusHex.count * 4), name)
        }
    }

    func testSignaturesOfTheCertificatesKeysVerify() throws {
        let message = Array("header.payload".utf8)
        for (name, fixture) in Self.rsaFixtures {
            guard let text = fixture.rs256OfHeaderPayload else { continue }
            let signature = try XCTUnwrap(Base64.decode(text), name)
            let verifier = try SignatureVerifier(key: try PublicKey.certificate(pem: Array(fixture.pem.utf8)), algorithm: .rs256)
            XCTAssertTrue(verifier.verify(message, signature: signature), name)
            XCTAssertFalse(verifier.verify(message + [0x2E], signature: signature), name)
        }
    }

    func testAnECCertificateStillGoesThroughOpenSSL() throws {
        guard case .other = try CertificatePublicKey.read(pem: Array(CertificateFixtures.p256PEM.utf8)) else {
            return XCTFail("an EC key read as RSA")
        }
        XCTAssertEqual(try PublicKey.certificate(pem: Array(CertificateFixtures.p256PEM.utf8)).kind, .ec(.p256))
    }

    func testCRLFLinesAndATrailingLineBreakAreAccepted() throws {
        let pem = CertificateFixtures.rsa2048.pem
        let crlf = pem.split(separator: "\n").joined(separator: "\r\n") + "\r\n"
        XCTAssertEqual(try numbers(crlf).n, try numbers(pem).n)
        XCTAssertEqual(try numbers(pem + "\n\n").n, try numbers(pem).n)
        XCTAssertEqual(try numbers(pem + " \t\n").n, try numbers(pem).n)
    }

    func testBadPEMFramingIsRefused() {
        let pem = CertificateFixtures.rsa2048.pem
        var lines = pem.split(separator: "\n").map(String.init)
        for bad in [
            pem + "\nmore",                                            // text after END
            pem + "\n" + pem,                                          // a second certificate
            pem.replacingFirst("CERTIFICATE-----\n", "CERTIFICATE----- x\n"),
            String(pem.dropLast(10)),                                  // no END line
            pem.replacingFirst("\nMII", "\n MII"),                     // a space
            pem.replacingFirst("-----END", "AAAA-----END"),            // not at a line start
        ] {
            XCTAssertThrowsError(try PublicKey.certificate(pem: Array(bad.utf8)), bad)
        }
        lines[1].removeLast()                                          // base64 out of step
        XCTAssertThrowsError(try PublicKey.certificate(pem: Array(lines.joined(separator: "\n").utf8)))
    }

    // MARK: - malformed DER

    func der(_ pem: String) -> [UInt8] { try! PEMCertificate.der(Array(pem.utf8)) }

    func assertRefused(_ der: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try CertificatePublicKey.read(der: der), what, file: file, line: line) { error in
            let message = (error as? CryptoError)?.message ?? ""
            XCTAssertTrue(message.hasPrefix("malformed certificate: "), message, file: file, line: line)
            XCTAssertFalse(message.contains("\n"), file: file, line: line)
        }
    }

    func testEveryTruncationAndAnyExtraByteIsRefused() {
        let whole = der(CertificateFixtures.rsa2048.pem)
        XCTAssertNoThrow(try CertificatePublicKey.read(der: whole))
        for length in 0..<whole.count { assertRefused(Array(whole.prefix(length)), "truncated to \(length)") }
        assertRefused(whole + [0x00], "a trailing byte")
        assertRefused(whole + whole, "two certificates")
    }

    func testARealCertificatesLengthsMustBeMinimal() {
        let whole = der(CertificateFixtures.rsa2048.pem)
        XCTAssertEqual(Array(whole.prefix(2)), [0x30, 0x82])
        assertRefused([0x30, 0x84, 0x00, 0x00] + whole.dropFirst(2), "four length bytes for a two-byte length")
        assertRefused([0x30, 0x80] + whole.dropFirst(4) + [0x00, 0x00], "indefinite length")
    }

    func testLongFormLengthsThatOverflowAreRefused() {
        assertRefused([0x30, 0x85, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], "five length bytes")
        assertRefused([0x30, 0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00], "Int.max")
        assertRefused([0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x01, 0x00], "4 GiB announced")
        assertRefused([0x30, 0xFF], "0xFF length")
        assertRefused([0x30, 0x81, 0x05, 0x02, 0x01, 0x00, 0x05, 0x00], "long form for a short length")
        assertRefused([0x30, 0x82, 0x00, 0x85] + [UInt8](repeating: 0, count: 0x85), "leading zero length byte")
        assertRefused([0x3F, 0x81, 0x01, 0x00], "multi-byte tag")
    }

    // Synthetic certificates, to change one thing at a time in the key.

    static let rsaEncryption = tlv(0x30, tlv(0x06, CertificatePublicKey.rsaEncryption) + tlv(0x05, []))
    static let modulus: [UInt8] = [0x00] + [UInt8](repeating: 0xC5, count: 256)   // 2048 bits, odd

    static func tlv(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
        let n = contents.count
        if n < 0x80 { return [tag, UInt8(n)] + contents }
        if n < 0x100 { return [tag, 0x81, UInt8(n)] + contents }
        return [tag, 0x82, UInt8(n >> 8), UInt8(n & 0xFF)] + contents
    }

    static func rsaPublicKey(_ n: [UInt8] = modulus, _ e: [UInt8] = [0x01, 0x00, 0x01]) -> [UInt8] {
        tlv(0x30, tlv(0x02, n) + tlv(0x02, e))
    }

    static func certificate(algorithm: [UInt8] = rsaEncryption, bitString: [UInt8]? = nil,
                            key: [UInt8] = rsaPublicKey(), version: [UInt8]? = [0x02],
                            tail: [UInt8] = []) -> [UInt8] {
        let sha256WithRSA = tlv(0x30, tlv(0x06, [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B]) + tlv(0x05, []))
        let name = tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, [0x55, 0x04, 0x03]) + tlv(0x0C, Array("t".utf8)))))
        let validity = tlv(0x30, tlv(0x17, Array("260101000000Z".utf8)) + tlv(0x17, Array("360101000000Z".utf8)))
        let spki = tlv(0x30, algorithm + (bitString ?? tlv(0x03, [0x00] + key)))
        let tbs = (version.map { tlv(0xA0, tlv(0x02, $0)) } ?? []) + tlv(0x02, [0x01]) + sha256WithRSA + name + validity + name + spki + tail
        return tlv(0x30, tlv(0x30, tbs) + sha256WithRSA + tlv(0x03, [0x00, 0x01, 0x02]))
    }

    func testSyntheticCertificatesAreRead() throws {
        for cert in [Self.certificate(), Self.certificate(version: nil), Self.certificate(version: [0x00]),
                     Self.certificate(algorithm: Self.tlv(0x30, Self.tlv(0x06, CertificatePublicKey.rsaEncryption))),
                     Self.certificate(tail: Self.tlv(0x81, [0x00, 0xAA]) + Self.tlv(0x82, [0x00]) + Self.tlv(0xA3, Self.tlv(0x30, [])))] {
            guard case .rsa(let n, let e) = try CertificatePublicKey.read(der: cert) else { return XCTFail("not RSA") }
            XCTAssertEqual(n, Array(Self.modulus.dropFirst()))
            XCTAssertEqual(e, [0x01, 0x00, 0x01])
        }
    }

    func testMalformedKeysAreRefused() {
        let c = Self.self
        let negative = [UInt8](repeating: 0xC5, count: 256)
        assertRefused(c.certificate(key: c.rsaPublicKey(negative)), "negative modulus")
        assertRefused(c.certificate(key: c.rsaPublicKey(c.modulus, [0x81])), "negative exponent")
        assertRefused(c.certificate(key: c.rsaPublicKey([0x00] + c.modulus)), "modulus with a redundant 0x00")
        assertRefused(c.certificate(key: c.rsaPublicKey(c.modulus, [0x00, 0x03])), "exponent with a redundant 0x00")
        assertRefused(c.certificate(key: c.rsaPublicKey([], [0x03])), "empty modulus")
        assertRefused(c.certificate(key: c.rsaPublicKey() + [0x00]), "a byte after RSAPublicKey")
        assertRefused(c.certificate(key: c.tlv(0x30, c.tlv(0x02, c.modulus) + c.tlv(0x02, [3]) + c.tlv(0x02, [3]))), "three integers")
        assertRefused(c.certificate(key: c.tlv(0x30, c.tlv(0x02, c.modulus))), "no exponent")
        assertRefused(c.certificate(bitString: c.tlv(0x03, [0x01] + c.rsaPublicKey())), "unused bits")
        assertRefused(c.certificate(bitString: c.tlv(0x04, c.rsaPublicKey())), "an OCTET STRING for the key")
        assertRefused(c.certificate(bitString: c.tlv(0x03, [])), "empty BIT STRING")
        let withOctets = c.tlv(0x30, c.tlv(0x06, CertificatePublicKey.rsaEncryption) + c.tlv(0x04, []))
        assertRefused(c.certificate(algorithm: withOctets), "parameters other than NULL")
        let nonEmptyNull = c.tlv(0x30, c.tlv(0x06, CertificatePublicKey.rsaEncryption) + c.tlv(0x05, [0x00]))
        assertRefused(c.certificate(algorithm: nonEmptyNull), "a NULL with contents")
        assertRefused(c.certificate(version: [0x03]), "version 4")
        assertRefused(c.certificate(version: [0x00, 0x02]), "non-minimal version")
        assertRefused(c.certificate(tail: [0x05, 0x00]), "unknown element at the end of tbsCertificate")
        assertRefused(c.certificate(tail: c.tlv(0xA3, []) + c.tlv(0x81, [0x00])), "uniqueIDs after the extensions")
    }

    func testAnotherAlgorithmIsNotReadAsRSAAndTheCertificateIsRefusedWhole() throws {
        let c = Self.self
        var pss = CertificatePublicKey.rsaEncryption
        pss[pss.count - 1] = 0x0A     // id-RSASSA-PSS
        let cert = c.certificate(algorithm: c.tlv(0x30, c.tlv(0x06, pss) + c.tlv(0x05, [])))
        guard case .other = try CertificatePublicKey.read(der: cert) else { return XCTFail("read as rsaEncryption") }
        // Through OpenSSL, as before: this synthetic certificate's RSA-PSS key is no JWS key type here.
        let pem = "-----BEGIN CERTIFICATE-----\n" + Base64.encode(cert) + "\n-----END CERTIFICATE-----\n"
        XCTAssertThrowsError(try PublicKey.certificate(pem: Array(pem.utf8)))
        // An RSA key outside 2048-8192 bits is refused as a JWK's is.
        let small = c.certificate(key: c.rsaPublicKey([0x00] + [UInt8](repeating: 0xC5, count: 128)))
        let smallPEM = "-----BEGIN CERTIFICATE-----\n" + Base64.encode(small) + "\n-----END CERTIFICATE-----\n"
        XCTAssertThrowsError(try PublicKey.certificate(pem: Array(smallPEM.utf8))) { error in
            XCTAssertEqual((error as? CryptoError)?.message, "RSA key of 1024 bits is too small")
        }
    }
}

private extension String {
    /// `self` with the first occurrence of `target` replaced (no Foundation in these tests either).
    func replacingFirst(_ target: String, _ replacement: String) -> String {
        let bytes = Array(utf8), pattern = Array(target.utf8)
        guard pattern.count <= bytes.count else { return self }
        for i in 0...(bytes.count - pattern.count) where Array(bytes[i..<(i + pattern.count)]) == pattern {
            return String(decoding: bytes[..<i] + Array(replacement.utf8) + bytes[(i + pattern.count)...], as: UTF8.self)
        }
        return self
    }
}
