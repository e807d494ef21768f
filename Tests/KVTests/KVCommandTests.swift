import XCTest
import Foundation
import Records
import KV
@testable import KVTool

final class KVCommandTests: XCTestCase {
    func parse(_ args: [String], options: [String: String] = [:], flags: Set<String> = [],
               stdin: String = "") throws -> KVCommand {
        try KVCommand.parse(positional: args, option: { options[$0] }, flag: { flags.contains($0) },
                            stdin: { Array(stdin.utf8) }, now: 1000)
    }

    func usageError(_ args: [String], options: [String: String] = [:], flags: Set<String> = []) -> String? {
        do {
            _ = try parse(args, options: options, flags: flags)
            return nil
        } catch let e as UsageError {
            return e.message
        } catch {
            return "\(error)"
        }
    }

    func testParsesEachCommand() throws {
        XCTAssertEqual(try parse(["get", "k"], flags: ["--entry"]), .get(key: "k", entry: true))
        XCTAssertEqual(try parse(["put", "k", #"{"a":1}"#], options: ["--ttl": "60", "--metadata": #"{"m":1}"#]),
                       .put(key: "k", value: ["a": 1], metadata: ["m": 1], expiresAt: 1060))
        XCTAssertEqual(try parse(["create", "k", "-"], stdin: " [1,2]\n"),
                       .create(key: "k", value: [1, 2], metadata: nil, expiresAt: nil))
        XCTAssertEqual(try parse(["cas", "k", "3"], options: ["--version": "0"]),
                       .cas(key: "k", expected: nil, value: 3, metadata: nil, expiresAt: nil))
        XCTAssertEqual(try parse(["cas", "k", "3"], options: ["--version": "7", "--expires-at": "5000"]),
                       .cas(key: "k", expected: 7, value: 3, metadata: nil, expiresAt: 5000))
        XCTAssertEqual(try parse(["delete", "k"]), .delete(key: "k"))
        XCTAssertEqual(try parse(["list"], options: ["--prefix": "sub/", "--limit": "5", "--cursor": "6162"]),
                       .list(prefix: "sub/", limit: 5, cursor: "6162"))
        XCTAssertEqual(try parse(["list"]), .list(prefix: "", limit: 1000, cursor: nil))
        XCTAssertEqual(try parse(["serve"], options: ["--route": "sub", "--grace": "30"]), .serve(route: "sub", grace: 30))
    }

    func testRefusesValuesThatAreNotJSONWithOneLineReason() {
        let message = usageError(["put", "k", "hello"])
        XCTAssertNotNil(message)
        XCTAssertTrue(message!.hasPrefix("value is not JSON"), message!)
        XCTAssertFalse(message!.contains("\n"))
        XCTAssertNotNil(usageError(["put", "k", "1"], options: ["--metadata": "{bad"]))
    }

    func testRefusesBadUsage() {
        XCTAssertNotNil(usageError([]))
        XCTAssertNotNil(usageError(["frobnicate"]))
        XCTAssertNotNil(usageError(["get"]))
        XCTAssertNotNil(usageError(["get", "a", "b"]))
        XCTAssertNotNil(usageError(["cas", "k", "1"]), "cas without --version")
        XCTAssertNotNil(usageError(["cas", "k", "1"], options: ["--version": "-1"]))
        XCTAssertNotNil(usageError(["put", "k", "1"], options: ["--ttl": "0"]))
        XCTAssertNotNil(usageError(["put", "k", "1"], options: ["--ttl": "5", "--expires-at": "9"]))
        XCTAssertNotNil(usageError(["list"], options: ["--limit": "0"]))
        XCTAssertEqual(usageError(["get", "k"], options: ["--ttl": "5"]), "--ttl does not apply to get")
        XCTAssertNotNil(usageError(["delete", "k"], flags: ["--entry"]))
    }

    func store() throws -> DirectoryStore {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvcmd-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return try DirectoryStore(path: dir)
    }

    func text(_ o: KVOutcome) -> String { String(decoding: o.output, as: UTF8.self) }

    func testExecutesAndReportsExitStatuses() throws {
        let s = try store()
        var o = KVCommand.create(key: "k", value: ["a": 1], metadata: nil, expiresAt: nil).execute(s)
        XCTAssertEqual(o.status, .ok)
        XCTAssertEqual(text(o), #"{"key":"k","version":1,"expires_at":null}"# + "\n")
        o = KVCommand.create(key: "k", value: 2, metadata: nil, expiresAt: nil).execute(s)
        XCTAssertEqual(o.status, .exists)
        XCTAssertEqual(o.status.rawValue, 3)
        o = KVCommand.cas(key: "k", expected: 5, value: 2, metadata: nil, expiresAt: nil).execute(s)
        XCTAssertEqual(o.status, .versionMismatch)
        XCTAssertEqual(o.message, "version mismatch (current 1)")
        o = KVCommand.get(key: "k", entry: false).execute(s)
        XCTAssertEqual(text(o), #"{"a":1}"# + "\n")
        o = KVCommand.get(key: "k", entry: true).execute(s)
        XCTAssertEqual(text(o), #"{"key":"k","version":1,"expires_at":null,"metadata":null,"value":{"a":1}}"# + "\n")
        XCTAssertEqual(KVCommand.get(key: "nope", entry: false).execute(s).status, .notFound)
        XCTAssertEqual(KVCommand.delete(key: "k").execute(s).status, .ok)
        XCTAssertEqual(KVCommand.delete(key: "k").execute(s).status, .notFound)
        XCTAssertEqual(KVCommand.get(key: "", entry: false).execute(s).status, .usage)
        XCTAssertEqual(KVCommand.list(prefix: "", limit: 5, cursor: "zz").execute(s).status, .usage)
    }

    func testListPrintsKeysAndCursor() throws {
        let s = try store()
        for k in ["a", "b", "c"] { try s.put(k, 1, metadata: nil, expiresAt: nil) }
        let first = KVCommand.list(prefix: "", limit: 2, cursor: nil).execute(s)
        XCTAssertEqual(text(first), #"{"keys":["a","b"],"cursor":"62"}"# + "\n")
        let second = KVCommand.list(prefix: "", limit: 2, cursor: "62").execute(s)
        XCTAssertEqual(text(second), #"{"keys":["c"],"cursor":null}"# + "\n")
    }

    func testUnavailableStoreIsExitFive() {
        let o = KVCommand.outcome(for: .unavailable("disk full"))
        XCTAssertEqual(o.status.rawValue, 5)
        XCTAssertEqual(o.message, "store unavailable: disk full")
    }
}
