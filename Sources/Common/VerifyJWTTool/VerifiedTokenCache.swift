#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto

/// The last few tokens that verified. A keep-alive connection (one verify-jwt process) sends
/// the same token with every request; remembering it saves an RSA verification, the JSON of
/// the token and the claim checks on each request after the first.
///
/// An entry answers only for the exact token bytes, only while `now` is in [the time it was
/// verified, its `exp`), and only while the key store still hands out the very verifier that
/// checked it: a key set reloaded, rotated or without the kid gives another verifier or
/// none, and the token is then verified again from scratch. Refusals are never stored.
/// Bounded: the oldest entry makes room for a new one.
struct VerifiedTokenCache {
    struct Entry {
        let token: [UInt8]
        /// The token's last 8 bytes (signature bytes, unlike the shared header and claims
        /// prefix of one issuer's tokens): a miss costs a comparison per entry, not a memcmp.
        fileprivate(set) var tail: UInt64 = 0
        let subject: String
        let claims: JSONObject
        let keyID: String
        let algorithm: SignatureAlgorithm
        /// Held, so no other verifier can be allocated at its address while the entry lives.
        let verifier: SignatureVerifier
        let verifiedAt: Int
        let expiresAt: Double
    }

    static let defaultCapacity = 32
    let capacity: Int
    private var entries: [Entry] = []
    private var oldest = 0
    /// Lookups answered from the cache (for tests and measurements).
    private(set) var hits = 0

    init(capacity: Int = defaultCapacity) {
        self.capacity = max(capacity, 1)
    }

    var count: Int { entries.count }

    /// The entry for exactly `token` when `now` is within its window; the caller still checks
    /// that its key is current (`isCurrent`).
    mutating func lookup(_ token: UnsafeBufferPointer<UInt8>, now: Int,
                         isCurrent: (Entry) -> Bool) -> Entry? {
        guard let i = index(of: token) else { return nil }
        let entry = entries[i]
        guard now >= entry.verifiedAt, Double(now) < entry.expiresAt, isCurrent(entry) else { return nil }
        hits += 1
        return entry
    }

    mutating func insert(_ entry: Entry) {
        var entry = entry
        entry.tail = entry.token.withUnsafeBufferPointer { Self.tail($0) }
        let found = entry.token.withUnsafeBufferPointer { index(of: $0) }
        if let found {
            entries[found] = entry
        } else if entries.count < capacity {
            entries.append(entry)
        } else {
            entries[oldest] = entry
            oldest = (oldest + 1) % capacity
        }
    }

    private func index(of token: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = token.baseAddress, token.count > 0 else { return nil }
        let tail = Self.tail(token)
        for i in entries.indices where entries[i].tail == tail {
            let matches = entries[i].token.withUnsafeBufferPointer { stored in
                stored.count == token.count && memcmp(stored.baseAddress!, base, token.count) == 0
            }
            if matches { return i }
        }
        return nil
    }

    private static func tail(_ token: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var value = UInt64(token.count)
        for b in token.suffix(8) { value = value << 8 | UInt64(b) }
        return value
    }
}
