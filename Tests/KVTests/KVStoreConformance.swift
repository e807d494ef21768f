import XCTest
import Records
import KV

/// What a backend gives the shared suite: a fresh, empty store per test, and a way to
/// let time pass (a fake clock for DirectoryStore; a real wait for a networked engine).
struct KVHarness {
    var makeStore: () throws -> any KVStore
    var now: () -> Int
    var advance: (Int) -> Void
}

/// The behaviour every KVStore backend must have, written against the protocol only.
/// Each backend's XCTestCase forwards one test method to each function here (see
/// DirectoryStoreConformanceTests); a new backend copies that class and changes the harness.
struct KVStoreConformance {
    let harness: KVHarness

    private func store() throws -> any KVStore { try harness.makeStore() }

    func missingKeyReadsAsNil() throws {
        let s = try store()
        XCTAssertNil(try s.get("nope"))
        XCTAssertEqual(try s.delete("nope"), false)
    }

    func putThenGetReturnsValueWithIncreasingVersions() throws {
        let s = try store()
        let first = try s.put("k", ["a": 1], metadata: nil, expiresAt: nil)
        XCTAssertEqual(first.version, 1)
        XCTAssertEqual(try s.get("k"), KVEntry(key: "k", value: ["a": 1], version: 1))
        let second = try s.put("k", "two", metadata: nil, expiresAt: nil)
        XCTAssertEqual(second.version, 2)
        XCTAssertEqual(try s.get("k")?.value, "two")
        XCTAssertEqual(try s.get("k")?.version, 2)
    }

    func valuesOfEveryJSONTypeRoundTrip() throws {
        let s = try store()
        let values: [JSON] = [.null, true, false, 0, .number("-12.50e3"), "", "text with \"quotes\" and \n",
                              [], [1, "x", nil], [:], ["nested": ["deep": [1, 2, ["x": nil]]]],
                              .number("123456789012345678901234567890")]
        for (i, v) in values.enumerated() {
            try s.put("v\(i)", v, metadata: nil, expiresAt: nil)
            XCTAssertEqual(try s.get("v\(i)")?.value, v, "value \(i)")
        }
    }

    func largeValueRoundTrips() throws {
        let s = try store()
        let big = JSON.string(String(repeating: "0123456789abcdef", count: 65_536))   // 1 MiB
        try s.put("big", big, metadata: nil, expiresAt: nil)
        XCTAssertEqual(try s.get("big")?.value, big)
    }

    func metadataIsStoredBesideTheValueAndReplacedByPut() throws {
        let s = try store()
        try s.put("m", 1, metadata: ["source": "test", "n": 2], expiresAt: nil)
        XCTAssertEqual(try s.get("m")?.metadata, ["source": "test", "n": 2])
        try s.put("m", 2, metadata: nil, expiresAt: nil)
        XCTAssertNil(try s.get("m")?.metadata)
    }

    func deleteRemovesTheKeyAndReportsWhetherItWasPresent() throws {
        let s = try store()
        try s.put("d", 1, metadata: nil, expiresAt: nil)
        XCTAssertEqual(try s.delete("d"), true)
        XCTAssertNil(try s.get("d"))
        XCTAssertEqual(try s.delete("d"), false)
        XCTAssertEqual(try s.list(prefix: "d", limit: 10, cursor: nil).keys, [])
    }

    func createWritesOnlyWhenAbsent() throws {
        let s = try store()
        let made = try s.create("c", "first", metadata: ["m": 1], expiresAt: nil)
        XCTAssertEqual(made.version, 1)
        XCTAssertThrowsError(try s.create("c", "second", metadata: nil, expiresAt: nil)) {
            XCTAssertEqual($0 as? KVError, .exists)
        }
        XCTAssertEqual(try s.get("c")?.value, "first")
        try s.delete("c")
        XCTAssertEqual(try s.create("c", "third", metadata: nil, expiresAt: nil).value, "third")
    }

    func createOverAnExpiredEntrySucceeds() throws {
        let s = try store()
        try s.create("r", "old", metadata: nil, expiresAt: harness.now() + 2)
        XCTAssertThrowsError(try s.create("r", "new", metadata: nil, expiresAt: nil))
        harness.advance(3)
        XCTAssertEqual(try s.create("r", "new", metadata: nil, expiresAt: nil).value, "new")
        XCTAssertEqual(try s.get("r")?.value, "new")
    }

    func compareAndSwapWritesOnlyOnTheExpectedVersion() throws {
        let s = try store()
        let v1 = try s.compareAndSwap("x", expected: nil, 1, metadata: nil, expiresAt: nil)
        XCTAssertEqual(v1.version, 1)
        XCTAssertThrowsError(try s.compareAndSwap("x", expected: nil, 9, metadata: nil, expiresAt: nil)) {
            XCTAssertEqual($0 as? KVError, .versionMismatch(current: 1))
        }
        let v2 = try s.compareAndSwap("x", expected: 1, 2, metadata: nil, expiresAt: nil)
        XCTAssertEqual(v2.version, 2)
        XCTAssertThrowsError(try s.compareAndSwap("x", expected: 1, 3, metadata: nil, expiresAt: nil)) {
            XCTAssertEqual($0 as? KVError, .versionMismatch(current: 2))
        }
        XCTAssertEqual(try s.get("x")?.value, 2)
        XCTAssertThrowsError(try s.compareAndSwap("absent", expected: 4, 1, metadata: nil, expiresAt: nil)) {
            XCTAssertEqual($0 as? KVError, .versionMismatch(current: nil))
        }
        XCTAssertNil(try s.get("absent"))
    }

    func expiredEntriesReadAsAbsentAndAreNotListed() throws {
        let s = try store()
        let t = harness.now()
        try s.put("ttl/short", 1, metadata: nil, expiresAt: t + 2)
        try s.put("ttl/long", 2, metadata: nil, expiresAt: t + 1000)
        try s.put("ttl/none", 3, metadata: nil, expiresAt: nil)
        XCTAssertEqual(try s.get("ttl/short")?.expiresAt, t + 2)
        XCTAssertEqual(try s.list(prefix: "ttl/", limit: 10, cursor: nil).keys, ["ttl/long", "ttl/none", "ttl/short"])
        harness.advance(3)
        XCTAssertNil(try s.get("ttl/short"))
        XCTAssertEqual(try s.get("ttl/long")?.value, 2)
        XCTAssertEqual(try s.list(prefix: "ttl/", limit: 10, cursor: nil).keys, ["ttl/long", "ttl/none"])
        XCTAssertThrowsError(try s.compareAndSwap("ttl/short", expected: 1, 9, metadata: nil, expiresAt: nil)) {
            XCTAssertEqual($0 as? KVError, .versionMismatch(current: nil))
        }
        XCTAssertEqual(try s.delete("ttl/short"), false)
    }

    func listReturnsPrefixedKeysInByteOrder() throws {
        let s = try store()
        for k in ["b", "a/2", "a/10", "a/1", "a", "ab", "a/", "A/1", "é", "z"] { try s.put(k, 0, metadata: nil, expiresAt: nil) }
        XCTAssertEqual(try s.list(prefix: "a/", limit: 100, cursor: nil), KVPage(keys: ["a/", "a/1", "a/10", "a/2"], cursor: nil))
        XCTAssertEqual(try s.list(prefix: "", limit: 100, cursor: nil).keys,
                       ["A/1", "a", "a/", "a/1", "a/10", "a/2", "ab", "b", "z", "é"])
        XCTAssertEqual(try s.list(prefix: "a", limit: 100, cursor: nil).keys, ["a", "a/", "a/1", "a/10", "a/2", "ab"])
        XCTAssertEqual(try s.list(prefix: "nothing", limit: 100, cursor: nil), KVPage(keys: [], cursor: nil))
    }

    func listPagesWithLimitAndCursorCoverEveryKeyOnce() throws {
        let s = try store()
        let keys = (0..<57).map { "page/\($0)" }
        for k in keys { try s.put(k, .string(k), metadata: nil, expiresAt: nil) }
        try s.put("other/1", 0, metadata: nil, expiresAt: nil)
        var seen: [String] = []
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try s.list(prefix: "page/", limit: 10, cursor: cursor)
            XCTAssertLessThanOrEqual(page.keys.count, 10)
            seen += page.keys
            cursor = page.cursor
            pages += 1
        } while cursor != nil && pages < 100
        XCTAssertEqual(seen, keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        XCTAssertEqual(pages, 6)
    }

    func listStaysCorrectWhileKeysAreAdded() throws {
        let s = try store()
        let initial = (0..<30).map { "grow/\(String(repeating: "0", count: $0 < 10 ? 1 : 0))\($0)" }
        for k in initial { try s.put(k, 0, metadata: nil, expiresAt: nil) }
        var seen: [String] = []
        var cursor: String? = nil
        var round = 0
        repeat {
            let page = try s.list(prefix: "grow/", limit: 7, cursor: cursor)
            seen += page.keys
            cursor = page.cursor
            // Keys added before and after the cursor while paging.
            try s.put("grow/\(round)a", 0, metadata: nil, expiresAt: nil)
            try s.put("grow/\(99 - round)z", 0, metadata: nil, expiresAt: nil)
            round += 1
        } while cursor != nil && round < 100
        XCTAssertEqual(Set(seen).count, seen.count, "a key was listed twice")
        XCTAssertTrue(Set(initial).isSubset(of: Set(seen)), "a key present throughout was missed")
        XCTAssertEqual(seen, seen.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    func invalidCursorIsRefused() throws {
        let s = try store()
        XCTAssertThrowsError(try s.list(prefix: "", limit: 10, cursor: "not a cursor!")) {
            XCTAssertEqual($0 as? KVError, .invalidCursor)
        }
    }

    /// Keys that would break a naive file mapping: traversal, separators, case pairs,
    /// Unicode normalisation pairs, control characters, the longest allowed.
    static let weirdKeys: [String] = [
        "..", ".", "../..", "../../etc/passwd", "/", "//", "/abs", "a/../../b", "a/./b", "trailing/",
        "A", "a", "Sub/Alice", "sub/alice", "sub/ALICE",
        "caf\u{E9}", "cafe\u{301}", "😀/🚀", "日本語/キー", "nul\u{0}byte", "new\nline", "tab\tand space",
        "%41", "^a", "#hash", ".tmp.1.abc", "-", "_",
        String(repeating: "x", count: 512), String(repeating: "é", count: 256),
        String(repeating: "y", count: 64) + "/" + String(repeating: "z", count: 447),
        String(repeating: "Q", count: 300), String(repeating: "q", count: 300),
    ]

    func weirdKeysAreDistinctAndRoundTrip() throws {
        let s = try store()
        for (i, k) in Self.weirdKeys.enumerated() { try s.put(k, JSON(i), metadata: nil, expiresAt: nil) }
        for (i, k) in Self.weirdKeys.enumerated() {
            let entry = try s.get(k)
            XCTAssertEqual(entry?.value, JSON(i), "key \(i)")
            XCTAssertTrue(entry?.key.utf8.elementsEqual(k.utf8) ?? false, "key \(i) comes back byte for byte")
        }
        var listed: [[UInt8]] = []
        var cursor: String? = nil
        repeat {
            let page = try s.list(prefix: "", limit: 7, cursor: cursor)
            listed += page.keys.map { Array($0.utf8) }
            cursor = page.cursor
        } while cursor != nil
        let expected = Self.weirdKeys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        XCTAssertEqual(listed, expected)
        XCTAssertEqual(try s.get("A")?.value, JSON(Self.weirdKeys.firstIndex(of: "A")!))
        XCTAssertEqual(try s.get("a")?.value, JSON(Self.weirdKeys.firstIndex(of: "a")!))
        XCTAssertEqual(try s.delete("A"), true)
        XCTAssertNotNil(try s.get("a"))
    }

    func emptyAndOverlongKeysAreRefused() throws {
        let s = try store()
        for bad in ["", String(repeating: "x", count: 513), String(repeating: "é", count: 257)] {
            XCTAssertThrowsError(try s.put(bad, 1, metadata: nil, expiresAt: nil)) {
                guard case .invalidKey = $0 as? KVError else { return XCTFail("\($0)") }
            }
            XCTAssertThrowsError(try s.get(bad))
        }
    }

    func updateAppliesTheTransformAndKeepsMetadataAndExpiry() throws {
        let s = try store()
        let created = try s.update("u") { current in
            XCTAssertNil(current)
            return 1
        }
        XCTAssertEqual(created?.value, 1)
        try s.put("u", 5, metadata: ["m": true], expiresAt: harness.now() + 1000)
        let after = try s.update("u") { current in .number(String((current?.value.int ?? 0) + 1)) }
        XCTAssertEqual(after?.value, 6)
        XCTAssertEqual(after?.metadata, ["m": true])
        XCTAssertEqual(after?.expiresAt, harness.now() + 1000)
        let untouched = try s.update("u") { _ in nil }
        XCTAssertEqual(untouched?.version, after?.version)
        XCTAssertEqual(try s.get("u")?.value, 6)
    }

    func concurrentUpdatesLoseNothing() throws {
        let s = SharedStore(try store())
        let threads = 8, increments = 25
        let failures = FailureCount()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<increments {
                do {
                    try s.store.update("counter") { .number(String(($0?.value.int ?? 0) + 1)) }
                } catch {
                    failures.add()
                }
            }
        }
        XCTAssertEqual(failures.value, 0)
        XCTAssertEqual(try s.store.get("counter")?.value.int, threads * increments)
    }
}

/// Hands one store to several threads (KVStore does not require Sendable; a backend
/// under this test must tolerate concurrent calls).
struct SharedStore: @unchecked Sendable {
    let store: any KVStore
    init(_ store: any KVStore) { self.store = store }
}

final class FailureCount: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
