import Records

/// Cross-origin resource sharing, per route name with a default for all routes
/// (docs/cors.md). The decisions are made once, early (route, which knows the route
/// name): a preflight is answered there, before any token check, and an actual request
/// from an allowed origin gets annotations.cors, which http-encode turns into the
/// Access-Control-* headers of whatever response the pipeline makes, its own 401s, 404s,
/// 429s and 5xx and a forwarded upstream's alike.
public struct CORSRule: Equatable, Sendable {
    public var origins: [OriginPattern] = []
    public var methods: [String] = ["GET", "HEAD", "POST"]
    /// Request headers a page may send (lower-case); ["*"] allows any.
    public var headers: [String] = []
    /// Response headers a page may read beyond the safelisted ones.
    public var expose: [String] = []
    public var credentials = false
    public var maxAge: Int?
    /// Whether an upstream's own Access-Control-* headers are replaced (true) or kept.
    public var replaceUpstream = true
}

/// An allowed origin: `*`, an exact origin, or `scheme://*.domain[:port]` (any subdomain,
/// not the domain itself).
public enum OriginPattern: Equatable, Sendable {
    case any
    case exact(String)
    case subdomains(scheme: String, suffix: String, port: String)

    public static func parse(_ text: String) -> OriginPattern? {
        if text == "*" { return .any }
        guard let o = Origin(text.lowercased()) else { return nil }
        if o.host.hasPrefix("*.") {
            let suffix = String(o.host.dropFirst(1))
            guard suffix.count > 1, !suffix.dropFirst().contains("*") else { return nil }
            return .subdomains(scheme: o.scheme, suffix: suffix, port: o.port)
        }
        guard !o.host.contains("*") else { return nil }
        return .exact(o.text)
    }

    func matches(_ origin: Origin) -> Bool {
        switch self {
        case .any: return true
        case .exact(let text): return origin.text == text
        case .subdomains(let scheme, let suffix, let port):
            return origin.scheme == scheme && origin.port == port && origin.host.count > suffix.count
                && origin.host.hasSuffix(suffix) && !origin.host.hasPrefix(".")
        }
    }
}

/// A serialized origin as browsers send it: scheme://host[:port], lower-case, nothing else.
struct Origin {
    let text: String
    let scheme: String
    let host: String
    let port: String

    init?(_ text: String) {
        guard text.utf8.count <= 253 + 20 else { return nil }
        let parts = text.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "http:" || parts[0] == "https:", parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        let authority = parts[2].split(separator: ":", omittingEmptySubsequences: false)
        guard authority.count <= 2, let h = authority.first, !h.isEmpty,
              h.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D || $0 == 0x2A })
        else { return nil }
        if authority.count == 2 {
            guard let p = Int(authority[1]), p > 0, p < 65536, String(p) == authority[1] else { return nil }
        }
        self.text = text
        scheme = String(parts[0].dropLast())
        host = String(h)
        port = authority.count == 2 ? String(authority[1]) : ""
    }
}

public struct CORSPolicy: Sendable {
    public var fallback: CORSRule?
    public var routes: [String: CORSRule] = [:]

    public init(fallback: CORSRule? = nil, routes: [String: CORSRule] = [:]) {
        self.fallback = fallback
        self.routes = routes
    }

    public func rule(for route: String?) -> CORSRule? { route.flatMap { routes[$0] } ?? fallback }

    /// The answer to a preflight: the headers of a 204, or why it is refused (a 403).
    public enum Preflight: Equatable {
        case allowed([Header])
        case refused(String)
    }

    public func preflight(origin: String, method: String, requestHeaders: String?, route: String?) -> Preflight {
        guard let rule = rule(for: route), let allowed = Self.allowedOrigin(origin, rule) else {
            return .refused("origin \(clipped(origin)) is not allowed")
        }
        guard rule.methods.contains(method) else { return .refused("method \(clipped(method, 20)) is not allowed from this origin") }
        var requested: [String] = []
        for name in (requestHeaders ?? "").split(separator: ",") {
            let n = String(name.filter { $0 != " " && $0 != "\t" }).lowercased()
            if n.isEmpty { continue }
            guard rule.headers == ["*"] || rule.headers.contains(n) else {
                return .refused("request header \(clipped(n, 40)) is not allowed from this origin")
            }
            requested.append(n)
        }
        var headers = [Header("access-control-allow-origin", allowed),
                       Header("access-control-allow-methods", rule.methods.joined(separator: ", "))]
        if !requested.isEmpty {
            headers.append(Header("access-control-allow-headers", rule.headers == ["*"] ? requested.joined(separator: ", ")
                                                                                           : rule.headers.joined(separator: ", ")))
        }
        if rule.credentials { headers.append(Header("access-control-allow-credentials", "true")) }
        if let age = rule.maxAge { headers.append(Header("access-control-max-age", String(age))) }
        headers.append(Header("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"))
        return .allowed(headers)
    }

    /// annotations.cors for an actual request from `origin`, or nil when it is not allowed.
    public func annotation(origin: String, route: String?) -> JSON? {
        guard let rule = rule(for: route), let allowed = Self.allowedOrigin(origin, rule) else { return nil }
        var notes = JSONObject([("origin", .string(allowed))])
        if rule.credentials { notes.members.append(.init("credentials", .bool(true))) }
        if !rule.expose.isEmpty { notes.members.append(.init("expose", .string(rule.expose.joined(separator: ", ")))) }
        if !rule.replaceUpstream { notes.members.append(.init("upstream", .string("keep"))) }
        return .object(notes)
    }

    /// The Access-Control-Allow-Origin value for `origin`: `*` under a wildcard rule
    /// (which configuration never pairs with credentials), else the origin itself.
    static func allowedOrigin(_ origin: String, _ rule: CORSRule) -> String? {
        if rule.origins.contains(.any) { return "*" }
        guard let o = Origin(origin), o.text == origin.lowercased() else { return nil }
        return rule.origins.contains(where: { $0.matches(o) }) ? o.text : nil
    }

    private func clipped(_ s: String, _ n: Int = 80) -> String {
        let ascii = s.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value != 0x7F ? Character($0) : "?" }
        return ascii.count > n ? String(ascii.prefix(n)) + "..." : String(ascii)
    }
}

extension AnnotationKey {
    /// route (with --cors): {"origin": ..., "credentials": true, "expose": ..., "upstream": "keep"}
    public static let cors = "cors"
}
