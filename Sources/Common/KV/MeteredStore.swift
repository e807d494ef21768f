import Records
import SharedMemory

/// A store that counts its operations and failures in the machine's metrics
/// (edgepipe_store_operations_total, edgepipe_store_errors_total), by backend. `openStore`
/// returns one around every store when metrics are on. Only `.unavailable` is an error:
/// `.exists` and `.versionMismatch` are answers, an invalid key is the caller's.
public final class MeteredStore: KVStore {
    public var backendName: String { inner.backendName }

    public let inner: any KVStore
    let metrics: Metrics
    /// This backend's series, addressed once: counting an operation is one atomic add.
    let slots: Slots

    struct Slots {
        let get, put, create, compareAndSwap, delete, list, batch, errors: Int
    }

    public init(_ inner: any KVStore, metrics: Metrics) {
        self.inner = inner
        self.metrics = metrics
        // Asked of the store, not found by casting it: a dynamic cast to a class costs a
        // runtime type look-up at every start.
        let backend = MetricsLayout.backends.firstIndex(of: inner.backendName) ?? MetricsLayout.backends.count - 1
        let operations = metrics.layout.storeOperations.series
        func slot(_ operation: String) -> Int {
            operations.slot(backend, MetricsLayout.storeOperations.firstIndex(of: operation) ?? 0)
        }
        slots = Slots(get: slot("get"), put: slot("put"), create: slot("create"), compareAndSwap: slot("compare_and_swap"),
                      delete: slot("delete"), list: slot("list"), batch: slot("batch"),
                      errors: metrics.layout.storeErrors.series.slot(backend))
    }

    /// `store`, counted when metrics are on.
    public static func wrapping(_ store: any KVStore, metrics: Metrics? = Metrics.shared) -> any KVStore {
        guard let metrics else { return store }
        return MeteredStore(store, metrics: metrics)
    }

    private func counted<T>(_ slot: Int, _ body: () throws(KVError) -> T) throws(KVError) -> T {
        metrics.add(slot: slot)
        do {
            return try body()
        } catch {
            if case .unavailable = error { metrics.add(slot: slots.errors) }
            throw error
        }
    }

    public func get(_ key: String) throws(KVError) -> KVEntry? {
        try counted(slots.get) { () throws(KVError) in try inner.get(key) }
    }
    public func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try counted(slots.put) { () throws(KVError) in try inner.put(key, value, metadata: metadata, expiresAt: expiresAt) }
    }
    public func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try counted(slots.create) { () throws(KVError) in try inner.create(key, value, metadata: metadata, expiresAt: expiresAt) }
    }
    public func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try counted(slots.compareAndSwap) { () throws(KVError) in
            try inner.compareAndSwap(key, expected: expected, value, metadata: metadata, expiresAt: expiresAt)
        }
    }
    public func delete(_ key: String) throws(KVError) -> Bool {
        try counted(slots.delete) { () throws(KVError) in try inner.delete(key) }
    }
    public func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        try counted(slots.list) { () throws(KVError) in try inner.list(prefix: prefix, limit: limit, cursor: cursor) }
    }
}
