/// A strict reader of DER (X.690 §10): definite, minimal lengths only, single-byte tags,
/// nothing left over. Enough of ASN.1 to walk an X.509 certificate to its public key
/// without OpenSSL's decoders (CertificatePublicKey). Each element's contents come back
/// as a reader of their own over the same bytes (no copy, no pointer).
struct DERReader {
    enum Tag {
        static let integer: UInt8 = 0x02
        static let bitString: UInt8 = 0x03
        static let null: UInt8 = 0x05
        static let objectIdentifier: UInt8 = 0x06
        static let sequence: UInt8 = 0x30
        /// Context-specific, constructed: [0] EXPLICIT, [3] EXPLICIT in a TBSCertificate.
        static func explicit(_ number: UInt8) -> UInt8 { 0xA0 | number }
        /// Context-specific, primitive: [1] and [2] IMPLICIT in a TBSCertificate.
        static func implicit(_ number: UInt8) -> UInt8 { 0x80 | number }
    }

    /// Lengths need at most this many bytes: 4 GiB is far beyond any certificate, and
    /// refusing longer forms keeps the arithmetic away from overflow.
    private static let maximumLengthBytes = 4

    private let bytes: [UInt8]
    private var position: Int
    private let end: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        position = 0
        end = bytes.count
    }

    private init(_ bytes: [UInt8], from start: Int, to end: Int) {
        self.bytes = bytes
        position = start
        self.end = end
    }

    var isAtEnd: Bool { position == end }

    /// The tag of the next element, nil at the end.
    var nextTag: UInt8? { position < end ? bytes[position] : nil }

    /// The next element, whatever its tag: (tag, a reader of its contents).
    mutating func readElement() throws(CryptoError) -> (tag: UInt8, contents: DERReader) {
        guard position < end else { throw Self.malformed("truncated") }
        let tag = bytes[position]
        guard tag & 0x1F != 0x1F else { throw Self.malformed("multi-byte tag") }
        var at = position + 1
        guard at < end else { throw Self.malformed("truncated") }
        let first = bytes[at]
        at += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7F)
            guard count != 0 else { throw Self.malformed("indefinite length") }
            guard count <= Self.maximumLengthBytes else { throw Self.malformed("length of \(count) bytes") }
            guard end - at >= count else { throw Self.malformed("truncated") }
            guard bytes[at] != 0 else { throw Self.malformed("non-minimal length") }
            for _ in 0..<count {
                length = length << 8 | Int(bytes[at])
                at += 1
            }
            guard length >= 0x80 else { throw Self.malformed("non-minimal length") }
        }
        guard end - at >= length else { throw Self.malformed("truncated") }
        position = at + length
        return (tag, DERReader(bytes, from: at, to: at + length))
    }

    /// The next element's contents, which must carry `tag`.
    mutating func read(_ tag: UInt8, _ what: String) throws(CryptoError) -> DERReader {
        guard nextTag == tag else { throw Self.malformed("expected \(what)") }
        return try readElement().contents
    }

    /// The next element's contents when it carries `tag`; nil (nothing read) otherwise.
    mutating func readOptional(_ tag: UInt8, _ what: String) throws(CryptoError) -> DERReader? {
        guard nextTag == tag else { return nil }
        return try read(tag, what)
    }

    /// All remaining bytes of these contents.
    func remainingBytes() -> [UInt8] { Array(bytes[position..<end]) }

    /// Throws unless every byte of these contents has been read.
    func finish(_ what: String) throws(CryptoError) {
        guard isAtEnd else { throw Self.malformed("trailing bytes after \(what)") }
    }

    /// A non-negative INTEGER's magnitude, big-endian without the sign byte. Negative values
    /// and non-minimal encodings (a redundant leading 0x00 or 0xFF) are refused: DER has
    /// exactly one encoding of each number.
    mutating func readUnsignedInteger(_ what: String) throws(CryptoError) -> [UInt8] {
        let value = try read(Tag.integer, what)
        let digits = value.remainingBytes()
        guard let first = digits.first else { throw Self.malformed("empty \(what)") }
        guard first & 0x80 == 0 else { throw Self.malformed("negative \(what)") }
        if first == 0 && digits.count > 1 {
            guard digits[1] & 0x80 != 0 else { throw Self.malformed("non-minimal \(what)") }
            return Array(digits.dropFirst())
        }
        return digits
    }

    /// A BIT STRING's contents as a reader, when it is whole bytes (no unused bits), as an
    /// encoded key or signature always is.
    mutating func readByteAlignedBitString(_ what: String) throws(CryptoError) -> DERReader {
        var value = try read(Tag.bitString, what)
        guard value.position < value.end, value.bytes[value.position] == 0 else {
            throw Self.malformed("\(what) with unused bits")
        }
        value.position += 1
        return value
    }

    static func malformed(_ what: String) -> CryptoError { CryptoError("malformed certificate: \(what)") }
}
