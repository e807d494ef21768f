#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import COpenSSL

/// An http(s) URL, reduced to what a GET needs.
public struct FetchURL: Equatable, Sendable, CustomStringConvertible {
    public let scheme: String
    public let host: String
    public let port: Int
    /// Path and query, starting with "/".
    public let target: String

    public var isTLS: Bool { scheme == "https" }

    /// 127.0.0.0/8, ::1 and localhost: the only hosts plain http is allowed for.
    public var isLoopback: Bool {
        if host == "localhost" || host == "::1" { return true }
        var addr = in_addr()
        return inet_pton(AF_INET, host, &addr) == 1 && host.hasPrefix("127.")
    }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        let defaultPort = isTLS ? 443 : 80
        return "\(scheme)://\(h)\(port == defaultPort ? "" : ":\(port)")\(target)"
    }

    /// Nil for anything but a plain http(s) URL: no user info, visible ASCII only (so a
    /// URL can never smuggle a header into the request), a numeric port. Byte-wise, because
    /// it runs at every start-up and String's Unicode-aware operations cost more there.
    public static func parse(_ text: String) -> FetchURL? {
        let b = Array(text.utf8)
        for c in b where c <= 0x20 || c >= 0x7F { return nil }
        func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
        func hasPrefix(_ p: StaticString) -> Bool {
            let n = p.utf8CodeUnitCount
            guard b.count >= n else { return false }
            for i in 0..<n where lower(b[i]) != p.utf8Start[i] { return false }
            return true
        }
        let scheme: String
        var i: Int
        if hasPrefix("https://") { scheme = "https"; i = 8 } else if hasPrefix("http://") { scheme = "http"; i = 7 } else { return nil }
        var end = b.count
        if let hash = b[i...].firstIndex(of: UInt8(ascii: "#")) { end = hash }
        var authorityEnd = i
        while authorityEnd < end && b[authorityEnd] != UInt8(ascii: "/") && b[authorityEnd] != UInt8(ascii: "?") { authorityEnd += 1 }
        guard authorityEnd > i else { return nil }
        var target = String(decoding: b[authorityEnd..<end], as: UTF8.self)
        if target.isEmpty { target = "/" } else if b[authorityEnd] == UInt8(ascii: "?") { target = "/" + target }
        var hostStart = i, hostEnd = authorityEnd
        var portStart: Int?
        for j in i..<authorityEnd where b[j] == UInt8(ascii: "@") { return nil }
        if b[i] == UInt8(ascii: "[") {
            guard let close = b[i..<authorityEnd].firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostStart = i + 1
            hostEnd = close
            if close + 1 < authorityEnd {
                guard b[close + 1] == UInt8(ascii: ":") else { return nil }
                portStart = close + 2
            }
            var addr = in6_addr()
            guard inet_pton(AF_INET6, String(decoding: b[hostStart..<hostEnd], as: UTF8.self), &addr) == 1 else { return nil }
        } else {
            if let colon = b[i..<authorityEnd].lastIndex(of: UInt8(ascii: ":")) {
                hostEnd = colon
                portStart = colon + 1
            }
            guard hostEnd > hostStart else { return nil }
            for j in hostStart..<hostEnd where !isHostByte(b[j]) { return nil }
        }
        var port = scheme == "https" ? 443 : 80
        if let portStart {
            guard portStart < authorityEnd, authorityEnd - portStart <= 5 else { return nil }
            var p = 0
            for j in portStart..<authorityEnd {
                guard b[j] >= 0x30 && b[j] <= 0x39 else { return nil }
                p = p * 10 + Int(b[j] - 0x30)
            }
            guard p > 0 && p < 65536 else { return nil }
            port = p
        }
        let host = String(decoding: b[hostStart..<hostEnd].map(lower), as: UTF8.self)
        return FetchURL(scheme: scheme, host: host, port: port, target: target)
    }

    private static func isHostByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2E
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Names lower-cased, in order.
    public var headers: [Header]
    public var body: [UInt8]

    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
}

public struct FetchError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A tiny HTTP/1.1 GET client over a TCP socket, with TLS from OpenSSL (SNI, certificate
/// and host name verification against the system CA store, which `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` override). One request per connection; the whole exchange is bounded by
/// one deadline. Used for key sets, which are small and rare: no pooling, no redirects.
public enum HTTPClient {
    public static func get(_ url: FetchURL, timeoutMillis: Int, maxBytes: Int = 1 << 20,
                           userAgent: String = "edgepipe") throws(FetchError) -> HTTPResponse {
        let deadline = Clock.monotonicMillis() + max(timeoutMillis, 1)
        let socket = try StreamSocket.connect(host: url.host, port: url.port, deadline: deadline)
        let hostHeader = url.description.dropFirst(url.scheme.count + 3).prefix { $0 != "/" }
        let request = "GET \(url.target) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: \(userAgent)\r\n"
            + "Accept: application/json\r\nConnection: close\r\n\r\n"
        var stream: ByteStream
        if url.isTLS {
            stream = .tls(try TLSStream(socket: socket, host: url.host, deadline: deadline))
        } else {
            stream = .plain(socket)
        }
        try stream.write(Array(request.utf8), deadline: deadline)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = try stream.read(&chunk, deadline: deadline)
            if n == 0 {
                // A TLS close without close_notify could be a truncation: only a body framed
                // by Content-Length or chunked encoding proves it is complete.
                guard let response = try HTTPResponseParser.parse(received, atEOF: true,
                                                                  closeDelimitedAllowed: stream.closedCleanly) else {
                    throw FetchError("connection closed before the response was complete")
                }
                return response
            }
            received.append(contentsOf: chunk[0..<n])
            if received.count > maxBytes { throw FetchError("response larger than \(maxBytes) bytes") }
            if let response = try HTTPResponseParser.parse(received, atEOF: false) { return response }
        }
    }
}

/// Parses a complete HTTP/1.1 response (Content-Length, chunked, or delimited by close).
public enum HTTPResponseParser {
    /// Nil while more bytes are needed.
    public static func parse(_ bytes: [UInt8], atEOF: Bool, closeDelimitedAllowed: Bool = true) throws(FetchError) -> HTTPResponse? {
        guard let headEnd = find([13, 10, 13, 10], in: bytes, from: 0) else {
            if atEOF { throw FetchError("truncated response head") }
            return nil
        }
        let head = String(decoding: bytes[0..<headEnd], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw FetchError("empty response") }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw FetchError("bad status line")
        }
        var headers: [Header] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw FetchError("bad header line") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            headers.append(Header(name, value))
        }
        let bodyStart = headEnd + 4
        let rest = Array(bytes[bodyStart...])
        var response = HTTPResponse(status: status, headers: headers, body: [])
        if let te = response.header("transfer-encoding"), te.lowercased().contains("chunked") {
            guard let body = try dechunk(rest) else {
                if atEOF { throw FetchError("truncated chunked body") }
                return nil
            }
            response.body = body
            return response
        }
        if let cl = response.header("content-length") {
            guard let length = Int(cl), length >= 0 else { throw FetchError("bad content-length") }
            if rest.count < length {
                if atEOF { throw FetchError("truncated body") }
                return nil
            }
            response.body = Array(rest[0..<length])
            return response
        }
        guard atEOF else { return nil }
        guard closeDelimitedAllowed else { throw FetchError("TLS connection closed without close_notify") }
        response.body = rest
        return response
    }

    /// The decoded body, or nil while the terminating chunk has not arrived.
    static func dechunk(_ data: [UInt8]) throws(FetchError) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = find([13, 10], in: data, from: i) else { return nil }
            var sizeText = String(decoding: data[i..<lineEnd], as: UTF8.self)
            if let semi = sizeText.firstIndex(of: ";") { sizeText = String(sizeText[..<semi]) }
            guard let size = Int(sizeText.trimmingSpaces(), radix: 16), size >= 0 else { throw FetchError("bad chunk size") }
            i = lineEnd + 2
            if size == 0 { return out }     // trailers, if any, are ignored
            guard data.count >= i + size + 2 else { return nil }
            out.append(contentsOf: data[i..<(i + size)])
            i += size
            guard data[i] == 13, data[i + 1] == 10 else { throw FetchError("bad chunk framing") }
            i += 2
        }
    }

    static func find(_ needle: [UInt8], in data: [UInt8], from start: Int) -> Int? {
        guard data.count >= needle.count else { return nil }
        var i = start
        while i + needle.count <= data.count {
            if data[i] == needle[0] {
                var match = true
                for j in 1..<needle.count where data[i + j] != needle[j] { match = false; break }
                if match { return i }
            }
            i += 1
        }
        return nil
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// A connected, non-blocking stream socket (TCP, or a Unix-domain path), closed with its
/// owner. Key fetches and the Redis client both read and write through it.
final class StreamSocket {
    let fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    static func connect(host: String, port: Int, deadline: Int) throws(FetchError) -> StreamSocket {
        var lastError = "cannot resolve \(host)"
        for address in try resolve(host: host, port: port) {
            let fd = socket(Int32(address.family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { continue }
            let sock = StreamSocket(fd: fd)
            let rc = address.storage.withUnsafeBytes { raw in
                Glibc.connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length)
            }
            if rc != 0 && errno != EINPROGRESS {
                lastError = "connect: \(String(cString: strerror(errno)))"
                continue
            }
            if rc != 0 {
                guard sock.wait(for: Int16(POLLOUT), until: deadline) else { throw FetchError("connect timed out") }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err != 0 { lastError = "connect: \(String(cString: strerror(err)))"; continue }
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return sock
        }
        throw FetchError(lastError)
    }

    static func connect(unixPath path: String, deadline: Int) throws(FetchError) -> StreamSocket {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw FetchError("socket: \(String(cString: strerror(errno)))") }
        let sock = StreamSocket(fd: fd)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw FetchError("socket path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            // A full listen backlog answers EAGAIN on a Unix socket; wait for it like a TCP connect.
            guard errno == EAGAIN || errno == EINPROGRESS else { throw FetchError("connect: \(String(cString: strerror(errno)))") }
            guard sock.wait(for: Int16(POLLOUT), until: deadline) else { throw FetchError("connect timed out") }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { throw FetchError("connect: \(String(cString: strerror(err)))") }
        }
        return sock
    }

    struct Address {
        var family: Int32
        var storage: [UInt8]
        var length: socklen_t
    }

    /// IP literals and localhost never touch the resolver (a static binary's NSS is best avoided).
    static func resolve(host: String, port: Int) throws(FetchError) -> [Address] {
        var v4 = in_addr()
        let literal4 = host == "localhost" ? "127.0.0.1" : host
        if inet_pton(AF_INET, literal4, &v4) == 1 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = in_port_t(UInt16(port).bigEndian)
            sa.sin_addr = v4
            return [Address(family: AF_INET, storage: withUnsafeBytes(of: sa) { Array($0) }, length: socklen_t(MemoryLayout<sockaddr_in>.size))]
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = in_port_t(UInt16(port).bigEndian)
            sa.sin6_addr = v6
            return [Address(family: AF_INET6, storage: withUnsafeBytes(of: sa) { Array($0) }, length: socklen_t(MemoryLayout<sockaddr_in6>.size))]
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else { throw FetchError("cannot resolve \(host)") }
        defer { freeaddrinfo(first) }
        var out: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            if let sa = ai.pointee.ai_addr {
                let bytes = Array(UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
                out.append(Address(family: ai.pointee.ai_family, storage: bytes, length: ai.pointee.ai_addrlen))
            }
            cursor = ai.pointee.ai_next
        }
        return out
    }

    /// Waits until the socket is ready for `events`; false at the deadline.
    func wait(for events: Int16, until deadline: Int) -> Bool {
        while true {
            let remaining = deadline - Clock.monotonicMillis()
            if remaining <= 0 { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(min(remaining, Int(Int32.max))))
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno != EINTR { return true }   // let the next read or write report the error
        }
    }

    func read(_ buffer: inout [UInt8], deadline: Int) throws(FetchError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                guard wait(for: Int16(POLLIN), until: deadline) else { throw FetchError("read timed out") }
                continue
            }
            throw FetchError("read: \(String(cString: strerror(errno)))")
        }
    }

    func write(_ bytes: [UInt8], deadline: Int) throws(FetchError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard wait(for: Int16(POLLOUT), until: deadline) else { throw FetchError("write timed out") }
                continue
            }
            throw FetchError("write: \(String(cString: strerror(errno)))")
        }
    }
}

/// A client TLS session over a non-blocking socket (owned SSL_CTX and SSL).
final class TLSStream {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let socket: StreamSocket

    init(socket: StreamSocket, host: String, deadline: Int) throws(FetchError) {
        self.socket = socket
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw FetchError("SSL_CTX_new failed") }
        guard let ssl = SSL_new(ctx) else { SSL_CTX_free(ctx); throw FetchError("SSL_new failed") }
        context = ctx
        self.ssl = ssl
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw FetchError("cannot load the system CA store") }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, nil)
        var v4 = in_addr(), v6 = in6_addr()
        let isIP = inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
        if isIP {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else { throw FetchError("bad IP address") }
        } else {
            guard SSL_set1_host(ssl, host) == 1 else { throw FetchError("bad host name") }
            _ = host.withCString { SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
        }
        guard SSL_set_fd(ssl, socket.fd) == 1 else { throw FetchError("SSL_set_fd failed") }
        while true {
            let rc = SSL_connect(ssl)
            if rc == 1 { break }
            try waitForSSL(rc, deadline: deadline, what: "TLS handshake")
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
        OpenSSLErrors.clear()
    }

    /// Waits when OpenSSL asks to; throws for real errors (including certificate failures).
    private func waitForSSL(_ rc: Int32, deadline: Int, what: String) throws(FetchError) {
        let err = SSL_get_error(ssl, rc)
        switch err {
        case SSL_ERROR_WANT_READ:
            guard socket.wait(for: Int16(POLLIN), until: deadline) else { throw FetchError("\(what) timed out") }
        case SSL_ERROR_WANT_WRITE:
            guard socket.wait(for: Int16(POLLOUT), until: deadline) else { throw FetchError("\(what) timed out") }
        default:
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                let reason = String(cString: X509_verify_cert_error_string(verify))
                OpenSSLErrors.clear()
                throw FetchError("\(what) failed: certificate \(reason)")
            }
            throw FetchError("\(what) failed: \(OpenSSLErrors.drain() ?? "error \(err)")")
        }
    }

    /// False once the peer has closed without close_notify.
    private(set) var closedCleanly = true

    /// Bytes read; 0 at the end of the stream.
    func read(_ buffer: inout [UInt8], deadline: Int) throws(FetchError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 { return Int(n) }
            let err = SSL_get_error(ssl, n)
            if err == SSL_ERROR_ZERO_RETURN { return 0 }
            if err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL {
                // Closed without close_notify (OpenSSL 3 reports it as an error), or broken:
                // an end, but one that may have cut the data short (see `closedCleanly`).
                OpenSSLErrors.clear()
                closedCleanly = false
                return 0
            }
            try waitForSSL(n, deadline: deadline, what: "TLS read")
        }
    }

    func write(_ bytes: [UInt8], deadline: Int) throws(FetchError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + offset, Int32($0.count - offset)) }
            if n > 0 { offset += Int(n); continue }
            try waitForSSL(n, deadline: deadline, what: "TLS write")
        }
    }
}

enum ByteStream {
    case plain(StreamSocket)
    case tls(TLSStream)

    func read(_ buffer: inout [UInt8], deadline: Int) throws(FetchError) -> Int {
        switch self {
        case .plain(let s): return try s.read(&buffer, deadline: deadline)
        case .tls(let t): return try t.read(&buffer, deadline: deadline)
        }
    }

    var closedCleanly: Bool {
        switch self {
        case .plain: return true
        case .tls(let t): return t.closedCleanly
        }
    }

    func write(_ bytes: [UInt8], deadline: Int) throws(FetchError) {
        switch self {
        case .plain(let s): try s.write(bytes, deadline: deadline)
        case .tls(let t): try t.write(bytes, deadline: deadline)
        }
    }
}
