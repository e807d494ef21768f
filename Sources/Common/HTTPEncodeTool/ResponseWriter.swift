#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import CORS

/// Turns response records into HTTP/1.1 response bytes. The encoder owns the framing:
/// it writes Date, Content-Length, Content-Type (when absent) and Connection itself, and
/// drops what a filter set for those and for other hop-by-hop fields.
public struct ResponseWriter {
    static let defaultContentType = "application/octet-stream"

    /// Fields the encoder writes itself or that describe this hop, not the response.
    /// A switch, not a Set: no String hashing per header of every response.
    static func isIgnored(_ name: String) -> Bool {
        switch name {
        case "connection", "keep-alive", "proxy-connection", "transfer-encoding",
             "upgrade", "te", "trailer", "content-length", "date":
            return true
        default:
            return false
        }
    }

    private var cachedSecond = -1
    private var cachedDate: [UInt8] = []
    private let now: () -> Int
    /// The record behind the last response written (for the access log and the metrics).
    public private(set) var written: Record?
    /// Its status, as written: the observer's counters need it, and it is read here already.
    public private(set) var writtenStatus = 0

    public init(now: @escaping () -> Int = { Clock.now() }) { self.now = now }

    /// Appends the bytes of the response for one input line; returns whether the
    /// connection closes after it.
    public mutating func write(line: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        let record: Record
        do {
            record = try Record.parse(line)
        } catch {
            Log.error("malformed record: \(error)")
            return write(internalError("the pipeline produced a malformed record"), into: &out)
        }
        return write(record, into: &out)
    }

    /// Appends the bytes of one response; returns whether the connection closes after it.
    public mutating func write(_ input: Record, into out: inout [UInt8]) -> Bool {
        Log.about = input
        defer { Log.about = nil }
        written = nil   // an interim response is not logged or counted: its final one is
        if input.object["interim"]?.bool == true { return writeInterim(input, into: &out) }
        var record = Self.parsingReadFields(input)
        if !record.isResponse {
            // Nobody answered: every request gets a response, or pipelining would shift
            // every later answer onto the wrong request.
            // The route names the missing stage, e.g. a webhook sent to read pipelines.
            let route = record.routeName
            Log.error("no filter answered request \(record.id ?? "?")" + (route.map { " (route \($0))" } ?? ""))
            let message = route.map { "no filter of this pipeline answers route \($0)" } ?? "no filter answered the request"
            record = record.errorResponse(status: 502, error: "no_response", message: message)
        }
        switch validate(record) {
        case .success(var fields):
            // Every answer to an allowed origin, whichever stage (or upstream) made it.
            if let cors = record.annotation(AnnotationKey.cors) { CORSResponse.apply(cors, to: &fields) }
            emit(record, fields: fields, into: &out)
            written = record
            return !record.keepAlive
        case .failure(let reason):
            Log.error("bad response record \(record.id ?? "?"): \(reason)")
            var error = record.errorResponse(status: 500, error: "internal_error", message: "the pipeline produced an invalid response")
            error.keepAlive = false
            emit(error, fields: [Header("content-type", "application/json")], into: &out)
            written = error
            return true
        }
    }

    /// An interim response (100 Continue, 103 Early Hints): a status line and its header
    /// fields, no Date and no body; the request's final response follows. Anything else
    /// marked interim is a pipeline bug, answered like any unwritable response.
    private mutating func writeInterim(_ record: Record, into out: inout [UInt8]) -> Bool {
        guard let status = record.status, status == 100 || status == 103 else {
            Log.error("bad interim record \(record.id ?? "?"): status must be 100 or 103")
            var error = record.errorResponse(status: 500, error: "internal_error", message: "the pipeline produced an invalid response")
            error.object.members.removeAll { $0.key == "interim" }
            error.keepAlive = false
            emit(error, fields: [Header("content-type", "application/json")], into: &out)
            return true
        }
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        Self.appendDecimal(status, to: &out)
        out.append(contentsOf: (status == 100 ? " Continue\r\n" : " Early Hints\r\n").utf8)
        for h in record.headers where !Self.isIgnored(h.name) && h.name.utf8.allSatisfy(Self.isToken)
            && !h.value.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) {
            out.append(contentsOf: "\(h.name): \(h.value)\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        return false
    }

    /// The record with the members this writer reads parsed once: a member still held as
    /// the line's bytes is parsed again on every read, and validate and emit read the body
    /// three times and status, headers and keep_alive twice each.
    static func parsingReadFields(_ input: Record) -> Record {
        var record = input
        for i in record.object.members.indices {
            switch record.object.members[i].key {
            case "status", "headers", "body", "body_base64", "keep_alive", "version", "method":
                record.object.members[i].value = record.object.members[i].value
            default:
                continue
            }
        }
        return record
    }

    /// The 500 for a line that is not a record at all (its connection fields are unknown).
    func internalError(_ message: String) -> Record {
        Record(JSONObject([("keep_alive", JSON.bool(false))]))
            .errorResponse(status: 500, error: "internal_error", message: message)
    }

    private enum Invalid: Error { case reason(String) }

    /// The header fields to write, or why the record cannot be written as it is. A value
    /// with CR, LF or another control character would let a filter (or a client whose
    /// input a filter echoes) split the response, so such a record becomes a 500.
    private func validate(_ record: Record) -> Result<[Header], Invalid> {
        guard let status = record.status, (200...599).contains(status) else {
            return .failure(.reason("status must be an integer from 200 to 599"))
        }
        if record.hasCorruptBody { return .failure(.reason("body_base64 is not valid base64")) }
        if record["body"] != nil && record["body_base64"] != nil { return .failure(.reason("both body and body_base64")) }
        if let b = record["body"], b.string == nil { return .failure(.reason("body must be a string")) }
        var fields: [Header] = []
        if let list = record["headers"] {
            guard let pairs = list.array else { return .failure(.reason("headers must be an array")) }
            for pair in pairs {
                guard let p = pair.array, p.count == 2, let name = p[0].string, let value = p[1].string else {
                    return .failure(.reason("each header must be [name, value]"))
                }
                guard !name.isEmpty, name.utf8.allSatisfy(Self.isToken) else {
                    return .failure(.reason("invalid header name"))
                }
                guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                    return .failure(.reason("control character in the value of \(name)"))
                }
                fields.append(Header(name.lowercased(), value))
            }
        }
        return .success(fields)
    }

    private mutating func emit(_ record: Record, fields: [Header], into out: inout [UInt8]) {
        let status = record.status ?? 500
        writtenStatus = status
        let body = record.body
        // 204 and 304 have no body and (for 204, RFC 9110 §8.6) no Content-Length.
        let bodiless = status == 204 || status == 304
        let head = record.method == "HEAD"

        out.append(contentsOf: "HTTP/1.1 ".utf8)
        Self.appendDecimal(status, to: &out)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: Self.reason(status).utf8)
        out.append(contentsOf: "\r\n".utf8)
        out.append(contentsOf: "date: ".utf8)
        out.append(contentsOf: date())
        out.append(contentsOf: "\r\n".utf8)
        // The request's id on every response; one a filter or an upstream set gives way.
        let requestID = record.requestID.flatMap { id in id.utf8.allSatisfy(Self.isSafeValue) && !id.isEmpty ? id : nil }
        if let requestID {
            out.append(contentsOf: "x-request-id: ".utf8)
            out.append(contentsOf: requestID.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        var hasType = false
        for h in fields where !Self.isIgnored(h.name) {
            if requestID != nil && h.name == "x-request-id" { continue }
            if h.name == "content-type" {
                if hasType { continue }   // one Content-Type only
                hasType = true
            }
            out.append(contentsOf: h.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: h.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        if !bodiless {
            if !hasType { out.append(contentsOf: "content-type: \(Self.defaultContentType)\r\n".utf8) }
            out.append(contentsOf: "content-length: ".utf8)
            Self.appendDecimal(body.count, to: &out)
            out.append(contentsOf: "\r\n".utf8)
        }
        if !record.keepAlive {
            out.append(contentsOf: "connection: close\r\n".utf8)
        } else if record.version == "HTTP/1.0" {
            out.append(contentsOf: "connection: keep-alive\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        if !bodiless && !head { out.append(contentsOf: body) }
    }

    /// The digits of a non-negative number, without the String an interpolation builds.
    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var v = UInt(max(n, 0))
            var i = buffer.count
            repeat {
                i -= 1
                buffer[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            out.append(contentsOf: buffer[i...])
        }
    }

    /// IMF-fixdate, formatted once per second.
    private mutating func date() -> [UInt8] {
        let second = now()
        if second != cachedSecond {
            cachedSecond = second
            cachedDate = Array(Clock.httpDate(second).utf8)
        }
        return cachedDate
    }

    static func isSafeValue(_ c: UInt8) -> Bool { c > 0x20 && c < 0x7F }

    static func isToken(_ c: UInt8) -> Bool { ASCII.isToken(c) }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 203: return "Non-Authoritative Information"
        case 204: return "No Content"
        case 205: return "Reset Content"
        case 206: return "Partial Content"
        case 300: return "Multiple Choices"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 402: return "Payment Required"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 418: return "I'm a teapot"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 425: return "Too Early"
        case 426: return "Upgrade Required"
        case 428: return "Precondition Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 451: return "Unavailable For Legal Reasons"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return ""
        }
    }
}

/// Records in, HTTP out: one write per response, in order; stops after a response that
/// closes the connection.
public struct HTTPEncodeFilter {
    public var input: Int32 = 0
    public var output: Int32 = 1

    // Spelled out, not `ResponseObserver?`: the sugar's implicit nil is destroyed when the
    // init assigns, through Optional's generic metadata (a runtime instantiation at every start).
    public var observer: Optional<ResponseObserver>

    public init(input: Int32 = 0, output: Int32 = 1, observer: ResponseObserver? = nil) {
        self.input = input; self.output = output; self.observer = observer
    }

    /// Exits 0 at end of input or right after a closing response, 1 when the output is closed.
    public func run() -> Never {
        signal(SIGPIPE, SIG_IGN)
        var reader = LineReader(fd: input)
        reader.watchedOutput = output
        var writer = ResponseWriter()
        var observer = self.observer
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        reader.forEachLine { event in
            out.removeAll(keepingCapacity: true)
            let close: Bool
            switch event {
            case .line(let line):
                close = writer.write(line: line, into: &out)
            case .tooLong:
                Log.error("record longer than \(LineReader.defaultMaxLine) bytes")
                close = writer.write(writer.internalError("the pipeline produced a record too long"), into: &out)
            }
            if !FileOutput.writeAll(output, out) { exit(1) }
            // After the response is on its way: the log and the counters never delay it.
            if observer != nil, let record = writer.written {
                observer!.responded(record, status: writer.writtenStatus, bytesOut: out.count)
            }
            if close { finish() }
        }
        if reader.outputGone { exit(1) }
        finish()
    }

    /// Half-closes at once, so the client (or socat) sees the end of the responses now,
    /// not when the last process holding the socket exits.
    private func finish() -> Never {
        shutdown(output, Int32(SHUT_WR))
        exit(0)
    }
}
