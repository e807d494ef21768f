import XCTest
import Foundation
@testable import Records
@testable import KV

/// A clock the tests move by hand.
final class FakeClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t = 1_800_000_000
    var now: Int { lock.lock(); defer { lock.unlock() }; return t }
    func advance(_ s: Int) { lock.lock(); t += s; lock.unlock() }
}

func temporaryDirectory() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvtests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// The shared suite run against the directory engine.
final class DirectoryStoreConformanceTests: XCTestCase {
    var directories: [String] = []
    var suite: KVStoreConformance!

    override func setUpWithError() throws {
        let clock = FakeClock()
        suite = KVStoreConformance(harness: KVHarness(
            makeStore: { [unowned self] in
                let dir = try temporaryDirectory() + "/store"
                directories.append(dir)
                return try DirectoryStore(path: dir, now: { clock.now })
            },
            now: { clock.now },
            advance: { clock.advance($0) }))
    }

    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(atPath: (d as NSString).deletingLastPathComponent) }
    }

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

/// What is particular to the directory engine: the file mapping, the file format,
/// leftovers of crashes, and errors of the filesystem.
final class DirectoryStoreTests: XCTestCase {
    var dir = ""
    let clock = FakeClock()

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func store() throws -> DirectoryStore { try DirectoryStore(path: dir + "/kv", now: { [clock] in clock.now }) }

    func allFiles(under path: String) -> [String] {
        (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]) ?? []
    }

    func testFileNamesUseOnlySafeCharactersAndFitNameMax() {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_^%#".utf8)
        for key in KVStoreConformance.weirdKeys {
            let loc = KVFileName.location(of: key)
            XCTAssertTrue(loc.name.utf8.allSatisfy(allowed.contains), "name of \(key.debugDescription): \(loc.name)")
            XCTAssertLessThanOrEqual(loc.name.utf8.count, 255)
            XCTAssertFalse(loc.name.hasPrefix("."))
            XCTAssertTrue(loc.directory == "flat" || loc.directory.hasPrefix("ns/"))
            XCTAssertEqual(loc.directory.split(separator: "/").count, loc.directory == "flat" ? 1 : 2)
        }
    }

    func testDistinctKeysGetDistinctPathsEvenIgnoringCase() {
        let keys = KVStoreConformance.weirdKeys + ["B", "b", "Ab", "aB", "AB", "ab", "x/Y", "x/y", "X/y"]
        let paths = keys.map { KVFileName.location(of: $0).relativePath.lowercased() }
        XCTAssertEqual(Set(paths).count, Set(keys.map { Array($0.utf8) }).count)
    }

    func testEscapingIsReversibleForEveryByte() {
        let all = (0...255).map(UInt8.init)
        let escaped = KVFileName.escape(all[...])
        XCTAssertEqual(KVFileName.unescape(escaped), all)
        XCTAssertEqual(KVFileName.escape(Array("Sub/Alice.json".utf8)[...]), "^sub%2f^alice%2ejson")
        XCTAssertNil(KVFileName.unescape("%41"), "a non-canonical spelling is not a key file")
        XCTAssertNil(KVFileName.unescape(".tmp.1.ab"))
        XCTAssertNil(KVFileName.unescape("%4"))
    }

    func testReadableLayoutForNamespacedKeys() throws {
        let s = try store()
        try s.put("sub/Alice", 1, metadata: nil, expiresAt: nil)
        try s.put("plain", 2, metadata: nil, expiresAt: nil)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/kv/ns/sub/^alice"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/kv/flat/plain"))
    }

    func testTraversalKeysStayInsideTheStore() throws {
        let s = try store()
        for k in ["../escape", "../../escape", "/tmp/escape", "a/../../../escape", "..", "."] {
            try s.put(k, 1, metadata: nil, expiresAt: nil)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["kv"])
        let files = allFiles(under: dir + "/kv").filter { !$0.hasPrefix("locks") }
        XCTAssertFalse(files.contains { $0.contains("..") })
    }

    func testFileHoldsTheWholeEntryAsOneJSONDocument() throws {
        let s = try store()
        try s.put("doc", ["v": 1], metadata: ["m": "x"], expiresAt: 1_900_000_000)
        let text = try String(contentsOfFile: dir + "/kv/flat/doc", encoding: .utf8)
        XCTAssertEqual(text, #"{"key":"doc","version":1,"expires_at":1900000000,"metadata":{"m":"x"},"value":{"v":1}}"# + "\n")
    }

    func testVersionsKeepIncreasingAcrossExpiry() throws {
        let s = try store()
        try s.put("e", 1, metadata: nil, expiresAt: clock.now + 1)
        try s.put("e", 2, metadata: nil, expiresAt: clock.now + 1)
        clock.advance(2)
        XCTAssertEqual(try s.create("e", 3, metadata: nil, expiresAt: nil).version, 3)
    }

    func testLeftoverTemporaryFilesAreIgnored() throws {
        let s = try store()
        try s.put("ns/key", 1, metadata: nil, expiresAt: nil)
        // What a writer killed before its rename leaves behind.
        _ = FileManager.default.createFile(atPath: dir + "/kv/ns/ns/.tmp.999.abcdef", contents: Data(#"{"key":"ns/k"#.utf8))
        _ = FileManager.default.createFile(atPath: dir + "/kv/flat/.tmp.999.abcdef", contents: Data())
        _ = FileManager.default.createFile(atPath: dir + "/kv/flat/STRAY", contents: Data("x".utf8))
        XCTAssertEqual(try s.get("ns/key")?.value, 1)
        XCTAssertEqual(try s.list(prefix: "", limit: 100, cursor: nil).keys, ["ns/key"])
    }

    func testCorruptFileIsUnavailableNotAbsent() throws {
        let s = try store()
        try s.put("c", 1, metadata: nil, expiresAt: nil)
        try Data("{\"key\":\"c\",\"vers".utf8).write(to: URL(fileURLWithPath: dir + "/kv/flat/c"))
        XCTAssertThrowsError(try s.get("c")) {
            guard case .unavailable(let why) = $0 as? KVError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("corrupt"), why)
        }
    }

    func testFileOfAnotherKeyIsRefused() throws {
        let s = try store()
        try s.put("one", 1, metadata: nil, expiresAt: nil)
        try FileManager.default.copyItem(atPath: dir + "/kv/flat/one", toPath: dir + "/kv/flat/two")
        XCTAssertThrowsError(try s.get("two"))
    }

    func testReadOnlyStoreReadsButRefusesWritesAsUnavailable() throws {
        try XCTSkipIf(getuid() == 0, "root ignores directory permissions")
        let s = try store()
        try s.put("ro/k", 1, metadata: nil, expiresAt: nil)
        for sub in ["", "/ns/ro", "/ns", "/flat", "/locks"] { chmod(dir + "/kv" + sub, 0o555) }
        defer { for sub in ["", "/ns/ro", "/ns", "/flat", "/locks"] { chmod(dir + "/kv" + sub, 0o755) } }
        XCTAssertEqual(try s.get("ro/k")?.value, 1)
        XCTAssertEqual(try s.list(prefix: "", limit: 10, cursor: nil).keys, ["ro/k"])
        XCTAssertThrowsError(try s.put("ro/k", 2, metadata: nil, expiresAt: nil)) {
            guard case .unavailable(let why) = $0 as? KVError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("ermission denied"), why)
        }
        XCTAssertEqual(try s.get("ro/k")?.value, 1)
    }

    func testStorePathThatIsAFileIsUnavailable() throws {
        _ = FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        XCTAssertThrowsError(try DirectoryStore(path: dir + "/file")) {
            guard case .unavailable = $0 as? KVError else { return XCTFail("\($0)") }
        }
    }

    func testOpenStoreOpensADirectoryFromAPathOrFileURL() throws {
        let s = try openStore(dir + "/made/here")
        XCTAssertTrue(s is DirectoryStore)
        try s.put("k", 1, metadata: nil, expiresAt: nil)
        XCTAssertEqual(try openStore("file://" + dir + "/made/here").get("k")?.value, 1)
        XCTAssertThrowsError(try openStore("gopher://example/1")) {
            guard case .unavailable = $0 as? KVError else { return XCTFail("\($0)") }
        }
    }

    func testConcurrentCreatesFromManyStoresHaveOneWinner() throws {
        let winners = FailureCount(), losers = FailureCount()
        let path = dir + "/kv"
        _ = try store()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                let s = try DirectoryStore(path: path)
                try s.create("once", JSON(i), metadata: nil, expiresAt: nil)
                winners.add()
            } catch let e as KVError where e == .exists {
                losers.add()
            } catch {}
        }
        XCTAssertEqual(winners.value, 1)
        XCTAssertEqual(losers.value, 15)
    }
}
