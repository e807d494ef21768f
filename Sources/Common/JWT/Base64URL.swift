/// Strict base64url decoding straight from a token's bytes.
///
/// Same rules as `Base64.urlDecode` (no padding, no other alphabet, no stray low bits in
/// the last character; a differential test keeps the two in step), but without going
/// through String and Substring copies: a token is decoded on every request, and those
/// copies cost a tenth of an RS256 verification.
enum Base64URL {
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    static func decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = input.count
        let tail = count % 4
        if tail == 1 { return nil }
        let outCount = count / 4 * 3 + (tail == 0 ? 0 : tail - 1)
        return table.withUnsafeBufferPointer { t -> [UInt8]? in
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
}
