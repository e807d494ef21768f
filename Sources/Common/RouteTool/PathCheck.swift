// Routes match the path exactly as sent, never a decoded copy: if route matched
// `/v1/%73ubscription` as `/v1/subscription` while a later filter or a backend read it
// differently, the two would disagree about which endpoint a request is. Paths that
// different readers could disagree about are refused outright (400 bad_path):
//
//   - anything but RFC 3986 path characters (controls, NUL, space, non-ASCII, `\`, ...)
//   - malformed percent-escapes (`%`, `%4`, `%zz`)
//   - encoded `/` (%2F), `\` (%5C) and NUL (%00): decoders turn them into separators
//     or string ends
//   - dot segments `.` and `..`, also encoded (`%2e%2E`): normalisers remove them
//   - empty segments (`//`) except a trailing slash: normalisers merge them
//
// What is left decodes to exactly one set of segments, so parameter values can be
// percent-decoded safely.
import Records

enum PathCheck {
    /// RFC 3986 `pchar` (minus `%`, handled apart): unreserved, sub-delims, `:` and `@`.
    /// A switch, not a lookup table built at start: building it cost 40 k instructions
    /// in every route process.
    static func isPathChar(_ b: UInt8) -> Bool {
        if RouteTable.isAlnum(b) { return true }
        switch b {
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"),
             UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="),
             UInt8(ascii: ":"), UInt8(ascii: "@"):
            return true
        default:
            return false
        }
    }

    static func hexValue(_ b: UInt8) -> UInt8? { ASCII.hexValue(b) }

    /// Why `path` is refused, or nil when it is a clean origin-form path.
    static func problem(_ p: UnsafeBufferPointer<UInt8>) -> String? {
        guard p.count > 0, p[0] == UInt8(ascii: "/") else { return "the path must start with '/'" }
        var segmentStart = 1
        var i = 1
        while i < p.count {
            let b = p[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < p.count, let hi = hexValue(p[i + 1]), let lo = hexValue(p[i + 2]) else {
                    return "malformed percent-encoding in the path"
                }
                switch hi << 4 | lo {
                case 0x2F: return "encoded slash (%2F) in the path"
                case 0x5C: return "encoded backslash (%5C) in the path"
                case 0x00: return "encoded NUL (%00) in the path"
                default: break
                }
                i += 3
                continue
            }
            if b == UInt8(ascii: "/") {
                if i == segmentStart { return "empty segment ('//') in the path" }
                if isDotSegment(p, segmentStart, i) { return "dot segment ('.' or '..') in the path" }
                segmentStart = i + 1
            } else if !isPathChar(b) {
                switch b {
                case 0: return "NUL in the path"
                case UInt8(ascii: "\\"): return "backslash in the path"
                default: return "invalid character in the path (it must be percent-encoded)"
                }
            }
            i += 1
        }
        if isDotSegment(p, segmentStart, p.count) { return "dot segment ('.' or '..') in the path" }
        return nil
    }

    /// `.` or `..`, each dot possibly written `%2e` / `%2E`.
    private static func isDotSegment(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        var dots = 0
        var i = start
        while i < end {
            if p[i] == 0x2E {
                i += 1
            } else if p[i] == UInt8(ascii: "%") && i + 2 < end
                        && p[i + 1] == UInt8(ascii: "2") && p[i + 2] | 0x20 == UInt8(ascii: "e") {
                i += 3
            } else {
                return false
            }
            dots += 1
            if dots > 2 { return false }
        }
        return dots > 0
    }

    /// Percent-decodes one checked segment (or prefix tail); nil when the result is not UTF-8.
    static func decode(_ p: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String? {
        let slice = UnsafeBufferPointer(rebasing: p[range])
        guard slice.contains(UInt8(ascii: "%")) else {
            return String(decoding: slice, as: UTF8.self)   // checked: ASCII path characters only
        }
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var i = 0
        while i < slice.count {
            if slice[i] == UInt8(ascii: "%"), i + 2 < slice.count,
               let hi = hexValue(slice[i + 1]), let lo = hexValue(slice[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(slice[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
