#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

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

/// A tiny HTTP/1.1 GET client over a TCP socket, with TLS from OpenSSL (SNI, certificate
/// and host name verification against the system CA store, which `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` override). One request per connection; the whole exchange is bounded by
/// one deadline. Used for key sets, which are small and rare: no pooling, no redirects.
public enum HTTPClient {
    public static func get(_ url: FetchURL, timeoutMillis: Int, maxBytes: Int = 1 << 20,
                           userAgent: String = "edgepipe") throws(NetError) -> HTTPResponse {
        let deadline = Clock.monotonicMillis() + max(timeoutMillis, 1)
        let hostHeader = url.description.dropFirst(url.scheme.count + 3).prefix { $0 != "/" }
        let request = "GET \(url.target) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: \(userAgent)\r\n"
            + "Accept: application/json\r\nConnection: close\r\n\r\n"
        let stream = try Connection.open(.tcp(host: url.host, port: url.port),
                                         tls: url.isTLS ? TLSSettings(serverName: url.host) : nil, deadline: deadline)
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
                    throw NetError("connection closed before the response was complete")
                }
                return response
            }
            received.append(contentsOf: chunk[0..<n])
            if received.count > maxBytes { throw NetError("response larger than \(maxBytes) bytes") }
            if let response = try HTTPResponseParser.parse(received, atEOF: false) { return response }
        }
    }
}

/// Parses a complete HTTP/1.1 response (Content-Length, chunked, or delimited by close).
public enum HTTPResponseParser {
    /// Nil while more bytes are needed.
    public static func parse(_ bytes: [UInt8], atEOF: Bool, closeDelimitedAllowed: Bool = true) throws(NetError) -> HTTPResponse? {
        guard let headEnd = find([13, 10, 13, 10], in: bytes, from: 0) else {
            if atEOF { throw NetError("truncated response head") }
            return nil
        }
        let head = String(decoding: bytes[0..<headEnd], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw NetError("empty response") }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw NetError("bad status line")
        }
        var headers: [Header] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw NetError("bad header line") }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...].trimmingSpacesAndTabs())
            headers.append(Header(name, value))
        }
        let bodyStart = headEnd + 4
        let rest = Array(bytes[bodyStart...])
        var response = HTTPResponse(status: status, headers: headers, body: [])
        if let te = response.header("transfer-encoding"), te.lowercased().contains("chunked") {
            guard let body = try dechunk(rest) else {
                if atEOF { throw NetError("truncated chunked body") }
                return nil
            }
            response.body = body
            return response
        }
        if let cl = response.header("content-length") {
            guard let length = Int(cl), length >= 0 else { throw NetError("bad content-length") }
            if rest.count < length {
                if atEOF { throw NetError("truncated body") }
                return nil
            }
            response.body = Array(rest[0..<length])
            return response
        }
        guard atEOF else { return nil }
        guard closeDelimitedAllowed else { throw NetError("TLS connection closed without close_notify") }
        response.body = rest
        return response
    }

    /// The decoded body, or nil while the terminating chunk has not arrived.
    static func dechunk(_ data: [UInt8]) throws(NetError) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = find([13, 10], in: data, from: i) else { return nil }
            var sizeText = String(decoding: data[i..<lineEnd], as: UTF8.self)
            if let semi = sizeText.firstIndex(of: ";") { sizeText = String(sizeText[..<semi]) }
            guard let size = Int(sizeText.trimmingSpacesAndTabs(), radix: 16), size >= 0 else { throw NetError("bad chunk size") }
            i = lineEnd + 2
            if size == 0 { return out }     // trailers, if any, are ignored
            guard data.count >= i + size + 2 else { return nil }
            out.append(contentsOf: data[i..<(i + size)])
            i += size
            guard data[i] == 13, data[i + 1] == 10 else { throw NetError("bad chunk framing") }
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
