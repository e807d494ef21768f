import XCTest
import Foundation
import Records
@testable import audit

final class LogTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "audit-unit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func entry(_ i: Int) -> AuditEntry {
        AuditEntry(fields: JSONObject([("kind", "stripe"), ("event_id", .string("evt_\(i)"))]))
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func check(_ files: [String], head: String? = nil) -> VerifyCommand.Result {
        VerifyCommand.run(.init(files: files, fromStart: true, head: head))
    }

    func testAppendsBuildAVerifiableChainAndHead() throws {
        let log = AuditLog(logPath: dir + "/audit.log")
        for i in 1...5 { XCTAssertEqual(log.append(entry(i)), .written(seq: i)) }
        let written = try lines(dir + "/audit.log")
        XCTAssertEqual(written.count, 5)
        XCTAssertTrue(written[0].hasSuffix(#""prev":"\#(AuditChain.zeroHash)"}"#))
        XCTAssertEqual(AuditHead.parse(Array(try String(contentsOfFile: dir + "/audit.log.head", encoding: .utf8).utf8))?.hash,
                       AuditChain.hash(Array(written[4].utf8)))
        guard case .valid = check([dir + "/audit.log"]) else { return XCTFail("\(check([dir + "/audit.log"]))") }
    }

    func testSecondWriterContinuesTheChain() throws {
        AuditLog(logPath: dir + "/audit.log").append(entry(1))
        XCTAssertEqual(AuditLog(logPath: dir + "/audit.log").append(entry(2)), .written(seq: 2))
        XCTAssertEqual(check([dir + "/audit.log"]), check([dir + "/audit.log"]))
        guard case .valid = check([dir + "/audit.log"]) else { return XCTFail() }
    }

    func testRenamedLogIsLeftAloneAndTheNewFileLinksToIt() throws {
        let log = AuditLog(logPath: dir + "/audit.log")
        log.append(entry(1)); log.append(entry(2))
        XCTAssertEqual(rename(dir + "/audit.log", dir + "/audit.log.1"), 0)
        XCTAssertEqual(log.append(entry(3)), .written(seq: 3))
        XCTAssertEqual(try lines(dir + "/audit.log.1").count, 2)
        XCTAssertEqual(try lines(dir + "/audit.log").count, 1)
        guard case .valid = check([dir + "/audit.log.1", dir + "/audit.log"]) else {
            return XCTFail("\(check([dir + "/audit.log.1", dir + "/audit.log"]))")
        }
    }

    func testMissingDirectorySpillsElsewhereAndTheNextWriteRecordsTheGap() throws {
        let spill = dir + "/spill"
        let log = AuditLog(logPath: dir + "/gone/audit.log", spillPath: spill)
        XCTAssertEqual(log.append(entry(1)), .spilled(reason: "cannot open \(dir)/gone/audit.log.head (No such file or directory)"))
        XCTAssertEqual(log.append(entry(2)).isWritten, false)
        XCTAssertEqual(try lines(spill).count, 2)
        try FileManager.default.createDirectory(atPath: dir + "/gone", withIntermediateDirectories: false)
        XCTAssertEqual(log.append(entry(3)), .written(seq: 2))
        let written = try lines(dir + "/gone/audit.log")
        let gap = try JSONReader.parse(written[0]).object!
        XCTAssertEqual(gap["kind"], "gap")
        XCTAssertEqual(gap["spilled"]?.int, 2)
        XCTAssertEqual(gap["spill_from"]?.int, 0)
        XCTAssertEqual(gap["spill"]?.string, spill)
        // Reported once: the next append owes no gap.
        log.append(entry(4))
        XCTAssertEqual(try lines(dir + "/gone/audit.log").count, 3)
        guard case .valid(let summary) = check([dir + "/gone/audit.log"]) else { return XCTFail() }
        XCTAssertTrue(summary.joined().contains("2 entries spilled"), "\(summary)")
        XCTAssertTrue(summary.joined().contains("hash checked"), "\(summary)")
    }

    func testEntriesThatReachOnlyStderrAreCountedInTheNextGap() throws {
        // The spill file sits beside the log, in the missing directory: nowhere but stderr.
        let log = AuditLog(logPath: dir + "/gone/audit.log")
        guard case .stderrOnly = log.append(entry(1)) else { return XCTFail() }
        guard case .stderrOnly = log.append(entry(2)) else { return XCTFail() }
        XCTAssertEqual(log.stderrOnly, 2)
        try FileManager.default.createDirectory(atPath: dir + "/gone", withIntermediateDirectories: false)
        XCTAssertEqual(log.append(entry(3)), .written(seq: 2))
        let gap = try JSONReader.parse(try lines(dir + "/gone/audit.log")[0]).object!
        XCTAssertEqual(gap["kind"], "gap")
        XCTAssertEqual(gap["stderr_only"]?.int, 2)
        XCTAssertEqual(gap["pid"]?.int, Int(getpid()))
        XCTAssertNil(gap["spill_from"])
        XCTAssertEqual(log.stderrOnly, 0)
    }

    func testTornLastLineIsMovedToTheSpillFile() throws {
        let log = AuditLog(logPath: dir + "/audit.log")
        log.append(entry(1))
        let fd = open(dir + "/audit.log", O_WRONLY | O_APPEND)
        _ = write(fd, "{\"seq\":2,\"ti", 12)
        close(fd)
        XCTAssertEqual(log.append(entry(2)), .written(seq: 3))   // the gap line is seq 2
        let written = try lines(dir + "/audit.log")
        XCTAssertEqual(written.count, 3)
        XCTAssertEqual(try JSONReader.parse(written[1]).object?["kind"], "gap")
        let spilled = try lines(dir + "/audit.log.spill")
        XCTAssertEqual(try JSONReader.parse(spilled[0]).object?["kind"], "torn")
        guard case .valid = check([dir + "/audit.log"]) else { return XCTFail("\(check([dir + "/audit.log"]))") }
    }

    func testEditedSpillRangeFailsVerification() throws {
        let spill = dir + "/spill"
        let log = AuditLog(logPath: dir + "/gone/audit.log", spillPath: spill)
        log.append(entry(1))
        try FileManager.default.createDirectory(atPath: dir + "/gone", withIntermediateDirectories: false)
        log.append(entry(2))
        var text = try String(contentsOfFile: spill, encoding: .utf8)
        text = text.replacingOccurrences(of: "evt_1", with: "evt_7")
        try text.write(toFile: spill, atomically: false, encoding: .utf8)
        guard case .broken(let message) = check([dir + "/gone/audit.log"]) else { return XCTFail() }
        XCTAssertTrue(message.hasPrefix(dir + "/gone/audit.log:1: gap: bytes 0.."), message)
    }

    func testGroupedFsyncCountsUnsyncedEntries() {
        let log = AuditLog(logPath: dir + "/audit.log", groupFsync: 3)
        log.append(entry(1)); log.append(entry(2))
        XCTAssertEqual(log.unsynced, 2)
        log.append(entry(3))
        XCTAssertEqual(log.unsynced, 0)
        log.append(entry(4))
        log.sync()
        XCTAssertEqual(log.unsynced, 0)
    }
}

extension AuditLog.Outcome {
    var isWritten: Bool { if case .written = self { return true }; return false }
}

final class FilterTests: XCTestCase {
    func run(_ line: String, log: AuditLog) -> String {
        var out: [UInt8] = []
        let filter = AuditFilter(log: log)
        Array(line.utf8).withUnsafeBufferPointer { p in
            FilterLoop(seesResponses: true).process(p, { filter.handle(&$0) }, into: &out)
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testAnnotationIsRemovedAndEmptyAnnotationsDropped() throws {
        let dir = NSTemporaryDirectory() + "audit-filter-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = AuditLog(logPath: dir + "/audit.log")
        XCTAssertEqual(run(#"{"id":"1","status":200,"body":"x","annotations":{"audit":{"kind":"stripe","outcome":"applied"}}}"#, log: log),
                       #"{"id":"1","status":200,"body":"x"}"#)
        XCTAssertEqual(run(#"{"id":"2","status":200,"annotations":{"route":{"name":"r"},"audit":{"kind":"auth"}}}"#, log: log),
                       #"{"id":"2","status":200,"annotations":{"route":{"name":"r"}}}"#)
        let untouched = #"{"id":"3", "status":200 ,"annotations":{"route":{}}}"#
        XCTAssertEqual(run(untouched, log: log), untouched)
        XCTAssertEqual(try String(contentsOfFile: dir + "/audit.log", encoding: .utf8).split(separator: "\n").count, 2)
    }
}

final class QueryTests: XCTestCase {
    func testTimeFormats() {
        XCTAssertEqual(TimeParser.millis("2023-11-14T22:13:20Z"), 1_700_000_000_000)
        XCTAssertEqual(TimeParser.millis("2023-11-14T22:13:20.25Z"), 1_700_000_000_250)
        XCTAssertEqual(TimeParser.millis("2023-11-14T23:13:20+01:00"), 1_700_000_000_000)
        XCTAssertEqual(TimeParser.millis("2023-11-14"), 1_699_920_000_000)
        XCTAssertEqual(TimeParser.millis("1700000000"), 1_700_000_000_000)
        XCTAssertNil(TimeParser.millis("2023-11-14T22:13:20"))
        XCTAssertNil(TimeParser.millis("yesterday"))
        XCTAssertNil(TimeParser.millis("2023-13-01"))
    }

    func testMatcherNeedsEveryOptionAndAnyOfItsValues() throws {
        let entry = try JSONReader.parse(#"{"seq":1,"time":"2023-11-14T22:13:20.000Z","unix":1700000000,"uid":"u1","outcome":"applied","event_type":"invoice.paid"}"#).object!
        var m = EntryMatcher(fields: [("uid", ["u0", "u1"]), ("outcome", ["applied"])])
        XCTAssertTrue(m.matches(entry))
        m.fields.append(("event_type", ["customer.subscription.deleted"]))
        XCTAssertFalse(m.matches(entry))
        XCTAssertTrue(EntryMatcher(since: 1_700_000_000_000, until: 1_700_000_000_001).matches(entry))
        XCTAssertFalse(EntryMatcher(until: 1_700_000_000_000).matches(entry))
    }
}
