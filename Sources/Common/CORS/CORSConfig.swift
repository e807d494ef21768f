import Records

/// The CORS file (EDGEPIPE_CORS): one line per route name, `*` for the default.
///
///     *            origins=https://app.example.com,https://*.example.com credentials=true
///     reserve-list origins=https://admin.example.com methods=GET headers=authorization
///
/// A route's line starts from the `*` line's settings and changes the ones it names.
/// Settings: origins= (comma-separated; `*`, exact, or scheme://*.domain; `none` turns
/// CORS off for the route), methods=, headers= (request headers; `*` any), expose=,
/// credentials=true|false, max-age=SECONDS, upstream=replace|keep.
extension CORSPolicy {
    public static func load(path: String) throws(ConfigError) -> CORSPolicy {
        try parse(ConfigFile.load(path: path, what: "CORS file"))
    }

    public static func parse(_ text: String) throws(ConfigError) -> CORSPolicy { try parse(ConfigFile.lines(text)) }

    public static func parse(_ lines: [ConfigLine]) throws(ConfigError) -> CORSPolicy {
        var policy = CORSPolicy()
        // The default first, wherever its line is, so route lines inherit from it.
        let ordered = lines.filter { $0.fields[0] == "*" } + lines.filter { $0.fields[0] != "*" }
        var seen: [String: Int] = [:]
        for line in ordered {
            let route = line.fields[0]
            guard ConfigFile.isRouteName(route) else { throw ConfigError(line: line.number, "'\(route)' is not a route name or *") }
            if let first = seen[route] { throw ConfigError(line: line.number, "a second line for \(route) (first on line \(first))") }
            seen[route] = line.number
            var rule = policy.fallback ?? CORSRule()
            for setting in line.fields.dropFirst() {
                try apply(setting, to: &rule, line.number)
            }
            if rule.credentials && rule.origins.contains(.any) {
                throw ConfigError(line: line.number, "origins=* with credentials=true is refused: a credentialed response must name its origin")
            }
            if rule.credentials && rule.headers == ["*"] {
                throw ConfigError(line: line.number, "headers=* with credentials=true is refused: name the request headers")
            }
            if route == "*" { policy.fallback = rule } else { policy.routes[route] = rule }
        }
        return policy
    }

    static func apply(_ setting: String, to rule: inout CORSRule, _ number: Int) throws(ConfigError) {
        func bad(_ reason: String) -> ConfigError { ConfigError(line: number, reason) }
        guard let eq = setting.firstIndex(of: "=") else { throw bad("'\(setting)' is not NAME=VALUE") }
        let name = String(setting[..<eq])
        let value = String(setting[setting.index(after: eq)...])
        let list = value.split(separator: ",").map(String.init)
        switch name {
        case "origins":
            if value == "none" { rule.origins = []; return }
            var origins: [OriginPattern] = []
            for text in list {
                guard let p = OriginPattern.parse(text) else {
                    throw bad("origin '\(text)' must be *, scheme://host[:port] or scheme://*.domain[:port]")
                }
                origins.append(p)
            }
            guard !origins.isEmpty else { throw bad("origins= needs at least one origin (or none)") }
            rule.origins = origins
        case "methods":
            guard !list.isEmpty, list.allSatisfy(isToken) else { throw bad("methods= wants comma-separated methods") }
            rule.methods = list
        case "headers", "expose":
            guard value == "*" || list.allSatisfy(isToken) else { throw bad("\(name)= wants comma-separated header names") }
            if name == "expose" && value == "*" { throw bad("expose=* is not supported: name the headers") }
            if name == "headers" { rule.headers = list.map { $0.lowercased() } } else { rule.expose = list.map { $0.lowercased() } }
        case "credentials":
            guard value == "true" || value == "false" else { throw bad("credentials= is true or false") }
            rule.credentials = value == "true"
        case "max-age":
            guard let n = Int(value), n >= 0, n <= 86400 else { throw bad("max-age= wants seconds from 0 to 86400") }
            rule.maxAge = n
        case "upstream":
            guard value == "replace" || value == "keep" else { throw bad("upstream= is replace or keep") }
            rule.replaceUpstream = value == "replace"
        default:
            throw bad("unknown setting '\(name)' (origins, methods, headers, expose, credentials, max-age, upstream)")
        }
    }

    private static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }
}
