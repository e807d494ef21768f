import Records
import KV
import SharedMemory

/// The filter for a stage's rules, on Redis when the KV store is Redis, else on this
/// machine's shared table. Nothing is opened for a stage without rules.
public struct LimitSetup {
    public let filter: LimitFilter

    public struct Failed: Error, CustomStringConvertible { public let description: String }

    /// `table` nil: $EDGEPIPE_LIMIT_TABLE, else $EDGEPIPE_DATA/limit.slots. `store`: a Redis
    /// URL puts the state in Redis; anything else (a KV directory, nil) keeps it here.
    public init(rules: [LimitRule], table: String?, store: String?) throws(Failed) {
        guard !rules.isEmpty else {
            filter = LimitFilter(rules: [], backend: NoLimits(), counters: nil)
            return
        }
        guard let path = table ?? environment("EDGEPIPE_LIMIT_TABLE") ?? dataPath("limit.slots") else {
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

    /// For a tool that applies one stage's limits in its own process (`route --limits`,
    /// `verify-jwt --limits`): the stage's rules of FILE, on the store EDGEPIPE_KV names;
    /// nil when the stage has none. Ends the program (exit 2, FILE:LINE) on a bad file.
    public static func inProcess(path: String, stage: LimitStage, checkOnly: Bool = false) -> LimitFilter? {
        let rules: [LimitRule]
        do { rules = try LimitRules.load(path: path).filter { stage.includes($0.key) } }
        catch { Log.fatal(error.report(file: path)) }
        if rules.isEmpty || checkOnly { return nil }
        do { return try LimitSetup(rules: rules, table: nil, store: environment("EDGEPIPE_KV")).filter }
        catch { Log.fatal(error.description) }
    }
}

private struct NoLimits: LimitBackend {
    func acquire(_ rule: LimitRule, _ key: String, now: Int64) throws(KVError) -> GCRA.Decision {
        rule.rate.decide(tat: 0, now: now)
    }
}
