#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto

/// A JWS in compact serialization (RFC 7515 §7.1), parsed but not yet verified.
///
/// Parsing is strict because every leniency is a second way to write the same token:
/// exactly three non-empty segments, canonical unpadded base64url, header and payload
/// JSON objects (duplicate keys refused by the reader), a string `kid` when present,
/// and no `crit` (edgepipe understands no extensions, so any listed one is unknown).
/// `jku`, `x5u`, `jwk` and `x5c` are never read: keys come only from configuration.
public struct CompactJWS: Sendable {
    public let header: JSONObject
    public let payload: JSONObject
    /// The `alg` header as sent; checking it against an allow-list is the verifier's job.
    public let algorithm: String
    public let keyID: String?
    /// ASCII(BASE64URL(header) '.' BASE64URL(payload)): the bytes the signature covers.
    public let signingInput: [UInt8]
    public let signature: [UInt8]

    /// Tokens are headers; 8 KiB is far above any real ID token (Firebase's are ~1 KiB).
    public static let defaultMaxBytes = 8192
    static let maxDepth = 16

    public static func parse<S: StringProtocol>(_ token: S, maxBytes: Int = defaultMaxBytes) throws(JWTError) -> CompactJWS {
        let contiguous: Result<CompactJWS, JWTError>? = token.utf8.withContiguousStorageIfAvailable { bytes in
            Result { () throws(JWTError) in try parse(bytes, maxBytes: maxBytes) }
        }
        if let contiguous { return try contiguous.get() }
        let copy = Array(token.utf8)
        return try copy.withUnsafeBufferPointer { bytes throws(JWTError) in try parse(bytes, maxBytes: maxBytes) }
    }

    public static func parse(_ token: UnsafeBufferPointer<UInt8>, maxBytes: Int = defaultMaxBytes) throws(JWTError) -> CompactJWS {
        guard token.count <= maxBytes else { throw .tooLarge }
        // memchr: a byte loop over a ~1 KiB token cost ~3,000 instructions per token.
        func dot(after start: Int) -> Int {
            guard start < token.count, let base = token.baseAddress,
                  let found = memchr(base + start, Int32(UInt8(ascii: ".")), token.count - start) else { return -1 }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
        let first = dot(after: 0)
        let second = first < 0 ? -1 : dot(after: first + 1)
        guard second > 0, dot(after: second + 1) < 0 else { throw .malformed("not three segments") }
        guard first > 0, second > first + 1, second + 1 < token.count else { throw .malformed("empty segment") }

        let headerBytes = try decode(token, 0..<first, "header")
        let payloadBytes = try decode(token, (first + 1)..<second, "payload")
        let signature = try decode(token, (second + 1)..<token.count, "signature")

        guard case .object(let header)? = try? JSONReader.parse(headerBytes, maxDepth: maxDepth) else {
            throw .malformed("header is not a JSON object")
        }
        guard case .object(let payload)? = try? JSONReader.parse(payloadBytes, maxDepth: maxDepth) else {
            throw .malformed("payload is not a JSON object")
        }
        guard case .string(let algorithm)? = header["alg"] else { throw .malformed("alg is missing or not a string") }
        var keyID: String?
        if let kid = header["kid"] {
            guard case .string(let k) = kid else { throw .malformed("kid is not a string") }
            keyID = k
        }
        if header["crit"] != nil { throw .unsupportedCritical }
        return CompactJWS(header: header, payload: payload, algorithm: algorithm, keyID: keyID,
                          signingInput: Array(token[0..<second]), signature: signature)
    }

    private static func decode(_ token: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ what: String) throws(JWTError) -> [UInt8] {
        guard let bytes = Base64.urlDecode(UnsafeBufferPointer(rebasing: token[range])) else {
            throw .malformed("\(what) is not canonical base64url")
        }
        return bytes
    }

    /// Signs `payload` as a compact JWS. `header` members other than `alg` are kept in order
    /// after it (typically `kid` and `typ`).
    public static func sign(header: JSONObject = JSONObject(), payload: JSONObject,
                            key: PrivateKey, algorithm: SignatureAlgorithm) throws(CryptoError) -> String {
        var fullHeader = JSONObject([("alg", .string(algorithm.rawValue))])
        for m in header.members where m.key != "alg" { fullHeader.members.append(m) }
        let input = Base64.urlEncode(fullHeader.serialized()) + "." + Base64.urlEncode(payload.serialized())
        let signature = try key.sign(Array(input.utf8), algorithm: algorithm)
        return input + "." + Base64.urlEncode(signature)
    }
}
