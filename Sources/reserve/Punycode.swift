// Punycode (RFC 3492), the encoding behind internationalised labels ("xn--..."). A
// reservation service must not hand out "xn--" names that decode to nothing, or to a
// different string than they spell: registries and browsers would refuse or, worse,
// display them as another name. So a label with the ACE prefix is accepted only when its
// tail decodes, re-encodes to exactly the same text, and holds at least one non-ASCII
// code point (an all-ASCII label never needs the prefix).

enum Punycode {
    private static let base = 36
    private static let tmin = 1
    private static let tmax = 26
    private static let skew = 38
    private static let damp = 700
    private static let initialBias = 72
    private static let initialN = 128
    /// RFC 3492 §6.4 works in unsigned 32-bit arithmetic; staying below this bound is
    /// what keeps a hostile label from overflowing (and wrapping to a valid-looking result).
    private static let maxInt = Int(UInt32.max)

    /// Decodes the part after "xn--"; nil when it is not valid Punycode.
    static func decode(_ text: String) -> [Unicode.Scalar]? {
        let input = Array(text.utf8)
        guard input.allSatisfy({ $0 < 0x80 }) else { return nil }
        var output: [UInt32] = []
        var start = 0
        if let dash = input.lastIndex(of: UInt8(ascii: "-")) {
            output = input[..<dash].map(UInt32.init)
            start = dash + 1
        }
        var n = initialN, i = 0, bias = initialBias
        var position = start
        while position < input.count {
            let oldI = i
            var w = 1
            var k = base
            while true {
                guard position < input.count, let digit = digitValue(input[position]) else { return nil }
                position += 1
                guard digit <= (maxInt - i) / w else { return nil }
                i += digit * w
                let t = threshold(k, bias)
                if digit < t { break }
                guard w <= maxInt / (base - t) else { return nil }
                w *= base - t
                k += base
            }
            let count = output.count + 1
            bias = adapt(i - oldI, count, first: oldI == 0)
            guard i / count <= maxInt - n else { return nil }
            n += i / count
            i %= count
            // Basic code points are only ever copied, never encoded in the deltas; and
            // surrogates and values past U+10FFFF are not characters at all.
            guard n >= 0x80, n <= 0x10FFFF, !(0xD800...0xDFFF).contains(n) else { return nil }
            output.insert(UInt32(n), at: i)
            i += 1
        }
        return output.map { Unicode.Scalar($0)! }
    }

    /// Encodes code points to Punycode, lower-case, without the "xn--" prefix.
    static func encode(_ scalars: [Unicode.Scalar]) -> String? {
        let input = scalars.map { Int($0.value) }
        var output: [UInt8] = input.filter { $0 < 0x80 }.map { UInt8($0) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append(UInt8(ascii: "-")) }
        var n = initialN, delta = 0, bias = initialBias
        while handled < input.count {
            let m = input.filter { $0 >= n }.min()!
            guard m - n <= (maxInt - delta) / (handled + 1) else { return nil }
            delta += (m - n) * (handled + 1)
            n = m
            for c in input {
                if c < n {
                    delta += 1
                    guard delta <= maxInt else { return nil }
                }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = threshold(k, bias)
                        if q < t { break }
                        output.append(digitCharacter(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digitCharacter(q))
                    bias = adapt(delta, handled + 1, first: handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Whether `label` (already lower-cased) is "xn--" followed by valid, canonical
    /// Punycode for a string with at least one non-ASCII code point.
    static func isValidACELabel(_ label: String) -> Bool {
        guard label.hasPrefix("xn--") else { return false }
        let tail = String(label.dropFirst(4))
        guard !tail.isEmpty, let decoded = decode(tail), !decoded.isEmpty,
              decoded.contains(where: { $0.value >= 0x80 }),
              // Controls, spaces and dots inside a label would make it mean something else.
              !decoded.contains(where: { $0.value < 0x20 || $0.value == 0x20 || $0 == "." || (0x7F...0x9F).contains($0.value) }),
              !decoded.contains(where: { $0.properties.isUppercase }),
              encode(decoded) == tail else { return false }
        return true
    }

    private static func threshold(_ k: Int, _ bias: Int) -> Int {
        k <= bias ? tmin : (k >= bias + tmax ? tmax : k - bias)
    }

    private static func adapt(_ delta: Int, _ count: Int, first: Bool) -> Int {
        var delta = first ? delta / damp : delta / 2
        delta += delta / count
        var k = 0
        while delta > ((base - tmin) * tmax) / 2 {
            delta /= base - tmin
            k += base
        }
        return k + (base - tmin + 1) * delta / (delta + skew)
    }

    private static func digitValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(c - UInt8(ascii: "0")) + 26
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return Int(c - UInt8(ascii: "a"))
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return Int(c - UInt8(ascii: "A"))
        default: return nil
        }
    }

    private static func digitCharacter(_ d: Int) -> UInt8 {
        d < 26 ? UInt8(ascii: "a") + UInt8(d) : UInt8(ascii: "0") + UInt8(d - 26)
    }
}
