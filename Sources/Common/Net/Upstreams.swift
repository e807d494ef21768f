#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// The upstreams file: which route names are forwarded where. Parsed once at start, then
// only read; here, not in `forward`, because /readyz (verify-jwt) reads the same file to
// check that each upstream has an address that accepts connections. Syntax in docs/forward.md:
//
//   NAME   URL [URL...]   [strip=PREFIX] [prefix=PATH] [timeout=S] [connect-timeout=MS]
//                         [host=upstream|client] [ca=FILE] [max-response=BYTES]

public struct Upstream: Equatable, Sendable {
    public enum HostHeader: Equatable, Sendable { case upstream, client }

    public var name: String
    public var endpoints: [UpstreamEndpoint]
    /// Removed from the front of the path when it starts with it (whole segments).
    public var strip: String?
    /// Put in front of the path (after `strip`).
    public var prefix: String?
    /// The whole exchange: connect, send, and the complete response.
    public var timeoutMillis = 30_000
    public var connectTimeoutMillis = 2_000
    public var host = HostHeader.upstream
    public var caFile: String?
    public var maxResponse = 10 << 20
    public var line = 0

    /// The path the upstream receives: `path` as the client sent it (still percent-encoded),
    /// with `strip` and `prefix` applied.
    public init(name: String, endpoints: [UpstreamEndpoint], line: Int = 0) {
        self.name = name
        self.endpoints = endpoints
        self.line = line
    }

    public func upstreamPath(_ path: String) -> String {
        var p = path
        if let strip {
            if p == strip {
                p = "/"
            } else if p.hasPrefix(strip), p.utf8.dropFirst(strip.utf8.count).first == UInt8(ascii: "/") {
                p = String(p.dropFirst(strip.count))
            }
        }
        if let prefix { p = p == "/" ? prefix + "/" : prefix + p }
        return p
    }
}

public struct UpstreamTable: Sendable {
    public private(set) var upstreams: [Upstream]

    public var isEmpty: Bool { upstreams.isEmpty }

    /// A plain scan: a file names a handful of upstreams.
    public func upstream(named name: String) -> Upstream? {
        for u in upstreams where u.name == name { return u }
        return nil
    }

    /// The largest `max-response` (11 MiB): a response becomes one record line, at most
    /// 16 MiB, and a binary body is written in base64 (4/3 of its size).
    public static let maxResponseLimit = 11 << 20

    public static func load(path: String) throws(ConfigError) -> UpstreamTable {
        try make(ConfigFile.load(path: path, what: "upstreams file"))
    }

    public static func parse(_ text: String) throws(ConfigError) -> UpstreamTable { try make(ConfigFile.lines(text)) }
    public static func parse(_ bytes: [UInt8]) throws(ConfigError) -> UpstreamTable { try make(ConfigFile.lines(bytes)) }

    /// A line's problem; `make` adds its number.
    struct LineProblem: Error { let reason: String; init(_ r: String) { reason = r } }

    /// An empty file (comments only) is valid: nothing is forwarded.
    static func make(_ lines: [ConfigLine]) throws(ConfigError) -> UpstreamTable {
        var upstreams: [Upstream] = []
        for line in lines {
            do throws(LineProblem) {
                let u = try parseLine(line.fields, number: line.number)
                if let earlier = upstreams.first(where: { $0.name == u.name }) {
                    throw LineProblem("\(u.name) is already defined on line \(earlier.line)")
                }
                upstreams.append(u)
            } catch {
                throw ConfigError(line: line.number, error.reason)
            }
        }
        return UpstreamTable(upstreams: upstreams)
    }

    /// One line's fields (comments already dropped): NAME URL [URL...] [options].
    static func parseLine(_ fields: [String], number: Int) throws(LineProblem) -> Upstream {
        let name = fields[0]
        guard name != "*", ConfigFile.isRouteName(name) else {
            throw LineProblem("'\(clip(name))' is not a route name (letters, digits, '-', '_', '.')")
        }
        var upstream = Upstream(name: name, endpoints: [], line: number)
        var seen: [String] = []
        for field in fields.dropFirst() {
            guard let eq = field.firstIndex(of: "="), !field.hasPrefix("http"), !field.hasPrefix("unix:") else {
                guard seen.isEmpty else { throw LineProblem("URL '\(clip(field))' after the options (URLs come first)") }
                guard let endpoint = UpstreamEndpoint.parse(field) else {
                    throw LineProblem("'\(clip(field))' is not an upstream URL (http://HOST[:PORT], https://HOST[:PORT] or unix:/PATH, no path)")
                }
                upstream.endpoints.append(endpoint)
                continue
            }
            let key = String(field[..<eq]), value = String(field[field.index(after: eq)...])
            if seen.contains(key) { throw LineProblem("\(key)= given twice") }
            seen.append(key)
            try apply(key, value, to: &upstream)
        }
        guard !upstream.endpoints.isEmpty else { throw LineProblem("\(name) has no upstream URL") }
        if upstream.caFile != nil && !upstream.endpoints.contains(where: { if case .tls = $0.kind { return true } else { return false } }) {
            throw LineProblem("ca= is for https:// upstreams")
        }
        return upstream
    }

    /// Keeps messages one short line whatever the file holds.
    static func clip(_ s: String) -> String { s.utf8.count > 80 ? String(decoding: s.utf8.prefix(80), as: UTF8.self) + "..." : s }

    private static func apply(_ key: String, _ value: String, to u: inout Upstream) throws(LineProblem) {
        switch key {
        case "strip":
            u.strip = try pathOption(key, value)
        case "prefix":
            u.prefix = try pathOption(key, value)
        case "timeout":
            guard let s = Double(value), s > 0, s <= 3600 else { throw LineProblem("timeout= must be seconds, more than 0 and at most 3600") }
            u.timeoutMillis = max(1, Int(s * 1000))
        case "connect-timeout":
            guard let ms = Int(value), ms > 0, ms <= 600_000 else { throw LineProblem("connect-timeout= must be milliseconds, 1 to 600000") }
            u.connectTimeoutMillis = ms
        case "host":
            switch value {
            case "upstream": u.host = .upstream
            case "client": u.host = .client
            default: throw LineProblem("host= must be upstream or client")
            }
        case "ca":
            guard value.hasPrefix("/") || !value.isEmpty else { throw LineProblem("ca= needs a file") }
            guard access(value, R_OK) == 0 else {
                throw LineProblem("ca=\(clip(value)): \(errnoText())")
            }
            u.caFile = value
        case "max-response":
            guard let n = Int(value), n > 0, n <= maxResponseLimit else {
                throw LineProblem("max-response= must be bytes, 1 to \(maxResponseLimit)")
            }
            u.maxResponse = n
        default:
            throw LineProblem("unknown option \(clip(key))= (strip, prefix, timeout, connect-timeout, host, ca, max-response)")
        }
    }

    /// `/segment[/segment...]`, no trailing slash, only bytes a path may hold as they are:
    /// the value is copied into the request line.
    private static func pathOption(_ key: String, _ value: String) throws(LineProblem) -> String {
        let ok = value.hasPrefix("/") && value.utf8.count > 1 && !value.hasSuffix("/") && !value.contains("//")
            && value.utf8.allSatisfy { isPathByte($0) }
        guard ok else { throw LineProblem("\(key)= must be a path like /v1 (no trailing '/', no '?', '#' or spaces)") }
        return value
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
    }

    /// RFC 3986 pchar and '/', with '%' for escapes already in the text.
    static func isPathByte(_ b: UInt8) -> Bool {
        if isNameByte(b) || b == UInt8(ascii: "~") || b == UInt8(ascii: "/") { return true }
        return "!$&'()*+,;=:@%".utf8.contains(b)
    }
}
