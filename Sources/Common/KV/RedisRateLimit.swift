/// Rate limits shared by every gateway machine: the GCRA state of a key is one Redis
/// string (its TAT in microseconds), read, decided on and written by one script, so two
/// machines never both spend the same allowance. Time is the Redis server's (TIME) plus the
/// store's clock offset, so machines with skewed clocks still agree.
extension RedisStore {
    /// KEYS: the key's TAT. ARGV: offset (ms, as every script of the store), interval (µs), tolerance (µs).
    /// Returns {1, tat - now} after an allowed request (the new TAT), {0, tat - now} when refused.
    static let gcra = RedisScript(flags: nil, """
        if redis.replicate_commands then redis.replicate_commands() end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000
        local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tat < now or tat > now + tolerance + interval then tat = now end
        if tat - now > tolerance then return {0, tat - now} end
        local new = tat + interval
        redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1)
        return {1, new - now}
        """)

    /// One request against `key` (a name under the store's prefix) at rate `rate`: the
    /// decision, as GCRA.decide would make it on the server's clock.
    public func rateLimit(_ key: String, interval: Int64, tolerance: Int64) throws(KVError) -> (allowed: Bool, ahead: Int64) {
        let reply = try run(Self.gcra, keys: [Array(location.prefix.utf8) + Array("rl:".utf8) + Array(key.utf8)],
                            args: [offset(), Array(String(interval).utf8), Array(String(tolerance).utf8)],
                            // Not a "write" to wait for replicas on: a limit decision is worth
                            // less than a replica round trip per request. A retry after a lost
                            // reply may spend one extra allowance, never grant one.
                            isWrite: false)
        guard let parts = reply.elements, parts.count == 2, let allowed = parts[0].int, let ahead = parts[1].int else {
            throw KVError.unavailable("unexpected reply from \(location)")
        }
        return (allowed == 1, Int64(ahead))
    }
}
