import Records
import SharedMemory

/// One line of the limits file: `ROUTE-or-* KEY RATE [burst=N] [redis-down=open|closed]`.
public struct LimitRule: Equatable, Sendable {
    public enum Key: Equatable, Sendable {
        case ip, uid, header(String)
        public var text: String {
            switch self {
            case .ip: return "ip"
            case .uid: return "uid"
            case .header(let name): return "header:\(name)"
            }
        }
    }

    public let line: Int
    public let route: String
    public let key: Key
    public let count: Int
    public let periodSeconds: Int
    public let burst: Int
    /// Answer 503 rather than pass when the shared store (Redis) cannot be reached.
    public let failClosed: Bool
    public let rate: GCRA

    /// The policy's name in RateLimit-Policy / RateLimit and in logs.
    public let name: String
    /// What a key's state is stored under, before the key's value: the rule's meaning, so an
    /// edit that changes a rule starts it afresh and reordering lines does not. Made once,
    /// not per request.
    public let storagePrefix: [UInt8]
    public let redisPrefix: String

    public init(line: Int, route: String, key: Key, count: Int, periodSeconds: Int, burst: Int, failClosed: Bool) {
        self.line = line
        self.route = route
        self.key = key
        self.count = count
        self.periodSeconds = periodSeconds
        self.burst = burst
        self.failClosed = failClosed
        rate = GCRA(count: count, periodSeconds: periodSeconds, burst: burst)
        name = "\(route)/\(key.text)"
        storagePrefix = Array("\(route) \(key.text) \(count)/\(periodSeconds) \(burst)".utf8) + [0]
        redisPrefix = "\(route):\(key.text):\(count)/\(periodSeconds):\(burst):"
    }

    public func applies(to routeName: String?) -> Bool { route == "*" || route == routeName }
}

public enum LimitStage: String, Sendable {
    /// Before verify-jwt: ip and header keys, so a flood is refused before any signature check.
    case ip
    /// After verify-jwt: uid keys (annotations.auth.uid).
    case uid
    case all

    public func includes(_ key: LimitRule.Key) -> Bool {
        switch (self, key) {
        case (.all, _), (.uid, .uid), (.ip, .ip), (.ip, .header): return true
        default: return false
        }
    }
}

public enum LimitRules {
    public static func load(path: String) throws(ConfigError) -> [LimitRule] {
        try parse(ConfigFile.load(path: path, what: "limits file"))
    }

    public static func parse(_ text: String) throws(ConfigError) -> [LimitRule] { try parse(ConfigFile.lines(text)) }

    public static func parse(_ lines: [ConfigLine]) throws(ConfigError) -> [LimitRule] {
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
                         failClosed: failClosed)
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
