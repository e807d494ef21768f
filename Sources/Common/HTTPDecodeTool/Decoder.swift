#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

public struct DecoderSettings: Sendable {
    public var limits = HTTPLimits()
    /// Before the first request starts: the connection is closed silently. Short, because
    /// a connection that never speaks holds one of the launcher's pipelines (at most
    /// --max-connections of them) and a flood of them would lock everyone out.
    public var firstByteTimeoutMs = 5_000
    /// Between requests: the connection is closed silently.
    public var idleTimeoutMs = 60_000
    /// From the first byte of a request to the end of its head (slowloris): 408.
    public var headerTimeoutMs = 10_000
    /// From the end of the head to the end of the body: 408.
    public var bodyTimeoutMs = 30_000
    /// After the last request, how long unread client bytes are read and dropped so that
    /// closing the socket does not reset the connection under the response.
    public var lingerMs = 2_000
    public var lingerMaxBytes = 16 << 20
    /// Peers whose X-Forwarded-For / X-Real-IP name the client (none by default).
    public var trustedProxies = TrustedProxies.none
    public var readSize = 256 << 10
    public var input: Int32 = 0
    public var output: Int32 = 1
    public init() {}

    /// Why these settings cannot work, if they cannot.
    public var problem: String? {
        let positive = [("--max-request-line", limits.maxRequestLine), ("--max-header-bytes", limits.maxHeaderBytes),
                        ("--max-headers", limits.maxHeaderCount), ("--max-body", limits.maxBody),
                        ("--first-byte-timeout-ms", firstByteTimeoutMs),
                        ("--idle-timeout-ms", idleTimeoutMs), ("--header-timeout-ms", headerTimeoutMs),
                        ("--body-timeout-ms", bodyTimeoutMs)]
        for (name, value) in positive where value <= 0 { return "\(name) must be positive, got \(value)" }
        if lingerMs < 0 { return "--linger-ms must not be negative" }
        if worstCaseRecordBytes > LineReader.defaultMaxLine {
            return "--max-body \(limits.maxBody) cannot fit in a record: at most \(largestMaxBody) with these header limits (a record is at most \(LineReader.defaultMaxLine >> 20) MiB)"
        }
        return nil
    }

    /// Room for what later filters add to a record (annotations, a header or two).
    static let filterAllowance = 64 << 10

    /// The longest record a request within these limits can become, with room for what the
    /// filters behind add: every byte of the request line and the headers escaped at six
    /// bytes (`\u0001`), the path once more as route parameters, and the body at its worst
    /// (BodyEncoding: base64 when escaping costs more).
    public var worstCaseRecordBytes: Int {
        headRoom + BodyEncoding.worstCaseLength(limits.maxBody)
    }

    private var headRoom: Int {
        6 * (2 * limits.maxRequestLine + limits.maxHeaderBytes) + 16 * limits.maxHeaderCount + Self.filterAllowance
    }

    /// The largest --max-body that fits with these header limits.
    public var largestMaxBody: Int {
        let room = LineReader.defaultMaxLine - headRoom
        return room < BodyEncoding.textAlways ? 0 : room / 4 * 3
    }
}

/// Where http-decode's records go: the pipe to the next process, or, in `chain`, the
/// filters and the encoder in the same process (docs/chain.md).
public protocol DecodedRecords {
    /// Takes whole record lines, each ending in a newline.
    mutating func take(_ lines: [UInt8]) -> Delivery
    /// The end of the records: no request follows.
    mutating func end()
    /// A descriptor that reports hang-up when no one is left to answer, watched while the
    /// client is awaited; -1 for none.
    var watched: Int32 { get }
}

public enum Delivery {
    /// Delivered; more may follow.
    case more
    /// No one is left to answer (the next process exited).
    case gone
    /// A response closed the connection (in-process encoding only).
    case closed
}

/// The records written to the next process's pipe.
public struct RecordPipe: DecodedRecords {
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }
    public mutating func take(_ lines: [UInt8]) -> Delivery { FileOutput.writeAll(fd, lines) ? .more : .gone }
    /// Closing the pipe ends the records: the pipeline behind finishes its work and exits.
    public mutating func end() { close(fd) }
    public var watched: Int32 { fd }
}

/// Socket bytes in, request records out. One instance per connection.
public struct HTTPDecodeFilter {
    public let settings: DecoderSettings
    public let remote: String?

    public init(settings: DecoderSettings, remote: String?) {
        self.settings = settings
        self.remote = remote
    }

    /// Runs until the connection's last request; returns the exit status.
    public func run() -> Int32 {
        var pipe = RecordPipe(fd: settings.output)
        return run(into: &pipe)
    }

    public func run<Output: DecodedRecords>(into output: inout Output) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        var parser = RequestParser(limits: settings.limits)
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        var nextID = 1
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: settings.readSize, alignment: 16)
        defer { chunk.deallocate() }
        var phase = parser.phase
        var phaseStart = Clock.monotonicMillis()
        // Until the first byte of the first request (an empty line before it included), the
        // first-byte limit applies, counted from the connection's start; the idle limit only
        // between requests.
        var started = false
        // The peer is the same for every request of the connection; only a proxy's
        // requests each name their own client.
        let proxy = settings.trustedProxies.trusts(peer: remote) ? remote : nil
        var ids = RequestIDs()
        // The first byte of the request being read arrived in the read at `lastRead`; a
        // request whose bytes came with the previous one's arrived with them.
        var lastRead = Arrival.now()
        var arrival: Arrival?
        var consumedBefore = 0
        func stamp(_ consumed: Int) -> Arrival {
            var a = arrival ?? lastRead
            a.bytes = consumed - consumedBefore
            consumedBefore = consumed
            arrival = parser.buffered > 0 ? lastRead : nil
            return a
        }
        // The decoder's own answer (400, 408, 413, ...) to the request being read.
        func fail(_ failure: HTTPFailure, logged: Bool = true) {
            if logged { Log.error("\(failure.status) \(failure.message)") }
            RequestRecord.failure(failure, id: String(nextID), method: parser.partialMethod,
                                  version: parser.partialVersion, remote: remote, requestID: ids.next(),
                                  arrival: stamp(parser.consumed + parser.buffered)).object.write(to: &out)
            out.append(0x0A)
        }

        while true {
            // Everything parseable now becomes records; they are written in one go before
            // the next wait, so pipelined requests cost one write, not one each.
            var completed = false
            parsing: while true {
                switch parser.next() {
                case .needMore:
                    break parsing
                case .request(let request):
                    let client = proxy.map { settings.trustedProxies.client(peer: $0, headers: request.headers) } ?? remote
                    let requestID = proxy.flatMap { _ in Self.forwardedID(request.headers) } ?? ids.next()
                    RequestRecord.make(request, id: String(nextID), remote: client, requestID: requestID,
                                       arrival: stamp(parser.consumed)).object.write(to: &out)
                    out.append(0x0A)
                    nextID += 1
                    completed = true
                    if !request.keepAlive { return stop(&out, &output, linger: true, chunk) }
                case .continueExpected:
                    // An interim response record: http-encode writes it, so one process
                    // writes to the client, and it goes out before the stages ever wait for
                    // the body (each passes a response on at once).
                    RequestRecord.interim(status: 100, id: String(nextID), version: parser.partialVersion)
                        .object.write(to: &out)
                    out.append(0x0A)
                case .failure(let failure):
                    fail(failure)
                    return stop(&out, &output, linger: true, chunk)
                }
            }
            if !out.isEmpty {
                switch output.take(out) {
                case .more: out.removeAll(keepingCapacity: true)
                case .gone: return 1
                case .closed: drain(chunk); return 0
                }
            }

            let now = Clock.monotonicMillis()
            // Each request gets its own timer, also when the next one's head started in
            // the same read (a steady pipelining client is not a slow one).
            if parser.phase != phase || completed { phase = parser.phase; phaseStart = now }
            if phase != .idle || completed { started = true }
            let limit: Int
            switch phase {
            case .idle: limit = started ? settings.idleTimeoutMs : settings.firstByteTimeoutMs
            case .head: limit = settings.headerTimeoutMs
            case .body: limit = settings.bodyTimeoutMs
            }
            let remaining = phaseStart + limit - now
            switch wait(remaining, watching: output.watched) {
            case .timeout:
                if phase == .idle { return stop(&out, &output, linger: false, chunk) }
                fail(HTTPFailure(408, "request_timeout",
                                 phase == .head ? "request head not received in time" : "request body not received in time"))
                return stop(&out, &output, linger: true, chunk)
            case .outputGone:
                return 1
            case .readable:
                let n = read(settings.input, chunk.baseAddress!, chunk.count)
                if n > 0 {
                    lastRead = Arrival.now()
                    if arrival == nil { arrival = lastRead }
                    parser.append(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    // End of input (or a reset): a request cut short is still answered, since
                    // a half-closed client may be waiting for it.
                    if n == 0, let failure = parser.finish() { fail(failure, logged: false) }
                    return stop(&out, &output, linger: false, chunk)
                }
            }
        }
    }

    private enum Wait { case readable, timeout, outputGone }

    /// The X-Request-Id a trusted proxy sent, when it is well formed (the last one wins,
    /// as the proxy appends after anything the client wrote).
    static func forwardedID(_ headers: [Header]) -> String? {
        guard let value = headers.last(where: { $0.name == "x-request-id" })?.value else { return nil }
        return RequestIDs.isWellFormed(value) ? value : nil
    }

    /// Waits for input, watching the output too: when the rest of the pipeline has exited
    /// there is no one left to answer, so there is no point waiting for the client.
    private func wait(_ milliseconds: Int, watching watched: Int32) -> Wait {
        if milliseconds <= 0 { return .timeout }
        // poll skips a negative descriptor.
        var fds = [pollfd(fd: settings.input, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: watched, events: 0, revents: 0)]
        while true {
            let rc = poll(&fds, 2, Int32(min(milliseconds, Int(Int32.max))))
            if rc < 0 && errno == EINTR { continue }
            if rc == 0 { return .timeout }
            if rc < 0 { return .readable }   // let read() report the problem
            if fds[1].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { return .outputGone }
            return .readable
        }
    }

    /// Delivers what is pending, ends the records, then lingers.
    private func stop<Output: DecodedRecords>(_ out: inout [UInt8], _ output: inout Output, linger: Bool,
                                              _ chunk: UnsafeMutableRawBufferPointer) -> Int32 {
        if !out.isEmpty && output.take(out) == .gone { return 1 }
        output.end()
        if linger { drain(chunk) }
        return 0
    }

    /// Reads and drops what the client still sends, for a bounded time: closing a TCP socket
    /// with unread data sends RST, and a client's kernel that receives RST discards the
    /// response it has not read yet.
    private func drain(_ chunk: UnsafeMutableRawBufferPointer) {
        let deadline = Clock.monotonicMillis() + settings.lingerMs
        var total = 0
        while total < settings.lingerMaxBytes {
            let remaining = deadline - Clock.monotonicMillis()
            if remaining <= 0 { return }
            var fds = [pollfd(fd: settings.input, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 1, Int32(remaining))
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { return }
            let n = read(settings.input, chunk.baseAddress!, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            total += n
        }
    }
}

/// Request records as docs/protocol.md describes them.
public enum RequestRecord {
    public static func make(_ r: HTTPRequest, id: String, remote: String?,
                            requestID: String? = nil, arrival: Arrival? = nil) -> Record {
        var o = JSONObject()
        o.members.reserveCapacity(9)
        o.members.append(.init("id", .string(id)))
        o.members.append(.init("method", .string(r.method)))
        o.members.append(.init("path", .string(r.path)))
        o.members.append(.init("query", .string(r.query)))
        o.members.append(.init("version", .string(r.version)))
        var headers: [JSON] = []
        headers.reserveCapacity(r.headers.count)
        for h in r.headers { headers.append(.array([.string(h.name), .string(h.value)])) }
        o.members.append(.init("headers", .array(headers)))
        var record = Record(o)
        record.body = r.body
        if let remote { record.object.members.append(.init("remote", .string(remote))) }
        record.object.members.append(.init("keep_alive", .bool(r.keepAlive)))
        if let requestID { record.object.members.append(.init("request_id", .string(requestID))) }
        if let arrival {
            let agent = r.headers.first { $0.name == "user-agent" }?.value
            record.object.members.append(.init("access", access(arrival, path: r.path, query: r.query, userAgent: agent)))
        }
        return record
    }

    /// An interim (1xx) response for the request still being read: `"interim": true`
    /// tells every stage that the request's own record, and its final response, follow.
    public static func interim(status: Int, id: String, version: String?) -> Record {
        var o = JSONObject()
        o.members.append(.init("id", .string(id)))
        o.members.append(.init("version", .string(version ?? "HTTP/1.1")))
        o.members.append(.init("keep_alive", .bool(true)))
        o.members.append(.init("status", .number(String(status))))
        o.members.append(.init("interim", .bool(true)))
        return Record(o)
    }

    /// What the access log needs from the request, in one member that `Record.response`
    /// keeps: when it arrived, its size, and the request line and user agent that a
    /// response no longer carries.
    static func access(_ a: Arrival, path: String?, query: String?, userAgent: String?) -> JSON {
        var o = JSONObject()
        o.members.reserveCapacity(6)
        // received_us first: the metrics read it from every response, and a scan stops there.
        o.members.append(.init("received_us", JSON(a.monoMicros)))
        o.members.append(.init("received_at", JSON(a.at)))
        o.members.append(.init("bytes_in", JSON(a.bytes)))
        if let path { o.members.append(.init("path", .string(path))) }
        if let query, !query.isEmpty { o.members.append(.init("query", .string(query))) }
        if let userAgent { o.members.append(.init("user_agent", .string(userAgent))) }
        return .object(o)
    }

    /// The response record for a request that could not be read: it passes every filter
    /// untouched and closes the connection once written.
    public static func failure(_ f: HTTPFailure, id: String, method: String?, version: String?, remote: String?,
                               requestID: String? = nil, arrival: Arrival? = nil) -> Record {
        var o = JSONObject()
        o.members.append(.init("id", .string(id)))
        if let method { o.members.append(.init("method", .string(method))) }
        o.members.append(.init("version", .string(version ?? "HTTP/1.1")))
        o.members.append(.init("keep_alive", .bool(false)))
        if let remote { o.members.append(.init("remote", .string(remote))) }
        if let requestID { o.members.append(.init("request_id", .string(requestID))) }
        if let arrival { o.members.append(.init("access", access(arrival, path: nil, query: nil, userAgent: nil))) }
        return Record(o).errorResponse(status: f.status, error: f.code, message: f.message)
    }
}

/// The client's address, from whichever launcher started us.
public enum RemoteAddress {
    public static func detect(fd: Int32 = 0, environment env: (String) -> String? = { environment($0) }) -> String? {
        // tcpserver and s6 set TCPREMOTEIP, systemd (Accept=yes) REMOTE_ADDR, socat SOCAT_PEERADDR;
        // inetd only hands over the socket.
        for name in ["TCPREMOTEIP", "REMOTE_ADDR", "SOCAT_PEERADDR"] {
            if let v = env(name) { return normalize(v) }
        }
        return peerName(fd)
    }

    /// "::ffff:1.2.3.4" is an IPv4 client on a dual-stack socket: report "1.2.3.4".
    static func normalize(_ address: String) -> String {
        var a = Substring(address)
        if a.hasPrefix("[") && a.hasSuffix("]") { a = a.dropFirst().dropLast() }
        if a.lowercased().hasPrefix("::ffff:") && a.contains(".") { a = a.dropFirst(7) }
        return String(a)
    }

    static func peerName(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            var a = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr } }
            guard inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil else { return nil }
        case AF_INET6:
            var a = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr } }
            guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return nil }
        default:
            return nil   // a socketpair (socat EXEC) or a pipe has no client address
        }
        return normalize(text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
}

/// The CPU that took the connection's packets as they arrived (SO_INCOMING_CPU). On
/// loopback that is the CPU the connecting process ran on: behind a proxy whose workers are
/// pinned, the worker's CPU. pipelines/connection pins the pipeline there, so a request
/// passes from the proxy worker through every stage and back without leaving that CPU.
public enum IncomingCPU {
    public static func of(_ fd: Int32 = 0) -> Int? {
        var cpu: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &length) == 0, cpu >= 0 else { return nil }
        return Int(cpu)
    }
}
