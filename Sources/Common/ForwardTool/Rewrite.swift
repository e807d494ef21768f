#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Net

// What crosses the gateway, in each direction: the request the upstream receives (made
// from a request record) and the response record (made from what the upstream answered).

/// The fields the gateway treats specially, by lower-case name: found by length, then one
/// comparison, rather than a dozen String comparisons (each a runtime call for two
/// different names) or a hashed look-up.
enum FieldRole {
    /// RFC 9110 §7.6.1, and the fields that only ever mean something on one connection.
    case hopByHop
    /// Hop-by-hop, and it names more hop-by-hop fields.
    case connection
    /// Set by the gateway itself, whatever the client sent.
    case replaced
    case forwardedFor, forwardedProto, authorization

    static func of(_ name: String) -> FieldRole? {
        var name = name
        return name.withUTF8 { n -> FieldRole? in
            func is_(_ s: StaticString) -> Bool { memcmp(n.baseAddress!, s.utf8Start, n.count) == 0 }
            switch n.count {
            case 2: return is_("te") ? .hopByHop : nil
            case 4: return is_("host") ? .replaced : nil
            case 6: return is_("expect") ? .replaced : nil
            case 7: return is_("trailer") || is_("upgrade") ? .hopByHop : nil
            case 10: return is_("connection") ? .connection : is_("keep-alive") ? .hopByHop : nil
            case 13: return is_("authorization") ? .authorization : nil
            case 14: return is_("content-length") ? .replaced : nil
            case 15: return is_("x-forwarded-for") ? .forwardedFor : nil
            case 16: return is_("x-forwarded-host") ? .replaced : is_("proxy-connection") ? .hopByHop : nil
            case 17: return is_("transfer-encoding") ? .hopByHop : is_("x-forwarded-proto") ? .forwardedProto : nil
            case 19: return is_("proxy-authorization") ? .hopByHop : nil
            default: return nil
            }
        }
    }
}

enum HopByHop {
    /// The lower-cased field names a `Connection` header lists (also hop-by-hop).
    static func nominated(by headers: [Header]) -> [String] {
        var names: [String] = []
        for h in headers where FieldRole.of(h.name) == .connection {
            names.append(contentsOf: listed(in: h.value))
        }
        return names
    }

    static func listed(in value: String) -> [String] { HTTPSyntax.listElements([value]) }
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
        // Each String appended as one copy of its bytes (appending a UTF8View is generic,
        // byte by byte).
        func add(_ s: String) { var s = s; s.withUTF8 { out.append(contentsOf: $0) } }
        add(method)
        out.append(0x20)
        add(upstream.upstreamPath(record.path))
        let query = record.query
        if !query.isEmpty {
            out.append(UInt8(ascii: "?"))
            add(query)
        }
        add(" HTTP/1.1\r\n")
        for h in headers {
            add(h.name)
            out.append(UInt8(ascii: ":"))
            out.append(0x20)
            add(h.value)
            out.append(0x0D)
            out.append(0x0A)
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
        let roles = incoming.map { FieldRole.of($0.name) }
        // verify-jwt writes annotations.auth only with the identity headers it injected;
        // without it, no x-authenticated-* field can be verify-jwt's.
        let verified = record.annotation(AnnotationKey.auth) != nil
        // A client must not make a proxy drop the gateway's own fields by naming them in
        // Connection (the identity headers, the forwarding headers set below).
        var nominated: [String] = []
        var clientHost: String?
        for (h, role) in zip(incoming, roles) {
            if role == .connection {
                nominated.append(contentsOf: HopByHop.listed(in: h.value).filter { !$0.hasPrefix("x-authenticated-") })
            } else if clientHost == nil && role == .replaced && h.name == "host" {
                clientHost = h.value
            }
        }
        var out: [Header] = []
        out.reserveCapacity(incoming.count + 4)
        let host = upstream.host == .client ? (clientHost ?? endpoint.authority) : endpoint.authority
        out.append(Header("host", host))
        var forwardedFor: [String] = []
        var forwardedProto: String?
        for (h, role) in zip(incoming, roles) {
            if !nominated.isEmpty && nominated.contains(h.name) { continue }
            switch role {
            case .hopByHop, .connection, .replaced:
                continue
            case .forwardedFor:
                forwardedFor.append(h.value)
                continue
            case .forwardedProto:
                forwardedProto = h.value
                continue
            case .authorization:
                if Self.isBearer(h.value) { continue }
            case nil:
                if !verified && h.name.hasPrefix("x-authenticated-") { continue }
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
        for h in response.headers {
            switch FieldRole.of(h.name) {
            case .hopByHop, .connection: continue
            case .replaced where h.name == "content-length": continue
            default: if !nominated.isEmpty && nominated.contains(h.name) { continue }
            }
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
