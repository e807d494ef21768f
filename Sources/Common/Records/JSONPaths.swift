#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A fixed set of paths into a record, each a top-level member's name and then keys into
/// nested objects: `["annotations", "route", "name"]`. Made once; `Record.forEachValue(at:)`
/// then finds every path in one pass over each member's bytes, building only the values
/// found (no tree of the objects around them): a reader that wants a few nested facts
/// per record (http-encode's metrics) pays for a scan, not a parse.
public struct JSONPaths: Sendable {
    public let names: [[String]]
    /// Every key's UTF-8, one after another.
    let bytes: [UInt8]
    /// `stride` entries per path: its key count, then for each depth its key's start and
    /// length in `bytes` and the paths (bits) with the same key there, which match or fail
    /// together: one comparison for them all.
    let table: [Int]
    let stride: Int
    /// Every path's bit.
    let all: UInt64

    /// At most 64 paths, each of at least one key.
    public init(_ paths: [[String]]) {
        precondition(paths.count <= 64 && paths.allSatisfy { !$0.isEmpty }, "JSONPaths: 1 to 64 keys per path, at most 64 paths")
        names = paths
        stride = 1 + 3 * (paths.map { $0.count }.max() ?? 0)
        var bytes: [UInt8] = [], table = [Int](repeating: 0, count: paths.count * stride)
        for (q, keys) in paths.enumerated() {
            table[q * stride] = keys.count
            for (d, key) in keys.enumerated() {
                var same: UInt64 = 0
                for (r, other) in paths.enumerated() where other.count > d && other[d] == key { same |= 1 << r }
                table[q * stride + 1 + 3 * d] = bytes.count
                table[q * stride + 2 + 3 * d] = key.utf8.count
                table[q * stride + 3 + 3 * d] = Int(bitPattern: UInt(same))
                bytes += key.utf8
            }
        }
        self.bytes = bytes
        self.table = table
        all = paths.count == 64 ? ~0 : (1 << UInt64(paths.count)) - 1
    }

    public var count: Int { names.count }
}

extension Record {
    /// Calls `found` with the index (in `paths`) and value of each path present, at most once
    /// per path; a path through something other than an object is absent. Each key is
    /// looked up once for all the paths that name it there (objects are small); a member
    /// still held as the line's bytes is scanned once for all the paths that lead into it
    /// (up to the last one found). Only the values found are built.
    public func forEachValue(at paths: JSONPaths, _ found: (Int, JSON) -> Void) {
        paths.bytes.withUnsafeBufferPointer { keyBytes in
            paths.table.withUnsafeBufferPointer { table in
                let walk = TreePathWalk(keyBytes: keyBytes, table: table, stride: paths.stride, names: paths.names)
                walk.members(object, depth: 0, alive: paths.all, found)
            }
        }
    }

    /// The values at `paths`, in order; nil where absent.
    public func values(at paths: JSONPaths) -> [JSON?] {
        var out = [JSON?](repeating: nil, count: paths.count)
        forEachValue(at: paths) { out[$0] = $1 }
        return out
    }
}

/// The walk over parsed members (those a filter has set), handing members still held as
/// bytes to a RawPathScan.
private struct TreePathWalk {
    let keyBytes: UnsafeBufferPointer<UInt8>
    let table: UnsafeBufferPointer<Int>
    let stride: Int
    let names: [[String]]

    /// An object in which the paths of `alive` have matched `depth` keys: each key named
    /// next is looked up once, for all the paths that name it (an object has few members).
    func members(_ object: JSONObject, depth: Int, alive: UInt64, _ found: (Int, JSON) -> Void) {
        var rest = alive
        while rest != 0 {
            let q = rest.trailingZeroBitCount
            let together = UInt64(UInt(bitPattern: table[q * stride + 3 + 3 * depth])) & rest
            rest &= ~together
            guard let i = object.index(of: names[q][depth]) else { continue }
            // In place: a copy of the member would retain and release its key and value.
            switch object.members[i].storage {
            case .raw(let raw):
                raw.withBytes { bytes in
                    var scan = RawPathScan(p: bytes, keyBytes: keyBytes, table: table, stride: stride, pending: together)
                    scan.value(depth: depth + 1, alive: together, found)
                }
            case .value(let value):
                self.value(value, depth: depth + 1, alive: together, found)
            }
        }
    }

    func value(_ value: JSON, depth: Int, alive: UInt64, _ found: (Int, JSON) -> Void) {
        var bits = alive, deeper: UInt64 = 0
        while bits != 0 {
            let q = bits.trailingZeroBitCount
            bits &= bits - 1
            if table[q * stride] == depth { found(q, value) } else { deeper |= 1 << q }
        }
        if deeper != 0, case .object(let o) = value { members(o, depth: depth, alive: deeper, found) }
    }
}

/// One pass over a raw value's bytes: validated and canonical (JSONRaw), so no whitespace,
/// every string closed and escapes only the writer's. Nothing is checked again here.
private struct RawPathScan {
    let p: UnsafeBufferPointer<UInt8>
    let keyBytes: UnsafeBufferPointer<UInt8>
    let table: UnsafeBufferPointer<Int>
    let stride: Int
    /// The paths not found yet: none left, the scan stops.
    var pending: UInt64
    var i = 0

    init(p: UnsafeBufferPointer<UInt8>, keyBytes: UnsafeBufferPointer<UInt8>, table: UnsafeBufferPointer<Int>, stride: Int,
         pending: UInt64) {
        self.p = p; self.keyBytes = keyBytes; self.table = table; self.stride = stride; self.pending = pending
    }

    /// The value at `i`, where the paths of `alive` have matched `depth` keys so far.
    mutating func value(depth: Int, alive: UInt64, _ found: (Int, JSON) -> Void) {
        let start = i
        var leaf: UInt64 = 0, deeper: UInt64 = 0
        var bits = alive
        while bits != 0 {
            let q = bits.trailingZeroBitCount
            bits &= bits - 1
            if table[q * stride] == depth { leaf |= 1 << q } else { deeper |= 1 << q }
        }
        // A leaf is pending until built below, so an early stop never cuts its bytes short.
        if deeper != 0, p[i] == UInt8(ascii: "{") { object(depth: depth, alive: deeper, found) } else { skip() }
        if leaf != 0 {
            let v = Self.build(UnsafeBufferPointer(rebasing: p[start..<i]))
            pending &= ~leaf
            while leaf != 0 {
                found(leaf.trailingZeroBitCount, v)
                leaf &= leaf - 1
            }
        }
    }

    /// An object at `i`: each member whose key is the next key of some alive path is
    /// followed, the others skipped.
    private mutating func object(depth: Int, alive: UInt64, _ found: (Int, JSON) -> Void) {
        i += 1
        if p[i] == UInt8(ascii: "}") { i += 1; return }
        while true {
            let keyStart = i + 1
            let escaped = string()
            let key = UnsafeBufferPointer(rebasing: p[keyStart..<(i - 1)])
            i += 1   // ':'
            var matched: UInt64 = 0
            var rest = alive
            while rest != 0 {
                let k = rest.trailingZeroBitCount * stride + 1 + 3 * depth
                let together = UInt64(UInt(bitPattern: table[k + 2])) & rest
                rest &= ~together
                if table[k + 1] == key.count || escaped,
                   same(key, escaped: escaped, UnsafeBufferPointer(rebasing: keyBytes[table[k]..<(table[k] + table[k + 1])])) {
                    matched |= together
                }
            }
            if matched != 0 {
                value(depth: depth + 1, alive: matched, found)
                if pending == 0 { return }
            } else {
                skip()
            }
            if p[i] == UInt8(ascii: "}") { i += 1; return }
            i += 1   // ','
        }
    }

    /// Past the string whose opening quote is at `i`; whether it has escapes. A byte loop:
    /// keys and the values read are short.
    private mutating func string() -> Bool {
        let base = p.baseAddress!
        var j = i + 1, escaped = false
        while true {
            let b = base[j]
            if b == UInt8(ascii: "\"") { break }
            if b == UInt8(ascii: "\\") { escaped = true; j += 2 } else { j += 1 }
        }
        i = j + 1
        return escaped
    }

    /// Past the value at `i`.
    private mutating func skip() {
        let base = p.baseAddress!
        switch base[i] {
        case UInt8(ascii: "\""): _ = string()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var nesting = 0
            repeat {
                switch base[i] {
                case UInt8(ascii: "\""): _ = string(); continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): nesting += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"): nesting -= 1
                default: break
                }
                i += 1
            } while nesting > 0
        default:   // number or literal: up to the next delimiter
            var j = i
            while j < p.count {
                let b = base[j]
                if b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") { break }
                j += 1
            }
            i = j
        }
    }

    /// Whether a key's content equals `wanted` (escaped keys are decoded first: rare).
    private func same(_ key: UnsafeBufferPointer<UInt8>, escaped: Bool, _ wanted: UnsafeBufferPointer<UInt8>) -> Bool {
        if !escaped {
            return key.count == wanted.count && (wanted.isEmpty || memcmp(key.baseAddress!, wanted.baseAddress!, wanted.count) == 0)
        }
        let literal = UnsafeBufferPointer(start: key.baseAddress! - 1, count: key.count + 2)   // the quotes too
        guard let s = (try? JSONReader.parse(literal))?.string else { return false }
        return s.utf8.elementsEqual(wanted)
    }

    /// The value of validated bytes: strings without escapes and numbers straight from the
    /// bytes, anything else parsed.
    private static func build(_ v: UnsafeBufferPointer<UInt8>) -> JSON {
        let first = v[0]
        if first == UInt8(ascii: "\""), memchr(v.baseAddress!, Int32(UInt8(ascii: "\\")), v.count) == nil {
            return .string(String(decoding: UnsafeBufferPointer(rebasing: v[1..<(v.count - 1)]), as: UTF8.self))
        }
        if first == UInt8(ascii: "-") || first &- UInt8(ascii: "0") < 10 {
            return .number(String(decoding: v, as: UTF8.self))
        }
        return (try? JSONReader.parse(v)) ?? .null
    }
}

extension Record {
    /// The integer `key` when it is the first member of the object `member`: a writer that
    /// puts a field every response needs first (http-decode's `access.received_us`) lets
    /// its reader take it without a scan. nil when it is not there, or not an integer of
    /// plain digits; the caller then looks the path up the general way.
    public func leadingInt(of member: String, key: StaticString) -> Int? {
        guard let i = object.index(of: member) else { return nil }
        switch object.members[i].storage {
        case .raw(let raw):
            return raw.withBytes { p -> Int? in
                // `{"key":digits`, then `,` or `}`: canonical bytes (JSONRaw) have no spaces.
                let k = key.utf8CodeUnitCount
                guard p.count > k + 4, p[0] == UInt8(ascii: "{"), p[1] == UInt8(ascii: "\""),
                      memcmp(p.baseAddress! + 2, key.utf8Start, k) == 0,
                      p[k + 2] == UInt8(ascii: "\""), p[k + 3] == UInt8(ascii: ":"),
                      let (n, end) = JSON.leadingDigits(p, from: k + 4), end < p.count,
                      p[end] == UInt8(ascii: ",") || p[end] == UInt8(ascii: "}") else { return nil }
                return n
            }
        case .value(let value):
            guard let first = value.object?.members.first,
                  first.key.utf8.elementsEqual(UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)),
                  case .number(let text) = first.value else { return nil }
            return JSON.plainDigits(text)
        }
    }

    private static let routeNamePath = JSONPaths([["annotations", AnnotationKey.route, "name"]])

    /// annotations.route.name, as `route` wrote it: read from the line's bytes without
    /// parsing the route's params (most filters ask only which route a request is).
    public var routeName: String? { values(at: Self.routeNamePath)[0]?.string }
}
