#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// The key-value store behind subscriptions, reservations and webhook bookkeeping.
// One protocol, several engines: a directory of files on one machine (the embedded
// default, DirectoryStore) and a networked engine for many machines (Redis, later).
// Tools only ever see `KVStore`, chosen by `openStore(_:)` from a path or URL.

/// One stored value with its bookkeeping.
public struct KVEntry: Equatable, Sendable {
    public var key: String
    /// The value, a JSON document.
    public var value: JSON
    /// Increases by one on every successful write of this key; the first write is 1.
    public var version: Int
    /// Optional metadata stored beside the value (as Workers KV has).
    public var metadata: JSON?
    /// Expiry in Unix seconds; an expired entry reads as absent.
    public var expiresAt: Int?

    public init(key: String, value: JSON, version: Int, metadata: JSON? = nil, expiresAt: Int? = nil) {
        self.key = key; self.value = value; self.version = version
        self.metadata = metadata; self.expiresAt = expiresAt
    }
}

public enum KVError: Error, Equatable, Sendable, CustomStringConvertible {
    /// create-only found the key present (the 409 of the reservation service).
    case exists
    /// compare-and-swap found another version than the one expected.
    case versionMismatch(current: Int?)
    /// The key cannot be stored (empty, too long, not valid).
    case invalidKey(String)
    /// The list cursor is not one this store issued.
    case invalidCursor
    /// The engine cannot be reached or written (disk full, read-only, Redis down): 503.
    case unavailable(String)

    public var description: String {
        switch self {
        case .exists: return "key exists"
        case .versionMismatch(let v): return "version mismatch (current \(v.map(String.init) ?? "absent"))"
        case .invalidKey(let why): return "invalid key: \(why)"
        case .invalidCursor: return "invalid cursor"
        case .unavailable(let why): return "store unavailable: \(why)"
        }
    }
}

public struct KVPage: Equatable, Sendable {
    public var keys: [String]
    /// Pass back to `list` for the next page; nil on the last page.
    public var cursor: String?
    public init(keys: [String], cursor: String?) { self.keys = keys; self.cursor = cursor }
}

public protocol KVStore {
    /// The backend's name in metrics ("directory", "redis").
    var backendName: String { get }
    /// The entry, or nil when absent or expired.
    func get(_ key: String) throws(KVError) -> KVEntry?
    /// Writes unconditionally; returns the stored entry (with its new version).
    @discardableResult
    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry
    /// Writes only when the key is absent (or expired); throws `.exists` otherwise.
    @discardableResult
    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry
    /// Writes only when the current version is `expected` (nil: the key must be absent);
    /// throws `.versionMismatch` otherwise.
    @discardableResult
    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry
    /// Removes the key; returns whether it was present.
    @discardableResult
    func delete(_ key: String) throws(KVError) -> Bool
    /// Keys starting with `prefix`, in byte order, at most `limit`, from `cursor`.
    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage
}

extension KVStore {
    /// Stores of other kinds (test doubles, wrappers) count as "other".
    public var backendName: String { "other" }

    /// Read-modify-write with compare-and-swap, retried on conflict: `transform` gets the
    /// current entry (nil when absent) and returns the new value, or nil to leave it alone.
    /// Returns the entry as stored afterwards.
    @discardableResult
    public func update(_ key: String, attempts: Int = 100,
                       _ transform: (KVEntry?) throws -> JSON?) throws -> KVEntry? {
        for attempt in 0..<attempts {
            let current = try get(key)
            guard let next = try transform(current) else { return current }
            do {
                return try compareAndSwap(key, expected: current?.version, next,
                                          metadata: current?.metadata, expiresAt: current?.expiresAt)
            } catch .versionMismatch {
                // A random pause, growing with each conflict up to 2 ms: without it, writers
                // that collided retry in step and one of them can lose every round on a
                // loaded machine.
                usleep(UInt32.random(in: 0...UInt32(min(2000, 16 << min(attempt, 7)))))
                continue
            }
        }
        throw KVError.unavailable("too much contention on \(key)")
    }
}
