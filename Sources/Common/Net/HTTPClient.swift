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
        var limits = ResponseLimits()
        limits.maxBody = maxBytes
        var parser = ResponseParser(limits: limits)
        var chunk = [UInt8](repeating: 0, count: 16384)
        switch try stream.readResponse(&parser, buffer: &chunk, deadline: deadline) {
        case .success(let r): return HTTPResponse(status: r.status, headers: r.headers, body: r.body)
        case .failure(let f):
            if f.kind == .tooLarge { throw NetError("response larger than \(maxBytes) bytes") }
            if !parser.started { throw NetError("connection closed before the response was complete") }
            throw NetError(f.message)
        }
    }
}

/// A complete HTTP/1.1 response from bytes read so far: the strict parser that `forward`
/// reads upstreams with (ResponseParser.swift), for callers that hold the whole stream.
public enum HTTPResponseParser {
    /// Nil while more bytes are needed.
    public static func parse(_ bytes: [UInt8], atEOF: Bool, closeDelimitedAllowed: Bool = true) throws(NetError) -> HTTPResponse? {
        var parser = ResponseParser()
        parser.append(bytes)
        let event = atEOF ? parser.finish(cleanClose: closeDelimitedAllowed) : parser.next()
        switch event {
        case .needMore: return nil
        case .response(let r): return HTTPResponse(status: r.status, headers: r.headers, body: r.body)
        case .failure(let f): throw NetError(f.message)
        }
    }
}
