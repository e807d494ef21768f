#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// HTTP/1.1 field syntax (RFC 9110 §5, RFC 9112 §5-7), once for both directions: http-decode
// reads requests with it and forward reads upstream responses with it, so that what one
// refuses as ambiguous the other refuses too.

public enum HTTPSyntax {
    /// Why a field or a Content-Length was refused: one line, never the value itself.
    public struct Problem: Error, Equatable, Sendable {
        public let message: String
        public init(_ message: String) { self.message = message }
        /// More than 15 digits: larger than any body limit, and than an Int safely holds.
        public static let tooLong = Problem("Content-Length too large")
    }

    public static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    public static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c + 0x20 : c }
    /// HTAB, SP, VCHAR, obs-text: what may appear in a field value or quoted string.
    public static func isFieldByte(_ c: UInt8) -> Bool { c == 0x09 || (c >= 0x20 && c != 0x7F) }

    /// Whether any of the 8 bytes may be below 0x20, 0x7F or 0x80 and above. Never misses
    /// one; may flag a plain byte after a flagged one (borrows), which only costs a slow check.
    @inline(__always) static func mayNeedCheck(_ x: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let del = x ^ (ones &* 0x7F)
        let found = (x &- (ones &* 0x20)) | ((del &- ones) & ~del) | x
        return found & high != 0
    }

    public enum Line: Equatable, Sendable {
        case line(Range<Int>)     // content without CRLF
        case incomplete(Int)      // bytes of the line so far
        case bareLF
    }

    /// The next CRLF-terminated line of `p` at `pos` (moved past it); `scanned` keeps how
    /// far a previous call searched without finding the LF. Bare LF is refused: a parser
    /// that accepts it and a proxy that forwards it disagree on where headers end.
    @inlinable
    public static func nextLine(_ p: UnsafeBufferPointer<UInt8>, pos: inout Int, scanned: inout Int) -> Line {
        let available = p.count - pos
        guard available > scanned else { return .incomplete(available) }
        let from = pos + scanned
        guard let hit = memchr(p.baseAddress! + from, 0x0A, p.count - from) else {
            scanned = available
            return .incomplete(available)
        }
        let nl = p.baseAddress!.distance(to: hit.assumingMemoryBound(to: UInt8.self))
        scanned = 0
        guard nl > pos, p[nl - 1] == 0x0D else { return .bareLF }
        let range = pos..<(nl - 1)
        pos = nl + 1
        return .line(range)
    }

    public enum FieldLine: Equatable, Sendable {
        case field(Range<Int>)
        case end                  // the empty line that ends the section
        case needMore
        case tooLarge             // over the section's byte or field limit
        case bareLF
    }

    /// The next line of a field section (a head's or trailers'), counted in `bytes` and
    /// `count` against the limits, which a message's head and trailers share.
    @inlinable
    public static func nextField(_ p: UnsafeBufferPointer<UInt8>, pos: inout Int, scanned: inout Int,
                                 bytes: inout Int, count: inout Int, maxBytes: Int, maxCount: Int) -> FieldLine {
        switch nextLine(p, pos: &pos, scanned: &scanned) {
        case .bareLF: return .bareLF
        case .incomplete(let n): return bytes + n > maxBytes ? .tooLarge : .needMore
        case .line(let r):
            bytes += r.count + 2
            if bytes > maxBytes { return .tooLarge }
            if r.isEmpty { return .end }
            count += 1
            return count > maxCount ? .tooLarge : .field(r)
        }
    }

    /// field-name ":" OWS field-value OWS, the name lower-cased. No whitespace before the
    /// colon, no obs-fold, no CTLs (NUL, bare CR) in values; values must be valid UTF-8
    /// because records are JSON strings and a lossy conversion would show filters a value
    /// the peer did not send.
    public static func parseField(_ line: UnsafeBufferPointer<UInt8>) -> Result<Header, Problem> {
        if line[0] == 0x20 || line[0] == 0x09 { return .failure(Problem("obs-fold (line starting with whitespace) in header section")) }
        var colon = 0
        var upper = false
        while colon < line.count && line[colon] != UInt8(ascii: ":") {
            let c = line[colon]
            if c == 0x20 || c == 0x09 { return .failure(Problem("whitespace in or after a header name")) }
            guard ASCII.isToken(c) else { return .failure(Problem("invalid character in header name")) }
            if c >= 0x41 && c <= 0x5A { upper = true }
            colon += 1
        }
        guard colon < line.count else { return .failure(Problem("header line without a colon")) }
        guard colon > 0 else { return .failure(Problem("empty header name")) }
        // Lower-cased on the stack: no heap buffer per field (a name of 15 bytes or fewer
        // becomes a String without one either).
        let name = upper ? lowercased(UnsafeBufferPointer(rebasing: line[..<colon]))
                         : String(decoding: UnsafeBufferPointer(rebasing: line[..<colon]), as: UTF8.self)
        var start = colon + 1, end = line.count
        var highBit = false
        var i = start
        while i < end {
            // Eight bytes at a time while none is a control, DEL or non-ASCII byte (a bearer
            // token is hundreds of plain bytes); a flagged word is checked byte by byte.
            if i &+ 8 <= end, !mayNeedCheck(UnsafeRawPointer(line.baseAddress! + i).loadUnaligned(as: UInt64.self)) {
                i &+= 8
                continue
            }
            let stop = min(i &+ 8, end)
            while i < stop {
                let c = line[i]
                if c < 0x20 && c != 0x09 || c == 0x7F {
                    return .failure(Problem(c == 0x0D ? "bare CR in header value" : "control character in header value"))
                }
                if c >= 0x80 { highBit = true }
                i &+= 1
            }
        }
        while start < end && (line[start] == 0x20 || line[start] == 0x09) { start += 1 }
        while end > start && (line[end - 1] == 0x20 || line[end - 1] == 0x09) { end -= 1 }
        let bytes = UnsafeBufferPointer(rebasing: line[start..<end])
        let value: String
        if highBit {
            guard let v = String(validating: bytes, as: UTF8.self) else {
                return .failure(Problem("header value is not valid UTF-8"))
            }
            value = v
        } else {
            value = String(decoding: bytes, as: UTF8.self)
        }
        return .success(Header(name, value))
    }

    /// Comma-separated list elements, trimmed and lower-cased (ASCII letters only: list
    /// elements are tokens, compared case-insensitively in ASCII). On bytes: every response
    /// and most requests carry a Connection header, and Character-wise splitting and
    /// Unicode lower-casing cost thousands of instructions for one word.
    public static func listElements(_ values: [String], keepEmpty: Bool = false) -> [String] {
        var out: [String] = []
        for var v in values {
            v.withUTF8 { p in
                _ = forEachElement(p) { element in
                    if !element.isEmpty || keepEmpty { out.append(lowercased(element)) }
                    return true
                }
            }
        }
        return out
    }

    /// Calls `body` with each comma-separated element of `p`, OWS trimmed, empty ones
    /// included, until it returns false; returns whether it went to the end.
    static func forEachElement(_ p: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        var i = 0
        while true {
            var start = i, end = i
            while end < p.count && p[end] != UInt8(ascii: ",") { end += 1 }
            let next = end + 1
            while start < end && (p[start] == 0x20 || p[start] == 0x09) { start += 1 }
            while end > start && (p[end - 1] == 0x20 || p[end - 1] == 0x09) { end -= 1 }
            if !body(UnsafeBufferPointer(rebasing: p[start..<end])) { return false }
            if next > p.count { return true }
            i = next
        }
    }

    static func lowercased(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        guard bytes.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return String(decoding: bytes, as: UTF8.self) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count) { lowered in
            for (i, c) in bytes.enumerated() { lowered[i] = lower(c) }
            return String(decoding: UnsafeBufferPointer(lowered), as: UTF8.self)
        }
    }

    /// 1*DIGIT per element; repeated values (in one field or several) must all agree.
    public static func contentLength(_ values: [String]) -> Result<Int, Problem> {
        var found: Int?
        for var v in values {
            var failure: Problem?
            v.withUTF8 { p in
                _ = forEachElement(p) { element in
                    guard !element.isEmpty, element.allSatisfy(isDigit) else { failure = Problem("malformed Content-Length"); return false }
                    // Leading zeros are legal ("003" is 3), so compare values, not text.
                    let digits = element.drop(while: { $0 == UInt8(ascii: "0") })
                    if digits.count > 15 { failure = .tooLong; return false }
                    let n = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
                    if let f = found, f != n { failure = Problem("conflicting Content-Length values"); return false }
                    found = n
                    return true
                }
            }
            if let failure { return .failure(failure) }
        }
        return .success(found ?? 0)
    }

    /// *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
    public static func validChunkExtensions(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        func skipBWS() { while i < s.count && (s[i] == 0x20 || s[i] == 0x09) { i += 1 } }
        func token() -> Bool {
            let start = i
            while i < s.count && ASCII.isToken(s[i]) { i += 1 }
            return i > start
        }
        while true {
            skipBWS()
            if i == s.count { return true }
            guard s[i] == UInt8(ascii: ";") else { return false }
            i += 1
            skipBWS()
            guard token() else { return false }
            skipBWS()
            if i < s.count && s[i] == UInt8(ascii: "=") {
                i += 1
                skipBWS()
                if i < s.count && s[i] == UInt8(ascii: "\"") {
                    i += 1
                    var closed = false
                    while i < s.count {
                        let c = s[i]
                        if c == UInt8(ascii: "\"") { closed = true; i += 1; break }
                        if c == UInt8(ascii: "\\") {
                            i += 1
                            guard i < s.count, isFieldByte(s[i]) else { return false }
                        } else if !isFieldByte(c) {
                            return false
                        }
                        i += 1
                    }
                    if !closed { return false }
                } else if !token() {
                    return false
                }
            }
        }
    }
}
