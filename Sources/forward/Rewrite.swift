import Records
import Net

// What crosses the gateway, in each direction: the request the upstream receives (made
// from a request record) and the response record (made from what the upstream answered).

enum HopByHop {
    /// RFC 9110 §7.6.1, and the fields that only ever mean something on one connection.
    static func isHopByHop(_ name: String) -> Bool {
        switch name {
        case "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
             "proxy-connection", "proxy-authorization":
            return true
        default:
            return false
        }
    }

    /// The lower-cased field names a `Connection` header lists (also hop-by-hop).
    static func nominated(by headers: [Header]) -> [String] {
        var names: [String] = []
        for h in headers where h.name == "connection" {
            for part in h.value.split(separator: ",") {
                let t = part.trimmingSpacesAndTabs()
                if !t.isEmpty { names.append(t.lowercased()) }
            }
        }
        return names
    }
}

struct UpstreamRequest {
    /// How the client reached the gateway, for X-Forwarded-Proto: behind a trusted proxy
    /// (EDGEPIPE_TRUSTED_PROXIES set), the proxy's own `X-Forwarded-Proto`, which the shipped
    /// templates always overwrite; otherwise `http`, the only scheme the service speaks.
    var trustForwardedProto: Bool

    static let bodylessMethods: Set<String> = ["GET", "HEAD", "DELETE", "OPTIONS", "TRACE"]

    /// The bytes of the request for `upstream` at `endpoint`: the path as the client sent
    /// it (with strip/prefix), the query unchanged, the exact body; hop-by-hop fields, the
    /// client's Bearer token and any identity the client claimed are removed.
    func build(_ record: Record, for upstream: Upstream, at endpoint: UpstreamEndpoint) throws(FilterError) -> [UInt8] {
        let method = record.method
        guard !method.isEmpty, method.utf8.allSatisfy(ASCII.isToken) else {
            throw FilterError(status: 400, code: "bad_request", message: "the request has no usable method")
        }
        let headers = try forwardedHeaders(record, for: upstream, at: endpoint)
        let body = record.body
        var out: [UInt8] = []
        out.reserveCapacity(256 + headers.count * 48 + body.count)
        out.append(contentsOf: method.utf8)
        out.append(0x20)
        out.append(contentsOf: upstream.upstreamPath(record.path).utf8)
        let query = record.query
        if !query.isEmpty {
            out.append(UInt8(ascii: "?"))
            out.append(contentsOf: query.utf8)
        }
        out.append(contentsOf: " HTTP/1.1\r\n".utf8)
        for h in headers {
            out.append(contentsOf: h.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: h.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        if !body.isEmpty || !Self.bodylessMethods.contains(method) {
            out.append(contentsOf: "content-length: \(body.count)\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        out.append(contentsOf: body)
        return out
    }

    /// The header fields the upstream receives, `host` first.
    func forwardedHeaders(_ record: Record, for upstream: Upstream, at endpoint: UpstreamEndpoint) throws(FilterError) -> [Header] {
        let incoming = record.headers
        // verify-jwt writes annotations.auth only with the identity headers it injected;
        // without it, no x-authenticated-* field can be verify-jwt's.
        let verified = record.annotation(AnnotationKey.auth) != nil
        // A client must not make a proxy drop the gateway's own fields by naming them in
        // Connection (the identity headers, the forwarding headers set below).
        let nominated = HopByHop.nominated(by: incoming).filter { !$0.hasPrefix("x-authenticated-") }
        let clientHost = record.header("host")
        var out: [Header] = []
        out.reserveCapacity(incoming.count + 4)
        let host = upstream.host == .client ? (clientHost ?? endpoint.authority) : endpoint.authority
        out.append(Header("host", host))
        var forwardedFor: [String] = []
        var forwardedProto: String?
        for h in incoming {
            let name = h.name
            if HopByHop.isHopByHop(name) || nominated.contains(name) { continue }
            switch name {
            case "host", "content-length", "expect", "x-forwarded-host":
                continue
            case "x-forwarded-for":
                forwardedFor.append(h.value)
                continue
            case "x-forwarded-proto":
                forwardedProto = h.value
                continue
            case "authorization":
                if Self.isBearer(h.value) { continue }
            default:
                if name.hasPrefix("x-authenticated-") && !verified { continue }
            }
            guard Self.isForwardable(h) else {
                throw FilterError(status: 400, code: "bad_request", message: "a header field cannot be forwarded")
            }
            out.append(h)
        }
        if let remote = record.remote {
            // The address http-decode settled is appended, unless it is already the right-most
            // entry (a trusted proxy in front put it there): the upstream reads the right-most.
            let last = forwardedFor.last.flatMap { $0.split(separator: ",").last }.map { String($0.trimmingSpacesAndTabs()) }
            if last != remote { forwardedFor.append(remote) }
        }
        if !forwardedFor.isEmpty { out.append(Header("x-forwarded-for", forwardedFor.joined(separator: ", "))) }
        var proto = "http"
        if trustForwardedProto, let p = forwardedProto?.lowercased(), p == "https" || p == "http" { proto = p }
        out.append(Header("x-forwarded-proto", proto))
        if let clientHost { out.append(Header("x-forwarded-host", clientHost)) }
        return out
    }

    static func isBearer(_ value: String) -> Bool {
        let v = value.utf8
        guard v.count >= 6 else { return false }
        return String(decoding: v.prefix(6), as: UTF8.self).lowercased() == "bearer" && (v.count == 6 || v.dropFirst(6).first == 0x20)
    }

    /// A token name and a value with no CR, LF, NUL or other control but tab: a record is
    /// JSON, where any of them can be written, and one in a request line splits it.
    static func isForwardable(_ h: Header) -> Bool {
        !h.name.isEmpty && h.name.utf8.allSatisfy(ASCII.isToken) && h.value.utf8.allSatisfy(HTTPSyntax.isFieldByte)
    }
}

enum ResponseRecord {
    /// The response record for `request` from what the upstream answered: hop-by-hop fields
    /// and the framing (http-encode frames the body itself) removed, repeats kept in order.
    static func make(_ request: Record, _ response: ParsedResponse, upstream: Upstream,
                     endpoint: UpstreamEndpoint, millis: Int) -> Record {
        let nominated = HopByHop.nominated(by: response.headers)
        var headers: [Header] = []
        headers.reserveCapacity(response.headers.count)
        for h in response.headers where !HopByHop.isHopByHop(h.name) && !nominated.contains(h.name) && h.name != "content-length" {
            headers.append(h)
        }
        var record = request.response(status: response.status, headers: headers, body: response.body)
        record.setAnnotation("upstream", .object(JSONObject([
            ("name", .string(upstream.name)), ("address", .string(endpoint.description)),
            ("status", JSON(response.status)), ("ms", JSON(millis)),
        ])))
        return record
    }
}
