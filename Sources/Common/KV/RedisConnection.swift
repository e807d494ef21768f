#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Net

/// Why a round trip failed. `io` means the connection is unusable (and whether the
/// request may have reached the server); `server` is a refusal on a healthy connection.
enum RedisFailure: Error {
    case io(String, sent: Bool)
    case server(String)

    var message: String {
        switch self {
        case .io(let m, _): return m
        case .server(let m): return m
        }
    }
}

/// One connection to Redis, authenticated and on its database, owning its socket (and TLS
/// session). Requests are pipelined: all commands are written, then all replies read.
/// Not thread-safe: RedisStore hands a connection to one caller at a time.
final class RedisConnection {
    private let transport: Connection
    private var buffer: [UInt8] = []
    private var consumed = 0
    private var chunk = [UInt8](repeating: 0, count: 64 << 10)
    private let timeoutMillis: Int
    /// Behind sentinels: every operation asks ROLE in its own round trip (RedisStore.run).
    let checksRole: Bool
    /// Replicas a write must reach (WAIT). With `wait=auto`, every replica the sentinel sees
    /// up, whatever role it reports: a listed "replica" that reports itself a primary is
    /// either one just promoted (the sentinel asked has not switched yet) or a demoted
    /// primary not yet reconfigured, and a write must not be acknowledged while either
    /// could be the primary that survives. Raised whenever the primary reports more online;
    /// never lowered while the connection lives: a primary that loses a replica may be one
    /// whose replica was just promoted, and only a fresh connection may conclude otherwise.
    var requiredReplicas: Int
    /// Replicas a primary must have online for a read on it to be trusted: those the
    /// sentinel sees up and acting as replicas, raised like `requiredReplicas`. A primary
    /// whose replica was promoted has lost it. (Reads need no more: a write is acknowledged
    /// on a new primary only once every live replica, the old primary included, has it.)
    var fenceReplicas: Int
    /// The pool's generation when this connection was opened; an older one is not reused.
    var generation = 0

    /// Connects (through the sentinels to the current primary for a sentinel URL), then in
    /// one round trip authenticates, selects the database and, behind sentinels, checks
    /// that the server is the primary.
    init(_ location: RedisLocation, _ credentials: RedisCredentials) throws(RedisFailure) {
        // A peer that resets the connection must cost a 503, not the process (SIGPIPE's
        // default): the write then fails with EPIPE and is reported.
        signal(SIGPIPE, SIG_IGN)
        let deadline = Clock.monotonicMillis() + location.connectTimeoutMillis
        timeoutMillis = location.timeoutMillis
        var name = location.description
        var location = location
        var mustBePrimary = false
        var listed = (up: 0, replicating: 0)
        if case .sentinel(let sentinels, let master) = location.endpoint {
            let (primary, replicas) = try Self.askSentinels(sentinels, master: master, location, credentials)
            name += " (primary \(primary.text))"
            location.endpoint = .tcp(host: primary.host, port: primary.port)
            mustBePrimary = true
            listed = replicas
        }
        checksRole = mustBePrimary
        requiredReplicas = location.waitForAllReplicas ? listed.up : location.waitReplicas
        fenceReplicas = location.waitForAllReplicas ? listed.replicating : location.waitReplicas
        let endpoint: Endpoint
        switch location.endpoint {
        case .tcp(let host, let port): endpoint = .tcp(host: host, port: port)
        case .unix(let path): endpoint = .unix(path: path)
        case .sentinel: preconditionFailure("resolved above")
        }
        let tls: TLSSettings?
        if location.tls, case .tcp(let host, _) = endpoint {
            tls = TLSSettings(serverName: host, clientCertificate: credentials.clientCertificate)
        } else {
            tls = nil
        }
        do { transport = try Connection.open(endpoint, tls: tls, deadline: deadline) }
        catch { throw .io("cannot connect to \(name): \(error.description)", sent: false) }

        var handshake: [[[UInt8]]] = []
        if location.protocolVersion == 3 {
            var hello: [[UInt8]] = [Array("HELLO".utf8), Array("3".utf8)]
            if let password = credentials.password {
                hello += [Array("AUTH".utf8), Array((credentials.username ?? "default").utf8), password]
            }
            handshake.append(hello)
        } else if let password = credentials.password {
            if let user = credentials.username {
                handshake.append([Array("AUTH".utf8), Array(user.utf8), password])
            } else {
                handshake.append([Array("AUTH".utf8), password])
            }
        }
        if location.database != 0 {
            handshake.append([Array("SELECT".utf8), Array(String(location.database).utf8)])
        }
        if mustBePrimary { handshake.append([Array("ROLE".utf8)]) }
        guard !handshake.isEmpty else { return }
        let replies: [RESPValue]
        do { replies = try roundTrip(handshake, timeoutMillis: location.connectTimeoutMillis) }
        catch { throw .io("\(name): \(error.message)", sent: true) }
        for (command, reply) in zip(handshake, replies) {
            let verb = String(decoding: command[0], as: UTF8.self)
            if verb == "ROLE" {
                if case .error(let text) = reply { throw .io("\(name): ROLE: \(text.prefix(80))", sent: true) }
                // Sentinel's answer can be stale during a failover: the old primary, now a replica.
                guard let role = Self.role(reply), role.isPrimary else {
                    throw .io("\(name): the server sentinel named is not the primary (failover in progress?)", sent: true)
                }
                if location.waitForAllReplicas { sawOnline(role.onlineReplicas) }
                continue
            }
            guard case .error(let text) = reply else { continue }
            if verb == "SELECT" { throw .io("\(name): cannot select database \(location.database): \(text)", sent: true) }
            // The reply names no secret (WRONGPASS, NOAUTH...), but say where to look.
            throw .io("\(name): authentication failed (\(text.prefix(80))); check EDGEPIPE_REDIS_PASSWORD_FILE "
                      + "or EDGEPIPE_REDIS_PASSWORD", sent: true)
        }
    }

    /// The primary reports `online` replicas in sync: with `wait=auto`, none of them may be
    /// left out of a write's WAIT or a read's check from now on.
    func sawOnline(_ online: Int) {
        requiredReplicas = max(requiredReplicas, online)
        fenceReplicas = max(fenceReplicas, online)
    }

    /// Whether a ROLE reply names a primary, and how many replicas it has online (those in
    /// sync: Redis lists only replicas past their initial synchronisation).
    static func role(_ reply: RESPValue) -> (isPrimary: Bool, onlineReplicas: Int)? {
        guard let parts = reply.elements, let first = parts.first?.bytes else { return nil }
        guard first == Array("master".utf8) else { return (false, 0) }
        return (true, parts.count > 2 ? parts[2].elements?.count ?? 0 : 0)
    }

    /// The primary's address from the first sentinel that knows `master`, and how many
    /// replicas that sentinel lists for it that are up: all of them, and those that also
    /// report the replica role (see requiredReplicas and fenceReplicas).
    private static func askSentinels(_ sentinels: [RedisLocation.Node], master: String, _ location: RedisLocation,
                                     _ credentials: RedisCredentials) throws(RedisFailure)
        -> (RedisLocation.Node, replicas: (up: Int, replicating: Int)) {
        var failures: [String] = []
        for node in sentinels {
            var at = RedisLocation(endpoint: .tcp(host: node.host, port: node.port))
            at.tls = location.tls
            at.connectTimeoutMillis = location.connectTimeoutMillis
            at.timeoutMillis = location.timeoutMillis
            do {
                let sentinel = try RedisConnection(at, RedisCredentials(password: credentials.sentinelPassword,
                                                                        clientCertificate: credentials.clientCertificate))
                var query = [[Array("SENTINEL".utf8), Array("get-master-addr-by-name".utf8), Array(master.utf8)]]
                if location.waitForAllReplicas { query.append([Array("SENTINEL".utf8), Array("REPLICAS".utf8), Array(master.utf8)]) }
                let reply = try sentinel.roundTrip(query)
                guard let parts = reply[0].elements, parts.count == 2, let host = parts[0].bytes, let port = parts[1].int else {
                    failures.append("\(node.text): \(reply[0] == .null ? "does not know \(master)" : "unexpected reply")")
                    continue
                }
                var replicas = (up: 0, replicating: 0)
                if location.waitForAllReplicas {
                    guard let list = reply[1].elements else {
                        failures.append("\(node.text): unexpected reply to SENTINEL REPLICAS")
                        continue
                    }
                    for replica in list {
                        let (up, replicating) = describe(replica)
                        if up { replicas.up += 1 }
                        if up && replicating { replicas.replicating += 1 }
                    }
                }
                return (RedisLocation.Node(host: String(decoding: host, as: UTF8.self), port: port), replicas)
            } catch {
                failures.append(error.message)
            }
        }
        throw .io("no sentinel named the primary of \(master): \(failures.joined(separator: "; "))", sent: false)
    }

    /// One replica as SENTINEL REPLICAS describes it (field, value, field, value...; a map in RESP3).
    /// Whether the sentinel sees it up (not `s_down`, `o_down`, or `disconnected` unless it
    /// is the one being promoted), and whether it reports the replica role.
    private static func describe(_ replica: RESPValue) -> (up: Bool, replicating: Bool) {
        guard let fields = replica.elements else { return (false, false) }
        var flags = "", role = ""
        var i = 0
        while i + 1 < fields.count {
            if let k = fields[i].bytes, let v = fields[i + 1].bytes {
                if k == Array("flags".utf8) { flags = String(decoding: v, as: UTF8.self) }
                if k == Array("role-reported".utf8) { role = String(decoding: v, as: UTF8.self) }
            }
            i += 2
        }
        let set = Set(flags.split(separator: ",").map(String.init))
        // Sentinel drops its own link to the replica it promotes (CLIENT KILL after SLAVEOF
        // NO ONE), so that one is "disconnected" at the very moment it matters most.
        let down = set.contains("s_down") || set.contains("o_down") || (set.contains("disconnected") && !set.contains("promoted"))
        return (!down, role == "slave")
    }

    /// Whether the server closed the connection (or sent something unasked) while it sat
    /// idle: a restarted Redis leaves pooled connections at EOF. Checked before reuse, so
    /// a write is never sent into a dead connection where it could not be retried safely.
    var isStale: Bool {
        var p = pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, 0)
        return rc != 0
    }

    /// Sends every command, then reads one reply per command, in order. Error replies are
    /// returned as `.error` values; only transport or framing failures throw.
    func roundTrip(_ commands: [[[UInt8]]], timeoutMillis: Int? = nil) throws(RedisFailure) -> [RESPValue] {
        let deadline = Clock.monotonicMillis() + (timeoutMillis ?? self.timeoutMillis)
        var out: [UInt8] = []
        for c in commands { RESP.encode(c, into: &out) }
        do { try transport.write(out, deadline: deadline) }
        catch { throw .io(error.description, sent: true) }
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        while replies.count < commands.count {
            let value = try readReply(deadline: deadline)
            if case .push = value { continue }   // out-of-band (RESP3), not a reply
            replies.append(value)
        }
        return replies
    }

    private func readReply(deadline: Int) throws(RedisFailure) -> RESPValue {
        while true {
            if consumed < buffer.count {
                var index = consumed
                let parsed: RESPValue?
                do { parsed = try RESP.parse(buffer, at: &index) }
                catch { throw .io("protocol error: \(error.description)", sent: true) }
                if let parsed {
                    consumed = index
                    if consumed == buffer.count { buffer.removeAll(keepingCapacity: buffer.count <= 1 << 20); consumed = 0 }
                    return parsed
                }
            }
            if consumed > 0 { buffer.removeSubrange(0..<consumed); consumed = 0 }
            let n: Int
            do { n = try transport.read(&chunk, deadline: deadline) }
            catch { throw .io(error.description, sent: true) }
            if n == 0 { throw .io("connection closed by the server", sent: true) }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}
