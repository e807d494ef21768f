/// The generic cell rate algorithm (GCRA) for one rule: a key may make `burst` requests at
/// once and then one every `interval`. Its whole state is one number per key, the
/// theoretical arrival time (TAT) of the next request, so an update is one
/// compare-and-swap here and one small script in Redis, with no separate counter to reset.
/// Times are microseconds.
public struct GCRA: Sendable, Equatable {
    /// Microseconds between requests at the sustained rate.
    public let interval: Int64
    /// How far ahead of now the TAT may run: (burst - 1) intervals.
    public let tolerance: Int64

    public init(count: Int, periodSeconds: Int, burst: Int) {
        precondition(count > 0 && periodSeconds > 0 && burst > 0)
        interval = max(1, Int64(periodSeconds) * 1_000_000 / Int64(count))
        tolerance = interval * Int64(burst - 1)
    }

    /// What one request does to a key whose TAT is `tat` (0: unknown or idle).
    public struct Decision: Sendable, Equatable {
        public let allowed: Bool
        /// The TAT to store when allowed.
        public let newTAT: Int64
        /// Requests that could still be made now (after this one, when allowed).
        public let remaining: Int
        /// Microseconds until a request would be allowed (0 when allowed).
        public let retryAfter: Int64
        /// Microseconds until the key is back to its full burst.
        public let reset: Int64
    }

    /// How far a process's `now` may lag the TAT other processes wrote before the TAT counts
    /// as a clock that went back. A process reads the clock, may then be descheduled, and
    /// decides later: without this margin, its stale `now` would make a busy key's TAT look
    /// impossible and reset the key to a fresh burst (measured: 751 accepted for 550 allowed
    /// with 16 connections on a loaded machine).
    public static let clockSlack: Int64 = 10_000_000

    public func decide(tat: Int64, now: Int64) -> Decision {
        // A TAT far beyond what any sequence of allowed requests can reach, even from a
        // late reader, means the clock went back (or the slot is garbage): start the key
        // afresh rather than lock it out.
        let base = (tat < now || tat > now + tolerance + interval + Self.clockSlack) ? now : tat
        if base - now > tolerance { return decision(allowed: false, ahead: base - now, newTAT: tat) }
        let next = base + interval
        return decision(allowed: true, ahead: next - now, newTAT: next)
    }

    /// The decision from how far the TAT runs ahead of now: after an allowed request the new
    /// TAT's lead, after a refused one the current lead (what the Redis script returns).
    public func decision(allowed: Bool, ahead: Int64, newTAT: Int64 = 0) -> Decision {
        if !allowed {
            return Decision(allowed: false, newTAT: newTAT, remaining: 0, retryAfter: max(0, ahead - tolerance), reset: ahead)
        }
        let remaining = Int((tolerance + interval - ahead) / interval)
        return Decision(allowed: true, newTAT: newTAT, remaining: max(0, remaining), retryAfter: 0, reset: ahead)
    }
}

/// A fixed-size table of GCRA states in SharedSlots, shared by every pipeline of a machine.
///
/// Layout: slot 0 holds a random hash seed (set once by the first opener, so which keys
/// share a bucket cannot be chosen from outside), slots 1..7 counters, then `buckets`
/// buckets of `ways` entries, each entry two slots: the key's 64-bit hash (0: empty) and
/// its TAT. A key lives in one bucket; a new key takes an empty entry or evicts the one
/// with the oldest TAT, which is the key idle longest, so a flood of new keys displaces
/// idle keys before active ones and the table never grows: a million addresses cost
/// exactly the slots it had at start.
///
/// A request on a present key is one load and one compare-and-swap (retried only when
/// another process updated the same key in between). Claiming an entry for a new key is
/// one more compare-and-swap on its hash; two processes claiming the same entry for
/// different keys race there and the loser looks again.
public final class RateTable: @unchecked Sendable {
    public let buckets: Int
    public let ways: Int
    let slots: SharedSlots
    let seed: UInt64

    static let header = 8
    public enum Counter: Int, Sendable { case evictions = 1, failOpen = 2, limited = 3 }

    public static let defaultBuckets = 16384
    public static let defaultWays = 4

    public init(path: String, buckets: Int = RateTable.defaultBuckets, ways: Int = RateTable.defaultWays) throws(SharedSlots.OpenError) {
        precondition(buckets > 0 && ways > 0)
        self.buckets = buckets
        self.ways = ways
        slots = try SharedSlots(path: path, count: Self.header + buckets * ways * 2)
        var s = slots.load(0)
        if s == 0 {
            var fresh: Int64 = 0
            while fresh == 0 { fresh = Int64.random(in: .min ... .max) }
            let (exchanged, original) = slots.compareExchange(0, expected: 0, desired: fresh)
            s = exchanged ? fresh : original
        }
        seed = UInt64(bitPattern: s)
    }

    /// Slots the table occupies (fixed at open).
    public var slotCount: Int { slots.count }

    public func counter(_ c: Counter) -> Int64 { slots.load(c.rawValue) }
    public func count(_ c: Counter) { slots.add(c.rawValue) }

    /// The key's hash under this table's seed: FNV-1a over the bytes, then a finaliser so
    /// that neighbouring addresses spread over buckets. Never 0 (0 marks an empty entry).
    public func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325 ^ seed
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        h ^= h >> 33; h = h &* 0xff51afd7ed558ccd
        h ^= h >> 33; h = h &* 0xc4ceb93e1a85fe53
        h ^= h >> 33
        return h == 0 ? 1 : h
    }

    /// Applies one request for the key with hash `key` under `rate` at `now` (microseconds).
    /// An entry evicted between finding it and updating it lends the request to the key that
    /// took it over: with idle keys evicted first, that is a key that was just idle, and the
    /// cost is one request of its allowance.
    public func acquire(_ key: UInt64, _ rate: GCRA, now: Int64) -> GCRA.Decision {
        let first = Self.header + Int(key % UInt64(buckets)) * ways * 2
        let tag = Int64(bitPattern: key)
        // Each lost race means another process's update landed, so the loop makes progress;
        // the bound only keeps a pathological schedule from spinning.
        for _ in 0..<64 {
            if let entry = find(tag, first) {
                if let d = update(entry + 1, rate, now: now) { return d }
                continue
            }
            if let entry = claim(tag, first, now: now) {
                if let d = update(entry + 1, rate, now: now) { return d }
            }
        }
        // Still losing: refuse rather than admit a request the shared state has not counted.
        return rate.decision(allowed: false, ahead: rate.tolerance + rate.interval)
    }

    private func find(_ tag: Int64, _ first: Int) -> Int? {
        for w in 0..<ways where slots.load(first + w * 2) == tag { return first + w * 2 }
        return nil
    }

    /// Takes an empty entry, or the one idle longest, for `tag`; nil when another process
    /// changed it first.
    private func claim(_ tag: Int64, _ first: Int, now: Int64) -> Int? {
        var victim = first
        var oldest = Int64.max
        for w in 0..<ways {
            let entry = first + w * 2
            if slots.load(entry) == 0 { victim = entry; oldest = .min; break }
            let tat = slots.load(entry + 1)
            if tat < oldest { oldest = tat; victim = entry }
        }
        let previous = slots.load(victim)
        let previousTAT = slots.load(victim + 1)
        guard slots.compareExchange(victim, expected: previous, desired: tag).exchanged else { return nil }
        // The new key starts idle; the previous key's TAT must not carry over to it. A
        // compare-and-swap, not a store: a process that found the new key in between and
        // already spent from it keeps its update.
        _ = slots.compareExchange(victim + 1, expected: previousTAT, desired: 0)
        if previous != 0 { count(.evictions) }
        return victim
    }

    /// One GCRA step on a TAT slot; nil when another process changed it in between.
    private func update(_ slot: Int, _ rate: GCRA, now: Int64) -> GCRA.Decision? {
        let tat = slots.load(slot)
        let d = rate.decide(tat: tat, now: now)
        guard d.allowed else { return d }
        return slots.compareExchange(slot, expected: tat, desired: d.newTAT).exchanged ? d : nil
    }
}
