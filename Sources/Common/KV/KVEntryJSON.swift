import Records
extension KVEntry {
    /// The entry as one JSON document, `{"key","version","expires_at","metadata","value"}`:
    /// DirectoryStore's file format and what `kv get --entry` prints.
    public var json: JSON {
        var o = JSONObject()
        o["key"] = .string(key)
        o["version"] = JSON(version)
        o["expires_at"] = expiresAt.map { JSON($0) } ?? JSON.null
        o["metadata"] = metadata ?? JSON.null
        o["value"] = value
        return .object(o)
    }

    /// Whether the entry has expired at `now` (Unix seconds): expiry is exclusive, so an
    /// entry with `expiresAt == now` is already gone.
    public func isExpired(at now: Int) -> Bool {
        guard let t = expiresAt else { return false }
        return t <= now
    }
}
