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
        set {
            object["headers"] = .array(newValue.map { .array([.string($0.name), .string($0.value)]) })
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

    // MARK: Body: exact bytes, as "body" (UTF-8) or "body_base64".

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
            } else if let s = String(validating: newValue, as: UTF8.self) {
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

    public func annotation(_ key: String) -> JSON? {
        guard let i = object.index(of: "annotations") else { return nil }
        // Still bytes: parse the one annotation asked for, not all of them.
        if case .raw(let raw) = object.members[i].storage {
            return raw.withBytes { JSONReader.member(key, ofRawObject: $0) }
        }
        return object.members[i].value[key]
    }

    public mutating func setAnnotation(_ key: String, _ value: JSON?) {
        var notes = object["annotations"]?.object ?? JSONObject()
        notes[key] = value
        object["annotations"] = notes.isEmpty ? nil : .object(notes)
    }

    // MARK: Answering

    /// The response to this request: keeps id, method, version, keep_alive, remote and
    /// annotations; carries status, headers and body.
    public func response(status: Int, headers: [Header] = [], body: [UInt8] = []) -> Record {
        // Built in place: a Record made from a local object copied the members on the
        // first assignment below.
        var response = Record(JSONObject())
        response.object.members.reserveCapacity(9)
        // Members are copied as they are (raw bytes stay raw): nothing to parse or re-escape.
        for key in ["id", "method", "version", "keep_alive", "remote"] {
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

/// A scan of a raw, canonical headers list (`[["name","value"],...]`: validated, no
/// whitespace), for lookups that would otherwise build every pair.
enum RawHeaderList {
    static func scan(_ p: UnsafeBufferPointer<UInt8>, for wanted: UnsafeBufferPointer<UInt8>,
                     _ found: (String) -> Bool) -> Bool {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        guard p.count >= 2, p[0] == UInt8(ascii: "[") else { return false }
        if p[1] == UInt8(ascii: "]") { return true }
        var i = 1
        // Past the closing quote of the string whose content starts at i; whether it had escapes.
        func endOfString(_ i: inout Int) -> Bool {
            var escaped = false
            while p[i] != quote {
                if p[i] == backslash { escaped = true; i += 2 } else { i += 1 }
            }
            i += 1
            return escaped
        }
        while true {
            guard p[i] == UInt8(ascii: "["), p[i + 1] == quote else { return false }
            i += 2
            let nameStart = i
            let nameEscaped = endOfString(&i)
            let nameEnd = i - 1
            guard !nameEscaped, p[i] == UInt8(ascii: ","), p[i + 1] == quote else { return false }
            i += 2
            let valueStart = i
            let valueEscaped = endOfString(&i)
            let valueEnd = i - 1
            guard p[i] == UInt8(ascii: "]") else { return false }
            i += 1
            if nameEnd - nameStart == wanted.count,
               wanted.isEmpty || memcmp(p.baseAddress! + nameStart, wanted.baseAddress!, wanted.count) == 0 {
                let value: String
                if valueEscaped {
                    let literal = UnsafeBufferPointer(rebasing: p[(valueStart - 1)...valueEnd])
                    guard let s = (try? JSONReader.parse(literal))?.string else { return false }
                    value = s
                } else {
                    value = String(decoding: UnsafeBufferPointer(rebasing: p[valueStart..<valueEnd]), as: UTF8.self)
                }
                if !found(value) { return true }
            }
            if p[i] == UInt8(ascii: "]") { return true }
            guard p[i] == UInt8(ascii: ",") else { return false }
            i += 1
        }
    }
}
