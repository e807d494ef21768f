internal import COpenSSL

/// SHA-256, HMAC-SHA256, constant-time comparison and random bytes.
///
/// SHA-256 goes through OpenSSL's low-level SHA256_* functions and HMAC is built on them
/// (RFC 2104): OpenSSL 3's one-shot SHA256() and HMAC() fetch from a provider, and the first
/// fetch of a process builds the provider name map, about 5.9 M instructions (callgrind)
/// in a filter that hashes once per start (audit's chain, Stripe's signature, kv names).
public enum Digest {
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        data.withUnsafeBytes { sha256($0) }
    }

    public static func sha256(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var context = SHA256_CTX()
        SHA256_Init(&context)
        SHA256_Update(&context, data.baseAddress, data.count)
        return finish(&context)
    }

    public static func hmacSHA256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let blockSize = 64
        // Keys longer than a block are hashed first; shorter ones are zero-padded (RFC 2104 §2).
        var block = key.count > blockSize ? sha256(key) : key
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        var inner = SHA256_CTX(), outer = SHA256_CTX()
        SHA256_Init(&inner)
        SHA256_Init(&outer)
        var pad = [UInt8](repeating: 0, count: blockSize)
        for i in 0..<blockSize { pad[i] = block[i] ^ 0x36 }
        pad.withUnsafeBytes { _ = SHA256_Update(&inner, $0.baseAddress, blockSize) }
        for i in 0..<blockSize { pad[i] = block[i] ^ 0x5C }
        pad.withUnsafeBytes { _ = SHA256_Update(&outer, $0.baseAddress, blockSize) }
        data.withUnsafeBytes { _ = SHA256_Update(&inner, $0.baseAddress, $0.count) }
        let innerHash = finish(&inner)
        innerHash.withUnsafeBytes { _ = SHA256_Update(&outer, $0.baseAddress, $0.count) }
        // The key stays in memory no longer than needed.
        block.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
        pad.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
        return finish(&outer)
    }

    private static func finish(_ context: inout SHA256_CTX) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { _ = SHA256_Final($0.baseAddress, &context) }
        OPENSSL_cleanse(&context, MemoryLayout<SHA256_CTX>.size)
        return out
    }

    /// Compares without leaking where the first difference is.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 } }
    }

    /// Cryptographically secure random bytes.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed")
        return out
    }
}

public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower- or upper-case hex; nil on odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
