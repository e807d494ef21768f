// How DirectoryStore turns keys into file names (Sources/Common/KV/KVFileName.swift).
//
// The input is two keys separated by a 0xFF byte (never part of UTF-8; without one, the
// second key is the first with its case flipped). Properties, beyond "no crash":
//   - validation accepts exactly the keys of 1...512 bytes;
//   - every directory and file name is one plain name: 1...255 bytes of [a-z0-9_^%#-],
//     never starting with '.', so never '.', '..' or a path, and the location is
//     "flat/<name>" or "ns/<segment>/<name>";
//   - the location gives the key back: unescaping an unhashed name (and its segment) yields
//     the key's bytes; a hashed name is a readable prefix of the key, '#', and the SHA-256
//     of exactly the bytes it stands for (so two keys share a file only through a SHA-256
//     collision);
//   - two different keys never get the same location;
//   - a name that unescapes has exactly one spelling (escape(unescape(n)) == n), so a stray
//     file can never alias a stored key when listing;
//   - the lock stripe is three lower-case hex digits.
@testable import Records
@testable import Crypto
@testable import KV

private func isNameByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
         UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "^"), UInt8(ascii: "%"), UInt8(ascii: "#"):
        return true
    default:
        return false
    }
}

private func checkName(_ name: String, _ what: String) {
    let u = Array(name.utf8)
    require(!u.isEmpty && u.count <= 255, "\(what) \(name.debugDescription) has \(u.count) bytes")
    require(u.allSatisfy(isNameByte), "\(what) \(name.debugDescription) has a byte outside [a-z0-9_^%#-]")
    require(u.first != UInt8(ascii: "."), "\(what) starts with a dot")   // implied by the above; stated for the reader
}

/// The key bytes a location stands for, or for a hashed name the readable prefix and hash.
private func check(_ key: String) -> KVFileName.Location? {
    let bytes = Array(key.utf8)
    let valid: Bool
    do { try KVFileName.validate(key); valid = true } catch { valid = false }
    require(valid == (1...KVFileName.maxKeyBytes).contains(bytes.count), "validate(\(bytes.count) bytes) = \(valid)")
    guard valid else { return nil }

    let location = KVFileName.location(of: key)
    let parts = location.relativePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    checkName(location.name, "name")
    var rest = bytes[...]
    switch parts.count {
    case 2:
        require(parts[0] == KVFileName.flatDirectory && parts[1] == location.name, "flat location \(location.relativePath)")
        require(KVFileName.split(bytes) == nil, "a namespaced key stored flat")
    case 3:
        require(parts[0] == KVFileName.namespaceDirectory && parts[2] == location.name, "location \(location.relativePath)")
        checkName(parts[1], "segment directory")
        require(!parts[1].utf8.contains(UInt8(ascii: "#")), "hashed segment directory")
        guard let segment = KVFileName.unescape(parts[1]), let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else {
            require(false, "segment directory \(parts[1]) does not unescape"); return nil
        }
        require(segment.elementsEqual(bytes[..<slash]), "segment directory is not the key's first segment")
        require((1...KVFileName.maxSegmentBytes).contains(segment.count), "segment of \(segment.count) bytes")
        rest = bytes[(slash + 1)...]
        require(!rest.isEmpty, "namespaced key with nothing after the slash")
    default:
        require(false, "location \(location.relativePath) has \(parts.count) parts")
    }

    if location.hashed {
        let name = Array(location.name.utf8)
        let hash = name.firstIndex(of: UInt8(ascii: "#"))!
        require(name.count - hash - 1 == 64, "hash of \(name.count - hash - 1) characters")
        require(Array(name[(hash + 1)...]) == Array(Hex.encode(Digest.sha256(Array(rest))).utf8), "hash is not SHA-256 of the key's bytes")
        let prefix = String(decoding: name[..<hash], as: UTF8.self)
        if !prefix.isEmpty {
            guard let readable = KVFileName.unescape(prefix) else { require(false, "hashed name's prefix does not unescape"); return nil }
            require(rest.starts(with: readable), "hashed name's prefix is not the key's")
        }
        require(KVFileName.unescape(location.name) == nil, "a hashed name unescapes")
        require(KVFileName.escape(rest).utf8.count > KVFileName.maxNameBytes, "hashed a name that fits")
    } else {
        require(KVFileName.unescape(location.name).map { $0.elementsEqual(rest) } == true, "name does not unescape to the key")
    }

    let lock = KVFileName.lockName(of: key)
    require(lock.utf8.count == 3 && lock.utf8.allSatisfy { isNameByte($0) && $0 != UInt8(ascii: "^") }, "lock name \(lock)")
    return location
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let split = input.firstIndex(of: 0xFF)
    let a = String(decoding: input[0..<(split ?? size)], as: UTF8.self)
    let b: String
    if let split {
        b = String(decoding: input[(split + 1)...], as: UTF8.self)
    } else {
        b = String(decoding: a.utf8.map { $0 >= 0x41 && $0 <= 0x5A || $0 >= 0x61 && $0 <= 0x7A ? $0 ^ 0x20 : $0 }, as: UTF8.self)
    }
    let la = check(a), lb = check(b)
    if let la, let lb, la == lb {
        require(a.utf8.elementsEqual(b.utf8), "two keys share \(la.relativePath)")
    }

    // The raw input as a file name found in the store's directory.
    if let name = String(validating: UnsafeBufferPointer(rebasing: input[0..<(split ?? size)]), as: UTF8.self),
       let key = KVFileName.unescape(name) {
        require(KVFileName.escape(key[...]) == name, "\(name.debugDescription) is a second spelling of a key")
    }
    return 0
}
