#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto
import SharedMemory

/// A store whose writes are made durable together: reads see every write of the group at
/// once, other processes see none of them until `commit` returns, and then each key holds
/// its old value or its new one (never a part), even after a crash in the middle.
/// Replays use it to pay one round of fsyncs per group of events instead of per write.
public protocol KVWriteGroup: KVStore {
    /// Makes every write since the last commit durable. On a throw, some keys may hold
    /// their new value and others their old one: the caller must not report the group as
    /// done (a re-run of idempotent writes converges).
    func commit() throws(KVError)
    /// Drops the writes not yet committed (after a failure), releasing their locks.
    func abandon()
}

/// A write group over `store`. For a DirectoryStore, writes are staged in temporary files
/// and renamed into place at commit, keys with a prefix in `publishLast` after all the
/// others are durable (a "done" marker must never exist without what it marks) and
/// removals last of all. Any other engine writes through, one durable write at a time:
/// correct, not faster.
public func writeGroup(over store: any KVStore, publishLast: [String] = []) -> any KVWriteGroup {
    // Grouped writes go to the directory itself: counted as one "batch" per group.
    if let directory = (store as? MeteredStore)?.inner as? DirectoryStore ?? store as? DirectoryStore {
        if let metered = store as? MeteredStore {
            metered.metrics.add(slot: metered.slots.batch)
        }
        return DirectoryWriteGroup(directory, publishLast: publishLast)
    }
    return WriteThroughGroup(store)
}

/// Every write durable on its own, as the engine does it; commit has nothing left to do.
final class WriteThroughGroup: KVWriteGroup {
    let store: any KVStore
    init(_ store: any KVStore) { self.store = store }
    var backendName: String { store.backendName }

    func get(_ key: String) throws(KVError) -> KVEntry? { try store.get(key) }
    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try store.put(key, value, metadata: metadata, expiresAt: expiresAt)
    }
    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try store.create(key, value, metadata: metadata, expiresAt: expiresAt)
    }
    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try store.compareAndSwap(key, expected: expected, value, metadata: metadata, expiresAt: expiresAt)
    }
    func delete(_ key: String) throws(KVError) -> Bool { try store.delete(key) }
    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        try store.list(prefix: prefix, limit: limit, cursor: cursor)
    }
    func commit() throws(KVError) {}
    func abandon() {}
}

/// Grouped writes on a DirectoryStore. Each written key's lock stripe stays held from its
/// first write to the end of the group, so compare-and-swap stays exact against other
/// processes (which see the old value until commit). A group first takes the store-wide
/// `locks/group` lock: two groups never hold stripes against each other, and a single
/// write holds one stripe and waits for nothing else while it does, so nobody deadlocks.
///
/// Commit: fsync every temporary file, rename the ordinary keys into place (in the order
/// of their first write) and fsync their directories, then the same for `publishLast`
/// keys, then unlink the removed keys and fsync their directories.
final class DirectoryWriteGroup: KVWriteGroup {
    let store: DirectoryStore
    var backendName: String { store.backendName }
    let publishLast: [String]

    private struct Staged {
        var location: KVFileName.Location
        /// nil: removed.
        var entry: KVEntry?
        /// The temporary file holding `entry`, to be renamed over the key's file.
        var temporary: String?
    }
    private var staged: [String: Staged] = [:]
    private var order: [String] = []
    private var groupLock: DirectoryStore.Lock?
    private var stripes: [String: DirectoryStore.Lock] = [:]

    init(_ store: DirectoryStore, publishLast: [String]) {
        self.store = store
        self.publishLast = publishLast
    }

    deinit { abandon() }

    // MARK: Reading: the group's own writes first

    func get(_ key: String) throws(KVError) -> KVEntry? {
        guard let s = staged[key] else { return try store.get(key) }
        guard let entry = s.entry, store.isLive(entry) else { return nil }
        return entry
    }

    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        let limit = max(1, min(limit, 10_000))
        guard staged.keys.contains(where: { $0.hasPrefix(prefix) }) else {
            return try store.list(prefix: prefix, limit: limit, cursor: cursor)
        }
        // Rare (a group that parks and drains one customer's events): merge it all.
        var keys = Set<String>()
        var next = cursor
        repeat {
            let page = try store.list(prefix: prefix, limit: 10_000, cursor: next)
            keys.formUnion(page.keys)
            next = page.cursor
        } while next != nil
        let after = cursor.flatMap { Hex.decode($0) }
        for (key, s) in staged where key.hasPrefix(prefix) {
            if let entry = s.entry, store.isLive(entry),
               after.map({ $0.lexicographicallyPrecedes(Array(key.utf8)) }) ?? true {
                keys.insert(key)
            } else {
                keys.remove(key)
            }
        }
        let sorted = keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        let page = sorted.prefix(limit).map { String(decoding: $0, as: UTF8.self) }
        return KVPage(keys: page, cursor: sorted.count > limit ? Hex.encode(Array(page.last!.utf8)) : nil)
    }

    // MARK: Writing: staged

    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try stage(key) { (_: KVEntry?) throws(KVError) -> DirectoryStore.Change in .write(value, metadata, expiresAt) }!
    }

    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try stage(key) { (stored: KVEntry?) throws(KVError) -> DirectoryStore.Change in
            if let stored, store.isLive(stored) { throw KVError.exists }
            return .write(value, metadata, expiresAt)
        }!
    }

    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try stage(key) { (stored: KVEntry?) throws(KVError) -> DirectoryStore.Change in
            let current = stored.flatMap { store.isLive($0) ? $0.version : nil }
            guard current == expected else { throw KVError.versionMismatch(current: current) }
            return .write(value, metadata, expiresAt)
        }!
    }

    func delete(_ key: String) throws(KVError) -> Bool {
        var present = false
        try stage(key) { (stored: KVEntry?) throws(KVError) -> DirectoryStore.Change in
            guard let stored else { return .none }
            present = store.isLive(stored)
            return .remove
        }
        return present
    }

    /// As DirectoryStore.modify, except that the change goes to a temporary file (not
    /// fsynced) and the lock is kept until the end of the group.
    @discardableResult
    private func stage(_ key: String, _ decide: (KVEntry?) throws(KVError) -> DirectoryStore.Change) throws(KVError) -> KVEntry? {
        try KVFileName.validate(key)
        let location = KVFileName.location(of: key)
        let stripe = KVFileName.lockName(of: key)
        try lock(stripe)
        let previous = staged[key]
        let stored: KVEntry?
        if let previous { stored = previous.entry } else { stored = try store.readEntry(key, at: location) }
        var next = Staged(location: location)
        switch try decide(stored) {
        case .none:
            return stored
        case .remove:
            break
        case .write(let value, let metadata, let expiresAt):
            let entry = KVEntry(key: key, value: value, version: (stored?.version ?? 0) + 1,
                                metadata: metadata.flatMap { $0.isNull ? nil : $0 }, expiresAt: expiresAt)
            next.entry = entry
            next.temporary = try store.writeTemporary(location, DirectoryStore.encode(entry), lock: stripe, sync: false)
        }
        if let old = previous?.temporary { unlink(old) }
        if previous == nil { order.append(key) }
        staged[key] = next
        return next.entry
    }

    private func lock(_ stripe: String) throws(KVError) {
        if stripes[stripe] != nil { return }
        if groupLock == nil { groupLock = try DirectoryStore.Lock(store.root + "/locks/group", root: store.root) }
        stripes[stripe] = try DirectoryStore.Lock(store.root + "/locks/" + stripe, root: store.root)
    }

    // MARK: Commit

    func commit() throws(KVError) {
        defer { abandon() }
        for key in order {
            guard let temporary = staged[key]?.temporary else { continue }
            try Self.sync(temporary)
        }
        let writes = order.filter { staged[$0]?.entry != nil }
        let last = writes.filter { key in publishLast.contains { key.hasPrefix($0) } }
        let first = writes.filter { key in !publishLast.contains { key.hasPrefix($0) } }
        for phase in [first, last] {
            var directories: [String] = []
            for key in phase {
                guard var s = staged[key], let temporary = s.temporary else { continue }
                try store.publish(temporary, at: s.location)
                s.temporary = nil
                staged[key] = s
                if !directories.contains(s.location.directory) { directories.append(s.location.directory) }
            }
            for directory in directories { try DirectoryStore.syncDirectory(store.root + "/" + directory) }
        }
        var directories: [String] = []
        for key in order {
            guard let s = staged[key], s.entry == nil else { continue }
            if unlink(store.root + "/" + s.location.relativePath) != 0 && errno != ENOENT {
                throw KVError.unavailable("cannot delete \(s.location.relativePath): \(errnoText(errno))")
            }
            if !directories.contains(s.location.directory) { directories.append(s.location.directory) }
        }
        for directory in directories { try DirectoryStore.syncDirectory(store.root + "/" + directory) }
    }

    func abandon() {
        for s in staged.values { if let t = s.temporary { unlink(t) } }
        staged = [:]
        order = []
        for l in stripes.values { l.release() }
        stripes = [:]
        groupLock?.release()
        groupLock = nil
    }

    private static func sync(_ path: String) throws(KVError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KVError.unavailable("cannot open \(path): \(errnoText(errno))") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw KVError.unavailable("cannot sync \(path): \(errnoText(errno))") }
    }
}
