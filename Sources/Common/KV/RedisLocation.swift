#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto
import Net

/// Where a RedisStore connects and how, parsed from its URL (docs/scaling.md):
///
///     redis://[user@]host[:port][/db][?options]       plain TCP (port 6379, db 0)
///     rediss://[user@]host[:port][/db][?options]      TLS, verified against the system CAs
///                                                      (or EDGEPIPE_REDIS_CA_FILE)
///     redis+unix://[user@]/path/to/redis.sock[?db=N&options]
///     redis+sentinel://[user@]host[:port][,host[:port]...]/master-name[/db][?options]
///     rediss+sentinel://...                           the same, TLS to sentinels and primary
///
/// With Sentinel, each new connection asks the sentinels (port 26379 by default) for the
/// current primary of master-name and its replicas, and checks that the server it reaches
/// says it is the primary (ROLE); every operation then repeats that ROLE check in its own
/// round trip, and writes wait for the replicas (`wait=auto`): the failover rules are in
/// RedisStore and docs/scaling.md.
///
/// Options: `prefix` (namespace of every key, default `edgepipe:`), `db`,
/// `connect_timeout_ms` (1000), `timeout_ms` (per command, 2000), `wait` (replicas that must
/// acknowledge each write: a number, or `auto`; `auto` behind sentinels, else 0),
/// `wait_timeout_ms` (1000), `protocol` (2 or 3).
///
/// The URL never carries the password: it is on argv or in the environment of every tool,
/// and it is printed in error messages. The password comes from EDGEPIPE_REDIS_PASSWORD_FILE
/// (a file, trailing newline ignored) or EDGEPIPE_REDIS_PASSWORD; a sentinel's own password,
/// when sentinels require one, from EDGEPIPE_REDIS_SENTINEL_PASSWORD.
public struct RedisLocation: Equatable, Sendable, CustomStringConvertible {
    public struct Node: Equatable, Sendable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) { self.host = host; self.port = port }
        var text: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
    }

    public enum Endpoint: Equatable, Sendable {
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// The primary of `master` as the sentinels at `sentinels` name it.
        case sentinel(sentinels: [Node], master: String)
    }

    public var endpoint: Endpoint
    public var tls = false
    public var username: String?
    public var database = 0
    public var prefix = "edgepipe:"
    public var connectTimeoutMillis = 1000
    public var timeoutMillis = 2000
    /// Replicas that must acknowledge a write (Redis WAIT) before it counts; 0: do not wait.
    public var waitReplicas = 0
    /// `wait=auto`, the default behind sentinels: wait for every replica that Sentinel could
    /// promote (RedisConnection.requiredReplicas), so no promotion can lose an acknowledged
    /// write, and refuse reads from a primary that has lost one of them.
    public var waitForAllReplicas = false
    public var waitTimeoutMillis = 1000
    /// 2: AUTH/SELECT as every Redis takes them; 3: HELLO 3 (Redis 6 and later).
    public var protocolVersion = 2

    public init(endpoint: Endpoint) { self.endpoint = endpoint }

    /// For logs and error messages: no password ever, the user name and options left out.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            return "\(tls ? "rediss" : "redis")://\(Node(host: host, port: port).text)/\(database)"
        case .unix(let path):
            return "redis+unix://\(path)?db=\(database)"
        case .sentinel(let sentinels, let master):
            return "\(tls ? "rediss" : "redis")+sentinel://\(sentinels.map(\.text).joined(separator: ","))/\(master)/\(database)"
        }
    }

    public static func isRedisURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return ["redis://", "rediss://", "redis+unix://", "redis+sentinel://", "rediss+sentinel://"].contains { lower.hasPrefix($0) }
    }

    /// Parses a store URL. Error messages quote no part of the URL that could hold a secret.
    public static func parse(_ text: String) throws(KVError) -> RedisLocation {
        func bad(_ why: String) -> KVError { KVError.unavailable("bad redis URL: \(why)") }
        for b in text.utf8 where b <= 0x20 || b >= 0x7F { throw bad("spaces, control or non-ASCII characters (percent-encode them)") }
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("redis://") { scheme = "redis" }
        else if lower.hasPrefix("rediss://") { scheme = "rediss" }
        else if lower.hasPrefix("redis+unix://") { scheme = "redis+unix" }
        else if lower.hasPrefix("redis+sentinel://") { scheme = "redis+sentinel" }
        else if lower.hasPrefix("rediss+sentinel://") { scheme = "rediss+sentinel" }
        else { throw bad("the scheme must be redis, rediss, redis+unix, redis+sentinel or rediss+sentinel") }
        var rest = Substring(text.dropFirst(scheme.count + 3))
        if rest.contains("#") { throw bad("fragments are not allowed") }
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...]
        var username: String?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            if userInfo.contains(":") {
                throw bad("a password in the URL would be visible in process lists and logs; "
                          + "put it in EDGEPIPE_REDIS_PASSWORD_FILE or EDGEPIPE_REDIS_PASSWORD")
            }
            guard let user = percentDecode(userInfo), !user.isEmpty else { throw bad("bad user name") }
            username = user
            authority = authority[authority.index(after: at)...]
        }

        var location: RedisLocation
        if scheme == "redis+unix" {
            guard authority.isEmpty || authority == "localhost" else { throw bad("redis+unix takes no host (redis+unix:///path/to/sock)") }
            guard let p = percentDecode(path), p.hasPrefix("/"), p.count > 1 else { throw bad("redis+unix needs an absolute socket path") }
            guard p.utf8.count < 108 else { throw bad("socket path longer than 107 bytes") }
            location = RedisLocation(endpoint: .unix(path: p))
        } else if scheme.hasSuffix("+sentinel") {
            guard !authority.isEmpty else { throw bad("no sentinel host") }
            var nodes: [Node] = []
            for part in authority.split(separator: ",", omittingEmptySubsequences: false) {
                nodes.append(try parseNode(part, defaultPort: 26379))
            }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard let first = parts.first, let master = percentDecode(first), !master.isEmpty, parts.count <= 2 else {
                throw bad("the path must be the master name, then optionally the database (redis+sentinel://host:26379/mymaster/0)")
            }
            location = RedisLocation(endpoint: .sentinel(sentinels: nodes, master: master))
            location.tls = scheme == "rediss+sentinel"
            location.waitForAllReplicas = true
            if parts.count == 2 { location.database = try database(parts.last!) }
        } else {
            let node = try parseNode(authority, defaultPort: 6379)
            location = RedisLocation(endpoint: .tcp(host: node.host, port: node.port))
            location.tls = scheme == "rediss"
            if path.count > 1 { location.database = try database(path.dropFirst()) }
        }
        location.username = username

        var seen = Set<String>()
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: "=") ?? pair.endIndex
            let name = String(pair[..<eq])
            guard let value = percentDecode(eq == pair.endIndex ? "" : pair[pair.index(after: eq)...]) else {
                throw bad("bad percent-encoding in \(name)")
            }
            guard seen.insert(name).inserted else { throw bad("\(name) given twice") }
            func number(_ range: ClosedRange<Int>) throws(KVError) -> Int {
                guard let n = Int(value), range.contains(n) else {
                    throw bad("\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
                }
                return n
            }
            switch name {
            case "prefix": location.prefix = value
            case "db":
                guard case .unix = location.endpoint else { throw bad("the database goes in the path, not db=") }
                location.database = try number(0...1_000_000)
            case "connect_timeout_ms": location.connectTimeoutMillis = try number(1...600_000)
            case "timeout_ms": location.timeoutMillis = try number(1...600_000)
            case "wait":
                if value == "auto" {
                    guard case .sentinel = location.endpoint else {
                        throw bad("wait=auto needs a redis+sentinel URL (the sentinels say which replicas exist); give a number")
                    }
                    location.waitForAllReplicas = true
                } else {
                    location.waitReplicas = try number(0...1000)
                    location.waitForAllReplicas = false
                }
            case "wait_timeout_ms": location.waitTimeoutMillis = try number(1...600_000)
            case "protocol": location.protocolVersion = try number(2...3)
            default: throw bad("unknown option \(name) (prefix, db, connect_timeout_ms, timeout_ms, wait, wait_timeout_ms, protocol)")
            }
        }
        return location
    }

    private static func database(_ text: Substring) throws(KVError) -> Int {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let db = Int(text), db <= 1_000_000 else {
            throw KVError.unavailable("bad redis URL: the database must be a number (redis://host:port/0)")
        }
        return db
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func parseNode(_ authority: Substring, defaultPort: Int) throws(KVError) -> Node {
        func bad(_ why: String) -> KVError { KVError.unavailable("bad redis URL: \(why)") }
        guard !authority.isEmpty else { throw bad("no host") }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw bad("unclosed [ in host") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("junk after ]") }
                portText = after.dropFirst()
            }
            var addr = in6_addr()
            guard inet_pton(AF_INET6, String(host), &addr) == 1 else { throw bad("bad IPv6 address") }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
            }
            guard !host.isEmpty, host.utf8.allSatisfy(isHostByte) else { throw bad("bad host name") }
        }
        var port = defaultPort
        if let portText {
            guard !portText.isEmpty, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let p = Int(portText), p > 0, p < 65536 else { throw bad("bad port") }
            port = p
        }
        return Node(host: String(host).lowercased(), port: port)
    }

    private static func isHostByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2E || b == 0x5F
    }

    static func percentDecode<S: StringProtocol>(_ s: S) -> String? {
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let v = Hex.decode(String(decoding: it.prefix(2), as: UTF8.self)) else { return nil }
                out.append(v[0])
                it = it.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}

/// The secret half of a connection: read once from a file or the environment, never from
/// argv or the URL, never printed.
public struct RedisCredentials: Sendable {
    public var username: String?
    public var password: [UInt8]?
    /// For the sentinels of a redis+sentinel URL, when they require their own.
    public var sentinelPassword: [UInt8]?
    /// Presented when the server asks for one (`tls-auth-clients yes`, Redis's default with TLS).
    public var clientCertificate: TLSClientCertificate?

    public init(username: String? = nil, password: [UInt8]? = nil, sentinelPassword: [UInt8]? = nil,
                clientCertificate: TLSClientCertificate? = nil) {
        self.username = username; self.password = password; self.sentinelPassword = sentinelPassword
        self.clientCertificate = clientCertificate
    }

    /// EDGEPIPE_REDIS_PASSWORD_FILE (preferred: the file can be mode 0400 and kept out of
    /// the environment of child processes) else EDGEPIPE_REDIS_PASSWORD.
    public static func fromEnvironment(username: String?) throws(KVError) -> RedisCredentials {
        var password: [UInt8]?
        if let file = environment("EDGEPIPE_REDIS_PASSWORD_FILE") {
            guard var bytes = readFile(file, limit: 64 << 10) else {
                throw KVError.unavailable("cannot read the redis password file named by EDGEPIPE_REDIS_PASSWORD_FILE")
            }
            if bytes.last == 0x0A { bytes.removeLast() }
            if bytes.last == 0x0D { bytes.removeLast() }
            password = bytes
        } else if let p = environment("EDGEPIPE_REDIS_PASSWORD") {
            password = Array(p.utf8)
        }
        if let username, password == nil {
            throw KVError.unavailable("the redis URL names user \(username) but no password is set "
                                      + "(EDGEPIPE_REDIS_PASSWORD_FILE or EDGEPIPE_REDIS_PASSWORD)")
        }
        var certificate: TLSClientCertificate?
        switch (environment("EDGEPIPE_REDIS_CERT_FILE"), environment("EDGEPIPE_REDIS_KEY_FILE")) {
        case (nil, nil): break
        case (let cert?, let key?): certificate = TLSClientCertificate(certificateFile: cert, keyFile: key)
        default:
            throw KVError.unavailable("EDGEPIPE_REDIS_CERT_FILE and EDGEPIPE_REDIS_KEY_FILE go together: set both or neither")
        }
        return RedisCredentials(username: username, password: password,
                                sentinelPassword: environment("EDGEPIPE_REDIS_SENTINEL_PASSWORD").map { Array($0.utf8) },
                                clientCertificate: certificate)
    }
}
