import Crypto
/// The Lua scripts behind RedisStore. Each operation is one script, and Redis runs a script
/// atomically: the read of the current version, the decision (create-only, compare-and-swap)
/// and every write (entry hash, expiry, key index) happen with nothing in between, and
/// nothing is left half-written if the client vanishes.
///
/// Layout under the namespace prefix P:
///   P e:<key>   a hash: version, value (JSON text), metadata (JSON text, absent when none),
///               expires_at (Unix seconds, absent when none); PEXPIREAT set from expires_at
///   P index     a sorted set of every key, all scores 0, so ZRANGEBYLEX walks keys in byte
///               order (SCAN has no order, and cannot give list's cursor semantics)
///
/// Time is the Redis server's (TIME), so every gateway agrees on when an entry expires,
/// plus an offset in milliseconds (EDGEPIPE_CLOCK_OFFSET, or a test's clock) as ARGV[1].
/// An entry is expired when expires_at * 1000 <= now, as in DirectoryStore. Redis drops the
/// hash itself at expiry; list removes a key from the index when it finds its hash gone.
/// Versions continue across logical expiry while the hash exists, as they do in the
/// directory store, so a compare-and-swap based on an old read cannot succeed by accident.
///
/// Each script declares what it does (Redis 7 `#!lua flags=`), because Redis checks a
/// script's memory use only as a whole or at its first write: an undeclared script that
/// begins with a DEL (which frees memory, so is allowed when full) would go on to write a
/// full Redis past `maxmemory`. Declared, `write` is refused whole with `OOM` when Redis is
/// full; `get` declares no writes and `delete` and `list` (whose only writes remove
/// things) run when full, so a full Redis still answers reads and frees space.
struct RedisScript: Sendable {
    let source: [UInt8]
    /// SHA-1 of the source in hex, for EVALSHA.
    let sha: [UInt8]

    /// `flags`: the shebang's flags (none: may write, refused when Redis is out of memory).
    init(flags: String?, _ text: String) {
        source = Array(("#!lua" + (flags.map { " flags=\($0)" } ?? "") + "\n" + Self.clock + text).utf8)
        sha = Array(Hex.encode(Self.sha1(source)).utf8)
    }

    /// SHA-1, the name Redis gives a script. Computed here rather than with OpenSSL: the
    /// first OpenSSL call of a process loads openssl.cnf and initialises providers, about
    /// 5 ms that every one-shot `kv` command would pay. (Not used for any security purpose.)
    static func sha1(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) * 8
        for i in (0..<8).reversed() { data.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(data[j]) << 24 | UInt32(data[j + 1]) << 16 | UInt32(data[j + 2]) << 8 | UInt32(data[j + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = x << 1 | x >> 31
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let f: UInt32, k: UInt32
                switch i {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A827999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC
                default: f = b ^ c ^ d; k = 0xCA62C1D6
                }
                let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, b << 30 | b >> 2, a, t)
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d; h[4] = h[4] &+ e
        }
        var out: [UInt8] = []
        for v in h { for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
        return out
    }

    /// Scripts with a shebang always replicate their effects (not the script), which is
    /// what lets them read TIME and then write.
    private static let clock = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])

        """

    /// KEYS: entry. ARGV: offset. Returns nil, or {value, version, metadata|nil, expires_at|nil}.
    static let get = RedisScript(flags: "no-writes", """
        local h = redis.call('HMGET', KEYS[1], 'value', 'version', 'metadata', 'expires_at')
        if not h[2] then return false end
        if h[4] and tonumber(h[4]) * 1000 <= now then return false end
        return h
        """)

    /// KEYS: entry, index. ARGV: offset, mode (put|create|cas), expected version ('' for
    /// absent), key, value, metadata ('' for none), expires_at ('' for none), PEXPIREAT
    /// milliseconds ('' for none). Returns {0, version} written, {1, 0} exists (create),
    /// {2, current or -1} version mismatch (cas).
    static let write = RedisScript(flags: nil, """
        local h = redis.call('HMGET', KEYS[1], 'version', 'expires_at')
        local stored = tonumber(h[1])
        local live = stored
        if stored and h[2] and tonumber(h[2]) * 1000 <= now then live = nil end
        if ARGV[2] == 'create' and live then return {1, 0} end
        if ARGV[2] == 'cas' and live ~= tonumber(ARGV[3]) then return {2, live or -1} end
        local version = (stored or 0) + 1
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], 'version', version, 'value', ARGV[5])
        if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'metadata', ARGV[6]) end
        if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'expires_at', ARGV[7]) end
        if ARGV[8] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[8]) end
        redis.call('ZADD', KEYS[2], 0, ARGV[4])
        return {0, version}
        """)

    /// KEYS: entry, index. ARGV: offset, key. Returns 1 when a live entry was removed.
    static let delete = RedisScript(flags: "allow-oom", """
        local h = redis.call('HMGET', KEYS[1], 'version', 'expires_at')
        local live = h[1] and not (h[2] and tonumber(h[2]) * 1000 <= now)
        redis.call('DEL', KEYS[1])
        redis.call('ZREM', KEYS[2], ARGV[2])
        if live then return 1 end
        return 0
        """)

    /// KEYS: index. ARGV: offset, prefix, start bound for ZRANGEBYLEX, end bound, limit,
    /// entry key prefix. Returns {keys, more}: up to `limit` live keys in byte order, and 1
    /// when the index holds further keys in range (the caller then issues a cursor).
    static let list = RedisScript(flags: "allow-oom", """
        local prefix, min, max, limit, ep = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
        local keys = {}
        local batch = limit + 1
        while true do
          local members = redis.call('ZRANGEBYLEX', KEYS[1], min, max, 'LIMIT', 0, batch)
          for _, m in ipairs(members) do
            if #keys == limit then return {keys, 1} end
            if string.sub(m, 1, #prefix) == prefix then
              local h = redis.call('HMGET', ep .. m, 'version', 'expires_at')
              if not h[1] then
                redis.call('ZREM', KEYS[1], m)
              elseif not (h[2] and tonumber(h[2]) * 1000 <= now) then
                keys[#keys + 1] = m
              end
            end
            min = '(' .. m
          end
          if #members < batch then return {keys, 0} end
        end
        """)
}
