// Input sanitising for reservations. Both rules are deliberately narrower than what the
// standards allow: a name we accept must work as a hostname everywhere, and an address
// we accept must be one a mail command takes without quoting.

/// A refused field: the 422 names it.
struct FieldError: Error, Equatable {
    let field: String
    let message: String
}

enum SubdomainRule {
    static let maxLength = 63

    /// The subdomain, lower-cased, when it is one valid DNS label (RFC 1035 §2.3.1 as
    /// relaxed by RFC 1123: letters, digits and hyphens, 1–63 of them, no hyphen at
    /// either end). Labels with "--" in the third and fourth places are reserved for IDNA
    /// (RFC 5891 §4.2.3.1): only "xn--" is defined, and only valid Punycode passes.
    static func check(_ raw: String) throws(FieldError) -> String {
        let name = lowercasedASCII(raw)
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { throw FieldError(field: "subdomain", message: "the subdomain is empty") }
        guard bytes.count <= maxLength else {
            throw FieldError(field: "subdomain", message: "the subdomain is longer than \(maxLength) characters")
        }
        guard bytes.allSatisfy(isLDH) else {
            throw FieldError(field: "subdomain", message: "the subdomain may only hold letters a-z, digits 0-9 and hyphens")
        }
        guard bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else {
            throw FieldError(field: "subdomain", message: "the subdomain may not start or end with a hyphen")
        }
        if bytes.count >= 4 && bytes[2] == UInt8(ascii: "-") && bytes[3] == UInt8(ascii: "-") {
            guard name.hasPrefix("xn--") else {
                throw FieldError(field: "subdomain", message: "hyphens in the third and fourth places are reserved for internationalised names (xn--)")
            }
            guard Punycode.isValidACELabel(name), let scalars = Punycode.decode(String(name.dropFirst(4))) else {
                throw FieldError(field: "subdomain", message: "the subdomain starts with xn-- but is not valid Punycode")
            }
            if let scripts = Script.mixed(scalars) {
                let names = scripts.map(\.rawValue).joined(separator: " and ")
                throw FieldError(field: "subdomain", message: "the subdomain mixes \(names) letters, as look-alikes of other names do")
            }
        }
        return name
    }

    static func isLDH(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
            || b == UInt8(ascii: "-")
    }
}

enum EmailRule {
    /// RFC 5321 §4.5.3.1: 64 for the local part, 254 for a whole forward path's address.
    static let maxLocal = 64
    static let maxTotal = 254

    /// The address, lower-cased, when it is a bare `local@domain`: a dot-atom local part
    /// (RFC 5322 §3.2.3; no quoted strings, no comments), one `@`, and a domain of two or
    /// more DNS labels whose last is not all digits. No display names ("Ann <a@b.c>"), no
    /// spaces, no IP literals, no non-ASCII: an address that needs any of those is refused
    /// rather than passed to a mail command.
    static func check(_ raw: String) throws(FieldError) -> String {
        func fail(_ m: String) -> FieldError { FieldError(field: "email", message: m) }
        let address = lowercasedASCII(raw)
        let bytes = Array(address.utf8)
        guard !bytes.isEmpty else { throw fail("the email address is empty") }
        guard bytes.count <= maxTotal else { throw fail("the email address is longer than \(maxTotal) characters") }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw fail("the email address may not hold spaces, control or non-ASCII characters")
        }
        guard !bytes.contains(UInt8(ascii: "<")) && !bytes.contains(UInt8(ascii: ">")) else {
            throw fail("give the bare address, without a display name or angle brackets")
        }
        let ats = bytes.indices.filter { bytes[$0] == UInt8(ascii: "@") }
        guard ats.count == 1, let at = ats.first else { throw fail("the email address must hold exactly one @") }
        let local = bytes[..<at], domain = bytes[(at + 1)...]
        guard !local.isEmpty, local.count <= maxLocal else {
            throw fail("the part before @ must be 1 to \(maxLocal) characters")
        }
        guard local.allSatisfy({ isAtext($0) || $0 == UInt8(ascii: ".") }) else {
            throw fail("the part before @ holds a character an address may not")
        }
        guard local.first != UInt8(ascii: "."), local.last != UInt8(ascii: "."),
              !zip(local, local.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }) else {
            throw fail("dots in the part before @ may not lead, trail or repeat")
        }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw fail("the domain must hold a dot") }
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.allSatisfy(SubdomainRule.isLDH),
                  label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else {
                throw fail("the domain is not a valid host name")
            }
            let text = String(decoding: label, as: UTF8.self)
            if text.hasPrefix("xn--") && !Punycode.isValidACELabel(text) {
                throw fail("the domain is not a valid host name")
            }
        }
        guard !labels.last!.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw fail("the domain is not a valid host name")
        }
        return address
    }

    /// RFC 5322 §3.2.3 atext.
    static func isAtext(_ b: UInt8) -> Bool {
        if SubdomainRule.isLDH(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) { return true }
        return Array("!#$%&'*+/=?^_`{|}~".utf8).contains(b)
    }
}

/// Leading and trailing white space removed, as the page's script does (JavaScript's
/// trim(): Unicode White_Space and U+FEFF), so the API takes what the page would send.
func trimmedLikeThePage(_ s: String) -> String {
    func blank(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace || c.value == 0xFEFF }
    let scalars = s.unicodeScalars
    guard let first = scalars.firstIndex(where: { !blank($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !blank($0) })!
    return String(scalars[first...last])
}

/// ASCII lower-casing only: Unicode case mapping could turn a refused character into an
/// accepted one (U+212A KELVIN SIGN lower-cases to "k").
func lowercasedASCII(_ s: String) -> String {
    var bytes = Array(s.utf8)
    for i in bytes.indices where (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(bytes[i]) { bytes[i] |= 0x20 }
    return String(decoding: bytes, as: UTF8.self)
}
