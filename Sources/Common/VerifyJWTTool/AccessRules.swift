import Records

/// Per-route access rules (EDGEPIPE_JWT_ACCESS, docs/verify-jwt.md), keyed by route name:
///
///     ROUTE  optional                         no token: passes anonymously
///     ROUTE  require CLAIM=VALUE              e.g. email_verified=true
///     ROUTE  require CLAIM contains VALUE     an array claim holds VALUE (also CLAIM∋VALUE)
///     ROUTE  require CLAIM in {A, B}          the claim is one of these
///
/// CLAIM may be a path into nested objects (firebase.sign_in_provider); a claim whose own
/// name contains the dots is looked up first. Every `require` of a route must hold. A
/// request that fails one is answered 403 forbidden naming the rule as written, never the
/// value the token carries.
struct AccessRules {
    struct Requirement: Equatable {
        enum Test: Equatable { case equals(JSON), contains(JSON), oneOf([JSON]) }
        /// The rule as written, for the 403 message.
        let text: String
        let claim: String
        let test: Test

        func holds(_ claims: JSONObject) -> Bool {
            guard let value = Self.lookup(claim, claims) else { return false }
            switch test {
            case .equals(let expected): return Self.same(value, expected)
            case .contains(let expected):
                guard case .array(let items) = value else { return false }
                return items.contains { Self.same($0, expected) }
            case .oneOf(let choices): return choices.contains { Self.same(value, $0) }
            }
        }

        static func lookup(_ claim: String, _ claims: JSONObject) -> JSON? {
            if let direct = claims[claim] { return direct }
            var current: JSON = .object(claims)
            for part in claim.split(separator: ".", omittingEmptySubsequences: false) {
                guard case .object(let o) = current, let next = o[String(part)] else { return nil }
                current = next
            }
            return current
        }

        /// Scalars compare by value: numbers by their text, as written in the token.
        static func same(_ a: JSON, _ b: JSON) -> Bool {
            switch (a, b) {
            case (.string(let x), .string(let y)): return x == y
            case (.bool(let x), .bool(let y)): return x == y
            case (.number(let x), .number(let y)): return x == y
            default: return false
            }
        }
    }

    struct RouteRules: Equatable {
        var optional = false
        var requirements: [Requirement] = []
    }

    var routes: [String: RouteRules] = [:]

    func isOptional(_ record: Record) -> Bool {
        guard !routes.isEmpty, let name = record.routeName else { return false }
        return routes[name]?.optional ?? false
    }

    /// The first requirement of the record's route that these claims fail, else nil.
    func unmet(_ record: Record, _ claims: JSONObject) -> Requirement? {
        guard !routes.isEmpty, let name = record.routeName, let rules = routes[name] else { return nil }
        return rules.requirements.first { !$0.holds(claims) }
    }


    // MARK: The file

    static func load(path: String) throws(ConfigError) -> AccessRules {
        try parse(ConfigFile.load(path: path, what: "access rules file"))
    }

    static func parse(_ text: String) throws(ConfigError) -> AccessRules { try parse(ConfigFile.lines(text)) }

    static func parse(_ lines: [ConfigLine]) throws(ConfigError) -> AccessRules {
        var rules = AccessRules()
        for line in lines {
            func bad(_ reason: String) -> ConfigError { ConfigError(line: line.number, reason) }
            let route = line.fields[0]
            guard route != "*", ConfigFile.isRouteName(route) else { throw bad("'\(route)' is not a route name") }
            guard line.fields.count >= 2 else { throw bad("expected ROUTE optional or ROUTE require RULE") }
            var entry = rules.routes[route] ?? RouteRules()
            switch line.fields[1] {
            case "optional":
                guard line.fields.count == 2 else { throw bad("nothing may follow 'optional'") }
                entry.optional = true
            case "require":
                guard line.fields.count >= 3 else { throw bad("require needs a rule: CLAIM=VALUE, CLAIM contains VALUE or CLAIM in {A, B}") }
                do throws(ConfigError) { entry.requirements.append(try requirement(Array(line.fields.dropFirst(2)))) }
                catch { throw bad(error.reason) }
            default:
                throw bad("unknown word '\(line.fields[1])' (optional or require)")
            }
            rules.routes[route] = entry
        }
        return rules
    }

    /// One rule from its words: `CLAIM=VALUE`, `CLAIM contains VALUE` (or `CLAIM∋VALUE`),
    /// `CLAIM in {A, B}`.
    static func requirement(_ words: [String]) throws(ConfigError) -> Requirement {
        let text = words.joined(separator: " ")
        func claimName(_ s: Substring) throws(ConfigError) -> String {
            let name = String(s)
            guard !name.isEmpty, !name.hasPrefix("."), !name.hasSuffix("."), !name.contains(".."),
                  !name.contains("="), !name.contains("{") else {
                throw ConfigError(line: nil, "'\(name)' is not a claim name")
            }
            return name
        }
        if words.count >= 3, words[1] == "in" {
            let set = words.dropFirst(2).joined()
            guard set.hasPrefix("{"), set.hasSuffix("}") else { throw ConfigError(line: nil, "'in' wants a set: {A, B}") }
            let choices = set.dropFirst().dropLast().split(separator: ",").map { value(String($0)) }
            guard !choices.isEmpty else { throw ConfigError(line: nil, "the set after 'in' is empty") }
            return Requirement(text: text, claim: try claimName(words[0][...]), test: .oneOf(choices))
        }
        if words.count == 3, words[1] == "contains" {
            return Requirement(text: text, claim: try claimName(words[0][...]), test: .contains(value(words[2])))
        }
        if words.count == 1 {
            let word = words[0]
            for (separator, contains) in [("∋", true), ("=", false)] {
                let parts = word.split(separator: Character(separator), maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                guard !parts[1].isEmpty else { throw ConfigError(line: nil, "'\(word)' needs a value") }
                let v = value(String(parts[1]))
                return Requirement(text: text, claim: try claimName(parts[0]), test: contains ? .contains(v) : .equals(v))
            }
        }
        throw ConfigError(line: nil, "unknown rule '\(text)' (CLAIM=VALUE, CLAIM contains VALUE, CLAIM in {A, B})")
    }

    /// true/false are booleans, a plain integer a number, "..." or anything else a string.
    static func value(_ text: String) -> JSON {
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        if let n = Int(text), String(n) == text { return .number(text) }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { return .string(String(text.dropFirst().dropLast())) }
        return .string(text)
    }
}
