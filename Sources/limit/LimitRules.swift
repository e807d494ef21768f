import Common
import SharedMemory

/// One line of the limits file: `ROUTE-or-* KEY RATE [burst=N] [redis-down=open|closed]`.
struct LimitRule: Equatable {
    enum Key: Equatable {
        case ip, uid, header(String)
        var text: String {
            switch self {
            case .ip: return "ip"
            case .uid: return "uid"
            case .header(let name): return "header:\(name)"
            }
        }
    }

    let line: Int
    let route: String
    let key: Key
    let count: Int
    let periodSeconds: Int
    let burst: Int
    /// Answer 503 rather than pass when the shared store (Redis) cannot be reached.
    let failClosed: Bool
    let rate: GCRA

    /// The policy's name in RateLimit-Policy / RateLimit and in logs.
    var name: String { "\(route)/\(key.text)" }
    /// What the state of one key is stored under: the rule's meaning, so an edit that
    /// changes a rule starts it afresh and reordering lines does not.
    var storageName: String { "\(route) \(key.text) \(count)/\(periodSeconds) \(burst)" }

    func applies(to routeName: String?) -> Bool { route == "*" || route == routeName }
}

enum LimitStage: String {
    /// Before verify-jwt: ip and header keys, so a flood is refused before any signature check.
    case ip
    /// After verify-jwt: uid keys (annotations.auth.uid).
    case uid
    case all

    func includes(_ key: LimitRule.Key) -> Bool {
        switch (self, key) {
        case (.all, _), (.uid, .uid), (.ip, .ip), (.ip, .header): return true
        default: return false
        }
    }
}

enum LimitRules {
    static func load(path: String) throws(ConfigError) -> [LimitRule] {
        try parse(ConfigFile.load(path: path, what: "limits file"))
    }

    static func parse(_ text: String) throws(ConfigError) -> [LimitRule] { try parse(ConfigFile.lines(text)) }

    static func parse(_ lines: [ConfigLine]) throws(ConfigError) -> [LimitRule] {
        var rules: [LimitRule] = []
        for line in lines {
            let rule = try parseLine(line)
            if let same = rules.first(where: { $0.route == rule.route && $0.key == rule.key }) {
                throw ConfigError(line: line.number, "a second \(rule.key.text) limit for \(rule.route) (first on line \(same.line))")
            }
            rules.append(rule)
        }
        return rules
    }

    static func parseLine(_ line: ConfigLine) throws(ConfigError) -> LimitRule {
        func bad(_ reason: String) -> ConfigError { ConfigError(line: line.number, reason) }
        let f = line.fields
        guard f.count >= 3 else { throw bad("expected ROUTE KEY RATE [burst=N] [redis-down=open|closed]") }
        guard ConfigFile.isRouteName(f[0]) else { throw bad("'\(f[0])' is not a route name or *") }
        let key: LimitRule.Key
        switch f[1] {
        case "ip": key = .ip
        case "uid": key = .uid
        case let k where k.hasPrefix("header:"):
            let name = String(k.dropFirst(7)).lowercased()
            guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }) else {
                throw bad("'\(f[1])': header:NAME wants a header name")
            }
            guard name != "authorization" else { throw bad("header:authorization would key on a token; use uid after verify-jwt") }
            key = .header(name)
        default:
            throw bad("unknown key '\(f[1])' (ip, uid or header:NAME)")
        }
        let (count, period) = try parseRate(f[2], line.number)
        var burst = count
        var failClosed = false
        for option in f.dropFirst(3) {
            if option.hasPrefix("burst=") {
                guard let n = Int(option.dropFirst(6)), n >= 1, n <= 1_000_000 else { throw bad("burst= wants an integer from 1 to 1000000") }
                burst = n
            } else if option == "redis-down=open" {
                failClosed = false
            } else if option == "redis-down=closed" {
                failClosed = true
            } else {
                throw bad("unknown option '\(option)' (burst=N, redis-down=open|closed)")
            }
        }
        return LimitRule(line: line.number, route: f[0], key: key, count: count, periodSeconds: period, burst: burst,
                         failClosed: failClosed, rate: GCRA(count: count, periodSeconds: period, burst: burst))
    }

    /// `100/s`, `20/min`, `500/h`, `1000/day`.
    static func parseRate(_ text: String, _ number: Int) throws(ConfigError) -> (Int, Int) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let units = ["s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400]
        guard parts.count == 2, let count = Int(parts[0]), count >= 1, count <= 1_000_000, let period = units[String(parts[1])] else {
            throw ConfigError(line: number, "rate '\(text)' must be N/s, N/min, N/h or N/day with N from 1 to 1000000")
        }
        return (count, period)
    }
}
