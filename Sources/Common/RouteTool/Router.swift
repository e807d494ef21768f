

/// What the table says about one request.
enum RouteMatch: Equatable {
    /// `params` are percent-decoded; a prefix pattern's tail is under "*".
    case matched(Route, params: [(String, String)])
    case notFound
    /// The path is routed, not for this method.
    case methodNotAllowed(allow: [String])
    /// OPTIONS on a routed path that no route takes OPTIONS for.
    case options(allow: [String])
    case badPath(String)

    static func == (a: RouteMatch, b: RouteMatch) -> Bool {
        switch (a, b) {
        case (.matched(let r1, let p1), .matched(let r2, let p2)):
            return r1 == r2 && p1.map(\.0) == p2.map(\.0) && p1.map(\.1) == p2.map(\.1)
        case (.notFound, .notFound): return true
        case (.methodNotAllowed(let x), .methodNotAllowed(let y)), (.options(let x), .options(let y)): return x == y
        case (.badPath(let x), .badPath(let y)): return x == y
        default: return false
        }
    }
}

extension PathPattern {
    func matches(_ p: UnsafeBufferPointer<UInt8>) -> Bool { matches(p) { _, _ in } }

    /// Matches the raw (checked) path without allocating; each parameter's byte range
    /// goes to `capture` (non-escaping, so nothing is boxed).
    func matches(_ p: UnsafeBufferPointer<UInt8>, capture: (String, Range<Int>) -> Void) -> Bool {
        var pos = 1                                   // after the leading '/'
        for (i, segment) in segments.enumerated() {
            var end = pos
            while end < p.count && p[end] != UInt8(ascii: "/") { end += 1 }
            switch segment {
            case .literal(let lit):
                guard end - pos == lit.count else { return false }
                for k in 0..<lit.count where p[pos + k] != lit[k] { return false }
            case .param(let name):
                guard end > pos else { return false }
                capture(name, pos..<end)
            }
            if i == segments.count - 1 && !isPrefix { return end == p.count }
            guard end < p.count else { return false }   // more to match: a '/' must follow
            pos = end + 1
        }
        if isPrefix {
            capture("*", min(pos, p.count)..<p.count)
            return true
        }
        return pos == p.count   // only for a pattern of no segments, which parsing never makes
    }
}

extension RouteTable {
    func match(method: String, path: String) -> RouteMatch {
        if path == "*" {
            return method == "OPTIONS" ? .options(allow: allMethods) : .badPath("'*' is a request target only for OPTIONS")
        }
        var bytes = path   // withUTF8 is mutating; `path` stays readable as the dictionary key
        return bytes.withUTF8 { p in match(method: method, path: path, bytes: p) }
    }

    private func match(method: String, path: String, bytes p: UnsafeBufferPointer<UInt8>) -> RouteMatch {
        if let problem = PathCheck.problem(p) { return .badPath(problem) }
        for i in exact where routes[i].pattern.text == path && routes[i].allows(method) {
            return .matched(routes[i], params: [])
        }
        for route in routes where route.allows(method) && route.pattern.matches(p) {
            guard !route.pattern.isExact else { return .matched(route, params: []) }
            var raw: [(String, Range<Int>)] = []
            _ = route.pattern.matches(p) { raw.append(($0, $1)) }
            var params: [(String, String)] = []
            for (name, range) in raw {
                guard let value = PathCheck.decode(p, range) else {
                    return .badPath("a path segment does not decode to UTF-8")
                }
                params.append((name, value))
            }
            return .matched(route, params: params)
        }
        // Unrouted: the error path, where allocating is fine.
        var allow: [String] = []
        for route in routes where route.pattern.matches(p) {
            for m in route.allowList where !allow.contains(m) { allow.append(m) }
        }
        if allow.isEmpty { return .notFound }
        if !allow.contains("OPTIONS") { allow.append("OPTIONS") }
        return method == "OPTIONS" ? .options(allow: allow) : .methodNotAllowed(allow: allow)
    }
}
