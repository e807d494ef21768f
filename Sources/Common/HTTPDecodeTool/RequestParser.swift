#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// An HTTP/1.1 request parser (RFC 9112) for a server that sits in front of filters that
// trust what it tells them. Anything two parsers could read two ways (the raw material of
// request smuggling) is refused rather than guessed: obs-fold, bare CR or LF, whitespace
// before a colon, Content-Length next to Transfer-Encoding, conflicting lengths, chunk
// sizes with anything but hex digits. It is a pure state machine over bytes (no I/O), so
// it can be fed one byte at a time in tests and fuzzed later.

/// The size limits; each has its own status so that a client learns which one it hit.
public struct HTTPLimits: Equatable, Sendable {
    /// Request line, CRLF included (414).
    public var maxRequestLine = 8 * 1024
    /// Header section after the request line, CRLFs included (431); trailers get the same budget.
    public var maxHeaderBytes = 32 * 1024
    /// Header fields (431); trailers get the same budget.
    public var maxHeaderCount = 100
    /// Decoded body (413).
    public var maxBody = 1 << 20
    /// A chunk-size line with its extensions (400): nothing legitimate needs more.
    public var maxChunkLine = 4 * 1024
    /// Empty lines tolerated before a request line (RFC 9112 §2.2 asks for at least one).
    public var maxLeadingEmptyLines = 4

    public init() {}
}

/// Why a request was refused: an HTTP status and the JSON error code/message.
public struct HTTPFailure: Error, Equatable, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    public init(_ status: Int, _ code: String, _ message: String) {
        self.status = status; self.code = code; self.message = message
    }

    static func bad(_ message: String) -> HTTPFailure { HTTPFailure(400, "bad_request", message) }
}

/// One complete request.
public struct HTTPRequest: Equatable, Sendable {
    public var method: String
    public var path: String
    public var query: String
    public var version: String
    /// Names lower-cased, values trimmed of surrounding SP/HTAB, order and repeats kept.
    public var headers: [Header]
    /// The decoded body (de-chunked), exact bytes.
    public var body: [UInt8]
    public var keepAlive: Bool
}

public struct RequestParser {
    public enum Event: Equatable, Sendable {
        /// Nothing more can be parsed from what was appended so far.
        case needMore
        case request(HTTPRequest)
        /// The head of a request with `Expect: 100-continue` is complete and its body has not
        /// arrived yet: the client waits for an interim "100 Continue" before sending it.
        case continueExpected
        /// The request cannot be parsed; the parser is dead from here on (the connection
        /// must be closed, because where the next request starts is unknown).
        case failure(HTTPFailure)
    }

    /// Which timeout applies: between requests, inside a head, inside a body.
    public enum Phase: Equatable, Sendable { case idle, head, body }

    private enum State: Equatable {
        case requestLine, headers
        case body(remaining: Int)
        case chunkSize, chunkData(remaining: Int), chunkDataEnd, trailers
        case failed
    }

    public let limits: HTTPLimits
    private var buffer: [UInt8] = []
    private var pos = 0
    /// Bytes after `pos` already searched for LF without finding one.
    private var scanned = 0
    private var state = State.requestLine
    private var failure: HTTPFailure?

    // The request being read.
    private var method = ""
    private var path = ""
    private var query = ""
    private var version = ""
    private var headers: [Header] = []
    private var headerBytes = 0
    private var headerCount = 0
    private var emptyLines = 0
    private var body: [UInt8] = []
    private var keepAlive = true
    private var expectContinue = false
    /// This request's first bytes were already buffered when the previous one completed.
    private var pipelined = false

    public init(limits: HTTPLimits = HTTPLimits()) { self.limits = limits }

    public var phase: Phase {
        switch state {
        case .requestLine: return pos == buffer.count && emptyLines == 0 ? .idle : .head
        case .headers, .failed: return .head
        default: return .body
        }
    }

    /// The method and version of the request being read, once its request line is parsed
    /// (so that an error answer to a HEAD request carries no body).
    public var partialMethod: String? { state == .requestLine || method.isEmpty ? nil : method }
    public var partialVersion: String? { state == .requestLine || version.isEmpty ? nil : version }

    /// Bytes appended and not yet consumed.
    public var buffered: Int { buffer.count - pos }

    /// Bytes consumed since the start: the difference across one request is its size on
    /// the wire (the access log's bytes received).
    public var consumed: Int { dropped + pos }
    private var dropped = 0

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes.bindMemory(to: UInt8.self))
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Drops consumed bytes once they are worth a memmove.
    private mutating func compact() {
        if pos == buffer.count {
            dropped += pos
            buffer.removeAll(keepingCapacity: true)
            pos = 0
        } else if pos >= 1 << 16 && pos * 2 >= buffer.count {
            buffer.removeSubrange(0..<pos)
            dropped += pos
            pos = 0
        }
    }

    /// At end of input: the failure to report when a request was cut off, nil when the
    /// connection ended cleanly between requests.
    public func finish() -> HTTPFailure? {
        if let failure { return failure }
        if phase == .idle { return nil }
        return HTTPFailure.bad("the connection ended in the middle of a request")
    }

    /// Parses as far as the appended bytes allow. Call repeatedly until `.needMore`.
    public mutating func next() -> Event {
        if let failure { return .failure(failure) }
        let storage = buffer   // a second reference: parsing never mutates `buffer`
        let event = storage.withUnsafeBufferPointer { step($0) }
        if case .failure(let f) = event {
            failure = f
            state = .failed
        }
        return event
    }

    // MARK: - The state machine

    private static let lf: UInt8 = 0x0A
    private static let cr: UInt8 = 0x0D

    private enum Line {
        case line(Range<Int>)     // content without CRLF
        case incomplete(Int)      // bytes of the line so far
        case bad(HTTPFailure)
    }

    /// The next CRLF-terminated line starting at `pos` (HTTPSyntax's rules, both parsers').
    private mutating func nextLine(_ p: UnsafeBufferPointer<UInt8>) -> Line {
        switch HTTPSyntax.nextLine(p, pos: &pos, scanned: &scanned) {
        case .line(let r): return .line(r)
        case .incomplete(let n): return .incomplete(n)
        case .bareLF: return .bad(Self.bareLF)
        }
    }

    private static let bareLF = HTTPFailure.bad("bare LF line ending (CRLF required)")

    private enum FieldLine {
        case field(Range<Int>)
        case end                  // the empty line that ends the section
        case needMore
        case failure(HTTPFailure)
    }

    /// The next line of a field section (the head's or the trailers'), counted against the
    /// head's byte and field limits, which both sections share.
    private mutating func nextField(_ p: UnsafeBufferPointer<UInt8>) -> FieldLine {
        switch HTTPSyntax.nextField(p, pos: &pos, scanned: &scanned, bytes: &headerBytes, count: &headerCount,
                                    maxBytes: limits.maxHeaderBytes, maxCount: limits.maxHeaderCount) {
        case .field(let r): return .field(r)
        case .end: return .end
        case .needMore: return .needMore
        case .tooLarge: return .failure(Self.headersTooLarge)
        case .bareLF: return .failure(Self.bareLF)
        }
    }

    /// Moves up to `remaining` body bytes from the buffer into the body; returns how many
    /// are still to come.
    private mutating func takeBody(_ p: UnsafeBufferPointer<UInt8>, _ remaining: Int) -> Int {
        let take = min(remaining, p.count - pos)
        if take > 0 {
            body.append(contentsOf: UnsafeBufferPointer(rebasing: p[pos..<(pos + take)]))
            pos += take
        }
        return remaining - take
    }

    private mutating func step(_ p: UnsafeBufferPointer<UInt8>) -> Event {
        while true {
            switch state {
            case .requestLine:
                switch nextLine(p) {
                case .bad(let f): return .failure(f)
                case .incomplete(let n):
                    if n > limits.maxRequestLine { return .failure(Self.uriTooLong) }
                    return .needMore
                case .line(let r):
                    if r.count + 2 > limits.maxRequestLine { return .failure(Self.uriTooLong) }
                    if r.isEmpty {
                        // Stray CRLF after a previous body (old clients send one).
                        emptyLines += 1
                        if emptyLines > limits.maxLeadingEmptyLines { return .failure(.bad("too many empty lines before the request line")) }
                        continue
                    }
                    if let f = parseRequestLine(UnsafeBufferPointer(rebasing: p[r])) { return .failure(f) }
                    state = .headers
                }

            case .headers:
                switch nextField(p) {
                case .failure(let f): return .failure(f)
                case .needMore: return .needMore
                case .end:
                    if let event = finishHead(p) { return event }
                case .field(let r):
                    switch Self.parseField(UnsafeBufferPointer(rebasing: p[r])) {
                    case .failure(let f): return .failure(f)
                    case .success(let h): headers.append(h)
                    }
                }

            case .body(let remaining):
                let left = takeBody(p, remaining)
                if left > 0 {
                    state = .body(remaining: left)
                    return .needMore
                }
                return complete(p)

            case .chunkSize:
                switch nextLine(p) {
                case .bad(let f): return .failure(f)
                case .incomplete(let n):
                    if n > limits.maxChunkLine { return .failure(.bad("chunk-size line too long")) }
                    return .needMore
                case .line(let r):
                    if r.count + 2 > limits.maxChunkLine { return .failure(.bad("chunk-size line too long")) }
                    switch parseChunkSize(UnsafeBufferPointer(rebasing: p[r])) {
                    case .failure(let f): return .failure(f)
                    case .success(0):
                        state = .trailers
                        headerBytes = 0
                        headerCount = 0
                    case .success(let size):
                        state = .chunkData(remaining: size)
                    }
                }

            case .chunkData(let remaining):
                let left = takeBody(p, remaining)
                if left > 0 {
                    state = .chunkData(remaining: left)
                    return .needMore
                }
                state = .chunkDataEnd

            case .chunkDataEnd:
                let available = p.count - pos
                if available >= 1 && p[pos] != Self.cr { return .failure(.bad("chunk data not followed by CRLF")) }
                if available >= 2 && p[pos + 1] != Self.lf { return .failure(.bad("chunk data not followed by CRLF")) }
                if available < 2 { return .needMore }
                pos += 2
                state = .chunkSize

            case .trailers:
                switch nextField(p) {
                case .failure(let f): return .failure(f)
                case .needMore: return .needMore
                case .end: return complete(p)
                case .field(let r):
                    // Trailer fields are checked like header fields and then dropped: merging
                    // them into the headers would let a body-end field override a checked one.
                    if case .failure(let f) = Self.parseField(UnsafeBufferPointer(rebasing: p[r])) { return .failure(f) }
                }

            case .failed:
                return .failure(failure ?? .bad("parser failed"))
            }
        }
    }

    public static let uriTooLong = HTTPFailure(414, "uri_too_long", "request line too long")
    public static let headersTooLarge = HTTPFailure(431, "headers_too_large", "request header section too large")

    /// The request is complete: hand it out and reset for the next one.
    private mutating func complete(_ p: UnsafeBufferPointer<UInt8>) -> Event {
        let request = HTTPRequest(method: method, path: path, query: query, version: version,
                                  headers: headers, body: body, keepAlive: keepAlive)
        pipelined = pos < p.count
        state = .requestLine
        method = ""; path = ""; query = ""; version = ""
        headers = []
        headerBytes = 0; headerCount = 0; emptyLines = 0
        body = []
        keepAlive = true
        expectContinue = false
        return .request(request)
    }

    // MARK: - Request line

    private mutating func parseRequestLine(_ line: UnsafeBufferPointer<UInt8>) -> HTTPFailure? {
        // method SP request-target SP HTTP-version, single spaces only.
        guard let sp1 = line.firstIndex(of: 0x20) else {
            return .bad("malformed request line")
        }
        if sp1 == 0 { return .bad("malformed request line") }
        for i in 0..<sp1 where !HTTPByteClass.isToken(line[i]) {
            return .bad("invalid character in method")
        }
        let rest = UnsafeBufferPointer(rebasing: line[(sp1 + 1)...])
        let sp2 = rest.firstIndex(of: 0x20)
        let target = UnsafeBufferPointer(rebasing: rest[..<(sp2 ?? rest.endIndex)])
        method = String(decoding: UnsafeBufferPointer(rebasing: line[..<sp1]), as: UTF8.self)
        guard let sp2 else {
            // "GET /": an HTTP/0.9 request.
            version = "HTTP/1.1"
            return HTTPFailure(505, "version_not_supported", "HTTP/0.9 requests are not supported")
        }
        let v = UnsafeBufferPointer(rebasing: rest[(sp2 + 1)...])
        if let f = parseVersion(v) { return f }
        if let f = parseTarget(target) { return f }
        return nil
    }

    private mutating func parseVersion(_ v: UnsafeBufferPointer<UInt8>) -> HTTPFailure? {
        // "HTTP/" DIGIT "." DIGIT, exactly, case-sensitive.
        let prefix: [UInt8] = Array("HTTP/".utf8)
        guard v.count == 8, Array(v[0..<5]) == prefix, HTTPByteClass.isDigit(v[5]), v[6] == UInt8(ascii: "."),
              HTTPByteClass.isDigit(v[7]) else {
            return .bad("malformed HTTP version")
        }
        let major = v[5] - 0x30, minor = v[7] - 0x30
        guard major == 1, minor <= 1 else {
            version = "HTTP/1.1"
            return HTTPFailure(505, "version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        version = minor == 1 ? "HTTP/1.1" : "HTTP/1.0"
        return nil
    }

    /// origin-form ("/p?q"), absolute-form ("http://host/p?q", path and query taken from it)
    /// or asterisk-form ("*", OPTIONS only). Visible ASCII only, no fragment, and every
    /// '%' followed by two hex digits, so filters never see a target they cannot decode.
    private mutating func parseTarget(_ t: UnsafeBufferPointer<UInt8>) -> HTTPFailure? {
        guard !t.isEmpty else { return .bad("empty request target") }
        var i = 0
        while i < t.count {
            let c = t[i]
            guard c > 0x20 && c < 0x7F && c != UInt8(ascii: "#") else {
                return .bad("invalid character in request target")
            }
            if c == UInt8(ascii: "%") {
                guard i + 2 < t.count, HTTPByteClass.isHex(t[i + 1]), HTTPByteClass.isHex(t[i + 2]) else {
                    return .bad("malformed percent-encoding in request target")
                }
                i += 2
            }
            i += 1
        }
        var start = 0
        if t[0] == UInt8(ascii: "*") {
            guard t.count == 1, method == "OPTIONS" else { return .bad("asterisk-form is for OPTIONS only") }
            path = "*"; query = ""
            return nil
        }
        if t[0] != UInt8(ascii: "/") {
            // absolute-form: scheme "://" authority [path-abempty] ["?" query]
            let lower = t.prefix(8).map { HTTPByteClass.lower($0) }
            let http = Array("http://".utf8), https = Array("https://".utf8)
            if lower.starts(with: http) { start = http.count }
            else if lower.starts(with: https) { start = https.count }
            else { return .bad("unsupported request target form") }
            var j = start
            while j < t.count && t[j] != UInt8(ascii: "/") && t[j] != UInt8(ascii: "?") {
                if t[j] == UInt8(ascii: "@") { return .bad("userinfo in request target") }
                j += 1
            }
            if j == start { return .bad("empty authority in request target") }
            start = j
        }
        let rest = UnsafeBufferPointer(rebasing: t[start...])
        if let q = rest.firstIndex(of: UInt8(ascii: "?")) {
            path = String(decoding: UnsafeBufferPointer(rebasing: rest[..<q]), as: UTF8.self)
            query = String(decoding: UnsafeBufferPointer(rebasing: rest[(q + 1)...]), as: UTF8.self)
        } else {
            path = String(decoding: rest, as: UTF8.self)
            query = ""
        }
        if path.isEmpty { path = "/" }
        return nil
    }

    // MARK: - Header fields

    /// The field rules both directions share (Records' HTTPSyntax), failing as a 400.
    static func parseField(_ line: UnsafeBufferPointer<UInt8>) -> Result<Header, HTTPFailure> {
        HTTPSyntax.parseField(line).mapError { .bad($0.message) }
    }

    // MARK: - Message framing (RFC 9112 §6)

    /// Checks the head as a whole, picks the body framing. Returns an event to hand out now
    /// (a body-less request, `continueExpected` or a failure), or nil to go on parsing.
    private mutating func finishHead(_ p: UnsafeBufferPointer<UInt8>) -> Event? {
        var hosts = 0
        var lengths: [String] = []
        var codings: [String] = []
        var connection: [String] = []
        var expectations: [String] = []
        for h in headers {
            switch h.name {
            case "host": hosts += 1
            case "content-length": lengths.append(h.value)
            case "transfer-encoding": codings.append(h.value)
            case "connection": connection.append(h.value)
            case "expect": expectations.append(h.value)
            default: break
            }
        }
        let http11 = version == "HTTP/1.1"
        if hosts > 1 { return .failure(.bad("more than one Host header")) }
        if http11 && hosts == 0 { return .failure(.bad("Host header required in HTTP/1.1")) }

        var close = false, keep = false
        for token in Self.listElements(connection) {
            if token == "close" { close = true } else if token == "keep-alive" { keep = true }
        }
        keepAlive = http11 ? !close : (keep && !close)

        var chunked = false
        var length = 0
        if !codings.isEmpty {
            if !http11 { return .failure(.bad("Transfer-Encoding in an HTTP/1.0 request")) }
            if !lengths.isEmpty { return .failure(.bad("both Content-Length and Transfer-Encoding")) }
            let elements = Self.listElements(codings, keepEmpty: true)
            if elements.contains("") { return .failure(.bad("empty element in Transfer-Encoding")) }
            if elements.contains(where: { $0 != "chunked" }) {
                return .failure(HTTPFailure(501, "not_implemented", "transfer coding not supported (only chunked)"))
            }
            if elements.count > 1 { return .failure(.bad("chunked applied more than once")) }
            chunked = true
        } else if !lengths.isEmpty {
            switch Self.contentLength(lengths, max: limits.maxBody) {
            case .failure(let f): return .failure(f)
            case .success(let n): length = n
            }
        }

        if http11 && !expectations.isEmpty {
            // 100-continue is the only expectation defined; RFC 9110 ignores Expect in HTTP/1.0.
            let values = Self.listElements(expectations, keepEmpty: true)
            if values.contains(where: { $0 != "100-continue" }) {
                return .failure(HTTPFailure(417, "expectation_failed", "only Expect: 100-continue is supported"))
            }
            expectContinue = true
        }

        if chunked {
            state = .chunkSize
        } else if length > 0 {
            state = .body(remaining: length)
        } else {
            return complete(p)
        }
        let bodyBuffered = chunked ? pos < p.count : p.count - pos >= length
        if expectContinue && !pipelined && !bodyBuffered {
            expectContinue = false
            return .continueExpected
        }
        return nil
    }

    static func trimOWS(_ part: Substring) -> Substring { part.trimmingSpacesAndTabs() }

    static func listElements(_ values: [String], keepEmpty: Bool = false) -> [String] {
        HTTPSyntax.listElements(values, keepEmpty: keepEmpty)
    }

    /// HTTPSyntax's Content-Length, with this parser's limit: too long is 413, not 400.
    static func contentLength(_ values: [String], max: Int) -> Result<Int, HTTPFailure> {
        let tooLarge = HTTPFailure(413, "body_too_large", "request body larger than \(max) bytes")
        switch HTTPSyntax.contentLength(values) {
        case .failure(let p): return .failure(p == .tooLong ? tooLarge : .bad(p.message))
        case .success(let n): return n > max ? .failure(tooLarge) : .success(n)
        }
    }

    // MARK: - Chunks

    /// chunk-size [ chunk-ext ]: hex digits only (no sign, no "0x", no whitespace before),
    /// then well-formed extensions, which are ignored.
    private func parseChunkSize(_ line: UnsafeBufferPointer<UInt8>) -> Result<Int, HTTPFailure> {
        var i = 0
        var size = 0
        while i < line.count, let d = HTTPByteClass.hexValue(line[i]) {
            size = size * 16 + Int(d)
            if body.count + size > limits.maxBody {
                return .failure(HTTPFailure(413, "body_too_large", "request body larger than \(limits.maxBody) bytes"))
            }
            i += 1
        }
        if i == 0 { return .failure(.bad("invalid chunk size")) }
        if !Self.validChunkExtensions(UnsafeBufferPointer(rebasing: line[i...])) {
            return .failure(.bad("invalid chunk size or extension"))
        }
        return .success(size)
    }

    static func validChunkExtensions(_ s: UnsafeBufferPointer<UInt8>) -> Bool { HTTPSyntax.validChunkExtensions(s) }
}

/// Byte classes from RFC 9110 §5.6.
enum HTTPByteClass {
    static func isToken(_ c: UInt8) -> Bool { ASCII.isToken(c) }
    static func isDigit(_ c: UInt8) -> Bool { HTTPSyntax.isDigit(c) }
    static func isHex(_ c: UInt8) -> Bool { hexValue(c) != nil }
    static func hexValue(_ c: UInt8) -> UInt8? { ASCII.hexValue(c) }
    static func lower(_ c: UInt8) -> UInt8 { HTTPSyntax.lower(c) }
    static func isFieldByte(_ c: UInt8) -> Bool { HTTPSyntax.isFieldByte(c) }
}
