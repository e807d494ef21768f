import XCTest
import Foundation
@testable import Records
@testable import Crypto
@testable import KV

/// The Redis server the tests use: EDGEPIPE_TEST_REDIS_URL (Tests/run starts one and sets
/// it). Without it the Redis cases skip; the protocol and URL cases below always run.
func testRedisURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["EDGEPIPE_TEST_REDIS_URL"], !url.isEmpty else {
        throw XCTSkip("EDGEPIPE_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6390/0)")
    }
    return url
}

/// A clock offset the tests move by hand: the store adds it to Redis's clock.
final class RedisClockOffset: @unchecked Sendable {
    private let lock = NSLock()
    private var seconds = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return seconds }
    func advance(_ s: Int) { lock.lock(); seconds += s; lock.unlock() }
}

/// Every store of a test gets its own namespace prefix, removed afterwards.
final class RedisNamespaces {
    let url: String
    var prefixes: [String] = []
    init(url: String) { self.url = url }

    func store(offset: RedisClockOffset? = nil, options: String = "") throws -> RedisStore {
        let prefix = "test:\(UUID().uuidString):"
        prefixes.append(prefix)
        var location = try RedisLocation.parse(url + options)
        location.prefix = prefix
        return RedisStore(location: location, credentials: try RedisCredentials.fromEnvironment(username: location.username),
                          clockOffsetMillis: { (offset?.value ?? 0) * 1000 })
    }

    /// Runs raw commands on a fresh connection (what a test needs to look behind the store).
    func raw(_ commands: [[String]]) throws -> [RESPValue] {
        let location = try RedisLocation.parse(url)
        let connection = try RedisConnection(location, try RedisCredentials.fromEnvironment(username: location.username))
        return try connection.roundTrip(commands.map { $0.map { Array($0.utf8) } })
    }

    func removeAll() {
        for p in prefixes {
            _ = try? raw([["EVAL", "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0",
                           "0", p + "*"]])
        }
    }
}

/// The shared suite run against Redis.
final class RedisStoreConformanceTests: XCTestCase {
    var namespaces: RedisNamespaces!
    var suite: KVStoreConformance!

    override func setUpWithError() throws {
        namespaces = RedisNamespaces(url: try testRedisURL())
        let offset = RedisClockOffset()
        suite = KVStoreConformance(harness: KVHarness(
            makeStore: { [unowned self] in try namespaces.store(offset: offset) },
            now: { Int(Date().timeIntervalSince1970) + offset.value },
            advance: { offset.advance($0) }))
    }

    override func tearDown() { namespaces?.removeAll() }

    func testMissingKeyReadsAsNil() throws { try suite.missingKeyReadsAsNil() }
    func testPutThenGetReturnsValueWithIncreasingVersions() throws { try suite.putThenGetReturnsValueWithIncreasingVersions() }
    func testValuesOfEveryJSONTypeRoundTrip() throws { try suite.valuesOfEveryJSONTypeRoundTrip() }
    func testLargeValueRoundTrips() throws { try suite.largeValueRoundTrips() }
    func testMetadataIsStoredBesideTheValueAndReplacedByPut() throws { try suite.metadataIsStoredBesideTheValueAndReplacedByPut() }
    func testDeleteRemovesTheKeyAndReportsWhetherItWasPresent() throws { try suite.deleteRemovesTheKeyAndReportsWhetherItWasPresent() }
    func testCreateWritesOnlyWhenAbsent() throws { try suite.createWritesOnlyWhenAbsent() }
    func testCreateOverAnExpiredEntrySucceeds() throws { try suite.createOverAnExpiredEntrySucceeds() }
    func testCompareAndSwapWritesOnlyOnTheExpectedVersion() throws { try suite.compareAndSwapWritesOnlyOnTheExpectedVersion() }
    func testExpiredEntriesReadAsAbsentAndAreNotListed() throws { try suite.expiredEntriesReadAsAbsentAndAreNotListed() }
    func testListReturnsPrefixedKeysInByteOrder() throws { try suite.listReturnsPrefixedKeysInByteOrder() }
    func testListPagesWithLimitAndCursorCoverEveryKeyOnce() throws { try suite.listPagesWithLimitAndCursorCoverEveryKeyOnce() }
    func testListStaysCorrectWhileKeysAreAdded() throws { try suite.listStaysCorrectWhileKeysAreAdded() }
    func testInvalidCursorIsRefused() throws { try suite.invalidCursorIsRefused() }
    func testWeirdKeysAreDistinctAndRoundTrip() throws { try suite.weirdKeysAreDistinctAndRoundTrip() }
    func testEmptyAndOverlongKeysAreRefused() throws { try suite.emptyAndOverlongKeysAreRefused() }
    func testUpdateAppliesTheTransformAndKeepsMetadataAndExpiry() throws { try suite.updateAppliesTheTransformAndKeepsMetadataAndExpiry() }
    func testConcurrentUpdatesLoseNothing() throws { try suite.concurrentUpdatesLoseNothing() }
}

/// What is particular to the Redis engine: the layout in Redis, real expiry, namespaces,
/// reconnection, authentication and the failure modes.
final class RedisStoreTests: XCTestCase {
    var namespaces: RedisNamespaces!

    override func setUpWithError() throws { namespaces = RedisNamespaces(url: try testRedisURL()) }
    override func tearDown() { namespaces?.removeAll() }

    func testEntryIsAHashAndTheKeyIsInTheIndex() throws {
        let s = try namespaces.store()
        try s.put("sub/alice", ["plan": "pro"], metadata: ["m": 1], expiresAt: nil)
        let p = s.location.prefix
        let replies = try namespaces.raw([["HGETALL", p + "e:sub/alice"], ["ZRANGE", p + "index", "0", "-1"],
                                          ["PTTL", p + "e:sub/alice"]])
        var fields: [String: String] = [:]
        let flat = replies[0].elements ?? []
        for i in stride(from: 0, to: flat.count - 1, by: 2) {
            fields[String(decoding: flat[i].bytes ?? [], as: UTF8.self)] = String(decoding: flat[i + 1].bytes ?? [], as: UTF8.self)
        }
        XCTAssertEqual(fields, ["version": "1", "value": #"{"plan":"pro"}"#, "metadata": #"{"m":1}"#])
        XCTAssertEqual(replies[1], .array([.bulk(Array("sub/alice".utf8))]))
        XCTAssertEqual(replies[2], .integer(-1), "no expiry without expires_at")
    }

    func testExpiryIsAlsoSetInRedisSoExpiredEntriesLeaveMemory() throws {
        let s = try namespaces.store()
        let at = Int(Date().timeIntervalSince1970) + 100
        try s.put("t", 1, metadata: nil, expiresAt: at)
        let reply = try namespaces.raw([["PTTL", s.location.prefix + "e:t"]])
        let ttl = try XCTUnwrap(reply[0].int)
        XCTAssertTrue((90_000...101_000).contains(ttl), "PTTL \(ttl)")
    }

    func testKeyGoneFromRedisIsDroppedFromTheIndexByList() throws {
        let s = try namespaces.store()
        try s.put("l/1", 1, metadata: nil, expiresAt: nil)
        try s.put("l/2", 2, metadata: nil, expiresAt: nil)
        // What Redis's own expiry does to an entry: the hash vanishes, the index keeps the key.
        _ = try namespaces.raw([["DEL", s.location.prefix + "e:l/1"]])
        XCTAssertNil(try s.get("l/1"))
        XCTAssertEqual(try s.list(prefix: "l/", limit: 10, cursor: nil).keys, ["l/2"])
        let index = try namespaces.raw([["ZRANGE", s.location.prefix + "index", "0", "-1"]])
        XCTAssertEqual(index[0], .array([.bulk(Array("l/2".utf8))]))
    }

    func testRealExpiryByTheServerClock() throws {
        let s = try namespaces.store()
        let now = Int(Date().timeIntervalSince1970)
        try s.put("soon", 1, metadata: nil, expiresAt: now + 1)
        XCTAssertNotNil(try s.get("soon"))
        Thread.sleep(forTimeInterval: Double(now + 1) - Date().timeIntervalSince1970 + 0.05)
        XCTAssertNil(try s.get("soon"))
        XCTAssertEqual(try s.create("soon", 2, metadata: nil, expiresAt: nil).value, 2)
    }

    func testNamespacesDoNotSeeEachOther() throws {
        let a = try namespaces.store(), b = try namespaces.store()
        try a.put("k", "a", metadata: nil, expiresAt: nil)
        XCTAssertNil(try b.get("k"))
        XCTAssertEqual(try b.list(prefix: "", limit: 10, cursor: nil).keys, [])
        try b.create("k", "b", metadata: nil, expiresAt: nil)
        XCTAssertEqual(try a.get("k")?.value, "a")
    }

    func testReconnectsAfterTheServerDropsTheConnection() throws {
        let s = try namespaces.store()
        try s.put("r", 1, metadata: nil, expiresAt: nil)
        // Kill every other client connection: the store's pooled one dies under it.
        _ = try namespaces.raw([["CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"]])
        XCTAssertEqual(try s.put("r", 2, metadata: nil, expiresAt: nil).version, 2, "a write on a fresh connection")
        _ = try namespaces.raw([["CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"]])
        XCTAssertEqual(try s.get("r")?.value, 2)
    }

    func testScriptsAreReloadedAfterTheServerForgetsThem() throws {
        let s = try namespaces.store()
        try s.put("f", 1, metadata: nil, expiresAt: nil)
        let sha = String(decoding: RedisScript.write.sha, as: UTF8.self)
        XCTAssertEqual(try namespaces.raw([["SCRIPT", "EXISTS", sha]])[0], .array([.integer(1)]),
                       "the server knows the script by the name the store computes")
        _ = try namespaces.raw([["SCRIPT", "FLUSH"]])
        XCTAssertEqual(try s.put("f", 2, metadata: nil, expiresAt: nil).version, 2)
        XCTAssertEqual(try s.get("f")?.value, 2)
    }

    func testNothingListeningIsUnavailableAndQuick() throws {
        let start = Date()
        let s = try RedisStore(url: "redis://127.0.0.1:1/0?connect_timeout_ms=200")
        XCTAssertThrowsError(try s.get("k")) {
            guard case .unavailable(let why) = $0 as? KVError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("127.0.0.1:1"), why)
        }
        XCTAssertThrowsError(try s.put("k", 1, metadata: nil, expiresAt: nil))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    func testWaitingForMissingReplicasIsUnavailable() throws {
        let s = try namespaces.store(options: "?wait=1&wait_timeout_ms=50")
        XCTAssertThrowsError(try s.put("w", 1, metadata: nil, expiresAt: nil)) {
            guard case .unavailable(let why) = $0 as? KVError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("acknowledged by 0 of 1 replicas"), why)
        }
        // Written on the primary all the same (the message says so): WAIT is no rollback.
        XCTAssertEqual(try s.get("w")?.value, 1)
    }

    func testProtocol3WorksLikeProtocol2() throws {
        let s = try namespaces.store(options: "?protocol=3")
        try s.put("p", ["x": [1, 2]], metadata: ["a": true], expiresAt: 4_000_000_000)
        XCTAssertEqual(try s.get("p"), KVEntry(key: "p", value: ["x": [1, 2]], version: 1, metadata: ["a": true],
                                               expiresAt: 4_000_000_000))
        XCTAssertEqual(try s.list(prefix: "", limit: 5, cursor: nil).keys, ["p"])
        XCTAssertThrowsError(try s.create("p", 1, metadata: nil, expiresAt: nil)) { XCTAssertEqual($0 as? KVError, .exists) }
    }

    func testOpenStoreOpensRedisWithoutConnecting() throws {
        XCTAssertTrue(try openStore("redis://127.0.0.1:1/0") is RedisStore)
        XCTAssertTrue(try openStore("redis+unix:///nonexistent.sock?db=2") is RedisStore)
        XCTAssertThrowsError(try openStore("redis://user:secret@127.0.0.1/0")) {
            XCTAssertFalse("\($0)".contains("secret"))
        }
    }

    func testConcurrentCreatesFromManyStoresHaveOneWinner() throws {
        let location = try namespaces.store().location
        let winners = FailureCount(), losers = FailureCount(), errors = FailureCount()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            guard let credentials = try? RedisCredentials.fromEnvironment(username: location.username) else { return errors.add() }
            let s = RedisStore(location: location, credentials: credentials)
            do {
                try s.create("once", JSON(i), metadata: nil, expiresAt: nil)
                winners.add()
            } catch let e as KVError where e == .exists {
                losers.add()
            } catch { errors.add() }
        }
        XCTAssertEqual(winners.value, 1)
        XCTAssertEqual(losers.value, 15)
        XCTAssertEqual(errors.value, 0)
    }
}

/// RESP framing, without a server.
final class RedisProtocolTests: XCTestCase {
    func parseAll(_ text: String) throws -> RESPValue? {
        var i = 0
        let bytes = Array(text.utf8)
        let v = try RESP.parse(bytes, at: &i)
        if v != nil { XCTAssertEqual(i, bytes.count, "consumed everything") }
        return v
    }

    func testCommandsAreArraysOfBulkStrings() {
        XCTAssertEqual(String(decoding: RESP.encode([Array("GET".utf8), Array("a\r\nb".utf8), []]), as: UTF8.self),
                       "*3\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n$0\r\n\r\n")
    }

    func testRESP2Replies() throws {
        XCTAssertEqual(try parseAll("+OK\r\n"), .simple("OK"))
        XCTAssertEqual(try parseAll("-ERR wrong\r\n"), .error("ERR wrong"))
        XCTAssertEqual(try parseAll(":-42\r\n"), .integer(-42))
        XCTAssertEqual(try parseAll("$5\r\na\r\nbc\r\n"), .bulk(Array("a\r\nbc".utf8)))
        XCTAssertEqual(try parseAll("$0\r\n\r\n"), .bulk([]))
        XCTAssertEqual(try parseAll("$-1\r\n"), .null)
        XCTAssertEqual(try parseAll("*-1\r\n"), .null)
        XCTAssertEqual(try parseAll("*3\r\n:1\r\n$-1\r\n*1\r\n+x\r\n"), .array([.integer(1), .null, .array([.simple("x")])]))
    }

    func testRESP3Replies() throws {
        XCTAssertEqual(try parseAll("_\r\n"), .null)
        XCTAssertEqual(try parseAll("#t\r\n"), .boolean(true))
        XCTAssertEqual(try parseAll(",1.5\r\n"), .double("1.5"))
        XCTAssertEqual(try parseAll("(3492890328409238509324850943850943825024385\r\n"),
                       .bigNumber("3492890328409238509324850943850943825024385"))
        XCTAssertEqual(try parseAll("!9\r\nERR nope!\r\n"), .error("ERR nope!"))
        XCTAssertEqual(try parseAll("=8\r\ntxt:abcd\r\n"), .verbatim(Array("abcd".utf8)))
        XCTAssertEqual(try parseAll("%1\r\n+k\r\n:1\r\n"), .map([.simple("k"), .integer(1)]))
        XCTAssertEqual(try parseAll("~2\r\n:1\r\n:2\r\n"), .set([.integer(1), .integer(2)]))
        XCTAssertEqual(try parseAll(">2\r\n+invalidate\r\n_\r\n"), .push([.simple("invalidate"), .null]))
        XCTAssertEqual(try parseAll("|1\r\n+ttl\r\n:3\r\n+value\r\n"), .simple("value"), "attributes are skipped")
    }

    func testIncompleteRepliesAskForMoreAtEveryCut() throws {
        let full = Array("*2\r\n$11\r\nhello world\r\n%1\r\n+a\r\n,2\r\n".utf8)
        for cut in 0..<full.count {
            var i = 0
            XCTAssertNil(try RESP.parse(Array(full[0..<cut]), at: &i), "cut at \(cut)")
            XCTAssertEqual(i, 0)
        }
        var i = 0
        XCTAssertEqual(try RESP.parse(full, at: &i), .array([.bulk(Array("hello world".utf8)), .map([.simple("a"), .double("2")])]))
    }

    func testPipelinedRepliesParseOneAfterAnother() throws {
        let bytes = Array("+OK\r\n:1\r\n$1\r\nx\r\n".utf8)
        var i = 0
        XCTAssertEqual(try RESP.parse(bytes, at: &i), .simple("OK"))
        XCTAssertEqual(try RESP.parse(bytes, at: &i), .integer(1))
        XCTAssertEqual(try RESP.parse(bytes, at: &i), .bulk([UInt8(ascii: "x")]))
        XCTAssertEqual(i, bytes.count)
    }

    func testMalformedRepliesAreErrorsNotCrashes() {
        for bad in ["?x\r\n", ":abc\r\n", "$3\r\nabcd\r\n", "$-2\r\n", "*-5\r\n", "+a\rb\r\n", "+a\nb\r\n",
                    "#x\r\n", "$999999999999\r\n", "=3\r\nabc\r\n", "_x\r\n",
                    String(repeating: "*1\r\n", count: 40) + ":1\r\n"] {
            var i = 0
            XCTAssertThrowsError(try RESP.parse(Array(bad.utf8), at: &i), bad.debugDescription)
        }
    }
}

/// Store URLs, without a server.
final class RedisLocationTests: XCTestCase {
    func testPlainURLWithDefaults() throws {
        let l = try RedisLocation.parse("redis://cache.internal")
        XCTAssertEqual(l.endpoint, .tcp(host: "cache.internal", port: 6379))
        XCTAssertEqual(l.database, 0)
        XCTAssertFalse(l.tls)
        XCTAssertEqual(l.prefix, "edgepipe:")
        XCTAssertEqual(l.description, "redis://cache.internal:6379/0")
    }

    func testEveryPartAndOption() throws {
        let l = try RedisLocation.parse("rediss://gateway@[::1]:6380/3?prefix=app%3Akv%3A&connect_timeout_ms=50"
                                        + "&timeout_ms=70&wait=1&wait_timeout_ms=20&protocol=3")
        XCTAssertEqual(l.endpoint, .tcp(host: "::1", port: 6380))
        XCTAssertTrue(l.tls)
        XCTAssertEqual(l.username, "gateway")
        XCTAssertEqual(l.database, 3)
        XCTAssertEqual(l.prefix, "app:kv:")
        XCTAssertEqual([l.connectTimeoutMillis, l.timeoutMillis, l.waitReplicas, l.waitTimeoutMillis, l.protocolVersion],
                       [50, 70, 1, 20, 3])
        XCTAssertEqual(l.description, "rediss://[::1]:6380/3")
    }

    func testUnixSocket() throws {
        let l = try RedisLocation.parse("redis+unix:///run/redis/redis.sock?db=2&prefix=")
        XCTAssertEqual(l.endpoint, .unix(path: "/run/redis/redis.sock"))
        XCTAssertEqual(l.database, 2)
        XCTAssertEqual(l.prefix, "")
    }

    func testSentinelURL() throws {
        let l = try RedisLocation.parse("redis+sentinel://gw@10.0.0.1,10.0.0.2:26380,[::1]/main-cache/4?prefix=x:")
        XCTAssertEqual(l.endpoint, .sentinel(sentinels: [.init(host: "10.0.0.1", port: 26379), .init(host: "10.0.0.2", port: 26380),
                                                         .init(host: "::1", port: 26379)], master: "main-cache"))
        XCTAssertEqual(l.database, 4)
        XCTAssertEqual(l.username, "gw")
        XCTAssertFalse(l.tls)
        XCTAssertEqual(l.description, "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,[::1]:26379/main-cache/4")
        XCTAssertTrue(try RedisLocation.parse("rediss+sentinel://s1/m").tls)
        for bad in ["redis+sentinel://s1", "redis+sentinel://s1/", "redis+sentinel://s1,/m", "redis+sentinel://s1/m/x",
                    "redis+sentinel://s1/m/0/1", "redis+sentinel:///m"] {
            XCTAssertThrowsError(try RedisLocation.parse(bad), bad)
        }
    }

    func testSentinelURLsWaitForEveryReplicaUnlessToldOtherwise() throws {
        let auto = try RedisLocation.parse("redis+sentinel://s1/m")
        XCTAssertTrue(auto.waitForAllReplicas)
        XCTAssertEqual(try RedisLocation.parse("redis+sentinel://s1/m?wait=auto"), auto)
        let none = try RedisLocation.parse("redis+sentinel://s1/m?wait=0")
        XCTAssertFalse(none.waitForAllReplicas)
        XCTAssertEqual(none.waitReplicas, 0)
        let two = try RedisLocation.parse("redis+sentinel://s1/m?wait=2")
        XCTAssertEqual([two.waitForAllReplicas ? 1 : 0, two.waitReplicas], [0, 2])
        XCTAssertFalse(try RedisLocation.parse("redis://host").waitForAllReplicas, "nothing promotes a replica of a plain URL")
        XCTAssertThrowsError(try RedisLocation.parse("redis://host?wait=auto")) {
            guard case .unavailable(let why) = $0 as? KVError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("wait=auto needs a redis+sentinel URL"), why)
        }
    }

    func testAClientCertificateNeedsItsKey() throws {
        let saved = ["EDGEPIPE_REDIS_CERT_FILE", "EDGEPIPE_REDIS_KEY_FILE"].map { ($0, ProcessInfo.processInfo.environment[$0]) }
        defer { for (name, value) in saved { if let value { setenv(name, value, 1) } else { unsetenv(name) } } }
        setenv("EDGEPIPE_REDIS_CERT_FILE", "/etc/edgepipe/redis-client.pem", 1)
        unsetenv("EDGEPIPE_REDIS_KEY_FILE")
        XCTAssertThrowsError(try RedisCredentials.fromEnvironment(username: nil))
        setenv("EDGEPIPE_REDIS_KEY_FILE", "/etc/edgepipe/redis-client.key", 1)
        let certificate = try RedisCredentials.fromEnvironment(username: nil).clientCertificate
        XCTAssertEqual(certificate?.certificateFile, "/etc/edgepipe/redis-client.pem")
        XCTAssertEqual(certificate?.keyFile, "/etc/edgepipe/redis-client.key")
        unsetenv("EDGEPIPE_REDIS_CERT_FILE"); unsetenv("EDGEPIPE_REDIS_KEY_FILE")
        XCTAssertNil(try RedisCredentials.fromEnvironment(username: nil).clientCertificate)
    }

    func testPasswordInTheURLIsRefusedWithoutBeingQuoted() {
        XCTAssertThrowsError(try RedisLocation.parse("redis://user:hunter2@host/0")) {
            guard case .unavailable(let why) = $0 as? KVError else { return XCTFail("\($0)") }
            XCTAssertFalse(why.contains("hunter2"))
            XCTAssertTrue(why.contains("EDGEPIPE_REDIS_PASSWORD"))
        }
        XCTAssertThrowsError(try RedisLocation.parse("redis://:hunter2@host/0"))
    }

    func testBadURLsAreRefused() {
        for bad in ["redis://", "redis://host:0", "redis://host:65536", "redis://host:x", "redis://host/db1",
                    "redis://host/1?db=2", "redis://host?timeout_ms=0", "redis://host?wait=-1", "redis://host?protocol=4",
                    "redis://host?bogus=1", "redis://host?prefix=a&prefix=b", "redis://ho st", "redis://[::1",
                    "redis+unix://host/sock", "redis+unix://", "redis://host#frag", "http://host"] {
            XCTAssertThrowsError(try RedisLocation.parse(bad), bad)
        }
    }

    func testPasswordComesFromAFileOrTheEnvironment() throws {
        let file = NSTemporaryDirectory() + "redis-pass-\(UUID().uuidString)"
        try "from file\n".write(toFile: file, atomically: true, encoding: .utf8)
        // The test Redis may itself need a password from these variables: put them back.
        let saved = ["EDGEPIPE_REDIS_PASSWORD_FILE", "EDGEPIPE_REDIS_PASSWORD"].map { ($0, ProcessInfo.processInfo.environment[$0]) }
        defer {
            try? FileManager.default.removeItem(atPath: file)
            for (name, value) in saved { if let value { setenv(name, value, 1) } else { unsetenv(name) } }
        }
        unsetenv("EDGEPIPE_REDIS_PASSWORD_FILE")
        setenv("EDGEPIPE_REDIS_PASSWORD", "from env", 1)
        XCTAssertEqual(try RedisCredentials.fromEnvironment(username: nil).password, Array("from env".utf8))
        setenv("EDGEPIPE_REDIS_PASSWORD_FILE", file, 1)
        XCTAssertEqual(try RedisCredentials.fromEnvironment(username: "u").password, Array("from file".utf8))
        setenv("EDGEPIPE_REDIS_PASSWORD_FILE", file + ".missing", 1)
        XCTAssertThrowsError(try RedisCredentials.fromEnvironment(username: nil))
        unsetenv("EDGEPIPE_REDIS_PASSWORD_FILE"); unsetenv("EDGEPIPE_REDIS_PASSWORD")
        XCTAssertThrowsError(try RedisCredentials.fromEnvironment(username: "u"), "a user without a password")
        XCTAssertNil(try RedisCredentials.fromEnvironment(username: nil).password)
    }
}

/// The script names: SHA-1 as Redis computes it (FIPS 180 vectors; the padding boundaries
/// checked against Python's hashlib).
final class RedisScriptTests: XCTestCase {
    /// Redis refuses an undeclared script only at its first write, which for `write` would
    /// be a DEL: each script says what it does, so a full Redis refuses `write` whole.
    func testEveryScriptDeclaresItsEffects() {
        func shebang(_ s: RedisScript) -> String { String(decoding: s.source.prefix { $0 != 0x0A }, as: UTF8.self) }
        XCTAssertEqual(shebang(RedisScript.write), "#!lua")
        XCTAssertEqual(shebang(RedisScript.get), "#!lua flags=no-writes")
        XCTAssertEqual(shebang(RedisScript.delete), "#!lua flags=allow-oom")
        XCTAssertEqual(shebang(RedisScript.list), "#!lua flags=allow-oom")
    }


    func testSHA1MatchesTheStandardVectors() {
        XCTAssertEqual(Hex.encode(RedisScript.sha1([])), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(Hex.encode(RedisScript.sha1(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(Hex.encode(RedisScript.sha1(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        let padding = [55: "c1c8bbdc22796e28c0e15163d20899b65621d65a", 56: "c2db330f6083854c99d4b5bfb6e8f29f201be699",
                       63: "03f09f5b158a7a8cdad920bddc29b81c18a551f5", 64: "0098ba824b5c16427bd7a1122a5a442a25ec644d",
                       65: "11655326c708d70319be2610e8a57d9a5b959d3b", 1000: "291e9a6c66994949b57ba5e650361e98fc36b1ba"]
        for (n, expected) in padding {
            XCTAssertEqual(Hex.encode(RedisScript.sha1([UInt8](repeating: 0x61, count: n))), expected, "length \(n)")
        }
    }
}
