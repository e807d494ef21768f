import Foundation
import XCTest
@testable import Records
@testable import Crypto
@testable import KV
@testable import reserve

/// A clock the tests move by hand.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t = 1_800_000_000
    var now: Int { lock.lock(); defer { lock.unlock() }; return t }
    func advance(_ s: Int) { lock.lock(); t += s; lock.unlock() }
}

/// An in-memory KVStore with the protocol's semantics (versions, create-only,
/// compare-and-swap, expiry, cursors), so the reservation logic is tested on its own.
final class MemoryStore: KVStore, @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: KVEntry] = [:]
    let clock: TestClock
    /// Counts successful writes (put, create, compareAndSwap, delete).
    private(set) var writes = 0

    init(clock: TestClock) { self.clock = clock }

    private func live(_ key: String) -> KVEntry? {
        guard let e = entries[key], !e.isExpired(at: clock.now) else { return nil }
        return e
    }

    func get(_ key: String) throws(KVError) -> KVEntry? {
        lock.lock(); defer { lock.unlock() }
        return live(key)
    }

    private func write(_ key: String, _ value: JSON, _ metadata: JSON?, _ expiresAt: Int?) -> KVEntry {
        let e = KVEntry(key: key, value: value, version: (entries[key]?.version ?? 0) + 1, metadata: metadata, expiresAt: expiresAt)
        entries[key] = e
        writes += 1
        return e
    }

    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        lock.lock(); defer { lock.unlock() }
        return write(key, value, metadata, expiresAt)
    }

    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        lock.lock(); defer { lock.unlock() }
        if live(key) != nil { throw KVError.exists }
        return write(key, value, metadata, expiresAt)
    }

    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        lock.lock(); defer { lock.unlock() }
        let current = live(key)?.version
        guard current == expected else { throw KVError.versionMismatch(current: current) }
        return write(key, value, metadata, expiresAt)
    }

    func delete(_ key: String) throws(KVError) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let present = live(key) != nil
        entries[key] = nil
        writes += 1
        return present
    }

    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        lock.lock(); defer { lock.unlock() }
        var after: String?
        if let cursor {
            guard let bytes = Hex.decode(cursor) else { throw KVError.invalidCursor }
            after = String(decoding: bytes, as: UTF8.self)
        }
        let keys = entries.keys.filter { key in key.hasPrefix(prefix) && live(key) != nil && (after.map { key > $0 } ?? true) }.sorted()
        let page = Array(keys.prefix(limit))
        let more = keys.count > page.count
        return KVPage(keys: page, cursor: more ? Hex.encode(Array(page.last!.utf8)) : nil)
    }

    /// Every live key, for assertions.
    var liveKeys: [String] {
        lock.lock(); defer { lock.unlock() }
        return entries.keys.filter { live($0) != nil }.sorted()
    }

    var allValues: [JSON] {
        lock.lock(); defer { lock.unlock() }
        return entries.values.map(\.value)
    }
}

/// A store that "crashes" (throws, writing nothing more) once it has accepted `limit`
/// writes: the process dying between two steps of a confirmation.
final class CrashingStore: KVStore {
    let inner: MemoryStore
    var limit: Int
    init(_ inner: MemoryStore, writesBeforeCrash: Int) { self.inner = inner; limit = writesBeforeCrash }

    private func spend() throws(KVError) {
        if limit <= 0 { throw KVError.unavailable("crashed") }
        limit -= 1
    }

    func get(_ key: String) throws(KVError) -> KVEntry? {
        if limit <= 0 { throw KVError.unavailable("crashed") }
        return try inner.get(key)
    }
    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try spend(); return try inner.put(key, value, metadata: metadata, expiresAt: expiresAt)
    }
    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try spend(); return try inner.create(key, value, metadata: metadata, expiresAt: expiresAt)
    }
    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try spend(); return try inner.compareAndSwap(key, expected: expected, value, metadata: metadata, expiresAt: expiresAt)
    }
    func delete(_ key: String) throws(KVError) -> Bool { try spend(); return try inner.delete(key) }
    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        try inner.list(prefix: prefix, limit: limit, cursor: cursor)
    }
}

/// Keeps every message instead of sending it.
final class RecordingMailer: Mailer {
    var messages: [String] = []
    var failWith: String?
    func send(_ message: [UInt8]) throws(MailError) {
        if let failWith { throw MailError(description: failWith) }
        messages.append(String(decoding: message, as: UTF8.self))
    }

    /// The token in the last message's link.
    var lastToken: String? {
        guard let m = messages.last, let r = m.range(of: "?token=") else { return nil }
        return String(m[r.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
    }
}

/// A service over a fresh in-memory store, with the clock, mailer and store at hand.
struct Harness {
    let clock = TestClock()
    let store: MemoryStore
    let mailer = RecordingMailer()
    var settings = ReservationSettings()
    var blocklist: Blocklist

    init(blocklist: String = "admin\nwww\n*cloudflare*\n", ttl: Int = 3600, grace: Int = 30) {
        store = MemoryStore(clock: clock)
        self.blocklist = Blocklist(text: blocklist)
        settings.tokenTTL = ttl
        settings.grace = grace
        settings.baseURL = "https://reserve.example/"
    }

    func service(store: (any KVStore)? = nil, blocklist: Blocklist? = nil) -> Reservations {
        let clock = self.clock
        return Reservations(store: store ?? self.store, blocklist: blocklist ?? self.blocklist, mailer: mailer,
                            settings: settings, now: { clock.now })
    }

    func filter(admins: Set<String> = ["root-uid"], page: String? = "<html>page</html>") -> ReserveFilter {
        ReserveFilter(reservations: service(), storeProblem: "", page: page.map { Array($0.utf8) }, admins: admins)
    }

    /// Submits and returns the token mailed for it.
    func submitted(_ subdomain: String, _ email: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (outcome, _) = try service().submit(subdomain: subdomain, email: email)
        XCTAssertEqual(outcome, .verificationSent, file: file, line: line)
        return try XCTUnwrap(mailer.lastToken, file: file, line: line)
    }
}

func postJSON(_ path: String, _ body: String, id: String = "1", annotations: JSON? = nil) -> Record {
    var r = rec(["id": .string(id), "method": "POST", "path": .string(path), "query": "", "version": "HTTP/1.1",
                    "headers": [["content-type", "application/json"]], "body": .string(body), "keep_alive": true])
    if let annotations { r["annotations"] = annotations }
    return r
}

func bodyJSON(_ r: Record) -> JSON? { try? JSONReader.parse(r.body) }

func rec(_ json: JSON) -> Record { Record(json.object!) }

extension ReserveFilter {
    /// The record after this filter handled it.
    func handled(_ r: Record) -> Record {
        var r = r
        handle(&r)
        return r
    }
}
