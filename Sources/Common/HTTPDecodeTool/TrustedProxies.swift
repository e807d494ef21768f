#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// Which peers may say who the client is. A request's X-Forwarded-For or X-Real-IP is
/// believed only when the connection itself comes from a trusted proxy: any client can
/// send those headers, so from anyone else they stay plain headers.
public struct TrustedProxies: Sendable {
    let networks: [CIDR]

    public static let none = TrustedProxies(networks: [])
    public var isEmpty: Bool { networks.isEmpty }

    init(networks: [CIDR]) { self.networks = networks }

    /// From `--trusted-proxy` values (each may also be a comma-separated list, the form of
    /// EDGEPIPE_TRUSTED_PROXIES). Throws a one-line reason for the first bad entry.
    public init(parsing specs: [String]) throws(CIDRError) {
        var networks: [CIDR] = []
        for spec in specs {
            for item in spec.split(separator: ",") {
                let trimmed = item.trimmingSpacesAndTabs()
                if trimmed.isEmpty { continue }
                networks.append(try CIDR(parsing: String(trimmed)))
            }
        }
        self.networks = networks
    }

    func trusts(_ address: IPAddress) -> Bool { networks.contains { $0.contains(address) } }

    /// Whether the launcher's peer address (text as `RemoteAddress` reports it) is a proxy.
    public func trusts(peer: String?) -> Bool {
        guard !networks.isEmpty, let peer, let address = IPAddress(peer) else { return false }
        return trusts(address)
    }

    /// The client address for a request that came through the trusted proxy `peer`:
    /// X-Forwarded-For read from the right, skipping the addresses of trusted proxies
    /// (each proxy appends the address it saw, so everything left of the first untrusted
    /// one is the client's own claim); when every entry is trusted, the left-most one. An
    /// entry that is not an address ends the walk at the last trusted hop. Without
    /// X-Forwarded-For, a single valid X-Real-IP; else the peer.
    public func client(peer: String, headers: [Header]) -> String {
        var forwarded: [Substring] = []
        var realIP: [String] = []
        for h in headers {
            if h.name == "x-forwarded-for" {
                forwarded.append(contentsOf: h.value.split(separator: ",", omittingEmptySubsequences: false))
            } else if h.name == "x-real-ip" {
                realIP.append(h.value)
            }
        }
        if !forwarded.isEmpty {
            var nearest = IPAddress(peer).map(\.text) ?? peer
            for entry in forwarded.reversed() {
                guard let address = IPAddress.forwarded(entry.trimmingSpacesAndTabs()) else { return nearest }
                if !trusts(address) { return address.text }
                nearest = address.text
            }
            return nearest
        }
        // Two X-Real-IP fields: one of them is not the proxy's, and there is no telling which.
        if realIP.count == 1, let address = IPAddress.forwarded(realIP[0].trimmingSpacesAndTabs()) {
            return address.text
        }
        return peer
    }
}

