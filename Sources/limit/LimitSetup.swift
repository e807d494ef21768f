import Common
import SharedMemory

/// The filter for a stage's rules, on Redis when the KV store is Redis, else on this
/// machine's shared table. Nothing is opened for a stage without rules.
struct LimitSetup {
    let filter: LimitFilter

    struct Failed: Error, CustomStringConvertible { let description: String }

    init(rules: [LimitRule], table: String?, store: String?) throws(Failed) {
        guard !rules.isEmpty else {
            filter = LimitFilter(rules: [], backend: NoLimits(), counters: nil)
            return
        }
        guard let path = table ?? environment("EDGEPIPE_DATA").map({ $0 + "/limit.slots" }) else {
            throw Failed(description: "no rate-limit table: set --table or EDGEPIPE_LIMIT_TABLE (or EDGEPIPE_DATA)")
        }
        let local: RateTable
        do { local = try RateTable(path: path) } catch { throw Failed(description: "rate-limit table \(error)") }
        if let store, RedisLocation.isRedisURL(store) {
            do { filter = LimitFilter(rules: rules, backend: RedisLimits(store: try RedisStore(url: store)), counters: local) }
            catch { throw Failed(description: "\(error)") }
        } else {
            filter = LimitFilter(rules: rules, backend: LocalLimits(table: local), counters: local)
        }
    }
}

private struct NoLimits: LimitBackend {
    func acquire(_ rule: LimitRule, _ key: String, now: Int64) throws(KVError) -> GCRA.Decision {
        rule.rate.decide(tat: 0, now: now)
    }
}
