#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Moved here from http-decode's TrustedProxies.swift: verify-jwt's metrics allow-list
// matches a record's `remote` against networks the same way. In Records, not Net: the
// addresses are the record's own, and http-decode must not link OpenSSL for them.

/// An IP address as 16 bytes. IPv4 is kept in its IPv4-mapped IPv6 form (::ffff:a.b.c.d)
/// so that one prefix comparison serves both families and a dual-stack socket's
/// "::ffff:127.0.0.1" matches a "127.0.0.1/32" rule.
public struct IPAddress: Equatable, Sendable {
    public var bytes: [UInt8]

    public var isIPv4: Bool { bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF }

    /// A literal address only: no host names, no zone ids ("fe80::1%eth0"), nothing around it.
    public init?<S: StringProtocol>(_ text: S) {
        // A NUL would end the C string early: "1.2.3.4\0junk" must not read as 1.2.3.4.
        guard !text.isEmpty, text.utf8.count <= 45, !text.utf8.contains(0) else { return nil }
        let string = String(text)
        if !string.contains(":") {
            var v4 = in_addr()
            guard inet_pton(AF_INET, string, &v4) == 1 else { return nil }
            let raw = withUnsafeBytes(of: &v4) { Array($0) }   // network order already
            bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + raw
        } else {
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, string, &v6) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        }
    }

    /// An address as a proxy may write it in X-Forwarded-For: bare, with a port
    /// ("192.0.2.1:443"), or bracketed IPv6 with or without a port ("[2001:db8::1]:443").
    public static func forwarded<S: StringProtocol>(_ text: S) -> IPAddress? {
        let t = Substring(text)
        if t.hasPrefix("[") {
            guard let close = t.firstIndex(of: "]") else { return nil }
            let after = t[t.index(after: close)...]
            guard after.isEmpty || isPort(after) else { return nil }
            return IPAddress(t[t.index(after: t.startIndex)..<close])
        }
        if let colon = t.firstIndex(of: ":"), t.lastIndex(of: ":") == colon, t[..<colon].contains(".") {
            guard isPort(t[colon...]) else { return nil }
            return IPAddress(t[..<colon])
        }
        return IPAddress(t)
    }

    private static func isPort(_ s: Substring) -> Bool {
        let digits = s.dropFirst()
        return s.first == ":" && !digits.isEmpty && digits.count <= 5 && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Canonical text: "1.2.3.4" for IPv4 (also when it came as ::ffff:1.2.3.4), RFC 5952
    /// form for IPv6, so `remote` is always a clean address whatever the header held.
    public var text: String {
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        if isIPv4 {
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4) { $0.copyBytes(from: bytes[12..<16]) }
            _ = inet_ntop(AF_INET, &v4, &out, socklen_t(out.count))
        } else {
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
            _ = inet_ntop(AF_INET6, &v6, &out, socklen_t(out.count))
        }
        return out.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// A network: "10.0.0.0/8", "2001:db8::/32", or one address ("127.0.0.2", "::1").
public struct CIDR: Equatable, Sendable {
    public let network: IPAddress
    /// Over the 128-bit form: an IPv4 /8 is 104 here.
    public let prefix: Int

    /// Throws a one-line reason: a typo in a trust rule must stop the service, not
    /// silently trust nobody (or everybody).
    public init(parsing spec: String) throws(CIDRError) {
        let parts = spec.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { throw CIDRError("'\(spec)' is not an IP address or CIDR") }
        let width = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var bits = width
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let n = Int(parts[1]), n <= width else {
                throw CIDRError("'\(spec)': the prefix length must be 0 to \(width)")
            }
            bits = n
        }
        let prefix = bits + (128 - width)
        // "10.1.2.3/8" is most likely a typo for an address or for 10.0.0.0/8: refuse it
        // rather than guess which.
        if address != CIDR.mask(address, prefix) {
            throw CIDRError("'\(spec)' has bits set after the prefix (did you mean \(CIDR.mask(address, prefix).text)/\(bits)?)")
        }
        self.network = address
        self.prefix = prefix
    }

    public func contains(_ address: IPAddress) -> Bool { CIDR.mask(address, prefix) == network }

    public static func mask(_ a: IPAddress, _ prefix: Int) -> IPAddress {
        var out = a
        for i in 0..<16 {
            let keep = min(max(prefix - i * 8, 0), 8)
            out.bytes[i] &= keep == 8 ? 0xFF : ~(0xFF >> keep)
        }
        return out
    }
}

public struct CIDRError: Error, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

