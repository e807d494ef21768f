/// The store named by a location, as tools take it from `--store` or `EDGEPIPE_KV`:
/// a directory path (or `file://` URL) opens a DirectoryStore, creating the directory
/// when missing; `redis://`, `rediss://` and `redis+unix://` open a RedisStore (URL forms
/// in RedisLocation and docs/scaling.md), which connects lazily on its first operation.
/// The store is wrapped in a MeteredStore when metrics are on.
public func openStore(_ location: String) throws(KVError) -> any KVStore {
    MeteredStore.wrapping(try openBareStore(location))
}

func openBareStore(_ location: String) throws(KVError) -> any KVStore {
    if RedisLocation.isRedisURL(location) {
        return try RedisStore(url: location)
    }
    if location.hasPrefix("file://") {
        return try DirectoryStore(path: String(location.dropFirst("file://".count)))
    }
    if location.contains("://") {
        throw KVError.unavailable("unknown store URL scheme in \(location)")
    }
    return try DirectoryStore(path: location)
}
