// Base64 (RFC 4648 §4) for non-UTF-8 bodies, and base64url (§5) for JWTs.
// Decoding is strict: JWS requires canonical, unpadded base64url, and a lenient
// decoder lets two different strings name the same signature.

public enum Base64 {
    private static let standardAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static func table(for alphabet: [UInt8]) -> [UInt8] {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }
    private static let standardTable = table(for: standardAlphabet)
    private static let urlTable = table(for: urlAlphabet)

    /// Standard base64 with `=` padding.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        encode(Array(bytes), alphabet: standardAlphabet, pad: true)
    }

    /// base64url without padding, as JWS uses it.
    public static func urlEncode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        encode(Array(bytes), alphabet: urlAlphabet, pad: false)
    }

    /// Standard base64; padding required, no whitespace.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var end = chars.count
        var padding = 0
        while end > 0 && chars[end - 1] == UInt8(ascii: "=") && padding < 2 { end -= 1; padding += 1 }
        if padding > 0 && (chars.count - end) != padding { return nil }
        return decode(chars[0..<end], table: standardTable, padded: true)
    }

    /// base64url with no padding. Non-canonical encodings (stray low bits in the
    /// last character) are refused.
    public static func urlDecode(_ text: Substring) -> [UInt8]? {
        var text = text
        return text.withUTF8 { urlDecode($0) }
    }

    public static func urlDecode(_ text: String) -> [UInt8]? { urlDecode(text[...]) }

    /// base64url straight from bytes (a token's segment), without String copies: a token
    /// is decoded on every request, and those copies cost a tenth of an RS256 verification.
    public static func urlDecode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = input.count
        let tail = count % 4
        if tail == 1 { return nil }
        let outCount = count / 4 * 3 + (tail == 0 ? 0 : tail - 1)
        return urlTable.withUnsafeBufferPointer { t -> [UInt8]? in
            var bad: UInt8 = 0
            let out = [UInt8](unsafeUninitializedCapacity: outCount) { buffer, initialized in
                var i = 0, o = 0
                while i + 4 <= count {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])], d = t[Int(input[i + 3])]
                    bad |= (a | b | c | d) & 0x80
                    let n = UInt32(a & 63) << 18 | UInt32(b & 63) << 12 | UInt32(c & 63) << 6 | UInt32(d & 63)
                    buffer[o] = UInt8(truncatingIfNeeded: n >> 16)
                    buffer[o + 1] = UInt8(truncatingIfNeeded: n >> 8)
                    buffer[o + 2] = UInt8(truncatingIfNeeded: n)
                    i += 4; o += 3
                }
                if tail == 2 {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])]
                    bad |= (a | b) & 0x80
                    if b & 0x0F != 0 { bad |= 0x80 }      // stray low bits: not canonical
                    buffer[o] = (a & 63) << 2 | (b & 63) >> 4
                } else if tail == 3 {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])]
                    bad |= (a | b | c) & 0x80
                    if c & 0x03 != 0 { bad |= 0x80 }
                    buffer[o] = (a & 63) << 2 | (b & 63) >> 4
                    buffer[o + 1] = (b & 0x0F) << 4 | (c & 63) >> 2
                }
                initialized = outCount
            }
            return bad == 0 ? out : nil
        }
    }

    private static func encode(_ bytes: [UInt8], alphabet: [UInt8], pad: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            if pad { out.append(contentsOf: "==".utf8) }
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            if pad { out.append(UInt8(ascii: "=")) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func decode(_ chars: ArraySlice<UInt8>, table: [UInt8], padded: Bool) -> [UInt8]? {
        if chars.count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in chars {
            let v = table[Int(c)]
            if v == 0xFF { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        // Leftover bits must be zero, or two encodings would decode alike.
        if acc != 0 { return nil }
        return out
    }
}
