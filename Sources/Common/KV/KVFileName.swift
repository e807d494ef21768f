import Crypto
// How DirectoryStore turns arbitrary keys into file names (docs/kv.md, "On disk").
//
// The constraints: any UTF-8 key (slashes, dots, `..`, NUL, emoji) must become one
// plain file name that cannot escape the store, two keys must never share a name,
// and "A" and "a" must stay two files on case-insensitive filesystems (macOS, some
// mounts), which also normalise Unicode. So names use only [a-z0-9_-^%#]: lower-case
// letters, digits, `-` and `_` stand for themselves, an upper-case letter is `^`
// followed by its lower-case form, and every other byte is `%` and two lower-case hex
// digits. Names stay readable (`sub/Alice` is `ns/sub/^alice`), never start with a dot
// (so `.`/`..` and the store's temporary files cannot clash) and are exactly reversible.
//
// Keys whose first segment (before the first `/`) is 1...64 bytes and whose rest is not
// empty live in a directory per segment (`ns/<segment>/<rest>`), so listing a prefix
// like `sub/` reads only that directory. Other keys live in `flat/<key>`.
//
// An escaped name longer than `maxNameBytes` (a long or non-ASCII key) becomes its
// first 100 escaped characters, `#`, and the SHA-256 of the (rest of the) key: still one
// file under NAME_MAX (255); the full key inside the file tells list what it is.

enum KVFileName {
    static let maxKeyBytes = 512
    static let maxSegmentBytes = 64
    static let maxNameBytes = 200
    static let namespaceDirectory = "ns"
    static let flatDirectory = "flat"

    /// Where a key lives, relative to the store's root: the directory and the file name.
    struct Location: Equatable {
        var directory: String   // "ns/<segment>" or "flat"
        var name: String
        var hashed: Bool { name.utf8.contains(UInt8(ascii: "#")) }
        var relativePath: String { directory + "/" + name }
    }

    static func validate(_ key: String) throws(KVError) {
        let n = key.utf8.count
        if n == 0 { throw KVError.invalidKey("empty key") }
        if n > maxKeyBytes { throw KVError.invalidKey("key longer than \(maxKeyBytes) bytes (\(n))") }
    }

    /// The first segment and the rest, when the key belongs in a namespace directory.
    static func split(_ key: [UInt8]) -> (segment: ArraySlice<UInt8>, rest: ArraySlice<UInt8>)? {
        guard let slash = key.firstIndex(of: UInt8(ascii: "/")),
              slash >= 1, slash <= maxSegmentBytes, slash + 1 < key.count else { return nil }
        return (key[..<slash], key[(slash + 1)...])
    }

    static func location(of key: String) -> Location {
        let bytes = Array(key.utf8)
        if let (segment, rest) = split(bytes) {
            return Location(directory: namespaceDirectory + "/" + escape(segment), name: name(rest))
        }
        return Location(directory: flatDirectory, name: name(bytes[...]))
    }

    /// The key's file name within its directory (escaped, or truncated and hashed).
    static func name(_ bytes: ArraySlice<UInt8>) -> String {
        let escaped = escape(bytes)
        if escaped.utf8.count <= maxNameBytes { return escaped }
        // Cut the readable part at an escape boundary, so it is still a valid prefix.
        var cut = 0
        let chars = Array(escaped.utf8)
        while cut < chars.count {
            let width = chars[cut] == UInt8(ascii: "%") ? 3 : chars[cut] == UInt8(ascii: "^") ? 2 : 1
            if cut + width > 100 { break }
            cut += width
        }
        return String(decoding: chars[..<cut], as: UTF8.self) + "#" + Hex.encode(Digest.sha256(Array(bytes)))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func escape(_ bytes: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        for b in bytes {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"):
                out.append(b)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                out.append(UInt8(ascii: "^"))
                out.append(b | 0x20)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes an escaped name stands for; nil for names this encoding never produces
    /// (temporary files, stray files, non-canonical escapes, hashed names).
    static func unescape(_ name: String) -> [UInt8]? {
        let chars = Array(name.utf8)
        guard !chars.isEmpty else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"):
                out.append(c); i += 1
            case UInt8(ascii: "^"):
                guard i + 1 < chars.count, chars[i + 1] >= UInt8(ascii: "a"), chars[i + 1] <= UInt8(ascii: "z") else { return nil }
                out.append(chars[i + 1] & ~0x20); i += 2
            case UInt8(ascii: "%"):
                guard i + 2 < chars.count, let hi = lowerHex(chars[i + 1]), let lo = lowerHex(chars[i + 2]) else { return nil }
                let b = hi << 4 | lo
                // Bytes with a shorter spelling are never written as %xx.
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    return nil
                default: out.append(b)
                }
                i += 3
            default:
                return nil
            }
        }
        return out
    }

    private static func lowerHex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// Writers of one key serialise on one of `lockStripes` lock files chosen by a hash of
    /// the key: a fixed number of files instead of one per key ever written (lock files
    /// can never be deleted safely while another process may be waiting on them).
    static let lockStripes = 4096

    static func lockName(of key: String) -> String {
        var h: UInt64 = 0xcbf29ce484222325   // FNV-1a
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        let n = Int(h % UInt64(lockStripes))
        let digits = Array(String(n, radix: 16).utf8)
        return String(repeating: "0", count: 3 - digits.count) + String(decoding: digits, as: UTF8.self)
    }
}
