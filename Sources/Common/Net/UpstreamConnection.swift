#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// The client side of HTTP/1.1 for a gateway: one kept-alive connection to an upstream
// (TCP, TLS or a Unix socket) that carries one request at a time, over the same
// Connection as the key fetch and Redis.

/// Where an upstream listens: `http://HOST[:PORT]`, `https://HOST[:PORT]` or `unix:/PATH`.
public struct UpstreamEndpoint: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        case tcp(host: String, port: Int)
        case tls(host: String, port: Int)
        case unix(path: String)
    }
    public let kind: Kind
    /// As written in the upstreams file (for logs and `annotations.upstream.address`).
    public let description: String

    var connection: (Endpoint, TLSSettings?) {
        switch kind {
        case .tcp(let host, let port): return (.tcp(host: host, port: port), nil)
        case .tls(let host, let port): return (.tcp(host: host, port: port), TLSSettings(serverName: host))
        case .unix(let path): return (.unix(path: path), nil)
        }
    }

    /// The Host header an upstream expects by default: its own authority.
    public var authority: String {
        switch kind {
        case .tcp(let host, let port), .tls(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            let defaultPort = { if case .tls = kind { return 443 } else { return 80 } }()
            return port == defaultPort ? h : "\(h):\(port)"
        case .unix: return "localhost"
        }
    }

    /// Nil for anything else, and for http(s) URLs with a path, query or fragment (a base
    /// path is the `prefix=` option, so that there is one way to say it).
    public static func parse(_ text: String) -> UpstreamEndpoint? {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/"), path.utf8.count < 108,
                  path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            return UpstreamEndpoint(kind: .unix(path: path), description: text)
        }
        guard let url = FetchURL.parse(text), url.target == "/",
              !text.contains("?"), !text.contains("#") else { return nil }
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        return UpstreamEndpoint(kind: url.isTLS ? .tls(host: url.host, port: url.port) : .tcp(host: url.host, port: url.port),
                                description: trimmed)
    }
}

/// Why a connection or an exchange failed.
public struct UpstreamError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Refused, reset, unreachable, TLS refused: nothing was answered.
        case unavailable
        /// The deadline passed.
        case timeout
        /// The response could not be read as one HTTP/1.1 response.
        case badResponse
        case tooLarge
    }
    public let kind: Kind
    public let message: String
    /// No byte of a response had arrived: on a reused connection, the upstream may have
    /// closed it before seeing the request.
    public let beforeResponse: Bool
    /// The connection was never made: the request went nowhere, another address may take it.
    public let isConnectFailure: Bool
    public init(_ kind: Kind, _ message: String, beforeResponse: Bool = false, connect: Bool = false) {
        self.kind = kind; self.message = message; self.beforeResponse = beforeResponse || connect
        isConnectFailure = connect
    }
    public var description: String { message }
}

public final class UpstreamConnection {
    public let endpoint: UpstreamEndpoint
    private let stream: Connection
    /// Reading buffer, kept with the connection (64 KiB per read).
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)

    private init(endpoint: UpstreamEndpoint, stream: Connection) {
        self.endpoint = endpoint
        self.stream = stream
    }

    /// Connects (and handshakes, for TLS, against `caFile` or the system store) by
    /// `deadline` (monotonic ms).
    public static func open(_ endpoint: UpstreamEndpoint, caFile: String? = nil, deadline: Int) throws(UpstreamError) -> UpstreamConnection {
        var (target, tls) = endpoint.connection
        tls?.caFile = caFile
        do throws(NetError) {
            return UpstreamConnection(endpoint: endpoint, stream: try Connection.open(target, tls: tls, deadline: deadline))
        } catch {
            throw UpstreamError(Clock.monotonicMillis() >= deadline ? .timeout : .unavailable, error.description, connect: true)
        }
    }

    /// Whether the idle connection can still take a request: an upstream that closed it (or
    /// sent anything unasked) has made it readable. Checked before each reuse, so that the
    /// usual stale connection costs a reconnect, not a failed request.
    public var isStale: Bool {
        var p = pollfd(fd: stream.fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) != 0
    }

    /// Writes `request` and reads one response, all by `deadline`.
    public func exchange(_ request: [UInt8], headRequest: Bool, limits: ResponseLimits,
                         deadline: Int) throws(UpstreamError) -> ParsedResponse {
        do throws(NetError) {
            try stream.write(request, deadline: deadline)
        } catch {
            // A write that fails has not been answered; whether the upstream saw part of it
            // is unknown, which the caller weighs (idempotent methods only are retried).
            throw UpstreamError(Clock.monotonicMillis() >= deadline ? .timeout : .unavailable, error.description, beforeResponse: true)
        }
        var parser = ResponseParser(limits: limits, headRequest: headRequest)
        let result: Result<ParsedResponse, ResponseFailure>
        do throws(NetError) {
            result = try stream.readResponse(&parser, buffer: &chunk, deadline: deadline)
        } catch {
            let timedOut = Clock.monotonicMillis() >= deadline
            throw UpstreamError(timedOut ? .timeout : .unavailable, error.description, beforeResponse: !parser.started)
        }
        switch result {
        case .success(var r):
            if parser.hasLeftover { r.reusable = false }
            return r
        case .failure(let f):
            if !parser.started {
                throw UpstreamError(.unavailable, "the upstream closed the connection", beforeResponse: true)
            }
            throw UpstreamError(f.kind == .tooLarge ? .tooLarge : .badResponse, f.message)
        }
    }
}

extension Connection {
    /// Reads until `parser` has a whole response or fails (read errors and timeouts are
    /// thrown). A TLS close without close_notify could be a truncation: then only a body
    /// framed by Content-Length or chunks counts as complete.
    func readResponse(_ parser: inout ResponseParser, buffer: inout [UInt8], deadline: Int) throws(NetError) -> Result<ParsedResponse, ResponseFailure> {
        while true {
            let n = try read(&buffer, deadline: deadline)
            let event: ResponseParser.Event
            if n == 0 {
                event = parser.finish(cleanClose: closedCleanly)
            } else {
                buffer.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                event = parser.next()
            }
            switch event {
            case .needMore: continue
            case .response(let r): return .success(r)
            case .failure(let f): return .failure(f)
            }
        }
    }
}
