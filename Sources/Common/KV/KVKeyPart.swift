// Ids from outside (a uid from a token or from Stripe's client_reference_id or metadata,
// Stripe's customer and event ids) become parts of keys. Stripe lets a
// client_reference_id be 200 characters (800 bytes of emoji) and a metadata value 500,
// more than a key may hold (512 bytes, KVFileName.maxKeyBytes, for every engine). Such an
// id is stored under a fixed-length digest instead, so no id Stripe can send makes a key
// the store refuses (which would fail the event on every retry). docs/kv.md, "Long ids".

import Crypto

public enum KVKeyPart {
    /// What a hashed part starts with. An id that itself starts with it is hashed too, so
    /// a verbatim id can never equal the hashed form of another.
    public static let hashedMarker = "#sha256:"

    /// `prefix + id` when that is a valid key and `id` does not start with the marker;
    /// else `prefix + "#sha256:" + hex(SHA-256(id's UTF-8 bytes))` (71 bytes after the prefix).
    /// The same function for every engine, and for writer and reader alike.
    public static func key(_ prefix: String, _ id: String) -> String {
        prefix + part(id, maxBytes: KVFileName.maxKeyBytes - prefix.utf8.count)
    }

    /// `id` itself when it fits in `maxBytes` (and does not start with the marker), else its
    /// hashed form. For keys made of several ids, each gets its own share of the room.
    public static func part(_ id: String, maxBytes: Int) -> String {
        if id.utf8.count <= maxBytes && !id.hasPrefix(hashedMarker) { return id }
        return hashedMarker + Hex.encode(Digest.sha256(Array(id.utf8)))
    }
}
