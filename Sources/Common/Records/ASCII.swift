/// The byte classes that HTTP, route tables and headers share, written once.
public enum ASCII {
    /// RFC 9110 `tchar`: what a method, a header name or a token parameter is made of.
    /// Two 64-bit masks instead of a table, so the check inlines into a parser's loop
    /// without a global's lazy initialisation.
    @inlinable
    public static func isToken(_ c: UInt8) -> Bool {
        if c < 64 { return (0x03ff_6cfa_0000_0000 as UInt64) >> UInt64(c) & 1 == 1 }
        if c < 128 { return (0x57ff_ffff_c7ff_fffe as UInt64) >> UInt64(c - 64) & 1 == 1 }
        return false
    }

    /// The value of a hex digit, either case.
    @inlinable
    public static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs: HTTP's optional whitespace (OWS),
    /// and what lists in settings allow around their commas.
    @inlinable
    public func trimmingSpacesAndTabs() -> SubSequence {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
