import Records
/// The subject public key of a PEM X.509 certificate, read from its DER by DERReader.
///
/// Why not PEM_read_bio_X509: it decodes the key through OpenSSL 3's decoders and name map
/// and loads the configuration, 7.7 M instructions, and verify-jwt pays that on every
/// start with Firebase's certificate map (BENCHMARKS.md "Next"); the RSA modulus and
/// exponent are all it keeps of a certificate. Only the key is used: the map's URL and
/// TLS are what vouch for it, so validity, names and the signature are skipped over (but
/// must be well-formed DER). Keys other than rsaEncryption come back as `.other`, for
/// OpenSSL to read as before.
enum CertificatePublicKey {
    case rsa(modulus: [UInt8], exponent: [UInt8])
    case other

    /// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 8017 Appendix C), as DER contents.
    static let rsaEncryption: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]

    static func read(pem: [UInt8]) throws(CryptoError) -> CertificatePublicKey {
        try read(der: try PEMCertificate.der(pem))
    }

    /// RFC 5280 §4.1: Certificate → tbsCertificate → subjectPublicKeyInfo, and RFC 8017
    /// Appendix A.1.1's RSAPublicKey inside its BIT STRING.
    static func read(der: [UInt8]) throws(CryptoError) -> CertificatePublicKey {
        typealias Tag = DERReader.Tag
        var outer = DERReader(der)
        var certificate = try outer.read(Tag.sequence, "Certificate")
        try outer.finish("the certificate")
        var tbs = try certificate.read(Tag.sequence, "tbsCertificate")
        _ = try certificate.read(Tag.sequence, "signatureAlgorithm")
        _ = try certificate.read(Tag.bitString, "signatureValue")
        try certificate.finish("signatureValue")

        if var version = try tbs.readOptional(Tag.explicit(0), "version") {
            // v1 is normally absent (DER omits defaults), but OpenSSL accepts it written out.
            let number = try version.readUnsignedInteger("version")
            try version.finish("version")
            guard number.count <= 1, (number.first ?? 0) <= 2 else { throw DERReader.malformed("unknown version") }
        }
        _ = try tbs.read(Tag.integer, "serialNumber")
        _ = try tbs.read(Tag.sequence, "signature")
        _ = try tbs.read(Tag.sequence, "issuer")
        _ = try tbs.read(Tag.sequence, "validity")
        _ = try tbs.read(Tag.sequence, "subject")
        var spki = try tbs.read(Tag.sequence, "subjectPublicKeyInfo")
        _ = try tbs.readOptional(Tag.implicit(1), "issuerUniqueID")
        _ = try tbs.readOptional(Tag.implicit(2), "subjectUniqueID")
        _ = try tbs.readOptional(Tag.explicit(3), "extensions")
        try tbs.finish("tbsCertificate")

        var algorithm = try spki.read(Tag.sequence, "AlgorithmIdentifier")
        var publicKey = try spki.readByteAlignedBitString("subjectPublicKey")
        try spki.finish("subjectPublicKey")
        let oid = try algorithm.read(Tag.objectIdentifier, "algorithm")
        guard oid.remainingBytes() == rsaEncryption else { return .other }
        // RFC 3279 §2.3.1: parameters NULL; absent is common enough to accept too.
        if let parameters = try algorithm.readOptional(Tag.null, "NULL parameters") {
            try parameters.finish("NULL")
        }
        try algorithm.finish("the rsaEncryption parameters")

        var rsaKey = try publicKey.read(Tag.sequence, "RSAPublicKey")
        try publicKey.finish("RSAPublicKey")
        let modulus = try rsaKey.readUnsignedInteger("modulus")
        let exponent = try rsaKey.readUnsignedInteger("publicExponent")
        try rsaKey.finish("publicExponent")
        return .rsa(modulus: modulus, exponent: exponent)
    }
}

/// The DER inside a PEM certificate (RFC 7468 §5.1, strict form): the BEGIN line, base64
/// lines (LF or CRLF), the END line, then at most white space. One certificate only: a
/// second one after the first is refused rather than ignored.
enum PEMCertificate {
    private static let begin = Array("-----BEGIN CERTIFICATE-----".utf8)
    private static let end = Array("-----END CERTIFICATE-----".utf8)

    static func der(_ pem: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard pem.starts(with: begin) else { throw CryptoError("not a PEM certificate") }
        var body: [UInt8] = []
        body.reserveCapacity(pem.count)
        var i = begin.count
        var pastBeginLine = false, atLineStart = false
        while i < pem.count {
            let byte = pem[i]
            if byte == UInt8(ascii: "\r"), i + 1 < pem.count, pem[i + 1] == UInt8(ascii: "\n") {
                i += 2
                pastBeginLine = true
                atLineStart = true
            } else if byte == UInt8(ascii: "\n") {
                i += 1
                pastBeginLine = true
                atLineStart = true
            } else if atLineStart && byte == UInt8(ascii: "-") {
                break
            } else if pastBeginLine {
                body.append(byte)    // anything not base64 (a space, a '-') fails the decode
                atLineStart = false
                i += 1
            } else {
                throw CryptoError("not a PEM certificate: text after the BEGIN line")
            }
        }
        guard pem[i...].starts(with: end) else { throw CryptoError("not a PEM certificate: no END line") }
        let whitespace: [UInt8] = [UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: " "), UInt8(ascii: "\t")]
        guard pem[(i + end.count)...].allSatisfy({ whitespace.contains($0) }) else {
            throw CryptoError("not a PEM certificate: text after the END line")
        }
        guard let der = Base64.decode(String(decoding: body, as: UTF8.self)) else {
            throw CryptoError("not a PEM certificate: invalid base64")
        }
        return der
    }
}
