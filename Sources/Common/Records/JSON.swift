// A small, strict JSON value, reader and writer.
//
// Every request crosses every filter, so this is the hot path of the whole service.
// Foundation's JSONSerialization is several times slower than `jq -c .` and costs
// milliseconds of start-up; this reader works on raw bytes and keeps numbers as
// their source text so that values a filter does not touch pass through unchanged.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A JSON value. Objects keep their members in order, so records round-trip
/// byte for byte apart from what a filter changes.
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's source text, exactly as read (validated against the JSON grammar).
    case number(String)
    case string(String)
    case array([JSON])
    case object(JSONObject)

    public init(_ value: Int) { self = .number(String(value)) }
    public init(_ value: String) { self = .string(value) }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var object: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// An integer value; nil for non-numbers, fractions, exponents and out-of-range values.
    public var int: Int? {
        guard case .number(let text) = self else { return nil }
        // Most numbers in records are a few plain digits (statuses, times): read those
        // here, and leave signs, fractions, exponents and long ones to the full parser.
        return Self.plainDigits(text) ?? Int(text)
    }

    /// The value of 1 to 18 ASCII digits, nothing else (no sign, point or exponent, and
    /// never more than an Int holds); nil for anything else.
    static func plainDigits(_ text: String) -> Int? {
        var text = text
        return text.withUTF8 { b in Self.leadingDigits(b, from: 0).flatMap { $0.end == b.count ? $0.value : nil } }
    }

    /// The 1 to 18 ASCII digits at `from`, and where they end; nil when there are none, or
    /// more than 18 (more than an Int always holds).
    static func leadingDigits(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> (value: Int, end: Int)? {
        var n = 0, j = from
        while j < b.count, b[j] &- UInt8(ascii: "0") < 10 {
            guard j - from < 18 else { return nil }
            n = n * 10 + Int(b[j] &- UInt8(ascii: "0"))
            j += 1
        }
        return j > from ? (n, j) : nil
    }

    /// A numeric value as a Double (JSON numbers with fractions or exponents included).
    public var double: Double? {
        guard case .number(let text) = self else { return nil }
        return Double(text)
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let o) = self else { return nil }
        return o[key]
    }
}

/// An ordered JSON object. Records are small, so a linear scan beats hashing.
public struct JSONObject: Equatable, Sendable {
    /// One member. A member read from a record line (`Record.parse`) keeps its value as
    /// the line's bytes until someone reads it: a filter touches two or three of a
    /// record's fields, and the rest (headers with a 1 KB token, a body) then cost a
    /// validation scan and a copy instead of a tree of Strings and Arrays.
    public struct Member: Equatable, Sendable {
        public var key: String
        var storage: Storage

        enum Storage: Sendable {
            case value(JSON)
            case raw(JSONRaw)
        }

        public init(_ key: String, _ value: JSON) { self.key = key; storage = .value(value) }
        init(_ key: String, raw: JSONRaw) { self.key = key; storage = .raw(raw) }

        /// Reading a raw member parses its bytes (each time: values are small and most
        /// are read once); assigning replaces them.
        public var value: JSON {
            get {
                switch storage {
                case .value(let v): return v
                case .raw(let r): return r.json
                }
            }
            set { storage = .value(newValue) }
        }

        public static func == (a: Member, b: Member) -> Bool {
            guard a.key == b.key else { return false }
            // Raw bytes are canonical (see JSONRaw): equal bytes, equal values, and back.
            if case .raw(let x) = a.storage, case .raw(let y) = b.storage { return x.hasSameBytes(as: y) }
            return a.value == b.value
        }
    }
    public var members: [Member]

    public init() { members = [] }
    public init(_ members: [Member]) { self.members = members }
    public init(_ pairs: [(String, JSON)]) { members = pairs.map { Member($0.0, $0.1) } }

    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }

    public func index(of key: String) -> Int? {
        // Lengths first: a String comparison of two different short keys is a runtime
        // call, and a lookup passes most of a record's keys.
        let n = key.utf8.count
        return members.firstIndex { $0.key.utf8.count == n && $0.key == key }
    }

    /// Reading returns the member's value; assigning replaces it in place, appends a new
    /// member, or (with nil) removes it.
    public subscript(key: String) -> JSON? {
        get { index(of: key).map { members[$0].value } }
        set {
            if let i = index(of: key) {
                if let v = newValue { members[i].value = v } else { members.remove(at: i) }
            } else if let v = newValue {
                members.append(Member(key, v))
            }
        }
    }

    /// The member itself, raw bytes and all: copying it into another object is a copy of
    /// a reference, not a parse and a re-serialisation.
    public func member(_ key: String) -> Member? {
        index(of: key).map { members[$0] }
    }

    /// The bytes of a member still held raw, for readers that scan instead of parsing
    /// (Record.header). nil when absent or already parsed.
    func withRawBytes<R>(of key: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R?? {
        guard let i = index(of: key) else { return nil }
        guard case .raw(let raw) = members[i].storage else { return .some(nil) }
        return .some(raw.withBytes(body))
    }
}

/// A validated value's bytes inside the line it was read from. Only values whose bytes
/// are exactly what the writer would produce (no whitespace, no escapes but the writer's
/// own) are kept raw, so writing a raw member is a copy, equal bytes mean equal values,
/// and a record serialises the same whether its members were parsed or not.
struct JSONRaw: Sendable {
    let source: [UInt8]
    let start: Int32
    let end: Int32

    init(_ source: [UInt8], _ start: Int, _ end: Int) {
        self.source = source
        self.start = Int32(truncatingIfNeeded: start)
        self.end = Int32(truncatingIfNeeded: end)
    }

    var count: Int { Int(end - start) }

    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        source.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[Int(start)..<Int(end)])) }
    }

    var json: JSON {
        withBytes { bytes in
            do {
                return try JSONReader.parse(bytes)
            } catch {
                // Unreachable: the bytes were validated by the same scanner when read.
                assertionFailure("raw JSON no longer parses: \(error)")
                return .null
            }
        }
    }

    func hasSameBytes(as other: JSONRaw) -> Bool {
        guard count == other.count else { return false }
        return withBytes { a in
            other.withBytes { b in a.baseAddress == b.baseAddress || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
        }
    }

    func write(into out: inout JSONOutput) {
        withBytes { out.append($0) }
    }
}

public struct JSONError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public let offset: Int
    /// The key, when the error is a key repeated in the top-level object: a service can
    /// then name the field sent twice.
    public var duplicateTopLevelKey: String?
    public init(_ message: String, at offset: Int) { self.message = message; self.offset = offset }
    public var description: String { "\(message) at byte \(offset)" }
}

// MARK: - Reading

public struct JSONReader {
    /// Nesting deeper than this is refused: records are shallow and a deep document
    /// is either an attack or a bug.
    public static let defaultMaxDepth = 64

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        try bytes.withUnsafeBufferPointer { buffer throws(JSONError) in
            try parse(buffer, maxDepth: maxDepth)
        }
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    public static func parse(_ buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { throw JSONError("unexpected end of input", at: 0) }
        var reader = JSONReader(base: base, count: buffer.count, maxDepth: maxDepth)
        reader.skipWhitespace()
        let value = try reader.readValue(depth: 0)
        reader.skipWhitespace()
        if reader.position != buffer.count {
            throw JSONError("unexpected data after the JSON value", at: reader.position)
        }
        return value
    }

    /// Reads a record line: the whole line is validated as strictly as `parse` does, but
    /// the top-level members keep their bytes (in `source`, shared) until they are read.
    /// nil when the line is valid JSON but not an object.
    static func parseObject(source: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONObject? {
        try source.withUnsafeBufferPointer { buffer throws(JSONError) -> JSONObject? in
            guard let base = buffer.baseAddress, !buffer.isEmpty else { throw JSONError("unexpected end of input", at: 0) }
            var reader = JSONReader(base: base, count: buffer.count, maxDepth: maxDepth)
            reader.keys.reserveCapacity(32)
            reader.skipWhitespace()
            guard reader.position < reader.count, base[reader.position] == UInt8(ascii: "{") else {
                // Not an object: parse it all for the right error, if there is one.
                _ = try parse(buffer, maxDepth: maxDepth)
                return nil
            }
            let object = try reader.readRecordObject(source: source)
            reader.skipWhitespace()
            if reader.position != buffer.count {
                throw JSONError("unexpected data after the JSON value", at: reader.position)
            }
            return object
        }
    }

    /// The value of `key` in the raw bytes of an object that was validated and kept raw
    /// (JSONRaw), parsing that value only; nil when absent or not an object.
    static func member(_ key: String, ofRawObject buffer: UnsafeBufferPointer<UInt8>) -> JSON? {
        guard let base = buffer.baseAddress, buffer.count >= 2, base[0] == UInt8(ascii: "{"),
              base[1] != UInt8(ascii: "}") else { return nil }
        var reader = JSONReader(base: base, count: buffer.count, maxDepth: defaultMaxDepth)
        reader.position = 1
        var key = key
        return key.withUTF8 { wanted -> JSON? in
            while true {
                guard let scan = try? reader.scanString() else { return nil }
                reader.position += 1   // ':' (canonical: no whitespace)
                let matches = scan.escaped
                    ? reader.makeString(scan) == String(decoding: wanted, as: UTF8.self)
                    : scan.end - scan.start == wanted.count
                        && (wanted.isEmpty || memcmp(base + scan.start, wanted.baseAddress!, wanted.count) == 0)
                if matches { return try? reader.readValue(depth: 1) }
                guard (try? reader.skipValue(depth: 1)) != nil, reader.position < reader.count,
                      base[reader.position] == UInt8(ascii: ",") else { return nil }
                reader.position += 1
            }
        }
    }

    /// A key's bytes, for duplicate checks without making Strings.
    private struct KeySpan {
        var start: Int
        var end: Int
        var escaped: Bool
    }

    /// What a string scan found: its content's range (quotes excluded) and whether it can
    /// be used as is.
    private struct StringScan {
        var start: Int
        var end: Int
        var escaped = false
        /// Escapes other than the writer's own (`\"`, `\\`, `\n`, `\r`, `\t`, `\u00xx`
        /// for other control characters).
        var canonical = true
    }

    private let base: UnsafePointer<UInt8>
    private let count: Int
    private let maxDepth: Int
    private var position = 0
    private var keys: [KeySpan] = []

    private init(base: UnsafePointer<UInt8>, count: Int, maxDepth: Int) {
        self.base = base
        self.count = count
        self.maxDepth = maxDepth
    }

    /// Returns whether it skipped anything (whitespace makes a value non-canonical).
    @discardableResult
    private mutating func skipWhitespace() -> Bool {
        let start = position
        while position < count {
            switch base[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return position != start
            }
        }
        return position != start
    }

    private func fail(_ message: String) -> JSONError { JSONError(message, at: position) }

    // MARK: Building values

    private mutating func readValue(depth: Int) throws(JSONError) -> JSON {
        guard position < count else { throw fail("unexpected end of input") }
        switch base[position] {
        case UInt8(ascii: "{"): return try readObject(depth: depth + 1)
        case UInt8(ascii: "["): return try readArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = position
            try scanNumber()
            return .number(String(decoding: UnsafeBufferPointer(start: base + start, count: position - start), as: UTF8.self))
        default: throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONError) {
        let n = literal.utf8CodeUnitCount
        guard position + n <= count else { throw fail("unexpected end of input") }
        if memcmp(base + position, literal.utf8Start, n) != 0 { throw fail("invalid literal") }
        position += n
    }

    /// Reads one key and refuses it when the object (whose keys start at `first` in
    /// `keys`) already has it. Duplicate keys are refused: two filters reading different
    /// copies of "id" or "status" is exactly the kind of confusion an attacker wants.
    private mutating func readKey(objectKeysFrom first: Int, topLevel: Bool = false) throws(JSONError) -> StringScan {
        guard position < count, base[position] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
        let keyStart = position
        let scan = try scanString()
        let span = KeySpan(start: scan.start, end: scan.end, escaped: scan.escaped)
        var i = first
        while i < keys.count {
            if sameKey(keys[i], span) {
                var error = JSONError("duplicate key \"\(makeString(scan))\"", at: keyStart)
                if topLevel { error.duplicateTopLevelKey = makeString(scan) }
                throw error
            }
            i += 1
        }
        keys.append(span)
        return scan
    }

    private mutating func sameKey(_ a: KeySpan, _ b: KeySpan) -> Bool {
        if !a.escaped && !b.escaped {
            return a.end - a.start == b.end - b.start && memcmp(base + a.start, base + b.start, a.end - a.start) == 0
        }
        return makeString(StringScan(start: a.start, end: a.end, escaped: a.escaped))
            == makeString(StringScan(start: b.start, end: b.end, escaped: b.escaped))
    }

    private mutating func readObject(depth: Int) throws(JSONError) -> JSON {
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth)") }
        position += 1
        var members: [JSONObject.Member] = []
        skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "}") {
            position += 1
            return .object(JSONObject(members))
        }
        members.reserveCapacity(4)
        if keys.capacity == 0 { keys.reserveCapacity(16) }
        let first = keys.count
        while true {
            skipWhitespace()
            let key = makeString(try readKey(objectKeysFrom: first, topLevel: depth == 1))
            skipWhitespace()
            guard position < count, base[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            skipWhitespace()
            members.append(JSONObject.Member(key, try readValue(depth: depth)))
            skipWhitespace()
            guard position < count else { throw fail("unexpected end of input") }
            if base[position] == UInt8(ascii: ",") { position += 1; continue }
            if base[position] == UInt8(ascii: "}") {
                position += 1
                keys.removeLast(keys.count - first)
                return .object(JSONObject(members))
            }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func readArray(depth: Int) throws(JSONError) -> JSON {
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth)") }
        position += 1
        var elements: [JSON] = []
        skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        elements.reserveCapacity(4)
        while true {
            skipWhitespace()
            elements.append(try readValue(depth: depth))
            skipWhitespace()
            guard position < count else { throw fail("unexpected end of input") }
            if base[position] == UInt8(ascii: ",") { position += 1; continue }
            if base[position] == UInt8(ascii: "]") { position += 1; return .array(elements) }
            throw fail("expected ',' or ']'")
        }
    }

    /// The record object: keys are read, values validated and kept raw when canonical.
    private mutating func readRecordObject(source: [UInt8]) throws(JSONError) -> JSONObject {
        position += 1
        var members: [JSONObject.Member] = []
        skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "}") {
            position += 1
            return JSONObject(members)
        }
        members.reserveCapacity(12)
        while true {
            skipWhitespace()
            let key = recordKey(try readKey(objectKeysFrom: 0, topLevel: true))
            skipWhitespace()
            guard position < count, base[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            skipWhitespace()
            let valueStart = position
            if try skipValue(depth: 1), position <= Int(Int32.max) {
                members.append(JSONObject.Member(key, raw: JSONRaw(source, valueStart, position)))
            } else {
                // Rare (whitespace or unusual escapes inside): parse it now, so that raw
                // bytes are always what the writer would write.
                position = valueStart
                members.append(JSONObject.Member(key, try readValue(depth: 1)))
            }
            skipWhitespace()
            guard position < count else { throw fail("unexpected end of input") }
            if base[position] == UInt8(ascii: ",") { position += 1; continue }
            if base[position] == UInt8(ascii: "}") { position += 1; return JSONObject(members) }
            throw fail("expected ',' or '}'")
        }
    }

    /// The keys of the protocol come from literals (small strings, nothing to decode or
    /// allocate); others are decoded.
    private mutating func recordKey(_ scan: StringScan) -> String {
        if !scan.escaped {
            let p = base + scan.start
            let n = scan.end - scan.start
            @inline(__always) func isKey(_ k: StaticString) -> Bool {
                k.utf8CodeUnitCount == n && memcmp(p, k.utf8Start, n) == 0
            }
            switch n {
            case 2: if isKey("id") { return "id" }
            case 4:
                if isKey("path") { return "path" }
                if isKey("body") { return "body" }
            case 5: if isKey("query") { return "query" }
            case 6:
                if isKey("method") { return "method" }
                if isKey("remote") { return "remote" }
                if isKey("status") { return "status" }
            case 7:
                if isKey("version") { return "version" }
                if isKey("headers") { return "headers" }
            case 10: if isKey("keep_alive") { return "keep_alive" }
            case 11:
                if isKey("annotations") { return "annotations" }
                if isKey("body_base64") { return "body_base64" }
            default: break
            }
        }
        return makeString(scan)
    }

    // MARK: Validating without building

    /// Checks one value as `readValue` would, without building it; returns whether its
    /// bytes are canonical (what the writer would write for it).
    private mutating func skipValue(depth: Int) throws(JSONError) -> Bool {
        guard position < count else { throw fail("unexpected end of input") }
        switch base[position] {
        case UInt8(ascii: "{"): return try skipObject(depth: depth + 1)
        case UInt8(ascii: "["): return try skipArray(depth: depth + 1)
        case UInt8(ascii: "\""): return try scanString().canonical
        case UInt8(ascii: "t"): try expectLiteral("true"); return true
        case UInt8(ascii: "f"): try expectLiteral("false"); return true
        case UInt8(ascii: "n"): try expectLiteral("null"); return true
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try scanNumber(); return true
        default: throw fail("unexpected character")
        }
    }

    private mutating func skipObject(depth: Int) throws(JSONError) -> Bool {
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth)") }
        position += 1
        var canonical = !skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "}") {
            position += 1
            return canonical
        }
        if keys.capacity == 0 { keys.reserveCapacity(16) }
        let first = keys.count
        while true {
            if skipWhitespace() { canonical = false }
            if !(try readKey(objectKeysFrom: first)).canonical { canonical = false }
            if skipWhitespace() { canonical = false }
            guard position < count, base[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            if skipWhitespace() { canonical = false }
            if !(try skipValue(depth: depth)) { canonical = false }
            if skipWhitespace() { canonical = false }
            guard position < count else { throw fail("unexpected end of input") }
            if base[position] == UInt8(ascii: ",") { position += 1; continue }
            if base[position] == UInt8(ascii: "}") {
                position += 1
                keys.removeLast(keys.count - first)
                return canonical
            }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func skipArray(depth: Int) throws(JSONError) -> Bool {
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth)") }
        position += 1
        var canonical = !skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "]") {
            position += 1
            return canonical
        }
        while true {
            if skipWhitespace() { canonical = false }
            if !(try skipValue(depth: depth)) { canonical = false }
            if skipWhitespace() { canonical = false }
            guard position < count else { throw fail("unexpected end of input") }
            if base[position] == UInt8(ascii: ",") { position += 1; continue }
            if base[position] == UInt8(ascii: "]") { position += 1; return canonical }
            throw fail("expected ',' or ']'")
        }
    }

    // MARK: Scalars

    private mutating func scanNumber() throws(JSONError) {
        if base[position] == UInt8(ascii: "-") { position += 1 }
        guard position < count else { throw fail("unexpected end of number") }
        if base[position] == UInt8(ascii: "0") {
            position += 1
            if position < count, isDigit(base[position]) { throw fail("leading zero in number") }
        } else if isDigit(base[position]) {
            while position < count, isDigit(base[position]) { position += 1 }
        } else {
            throw fail("expected a digit")
        }
        if position < count, base[position] == UInt8(ascii: ".") {
            position += 1
            guard position < count, isDigit(base[position]) else { throw fail("expected a digit after '.'") }
            while position < count, isDigit(base[position]) { position += 1 }
        }
        if position < count, base[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < count, base[position] == UInt8(ascii: "+") || base[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard position < count, isDigit(base[position]) else { throw fail("expected a digit in exponent") }
            while position < count, isDigit(base[position]) { position += 1 }
        }
    }

    @inline(__always) private func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }

    /// A high bit set in each of the 8 bytes that is '"', '\\', a control character or
    /// non-ASCII, exact up to the first such byte (a borrow can flag bytes after it):
    /// the string scan skips to that byte at once.
    @inline(__always) private static func careMask(_ x: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let quote = x ^ (ones &* 0x22)
        let backslash = x ^ (ones &* 0x5C)
        let found = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | (x &- (ones &* 0x20))
        return (found & ~x | x) & high
    }

    @inline(__always) private static func needsCare(_ b: UInt8) -> Bool {
        b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b < 0x20 || b >= 0x80
    }

    /// Scans a string from its opening quote to past its closing quote, checking escapes,
    /// control characters and UTF-8; builds nothing.
    private mutating func scanString() throws(JSONError) -> StringScan {
        position += 1 // opening quote
        var scan = StringScan(start: position, end: position)
        while true {
            // Eight bytes at a time to the next byte that needs care.
            if position &+ 8 <= count {
                let mask = Self.careMask(UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self))
                if mask == 0 { position &+= 8; continue }
                position &+= mask.trailingZeroBitCount >> 3
            } else {
                while position < count && !Self.needsCare(base[position]) { position &+= 1 }
                guard position < count else { throw JSONError("unterminated string", at: scan.start - 1) }
            }
            let b = base[position]
            if b == UInt8(ascii: "\"") {
                scan.end = position
                position += 1
                return scan
            }
            if b == UInt8(ascii: "\\") {
                scan.escaped = true
                try scanEscape(&scan)
            } else if b < 0x20 {
                throw fail("control character in string")
            } else {
                try scanUTF8(stringStart: scan.start)
            }
        }
    }

    private mutating func scanEscape(_ scan: inout StringScan) throws(JSONError) {
        position += 1
        guard position < count else { throw JSONError("unterminated string", at: scan.start - 1) }
        let e = base[position]
        position += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            break
        case UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"):
            scan.canonical = false
        case UInt8(ascii: "u"):
            let digits = position
            let scalar = try readHex4()
            if scalar >= 0xD800 && scalar < 0xDC00 {
                // A high surrogate must be followed by an escaped low surrogate.
                guard position + 1 < count, base[position] == UInt8(ascii: "\\"),
                      base[position + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                position += 2
                let low = try readHex4()
                guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid surrogate pair") }
                scan.canonical = false
            } else if scalar >= 0xDC00 && scalar < 0xE000 {
                throw fail("lone surrogate")
            } else if scalar >= 0x20 || scalar == 0x09 || scalar == 0x0A || scalar == 0x0D {
                scan.canonical = false
            } else {
                for i in digits..<digits + 4 where base[i] >= UInt8(ascii: "A") && base[i] <= UInt8(ascii: "F") {
                    scan.canonical = false
                }
            }
        default:
            throw fail("invalid escape")
        }
    }

    /// Checks one UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
    private mutating func scanUTF8(stringStart: Int) throws(JSONError) {
        let invalid = JSONError("invalid UTF-8 in string", at: stringStart)
        let lead = base[position]
        var low: UInt8 = 0x80, high: UInt8 = 0xBF
        let more: Int
        switch lead {
        case 0xC2...0xDF: more = 1
        case 0xE0: more = 2; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: more = 2
        case 0xED: more = 2; high = 0x9F
        case 0xF0: more = 3; low = 0x90
        case 0xF1...0xF3: more = 3
        case 0xF4: more = 3; high = 0x8F
        default: throw invalid
        }
        guard position + more < count else { throw invalid }
        let second = base[position + 1]
        guard second >= low && second <= high else { throw invalid }
        var i = 2
        while i <= more {
            guard base[position + i] & 0xC0 == 0x80 else { throw invalid }
            i += 1
        }
        position += more + 1
    }

    private mutating func readHex4() throws(JSONError) -> UInt32 {
        guard position + 4 <= count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let d = Self.hexValue(base[position]) else { throw fail("invalid hex digit in \\u escape") }
            v = v << 4 | d
            position += 1
        }
        return v
    }

    @inline(__always) private static func hexValue(_ b: UInt8) -> UInt32? { ASCII.hexValue(b).map(UInt32.init) }

    private mutating func readString() throws(JSONError) -> String {
        makeString(try scanString())
    }

    /// The String for a scanned (so already valid) string.
    private mutating func makeString(_ scan: StringScan) -> String {
        if !scan.escaped {
            return String(decoding: UnsafeBufferPointer(start: base + scan.start, count: scan.end - scan.start), as: UTF8.self)
        }
        // Decoded straight into the String's storage: never longer than the escaped text.
        let base = self.base
        return String(unsafeUninitializedCapacity: scan.end - scan.start) { out in
            var o = 0
            var i = scan.start
            while i < scan.end {
                // The run up to the next backslash, copied whole.
                let run = memchr(base + i, 0x5C, scan.end - i).map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) - base } ?? scan.end
                if run > i {
                    (out.baseAddress! + o).update(from: base + i, count: run - i)
                    o += run - i
                    i = run
                }
                guard i < scan.end else { break }
                let e = base[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "b"): out[o] = 0x08; o += 1
                case UInt8(ascii: "f"): out[o] = 0x0C; o += 1
                case UInt8(ascii: "n"): out[o] = 0x0A; o += 1
                case UInt8(ascii: "r"): out[o] = 0x0D; o += 1
                case UInt8(ascii: "t"): out[o] = 0x09; o += 1
                case UInt8(ascii: "u"):
                    var scalar = Self.hex4(base + i)
                    i += 4
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        let low = Self.hex4(base + i + 2)
                        i += 6
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    o += Self.encodeUTF8(scalar, into: out.baseAddress! + o)
                default: out[o] = e; o += 1   // '"', '\\', '/'
                }
            }
            return o
        }
    }

    private static func hex4(_ p: UnsafePointer<UInt8>) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (hexValue(p[k]) ?? 0) }
        return v
    }

    /// Writes a scalar's UTF-8 bytes; returns how many.
    private static func encodeUTF8(_ scalar: UInt32, into p: UnsafeMutablePointer<UInt8>) -> Int {
        switch scalar {
        case 0..<0x80:
            p[0] = UInt8(scalar)
            return 1
        case 0x80..<0x800:
            p[0] = UInt8(0xC0 | (scalar >> 6)); p[1] = UInt8(0x80 | (scalar & 0x3F))
            return 2
        case 0x800..<0x10000:
            p[0] = UInt8(0xE0 | (scalar >> 12)); p[1] = UInt8(0x80 | ((scalar >> 6) & 0x3F))
            p[2] = UInt8(0x80 | (scalar & 0x3F))
            return 3
        default:
            p[0] = UInt8(0xF0 | (scalar >> 18)); p[1] = UInt8(0x80 | ((scalar >> 12) & 0x3F))
            p[2] = UInt8(0x80 | ((scalar >> 6) & 0x3F)); p[3] = UInt8(0x80 | (scalar & 0x3F))
            return 4
        }
    }
}

// MARK: - Writing

/// The writer's buffer. Appending to it is a bounds check and a store or a memcpy, where
/// Array's append(contentsOf:) costs about a hundred instructions a call and a record
/// takes some sixty appends.
struct JSONOutput: ~Copyable {
    private(set) var count = 0
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    mutating func removeAll() { count = 0 }

    @inline(__always) mutating func append(_ byte: UInt8) {
        if count == capacity { grow(1) }
        base[count] = byte
        count &+= 1
    }

    @inline(__always) mutating func append(_ bytes: UnsafePointer<UInt8>, count n: Int) {
        if n > capacity &- count { grow(n) }
        (base + count).update(from: bytes, count: n)
        count &+= n
    }

    @inline(__always) mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        if let p = bytes.baseAddress { append(p, count: bytes.count) }
    }

    @inline(__always) mutating func append(_ literal: StaticString) {
        append(literal.utf8Start, count: literal.utf8CodeUnitCount)
    }

    @inline(never) private mutating func grow(_ n: Int) {
        let bigger = max(capacity * 2, count + n)
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        p.update(from: base, count: count)
        base.deallocate()
        base = p
        capacity = bigger
    }

    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        body(UnsafeBufferPointer(start: base, count: count))
    }

    var array: [UInt8] { withBytes { Array($0) } }
}

extension JSON {
    /// Compact JSON, no whitespace, members in order.
    public func serialized() -> [UInt8] {
        var out = JSONOutput(capacity: 256)
        write(into: &out)
        return out.array
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }

    public func write(to out: inout [UInt8]) {
        var o = JSONOutput(capacity: 256)
        write(into: &o)
        o.withBytes { out.append(contentsOf: $0) }
    }

    func write(into out: inout JSONOutput) {
        switch self {
        case .null: out.append("null")
        case .bool(let b): out.append(b ? "true" : "false")
        case .number(let n): JSON.writeRaw(n, into: &out)
        case .string(let s): JSON.writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            var first = true
            for e in elements {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                e.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            o.write(into: &out)
        }
    }

    private static func writeRaw(_ s: String, into out: inout JSONOutput) {
        var s = s
        s.withUTF8 { out.append($0) }
    }

    /// A high bit set in each of the 8 bytes that is '"', '\\' or a control character,
    /// exact up to the first such byte.
    @inline(__always) private static func escapeMask(_ x: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let quote = x ^ (ones &* 0x22)
        let backslash = x ^ (ones &* 0x5C)
        let found = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | (x &- (ones &* 0x20))
        return found & ~x & high
    }

    /// The index of the first byte from `i` on that a JSON string must escape, or `n`.
    @inline(__always) static func nextEscape(_ base: UnsafePointer<UInt8>, from i: Int, count n: Int) -> Int {
        var i = i
        while i < n {
            if i &+ 8 <= n {
                let mask = escapeMask(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
                if mask == 0 { i &+= 8; continue }
                return i &+ mask.trailingZeroBitCount >> 3
            }
            // The last 1-7 bytes (most keys): padded with 'A', which is never flagged.
            var word: UInt64 = 0x4141_4141_4141_4141
            withUnsafeMutableBytes(of: &word) { $0.baseAddress!.copyMemory(from: base + i, byteCount: n - i) }
            let mask = escapeMask(word)
            return mask == 0 ? n : i &+ mask.trailingZeroBitCount >> 3
        }
        return n
    }

    /// Writes a JSON string literal. Control characters are escaped, so a value can never
    /// break the one-record-per-line framing (or forge a log line).
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        var o = JSONOutput(capacity: s.utf8.count + 16)
        writeString(s, into: &o)
        o.withBytes { out.append(contentsOf: $0) }
    }

    static func writeString(_ s: String, into out: inout JSONOutput) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            let n = bytes.count
            var runStart = 0
            var i = 0
            while true {
                i = nextEscape(base, from: i, count: n)
                if i == n { break }
                let b = base[i]
                if runStart < i { out.append(base + runStart, count: i - runStart) }
                i &+= 1
                runStart = i
                switch b {
                case 0x22: out.append(#"\""#)
                case 0x5C: out.append(#"\\"#)
                case 0x0A: out.append(#"\n"#)
                case 0x0D: out.append(#"\r"#)
                case 0x09: out.append(#"\t"#)
                default:
                    let hex: StaticString = "0123456789abcdef"
                    out.append(#"\u00"#)
                    out.append(hex.utf8Start[Int(b >> 4)])
                    out.append(hex.utf8Start[Int(b & 0xF)])
                }
            }
            if runStart < n { out.append(base + runStart, count: n - runStart) }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONObject {
    public func write(to out: inout [UInt8]) {
        var o = JSONOutput(capacity: 1024)
        write(into: &o)
        o.withBytes { out.append(contentsOf: $0) }
    }

    func write(into out: inout JSONOutput) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for i in members.indices {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSON.writeString(members[i].key, into: &out)
            out.append(UInt8(ascii: ":"))
            switch members[i].storage {
            case .value(let v): v.write(into: &out)
            case .raw(let r): r.write(into: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    public func serialized() -> [UInt8] {
        var out = JSONOutput(capacity: 1024)
        write(into: &out)
        return out.array
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}

// Literals keep tests and error bodies readable.
extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
                ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}
