#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto

/// The networked KV engine: one Redis (a primary, with replicas and Sentinel for
/// failover) shared by every gateway machine (docs/scaling.md). Same semantics as
/// DirectoryStore, each operation one atomic Lua script (RedisScripts.swift).
///
/// Opening the store connects to nothing: the first operation does, so a filter started
/// while Redis is down answers 503s and recovers by itself. Any failure to reach Redis is
/// `KVError.unavailable`; every pooled connection is then dropped and the next operation
/// connects afresh (behind sentinels: asks them again). Reads that fail on a reused
/// connection are retried once on a new one; writes are not (Redis may have applied one
/// whose reply was lost), which is why idle connections are checked for a server-side
/// close before a write is sent on them.
public final class RedisStore: KVStore, @unchecked Sendable {
    public var backendName: String { "redis" }

    public let location: RedisLocation
    private let credentials: RedisCredentials
    /// Milliseconds added to Redis's clock (EDGEPIPE_CLOCK_OFFSET; tests move it).
    private let clockOffsetMillis: @Sendable () -> Int
    private let pool = ConnectionPool()
    private let entryPrefix: [UInt8]
    private let indexKey: [UInt8]

    public init(location: RedisLocation, credentials: RedisCredentials,
                clockOffsetMillis: @escaping @Sendable () -> Int = RedisStore.environmentClockOffset) {
        self.location = location
        self.credentials = credentials
        self.clockOffsetMillis = clockOffsetMillis
        entryPrefix = Array(location.prefix.utf8) + Array("e:".utf8)
        indexKey = Array(location.prefix.utf8) + Array("index".utf8)
        if location.tls, let ca = environment("EDGEPIPE_REDIS_CA_FILE") {
            // TLSStream (shared with HTTPClient) trusts OpenSSL's default store, which
            // SSL_CERT_FILE replaces: the private CA of Redis is then the one this process
            // trusts. Set here, once, before any thread of this store connects.
            setenv("SSL_CERT_FILE", ca, 1)
        }
    }

    /// The store named by a redis://, rediss:// or redis+unix:// URL, with the password
    /// from the environment (RedisCredentials.fromEnvironment).
    public convenience init(url: String) throws(KVError) {
        let location = try RedisLocation.parse(url)
        self.init(location: location, credentials: try RedisCredentials.fromEnvironment(username: location.username))
    }

    public static let environmentClockOffset: @Sendable () -> Int = {
        (environment("EDGEPIPE_CLOCK_OFFSET").flatMap { Int($0) } ?? 0) * 1000
    }

    // MARK: KVStore

    public func get(_ key: String) throws(KVError) -> KVEntry? {
        try KVFileName.validate(key)
        let reply = try run(RedisScript.get, keys: [entryKey(key)], args: [offset()], isWrite: false)
        if case .null = reply { return nil }
        guard let fields = reply.elements, fields.count == 4, let valueBytes = fields[0].bytes,
              let version = fields[1].int else { throw unexpected(reply) }
        let value: JSON
        do { value = try JSONReader.parse(valueBytes) }
        catch { throw KVError.unavailable("corrupt value of \(key.debugDescription) in \(location): \(error)") }
        var metadata: JSON?
        if let m = fields[2].bytes {
            do { metadata = try JSONReader.parse(m) }
            catch { throw KVError.unavailable("corrupt metadata of \(key.debugDescription) in \(location): \(error)") }
        }
        var expiresAt: Int?
        if case .null = fields[3] {} else {
            guard let e = fields[3].int else { throw unexpected(reply) }
            expiresAt = e
        }
        return KVEntry(key: key, value: value, version: version, metadata: metadata, expiresAt: expiresAt)
    }

    @discardableResult
    public func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try write("put", key, expected: nil, value, metadata: metadata, expiresAt: expiresAt)
    }

    @discardableResult
    public func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try write("create", key, expected: nil, value, metadata: metadata, expiresAt: expiresAt)
    }

    @discardableResult
    public func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?,
                               expiresAt: Int?) throws(KVError) -> KVEntry {
        try write("cas", key, expected: expected, value, metadata: metadata, expiresAt: expiresAt)
    }

    @discardableResult
    public func delete(_ key: String) throws(KVError) -> Bool {
        try KVFileName.validate(key)
        let reply = try run(RedisScript.delete, keys: [entryKey(key), indexKey],
                            args: [offset(), Array(key.utf8)], isWrite: true)
        guard let n = reply.int else { throw unexpected(reply) }
        return n == 1
    }

    public func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        let limit = max(1, min(limit, 10_000))
        let prefixBytes = Array(prefix.utf8)
        var start: [UInt8] = prefixBytes.isEmpty ? [UInt8(ascii: "-")] : [UInt8(ascii: "[")] + prefixBytes
        if let cursor {
            // The same cursor as DirectoryStore's (the last key listed, hex), so a cursor
            // means the same thing whatever the engine.
            guard let after = Hex.decode(cursor), !after.isEmpty, Array(Hex.encode(after).utf8) == Array(cursor.utf8),
                  String(validating: after, as: UTF8.self) != nil else { throw KVError.invalidCursor }
            if !after.lexicographicallyPrecedes(prefixBytes) { start = [UInt8(ascii: "(")] + after }
        }
        // 0xFF never occurs in UTF-8, so "[prefix\xff" is above every key that starts with prefix.
        let end: [UInt8] = prefixBytes.isEmpty ? [UInt8(ascii: "+")] : [UInt8(ascii: "[")] + prefixBytes + [0xFF]
        let reply = try run(RedisScript.list, keys: [indexKey],
                            args: [offset(), prefixBytes, start, end, Array(String(limit).utf8), entryPrefix],
                            isWrite: false)
        guard let parts = reply.elements, parts.count == 2, let members = parts[0].elements, let more = parts[1].int
        else { throw unexpected(reply) }
        var keys: [String] = []
        keys.reserveCapacity(members.count)
        for m in members {
            guard let bytes = m.bytes, let key = String(validating: bytes, as: UTF8.self) else { throw unexpected(reply) }
            keys.append(key)
        }
        let cursorOut = more == 1 && !keys.isEmpty ? Hex.encode(Array(keys.last!.utf8)) : nil
        return KVPage(keys: keys, cursor: cursorOut)
    }

    // MARK: Internals

    private func write(_ mode: String, _ key: String, expected: Int?, _ value: JSON, metadata: JSON?,
                       expiresAt: Int?) throws(KVError) -> KVEntry {
        try KVFileName.validate(key)
        let metadata = metadata.flatMap { $0.isNull ? nil : $0 }
        let offsetMillis = clockOffsetMillis()
        var physical: [UInt8] = []
        if let expiresAt {
            // Redis deletes the hash at the expiry on its own clock; the logical check in the
            // scripts includes the offset, so the physical one is shifted back by it.
            if expiresAt <= 0 {
                physical = Array("1".utf8)
            } else if expiresAt < 100_000_000_000 {
                physical = Array(String(max(1, expiresAt * 1000 - offsetMillis)).utf8)
            }   // else: beyond year 5000, expiry is left to the logical check alone
        }
        let args: [[UInt8]] = [
            Array(String(offsetMillis).utf8), Array(mode.utf8), expected.map { Array(String($0).utf8) } ?? [],
            Array(key.utf8), value.serialized(), metadata?.serialized() ?? [],
            expiresAt.map { Array(String($0).utf8) } ?? [], physical,
        ]
        let reply = try run(RedisScript.write, keys: [entryKey(key), indexKey], args: args, isWrite: true)
        guard let parts = reply.elements, parts.count == 2, let code = parts[0].int, let n = parts[1].int else {
            throw unexpected(reply)
        }
        switch code {
        case 0: return KVEntry(key: key, value: value, version: n, metadata: metadata, expiresAt: expiresAt)
        case 1: throw KVError.exists
        case 2: throw KVError.versionMismatch(current: n < 0 ? nil : n)
        default: throw unexpected(reply)
        }
    }

    private func entryKey(_ key: String) -> [UInt8] { entryPrefix + Array(key.utf8) }
    func offset() -> [UInt8] { Array(String(clockOffsetMillis()).utf8) }

    private func unexpected(_ reply: RESPValue) -> KVError {
        KVError.unavailable("unexpected reply from \(location)")
    }

    /// Runs a script by its SHA (loading it with EVAL when the server does not know it, as
    /// after a restart). Behind sentinels the same round trip first asks ROLE, so a
    /// connection to a server that is no longer the primary, or to a primary that has lost
    /// a replica it must have (possibly the one just promoted), is caught before its answer
    /// is used: the pool is dropped, and a read, or a write the replica refused, is retried
    /// once on a connection found afresh through the sentinels. A write then waits (WAIT)
    /// for the required replicas; short of them it is not acknowledged.
    func run(_ script: RedisScript, keys: [[UInt8]], args: [[UInt8]], isWrite: Bool) throws(KVError) -> RESPValue {
        let numKeys = Array(String(keys.count).utf8)
        let role: [[UInt8]] = [Array("ROLE".utf8)]
        var attempt = 0
        while true {
            attempt += 1
            let (connection, reused) = try checkout()
            let required = connection.requiredReplicas
            let fence = connection.fenceReplicas
            let waits = isWrite && required > 0
            var commands: [[[UInt8]]] = connection.checksRole ? [role] : []
            let scriptAt = commands.count
            commands.append([Array("EVALSHA".utf8), script.sha, numKeys] + keys + args)
            if waits { commands.append(waitCommand(required)) }
            // WAIT blocks up to its own timeout: give the round trip that much more.
            let timeout = location.timeoutMillis + (waits ? location.waitTimeoutMillis : 0)
            do {
                var replies = try connection.roundTrip(commands, timeoutMillis: timeout)
                if case .error(let e) = replies[scriptAt], e.hasPrefix("NOSCRIPT") {
                    commands[scriptAt] = [Array("EVAL".utf8), script.source, numKeys] + keys + args
                    replies = try connection.roundTrip(commands, timeoutMillis: timeout)
                }
                if connection.checksRole {
                    guard let seen = RedisConnection.role(replies[0]) else {
                        // Not an answer to go by (an ACL without ROLE?); the script may have run.
                        pool.invalidate()
                        var why = "unexpected reply"
                        if case .error(let e) = replies[0] { why = String(e.prefix(200)) }
                        throw RedisFailure.server("ROLE: \(why)")
                    }
                    guard seen.isPrimary else {
                        // A demoted primary: a write was refused (READONLY), a read may be
                        // stale. Either way nothing happened that a retry could duplicate.
                        pool.invalidate()
                        if attempt == 1 { continue }
                        throw RedisFailure.io("the server is no longer the primary (failover in progress)", sent: false)
                    }
                    if location.waitForAllReplicas { connection.sawOnline(seen.onlineReplicas) }
                    if seen.onlineReplicas < fence && !isWrite {
                        pool.invalidate()
                        if attempt == 1 { continue }
                        throw RedisFailure.io("the primary has \(seen.onlineReplicas) of \(fence) replicas online; "
                                              + "one may have been promoted (failover in progress?)", sent: false)
                    }
                }
                if case .error(let e) = replies[scriptAt] {
                    // A replica after a failover, a loading or unauthenticated server: this
                    // connection leads nowhere useful; the next call reconnects.
                    let fatal = ["READONLY", "MASTERDOWN", "LOADING", "NOAUTH", "WRONGPASS", "NOPERM"].contains { e.hasPrefix($0) }
                    if fatal { pool.invalidate() } else { pool.checkin(connection) }
                    if e.hasPrefix("OOM") {
                        throw RedisFailure.server("Redis is full (maxmemory reached, and the store's writes are never evicted): \(e.prefix(200))")
                    }
                    throw RedisFailure.server(String(e.prefix(200)))
                }
                if isWrite && connection.requiredReplicas > 0 {
                    var acknowledged = waits ? replies[scriptAt + 1].int ?? 0 : 0
                    let needed = connection.requiredReplicas
                    if acknowledged < needed && needed > required {
                        // A replica joined since the connection opened: wait for it too.
                        acknowledged = try connection.roundTrip([waitCommand(needed)], timeoutMillis: timeout)[0].int ?? 0
                    }
                    if acknowledged < needed {
                        // Maybe a primary cut off by a promotion: find the primary afresh.
                        pool.invalidate()
                        throw KVError.unavailable("\(location): written on the primary but acknowledged by \(acknowledged) of "
                                                  + "\(needed) replicas within \(location.waitTimeoutMillis) ms")
                    }
                }
                pool.checkin(connection)
                return replies[scriptAt]
            } catch let failure as RedisFailure {
                switch failure {
                case .server(let text):
                    throw KVError.unavailable("\(location): \(text)")
                case .io(let text, let sent):
                    pool.invalidate()
                    if reused && attempt == 1 && (!isWrite || !sent) { continue }
                    throw KVError.unavailable("\(location): \(text)")
                }
            } catch let error as KVError {
                throw error
            } catch {
                throw KVError.unavailable("\(location): \(error)")
            }
        }
    }

    private func waitCommand(_ replicas: Int) -> [[UInt8]] {
        [Array("WAIT".utf8), Array(String(replicas).utf8), Array(String(location.waitTimeoutMillis).utf8)]
    }

    /// Readiness: the server answers PING and is the master (after a failover the URL may
    /// still name the old one, now a replica that refuses writes). Throws the reason.
    public func checkMaster() throws(KVError) {
        let (connection, _) = try checkout()
        let replies: [RESPValue]
        do {
            replies = try connection.roundTrip([[Array("PING".utf8)], [Array("ROLE".utf8)]], timeoutMillis: location.timeoutMillis)
        } catch {
            throw KVError.unavailable("\(location): \(error)")
        }
        if case .error(let e) = replies[0] { throw KVError.unavailable("\(location): PING: \(e.prefix(200))") }
        let role = replies[1].elements?.first?.bytes.map { String(decoding: $0, as: UTF8.self) }
        guard role == "master" else { throw KVError.unavailable("\(location) is a \(role ?? "server of unknown role"), not the master") }
        pool.checkin(connection)
    }

    /// An idle connection that is still open, or a new one.
    private func checkout() throws(KVError) -> (RedisConnection, reused: Bool) {
        while let c = pool.checkoutIdle() {
            if !c.isStale { return (c, true) }
        }
        let generation = pool.generation
        do {
            let connection = try RedisConnection(location, credentials)
            connection.generation = generation
            return (connection, false)
        }
        catch { throw KVError.unavailable(error.message) }
    }
}

/// Idle connections for reuse across calls and threads (a filter uses one; the tests use
/// several threads on one store).
private final class ConnectionPool: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var idle: [RedisConnection] = []
    private let maxIdle = 8
    private var current = 0

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func checkoutIdle() -> RedisConnection? {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return idle.popLast()
    }

    func checkin(_ connection: RedisConnection) {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        if connection.generation == current && idle.count < maxIdle { idle.append(connection) }
    }

    /// Drops every idle connection, and those in use when they come back: after a failover
    /// sign or a broken connection, each must find the primary afresh.
    func invalidate() {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        current += 1
        idle.removeAll()
    }

    var generation: Int {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return current
    }
}
