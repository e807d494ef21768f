#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// A strict, incremental HTTP/1.1 response parser (RFC 9112). Whatever an upstream sends is
// either one response every reader would read the same way, or a failure: a proxy that
// guesses at an ambiguous response (Content-Length next to Transfer-Encoding, a bad chunk)
// is how response smuggling and cache poisoning start. The field rules are Records'
// HTTPSyntax, which http-decode reads requests with, so both directions refuse the same.

public struct ResponseLimits: Equatable, Sendable {
    /// Status line, header fields and trailers together.
    public var maxHeadBytes = 64 * 1024
    public var maxHeaderCount = 100
    /// Decoded body bytes; more is `ResponseFailure.tooLarge`.
    public var maxBody = 10 << 20
    public var maxChunkLine = 4 * 1024
    public init() {}
}

public struct ParsedResponse: Equatable, Sendable {
    public var status: Int
    /// Names lower-cased, in order, repeats kept (Set-Cookie).
    public var headers: [Header]
    public var body: [UInt8]
    /// The message allows the connection to carry another request: HTTP/1.1, no
    /// `Connection: close`, a body framed by length or chunks. (Bytes that came after it
    /// are the reader's to check: `ResponseParser.hasLeftover`, then a poll before reuse.)
    public var reusable: Bool

    public init(status: Int, headers: [Header], body: [UInt8], reusable: Bool) {
        self.status = status; self.headers = headers; self.body = body; self.reusable = reusable
    }
}

public struct ResponseFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case malformed, tooLarge }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    static func bad(_ message: String) -> ResponseFailure { ResponseFailure(.malformed, message) }
    public var description: String { message }
}

public struct ResponseParser {
    public enum Event: Equatable, Sendable {
        case needMore
        case response(ParsedResponse)
        case failure(ResponseFailure)
    }

    private enum State: Equatable {
        case statusLine, headers
        case body(remaining: Int)
        case untilClose
        case chunkSize, chunkData(remaining: Int), chunkDataEnd, trailers
        case done, failed
    }

    public let limits: ResponseLimits
    /// The request was HEAD: whatever the framing headers say, no body follows.
    private let headRequest: Bool
    private var buffer: [UInt8] = []
    private var pos = 0
    /// Bytes after `pos` already searched for a line end.
    private var scanned = 0
    private var state = State.statusLine
    private var headBytes = 0
    private var headerCount = 0
    private var status = 0
    private var http11 = true
    private var headers: [Header] = []
    private var body: [UInt8] = []
    private var closeRequested = false
    private var failure: ResponseFailure?
    /// Any byte has arrived: a reused connection that fails before this may be retried.
    public private(set) var started = false

    /// Bytes arrived after the complete response: an answer nobody asked for, so the
    /// connection must not carry another request. Which read they came in depends on
    /// timing, so it is not part of the response.
    public var hasLeftover: Bool { state == .done && pos < buffer.count || failure?.message == Self.afterResponse }
    private static let afterResponse = "bytes after the response"

    public init(limits: ResponseLimits = ResponseLimits(), headRequest: Bool = false) {
        self.limits = limits
        self.headRequest = headRequest
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        started = true
        if state == .done { state = .failed; failure = .bad(Self.afterResponse) }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// The response once complete; `.needMore` until then. A failure is final.
    public mutating func next() -> Event {
        if let failure { return .failure(failure) }
        let storage = buffer   // a second reference: parsing never mutates `buffer`
        let event = storage.withUnsafeBufferPointer { step($0) }
        if case .failure(let f) = event { failure = f; state = .failed }
        // Keep the buffer from growing with consumed bytes (a body of megabytes passes through).
        if pos == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            pos = 0
        } else if pos > 1 << 16 {
            buffer.removeSubrange(0..<pos)
            pos = 0
        }
        return event
    }

    /// At the end of the stream: completes a body delimited by the close, else fails.
    /// `cleanClose` is false for a TLS stream closed without close_notify, which may be a
    /// truncation: then only a body framed by length or chunks counts as complete.
    public mutating func finish(cleanClose: Bool = true) -> Event {
        let event = next()
        if case .needMore = event {} else { return event }
        if state == .untilClose {
            guard cleanClose else { return fail(.bad("TLS connection closed without close_notify")) }
            state = .done
            return .response(ParsedResponse(status: status, headers: headers, body: body, reusable: false))
        }
        if !started { return fail(.bad("connection closed before any response")) }
        return fail(.bad("connection closed in the middle of the response"))
    }

    private mutating func fail(_ f: ResponseFailure) -> Event {
        failure = f
        state = .failed
        return .failure(f)
    }

    // MARK: - The state machine

    private static let bareLF = ResponseFailure.bad("bare LF line ending (CRLF required)")
    private static let headTooLarge = ResponseFailure.bad("response head too large")

    /// The next line of the head's or the trailers' fields, which share the head's limits.
    private mutating func nextField(_ p: UnsafeBufferPointer<UInt8>) -> HTTPSyntax.FieldLine {
        HTTPSyntax.nextField(p, pos: &pos, scanned: &scanned, bytes: &headBytes, count: &headerCount,
                             maxBytes: limits.maxHeadBytes, maxCount: limits.maxHeaderCount)
    }

    private mutating func step(_ p: UnsafeBufferPointer<UInt8>) -> Event {
        while true {
            switch state {
            case .statusLine:
                switch HTTPSyntax.nextLine(p, pos: &pos, scanned: &scanned) {
                case .bareLF: return .failure(Self.bareLF)
                case .incomplete(let n):
                    return headBytes + n > limits.maxHeadBytes ? .failure(.bad("status line too long")) : .needMore
                case .line(let r):
                    headBytes += r.count + 2
                    if let f = parseStatusLine(UnsafeBufferPointer(rebasing: p[r])) { return .failure(f) }
                    state = .headers
                }
            case .headers:
                switch nextField(p) {
                case .bareLF: return .failure(Self.bareLF)
                case .tooLarge: return .failure(Self.headTooLarge)
                case .needMore: return .needMore
                case .end:
                    if let event = finishHead() { return event }
                case .field(let r):
                    switch HTTPSyntax.parseField(UnsafeBufferPointer(rebasing: p[r])) {
                    case .failure(let f): return .failure(.bad(f.message))
                    case .success(let h): headers.append(h)
                    }
                }
            case .body(let remaining):
                let take = min(remaining, p.count - pos)
                body.append(contentsOf: UnsafeBufferPointer(rebasing: p[pos..<(pos + take)]))
                pos += take
                if take < remaining { state = .body(remaining: remaining - take); return .needMore }
                return complete()
            case .untilClose:
                let take = p.count - pos
                if body.count + take > limits.maxBody { return .failure(Self.tooLarge(limits.maxBody)) }
                body.append(contentsOf: UnsafeBufferPointer(rebasing: p[pos..<p.count]))
                pos = p.count
                return .needMore
            case .chunkSize:
                switch HTTPSyntax.nextLine(p, pos: &pos, scanned: &scanned) {
                case .bareLF: return .failure(Self.bareLF)
                case .incomplete(let n): return n > limits.maxChunkLine ? .failure(.bad("chunk-size line too long")) : .needMore
                case .line(let r):
                    guard r.count <= limits.maxChunkLine else { return .failure(.bad("chunk-size line too long")) }
                    switch parseChunkSize(UnsafeBufferPointer(rebasing: p[r])) {
                    case .failure(let f): return .failure(f)
                    case .success(0): state = .trailers
                    case .success(let size): state = .chunkData(remaining: size)
                    }
                }
            case .chunkData(let remaining):
                let take = min(remaining, p.count - pos)
                body.append(contentsOf: UnsafeBufferPointer(rebasing: p[pos..<(pos + take)]))
                pos += take
                if take < remaining { state = .chunkData(remaining: remaining - take); return .needMore }
                state = .chunkDataEnd
            case .chunkDataEnd:
                guard p.count - pos >= 2 else {
                    if p.count - pos == 1 && p[pos] != 0x0D { return .failure(.bad("chunk data not followed by CRLF")) }
                    return .needMore
                }
                guard p[pos] == 0x0D, p[pos + 1] == 0x0A else { return .failure(.bad("chunk data not followed by CRLF")) }
                pos += 2
                state = .chunkSize
            case .trailers:
                // Trailers are checked like header fields, then dropped: a record has no place
                // for them, and a proxy must not turn them into headers.
                switch nextField(p) {
                case .bareLF: return .failure(Self.bareLF)
                case .tooLarge: return .failure(Self.headTooLarge)
                case .needMore: return .needMore
                case .end: return complete()
                case .field(let r):
                    if case .failure(let f) = HTTPSyntax.parseField(UnsafeBufferPointer(rebasing: p[r])) {
                        return .failure(.bad(f.message))
                    }
                }
            case .done:
                return .needMore
            case .failed:
                return .failure(failure ?? .bad("failed"))
            }
        }
    }

    static func tooLarge(_ max: Int) -> ResponseFailure { ResponseFailure(.tooLarge, "response body larger than \(max) bytes") }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`; the reason is checked, then dropped.
    private mutating func parseStatusLine(_ line: UnsafeBufferPointer<UInt8>) -> ResponseFailure? {
        guard line.count >= 12, line[0] == UInt8(ascii: "H"), line[1] == UInt8(ascii: "T"), line[2] == UInt8(ascii: "T"),
              line[3] == UInt8(ascii: "P"), line[4] == UInt8(ascii: "/"), line[5] == UInt8(ascii: "1"),
              line[6] == UInt8(ascii: "."), line[7] == UInt8(ascii: "1") || line[7] == UInt8(ascii: "0"),
              line[8] == 0x20 else { return .bad("malformed status line") }
        http11 = line[7] == UInt8(ascii: "1")
        var code = 0
        for i in 9..<12 {
            guard HTTPSyntax.isDigit(line[i]) else { return .bad("malformed status code") }
            code = code * 10 + Int(line[i] - 0x30)
        }
        guard (100...599).contains(code) else { return .bad("status code out of range") }
        if line.count > 12 {
            guard line[12] == 0x20 else { return .bad("malformed status line") }
            for i in 13..<line.count where !HTTPSyntax.isFieldByte(line[i]) { return .bad("control character in reason phrase") }
        }
        status = code
        return nil
    }

    /// Picks the body's framing (RFC 9112 §6.3); returns an event to hand out now, or nil.
    private mutating func finishHead() -> Event? {
        var lengths: [String] = [], codings: [String] = [], connection: [String] = []
        for h in headers {
            switch h.name {
            case "content-length": lengths.append(h.value)
            case "transfer-encoding": codings.append(h.value)
            case "connection": connection.append(h.value)
            default: break
            }
        }
        // Checked for every status, bodiless or not: a response that would be framed two
        // ways is refused whatever this reader would do with it.
        if !lengths.isEmpty && !codings.isEmpty { return .failure(.bad("both Content-Length and Transfer-Encoding")) }
        var chunked = false
        if !codings.isEmpty {
            if !http11 { return .failure(.bad("Transfer-Encoding in an HTTP/1.0 response")) }
            let elements = HTTPSyntax.listElements(codings, keepEmpty: true)
            guard elements == ["chunked"] else { return .failure(.bad("transfer coding other than a single chunked")) }
            chunked = true
        }
        var length: Int?
        if !lengths.isEmpty {
            switch HTTPSyntax.contentLength(lengths) {
            case .failure(let p): return .failure(p == .tooLong ? Self.tooLarge(limits.maxBody) : .bad(p.message))
            case .success(let n) where n > limits.maxBody: return .failure(Self.tooLarge(limits.maxBody))
            case .success(let n): length = n
            }
        }
        if status < 200 {
            // 100 Continue, 103 Early Hints: interim, skipped. 101 would switch protocols,
            // which was never asked for.
            if status == 101 { return .failure(.bad("101 Switching Protocols without an Upgrade request")) }
            headers = []
            headerCount = 0
            headBytes = 0
            state = .statusLine
            return nil
        }
        closeRequested = HTTPSyntax.listElements(connection).contains("close")
        if headRequest || status == 204 || status == 304 { return complete() }
        if chunked {
            state = .chunkSize
        } else if let length {
            if length == 0 { return complete() }
            state = .body(remaining: length)
        } else {
            state = .untilClose
        }
        return nil
    }

    private mutating func parseChunkSize(_ line: UnsafeBufferPointer<UInt8>) -> Result<Int, ResponseFailure> {
        var i = 0
        var size = 0
        while i < line.count, let d = ASCII.hexValue(line[i]) {
            size = size * 16 + Int(d)
            if body.count + size > limits.maxBody { return .failure(Self.tooLarge(limits.maxBody)) }
            i += 1
        }
        if i == 0 { return .failure(.bad("invalid chunk size")) }
        if !HTTPSyntax.validChunkExtensions(UnsafeBufferPointer(rebasing: line[i...])) {
            return .failure(.bad("invalid chunk size or extension"))
        }
        return .success(size)
    }

    private mutating func complete() -> Event {
        state = .done
        let reusable = http11 && !closeRequested
        return .response(ParsedResponse(status: status, headers: headers, body: body, reusable: reusable))
    }
}
