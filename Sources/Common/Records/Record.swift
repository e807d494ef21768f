#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The record protocol: one JSON object per line. See docs/protocol.md.
//
// A record is a request until some filter answers it; it is a response from then on
// (it has a "status"). Responses keep the request's id and connection fields so the
// encoder at the end of the pipeline knows how to frame and whether to close.

public struct Header: Equatable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

/// The places filters write their annotations, one key each, so filters never collide.
public enum AnnotationKey {
    public static let route = "route"   // route: {"name": ..., "params": {...}}
    public static let auth = "auth"     // verify-jwt: {"uid": ...}
    public static let audit = "audit"   // apply-webhook and others: the audit entry
}

public struct Record: Equatable, Sendable {
    public var object: JSONObject

    public init(_ object: JSONObject) { self.object = object }

    /// Parses one line. Anything but a JSON object is malformed. The line is validated
    /// whole, but each field stays bytes (one copy of the line, shared) until it is read,
    /// and fields nobody changed are written back as those bytes.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) throws(JSONError) -> Record {
        try parse(source: Array(line))
    }

    public static func parse(_ line: String) throws(JSONError) -> Record {
        try parse(source: Array(line.utf8))
    }

    static func parse(source: [UInt8]) throws(JSONError) -> Record {
        guard let o = try JSONReader.parseObject(source: source) else {
            throw JSONError("a record must be a JSON object", at: 0)
        }
        return Record(o)
    }

    public func serialized() -> [UInt8] { object.serialized() }
    public var text: String { object.text }

    public subscript(key: String) -> JSON? {
        get { object[key] }
        set { object[key] = newValue }
    }

    // MARK: Request and connection fields

    public var id: String? { object["id"]?.string }
    public var method: String { object["method"]?.string ?? "" }
    public var path: String { object["path"]?.string ?? "" }
    public var query: String { object["query"]?.string ?? "" }
    public var version: String { object["version"]?.string ?? "HTTP/1.1" }
    public var remote: String? { object["remote"]?.string }
    /// The service-wide id http-decode gave the request (docs/protocol.md).
    public var requestID: String? { object["request_id"]?.string }

    /// 1 to 128 characters from `A-Z a-z 0-9 - _ . : + / = @`: safe in a header, a log
    /// line and a file name fragment (what http-decode accepts from a trusted proxy).
    public static func isWellFormedRequestID(_ value: String) -> Bool {
        let u = value.utf8
        guard !u.isEmpty, u.count <= 128 else { return false }
        return u.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "-_.:+/=@".utf8.contains(b)
        }
    }

    public var keepAlive: Bool {
        get { object["keep_alive"]?.bool ?? false }
        set { object["keep_alive"] = .bool(newValue) }
    }

    /// A record is a response once it carries a status.
    public var isResponse: Bool { object["status"] != nil }
    public var status: Int? { object["status"]?.int }

    // MARK: Headers: [[name, value], ...], names lower-case, repeats kept in order.

    public var headers: [Header] {
        get {
            if let list = rawHeaderList() { return list }
            guard let list = object["headers"]?.array else { return [] }
            var out: [Header] = []
            out.reserveCapacity(list.count)
            for pair in list {
                if let p = pair.array, p.count == 2, let n = p[0].string, let v = p[1].string {
                    out.append(Header(n, v))
                }
            }
            return out
        }
        set { setRawHeaders(newValue) }
    }

    /// The list read from the line's bytes, without building it as JSON first; nil when
    /// the headers are parsed already or are not plain string pairs.
    private func rawHeaderList() -> [Header]? {
        let scanned = object.withRawBytes(of: "headers") { (p: UnsafeBufferPointer<UInt8>) -> [Header]? in
            var out: [Header] = []
            out.reserveCapacity(8)
            var undecodable = false
            let wellFormed = RawHeaderList.forEachPair(p) { _, name, value, valueEscaped in
                let n = String(decoding: UnsafeBufferPointer(rebasing: p[name]), as: UTF8.self)
                if valueEscaped {
                    let literal = UnsafeBufferPointer(rebasing: p[(value.lowerBound - 1)...value.upperBound])
                    guard let v = (try? JSONReader.parse(literal))?.string else { undecodable = true; return false }
                    out.append(Header(n, v))
                } else {
                    out.append(Header(n, String(decoding: UnsafeBufferPointer(rebasing: p[value]), as: UTF8.self)))
                }
                return true
            }
            return wellFormed && !undecodable ? out : nil
        }
        switch scanned {
        case .none: return []                       // no headers member
        case .some(.none): return nil               // parsed already
        case .some(.some(let list)): return list    // nil: not plain pairs
        }
    }

    /// The first value of a header; `name` must be lower-case.
    public func header(_ name: String) -> String? {
        var found: String?
        if rawHeaders(name, { found = $0; return false }) { return found }
        guard let list = object["headers"]?.array else { return nil }
        for pair in list {
            if let p = pair.array, p.count == 2, p[0].string == name, let value = p[1].string { return value }
        }
        return nil
    }

    public func headerValues(_ name: String) -> [String] {
        var values: [String] = []
        if rawHeaders(name, { values.append($0); return true }) { return values }
        return headers.filter { $0.name == name }.map(\.value)
    }

    /// Looks `name` up in headers still held as the line's bytes, without parsing the
    /// list: `found` gets each value in order and returns whether to go on. Returns false
    /// when the headers are parsed already or are not plain [name, value] string pairs;
    /// the caller then reads the parsed list.
    private func rawHeaders(_ name: String, _ found: (String) -> Bool) -> Bool {
        var name = name
        let scanned: Bool?? = name.withUTF8 { wanted in
            object.withRawBytes(of: "headers") { list in RawHeaderList.scan(list, for: wanted, found) }
        }
        switch scanned {
        case .none: return true                      // no headers at all: nothing to find
        case .some(.none): return false              // parsed already
        case .some(.some(let complete)): return complete
        }
    }

    public mutating func removeHeader(_ name: String) {
        guard let list = object["headers"]?.array else { return }
        let kept = list.filter { $0.array?.first?.string != name }
        if kept.count != list.count { object["headers"] = .array(kept) }
    }

    /// Replaces every value of `name` with one value.
    public mutating func setHeader(_ name: String, _ value: String) {
        removeHeader(name)
        addHeader(name, value)
    }

    public mutating func addHeader(_ name: String, _ value: String) {
        var list = object["headers"]?.array ?? []
        list.append(.array([.string(name), .string(value)]))
        object["headers"] = .array(list)
    }

    // MARK: Body: exact bytes, as "body" (UTF-8) or "body_base64" (anything else, and
    // large bodies whose escaping would cost more than base64: BodyEncoding).

    public var body: [UInt8] {
        get {
            if let s = object["body"]?.string { return Array(s.utf8) }
            if let b = object["body_base64"]?.string, let bytes = Base64.decode(b) { return bytes }
            return []
        }
        set {
            object["body"] = nil
            object["body_base64"] = nil
            if newValue.isEmpty {
                object["body"] = .string("")
            } else if !BodyEncoding.prefersBase64(newValue), let s = validUTF8String(newValue) {
                object["body"] = .string(s)
            } else {
                object["body_base64"] = .string(Base64.encode(newValue))
            }
        }
    }

    /// True when "body_base64" is present but is not valid base64.
    public var hasCorruptBody: Bool {
        if let b = object["body_base64"] { return b.string.flatMap(Base64.decode) == nil }
        return false
    }

    // MARK: Annotations

    /// The annotations object when it is already a tree (filters in this process set it, as
    /// in a chain); nil when absent or still the line's bytes, which `forEachValue` scans.
    public var parsedAnnotations: JSONObject? {
        guard let i = object.index(of: "annotations"), case .value(.object(let o)) = object.members[i].storage else { return nil }
        return o
    }

    public func annotation(_ key: String) -> JSON? {
        guard let i = object.index(of: "annotations") else { return nil }
        // Still bytes: parse the one annotation asked for, not all of them.
        if case .raw(let raw) = object.members[i].storage {
            return raw.withBytes { JSONReader.member(key, ofRawObject: $0) }
        }
        return object.members[i].value[key]
    }

    public mutating func setAnnotation(_ key: String, _ value: JSON?) {
        // A new key in annotations still held raw: appended to the bytes, not parsed into a
        // tree and written back (~7 k instructions per verify-jwt record).
        if let value, let i = object.index(of: "annotations"), case .raw(let raw) = object.members[i].storage,
           let bytes = raw.withBytes({ Self.appending(key, value, toRawObject: $0) }) {
            object.members[i] = JSONObject.Member("annotations", raw: JSONRaw(bytes, 0, bytes.count))
            return
        }
        var notes = object["annotations"]?.object ?? JSONObject()
        notes[key] = value
        object["annotations"] = notes.isEmpty ? nil : .object(notes)
    }

    /// `{...,"key":value}` from the canonical bytes of an object without `key`; nil when it
    /// has the key (or is not an object).
    private static func appending(_ key: String, _ value: JSON, toRawObject p: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard p.count >= 2, p[0] == UInt8(ascii: "{"), p[p.count - 1] == UInt8(ascii: "}"),
              JSONReader.member(key, ofRawObject: p) == nil else { return nil }
        var out = JSONOutput(capacity: p.count + key.utf8.count + 64)
        out.append(UnsafeBufferPointer(rebasing: p[..<(p.count - 1)]))
        if p.count > 2 { out.append(UInt8(ascii: ",")) }
        JSON.writeString(key, into: &out)
        out.append(UInt8(ascii: ":"))
        value.write(into: &out)
        out.append(UInt8(ascii: "}"))
        return out.array
    }

    // MARK: Answering

    /// The response to this request: keeps id, method, version, keep_alive, remote,
    /// request_id, access and annotations; carries status, headers and body.
    public func response(status: Int, headers: [Header] = [], body: [UInt8] = []) -> Record {
        // Built in place: a Record made from a local object copied the members on the
        // first assignment below.
        var response = Record(JSONObject())
        response.object.members.reserveCapacity(11)
        // Members are copied as they are (raw bytes stay raw): nothing to parse or re-escape.
        // request_id and access travel to http-encode (response header, access log).
        for key in ["id", "method", "version", "keep_alive", "remote", "request_id", "access"] {
            if let m = object.member(key) { response.object.members.append(m) }
        }
        response.object.members.append(.init("status", JSON(status)))
        response.headers = headers
        response.body = body
        if let notes = object.member("annotations") { response.object.members.append(notes) }
        return response
    }

    /// A JSON error response: `{"error": code, "message": message}`.
    public func errorResponse(status: Int, error code: String, message: String,
                              headers extra: [Header] = [], details: JSONObject = JSONObject()) -> Record {
        var body = JSONObject([("error", JSON.string(code)), ("message", JSON.string(message))])
        body.members.append(contentsOf: details.members)
        return response(status: status,
                        headers: [Header("content-type", "application/json")] + extra,
                        body: body.serialized())
    }

    /// A JSON success response.
    public func jsonResponse(status: Int = 200, _ value: JSON, headers extra: [Header] = []) -> Record {
        response(status: status, headers: [Header("content-type", "application/json")] + extra,
                 body: value.serialized())
    }
}

/// A filter throws this to answer the request with a JSON error.
public struct FilterError: Error, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    public let headers: [Header]
    public init(status: Int, code: String, message: String, headers: [Header] = []) {
        self.status = status; self.code = code; self.message = message; self.headers = headers
    }
}

/// A request's headers list while it is still the line's canonical bytes (validated, no
/// whitespace, the writer's escapes only), as the ranges of its [name, value] pairs: a
/// filter that drops and adds headers (verify-jwt) then neither builds the list as JSON
/// nor re-escapes it; kept pairs are copied as they are (`Record.setHeaders`).
public struct RawHeaders {
    public struct Pair {
        /// The pair's bytes, brackets included.
        let whole: Range<Int>
        /// The contents of the name and value strings (quotes excluded).
        public let name: Range<Int>
        public let value: Range<Int>
        /// The value has escapes: its bytes are JSON, not the header's text.
        public let valueEscaped: Bool
    }
    let raw: JSONRaw
    public let pairs: [Pair]

    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R { raw.withBytes(body) }

    /// nil unless every pair is two strings and no name has escapes.
    init?(_ raw: JSONRaw) {
        let scanned: [Pair]? = raw.withBytes { p in
            var pairs: [Pair] = []
            pairs.reserveCapacity(8)
            let wellFormed = RawHeaderList.forEachPair(p) { whole, name, value, valueEscaped in
                pairs.append(Pair(whole: whole, name: name, value: value, valueEscaped: valueEscaped))
                return true
            }
            return wellFormed ? pairs : nil
        }
        guard let scanned else { return nil }
        self.raw = raw
        pairs = scanned
    }
}

extension Record {
    /// The headers list while it is still the line's bytes; nil when absent, parsed or not
    /// plain string pairs (the caller then reads `object["headers"]`).
    public func rawHeaders() -> RawHeaders? {
        guard let i = object.index(of: "headers"), case .raw(let raw) = object.members[i].storage else { return nil }
        return RawHeaders(raw)
    }

    /// Replaces the headers with `kept` pairs of `list` (read from this record by
    /// `rawHeaders`), in order, then `added`: the kept bytes are copied, the added pairs
    /// written, and the result stays raw (canonical), so it is written out as one copy.
    public mutating func setHeaders<S: Sequence>(keeping kept: S, of list: RawHeaders, adding added: [Header])
        where S.Element == RawHeaders.Pair {
        var out = JSONOutput(capacity: list.raw.count + 64 * added.count + 2)
        out.append(UInt8(ascii: "["))
        list.raw.withBytes { p in
            for pair in kept {
                if out.count > 1 { out.append(UInt8(ascii: ",")) }
                out.append(UnsafeBufferPointer(rebasing: p[pair.whole]))
            }
        }
        Self.append(added, to: &out)
        setRawHeaders(closing: out)
    }

    /// Sets the headers as the writer's own bytes: a response made here (forward, kv) is
    /// written out as one copy, not built as a JSON tree and then escaped.
    mutating func setRawHeaders(_ headers: [Header]) {
        var out = JSONOutput(capacity: 64 * headers.count + 2)
        out.append(UInt8(ascii: "["))
        Self.append(headers, to: &out)
        setRawHeaders(closing: out)
    }

    private static func append(_ headers: [Header], to out: inout JSONOutput) {
        for header in headers {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            JSON.writeString(header.name, into: &out)
            out.append(UInt8(ascii: ","))
            JSON.writeString(header.value, into: &out)
            out.append(UInt8(ascii: "]"))
        }
    }

    /// `out` holds "[" and the pairs: closes the list and makes it the headers member.
    private mutating func setRawHeaders(closing out: consuming JSONOutput) {
        out.append(UInt8(ascii: "]"))
        let bytes = out.array
        let member = JSONObject.Member("headers", raw: JSONRaw(bytes, 0, bytes.count))
        if let i = object.index(of: "headers") { object.members[i] = member } else { object.members.append(member) }
    }
}

/// A scan of a raw, canonical headers list (`[["name","value"],...]`: validated, no
/// whitespace), for lookups that would otherwise build every pair.
enum RawHeaderList {
    /// Calls `body` with each pair's ranges (the whole pair, the name's and the value's
    /// contents) until it returns false; returns false when the list is not plain string
    /// pairs or a name has escapes.
    static func forEachPair(_ p: UnsafeBufferPointer<UInt8>,
                            _ body: (_ whole: Range<Int>, _ name: Range<Int>, _ value: Range<Int>, _ valueEscaped: Bool) -> Bool) -> Bool {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        guard p.count >= 2, p[0] == UInt8(ascii: "[") else { return false }
        if p[1] == UInt8(ascii: "]") { return true }
        let base = p.baseAddress!
        // Past the closing quote of the string whose content starts at i; whether it had
        // escapes. memchr to the next quote, then for a backslash before it: a byte loop
        // over a ~1 KB token cost ~5 k instructions per record. The bytes were validated
        // as JSON, so every string has its closing quote.
        func endOfString(_ i: inout Int) -> Bool {
            guard let q = memchr(base + i, Int32(quote), p.count - i) else { return false }
            let end = base.distance(to: q.assumingMemoryBound(to: UInt8.self))
            if memchr(base + i, Int32(backslash), end - i) == nil { i = end + 1; return false }
            var escaped = false
            while p[i] != quote {
                if p[i] == backslash { escaped = true; i += 2 } else { i += 1 }
            }
            i += 1
            return escaped
        }
        var i = 1
        while true {
            guard p[i] == UInt8(ascii: "["), p[i + 1] == quote else { return false }
            let pairStart = i
            i += 2
            let nameStart = i
            guard !endOfString(&i), p[i] == UInt8(ascii: ","), p[i + 1] == quote else { return false }
            let nameEnd = i - 1
            i += 2
            let valueStart = i
            let valueEscaped = endOfString(&i)
            let valueEnd = i - 1
            guard p[i] == UInt8(ascii: "]") else { return false }
            i += 1
            if !body(pairStart..<i, nameStart..<nameEnd, valueStart..<valueEnd, valueEscaped) { return true }
            if p[i] == UInt8(ascii: "]") { return true }
            guard p[i] == UInt8(ascii: ",") else { return false }
            i += 1
        }
    }

    /// Calls `found` with the value of each pair named `wanted` until it returns false.
    static func scan(_ p: UnsafeBufferPointer<UInt8>, for wanted: UnsafeBufferPointer<UInt8>,
                     _ found: (String) -> Bool) -> Bool {
        var undecodable = false
        let wellFormed = forEachPair(p) { _, name, value, valueEscaped in
            guard name.count == wanted.count,
                  wanted.isEmpty || memcmp(p.baseAddress! + name.lowerBound, wanted.baseAddress!, wanted.count) == 0 else { return true }
            if valueEscaped {
                let literal = UnsafeBufferPointer(rebasing: p[(value.lowerBound - 1)...value.upperBound])
                guard let s = (try? JSONReader.parse(literal))?.string else { undecodable = true; return false }
                return found(s)
            }
            return found(String(decoding: UnsafeBufferPointer(rebasing: p[value]), as: UTF8.self))
        }
        return wellFormed && !undecodable
    }
}
