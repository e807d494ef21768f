#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import KV
import SharedMemory

/// Where the GCRA state lives: this machine's shared table, or Redis for every machine.
public protocol LimitBackend {
    func acquire(_ rule: LimitRule, _ key: String, now: Int64) throws(KVError) -> GCRA.Decision
}

public struct LocalLimits: LimitBackend {
    let table: RateTable
    public init(table: RateTable) { self.table = table }
    public func acquire(_ rule: LimitRule, _ key: String, now: Int64) throws(KVError) -> GCRA.Decision {
        var bytes = rule.storagePrefix
        bytes.append(contentsOf: key.utf8)
        return table.acquire(table.hash(bytes), rule.rate, now: now)
    }
}

public struct RedisLimits: LimitBackend {
    let store: RedisStore
    public init(store: RedisStore) { self.store = store }
    public func acquire(_ rule: LimitRule, _ key: String, now: Int64) throws(KVError) -> GCRA.Decision {
        let (allowed, ahead) = try store.rateLimit(rule.redisPrefix + key, interval: rule.rate.interval, tolerance: rule.rate.tolerance)
        return rule.rate.decision(allowed: allowed, ahead: ahead)
    }
}

/// The per-record logic of `limit`: every rule of this stage that names the request's route
/// (or `*`) spends one request of the key's allowance; the first rule with none left
/// answers 429. A request without the key (no remote address, no verified uid, no such
/// header) is not counted by that rule.
public final class LimitFilter {
    let rules: [LimitRule]
    let backend: LimitBackend
    /// Shared counters (fail-open, limited), kept in the local table in both modes.
    let counters: RateTable?
    let now: () -> Int64
    private var loggedOutage = false

    public init(rules: [LimitRule], backend: LimitBackend, counters: RateTable?, now: @escaping () -> Int64 = LimitFilter.microseconds) {
        self.rules = rules
        self.backend = backend
        self.counters = counters
        self.now = now
    }

    public static func microseconds() -> Int64 { Clock.nowMicros() }

    public func handle(_ record: inout Record) {
        guard !rules.isEmpty else { return }
        let route = record.routeName
        var t: Int64 = 0
        for rule in rules where rule.applies(to: route) {
            guard let key = Self.key(rule.key, of: record) else { continue }
            if t == 0 { t = now() }
            let decision: GCRA.Decision
            do {
                decision = try backend.acquire(rule, key, now: t)
            } catch {
                counters?.count(.failOpen)
                if !loggedOutage {
                    loggedOutage = true
                    Log.error("rate-limit store unavailable (\(error)); rule \(rule.name) "
                              + (rule.failClosed ? "answers 503" : "lets requests through"))
                }
                if rule.failClosed {
                    record = record.errorResponse(status: 503, error: "limit_unavailable",
                                                  message: "the rate-limit store is unavailable; try again later",
                                                  headers: [Header("retry-after", "1")])
                    return
                }
                continue
            }
            if !decision.allowed {
                counters?.count(.limited)
                record = Self.refusal(record, rule, decision)
                return
            }
        }
    }

    static func key(_ key: LimitRule.Key, of record: Record) -> String? {
        switch key {
        case .ip: return record.remote
        case .uid: return record.annotation(AnnotationKey.auth)?["uid"]?.string
        case .header(let name): return record.header(name)
        }
    }

    /// 429 with Retry-After and the IETF RateLimit-Policy / RateLimit fields
    /// (draft-ietf-httpapi-ratelimit-headers: quota q per window w; r left, t seconds to reset).
    static func refusal(_ record: Record, _ rule: LimitRule, _ d: GCRA.Decision) -> Record {
        let retry = max(1, Int((d.retryAfter + 999_999) / 1_000_000))
        let reset = max(1, Int((d.reset + 999_999) / 1_000_000))
        let policy = "\"\(rule.name)\""
        let where_ = rule.route == "*" ? "this service" : "route \(rule.route)"
        return record.errorResponse(
            status: 429, error: "rate_limited",
            message: "too many requests for \(where_) (\(rule.count) per \(rule.periodSeconds) s by \(rule.key.text)); retry in \(retry) s",
            headers: [Header("retry-after", String(retry)),
                      Header("ratelimit-policy", "\(policy);q=\(rule.count);w=\(rule.periodSeconds)"),
                      Header("ratelimit", "\(policy);r=0;t=\(reset)")],
            details: JSONObject([("retry_after", JSON(retry))]))
    }
}
