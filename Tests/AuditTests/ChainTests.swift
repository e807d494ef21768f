import XCTest
import Foundation
import Records
@testable import audit

/// A log built from entries with consecutive seqs, as the writer would produce it.
func makeChain(_ count: Int, start: String = AuditChain.zeroHash, firstSeq: Int = 1) -> [[UInt8]] {
    var lines: [[UInt8]] = []
    var prev = start
    for i in 0..<count {
        let entry = AuditEntry(fields: JSONObject([("kind", "stripe"), ("event_id", .string("evt_\(i)"))]))
        let line = entry.line(seq: firstSeq + i, prev: prev, millis: 1_700_000_000_000 + i)
        prev = AuditChain.hash(line)
        lines.append(line)
    }
    return lines
}

func verify(_ files: [(String, [[UInt8]])], fromStart: Bool = false, head: AuditHead? = nil) -> ChainVerifier.Failure? {
    var v = ChainVerifier(fromStart: fromStart, head: head)
    do {
        for (name, lines) in files {
            for (i, line) in lines.enumerated() {
                try line.withUnsafeBufferPointer { p throws(ChainVerifier.Failure) in
                    try v.feed(p, at: .init(file: name, line: i + 1))
                }
            }
        }
        try v.finish(lastFile: files.last?.0 ?? "-")
    } catch {
        return error
    }
    return nil
}

final class EntryTests: XCTestCase {
    func testEntryCarriesRecordFieldsThenAnnotationFieldsInOrder() throws {
        let record = try Record.parse(#"{"id":"7","remote":"10.0.0.1","status":200,"annotations":{"audit":{"kind":"stripe","event_id":"evt_1","event_type":"customer.subscription.updated","uid":"u1","outcome":"applied","before":{"status":"trialing"},"after":{"status":"active"}}}}"#)
        let entry = AuditEntry(annotation: record.annotation("audit")!, record: record)
        XCTAssertEqual(entry.fields.keys, ["request_id", "remote", "status", "kind", "event_id", "event_type",
                                           "uid", "outcome", "before", "after"])
        let line = String(decoding: entry.line(seq: 3, prev: AuditChain.zeroHash, millis: 1_700_000_000_123), as: UTF8.self)
        XCTAssertTrue(line.hasPrefix(#"{"seq":3,"time":"2023-11-14T22:13:20.123Z","unix":1700000000,"request_id":"7""#), line)
        XCTAssertTrue(line.hasSuffix(#","prev":"\#(AuditChain.zeroHash)"}"#), line)
    }

    func testAnnotationCannotOverwriteTheWritersFields() throws {
        let record = try Record.parse(#"{"id":"1","annotations":{"audit":{"kind":"x","seq":99,"prev":"forged","time":"then"}}}"#)
        let entry = AuditEntry(annotation: record.annotation("audit")!, record: record)
        let line = try JSONReader.parse(entry.line(seq: 5, prev: AuditChain.zeroHash, millis: 0)).object!
        XCTAssertEqual(line["seq"]?.int, 5)
        XCTAssertEqual(line["prev"]?.string, AuditChain.zeroHash)
        XCTAssertEqual(line["annotation_seq"]?.int, 99)
        XCTAssertEqual(line["annotation_prev"]?.string, "forged")
        XCTAssertEqual(line["annotation_time"]?.string, "then")
    }

    func testNonObjectAnnotationIsKeptWhole() throws {
        let record = try Record.parse(#"{"id":"1","annotations":{"audit":"oops"}}"#)
        let entry = AuditEntry(annotation: record.annotation("audit")!, record: record)
        XCTAssertEqual(entry.fields["kind"], "malformed")
        XCTAssertEqual(entry.fields["annotation"], "oops")
    }

    func testTimestampHasMillisecondsInUTC() {
        XCTAssertEqual(AuditChain.timestamp(millis: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(AuditChain.timestamp(millis: 1_700_000_000_007), "2023-11-14T22:13:20.007Z")
    }

    func testHeadRoundTripsAndRejectsGarbage() {
        let head = AuditHead(seq: 12, hash: AuditChain.hash([1, 2, 3]), spillReported: 40)
        XCTAssertEqual(AuditHead.parse(head.serialized()), head)
        XCTAssertNil(AuditHead.parse(Array("{\"seq\":1,\"hash\":\"abc\"}".utf8)))
        XCTAssertNil(AuditHead.parse([]))
    }
}

final class VerifierTests: XCTestCase {
    func testIntactChainVerifiesFromStart() {
        XCTAssertNil(verify([("audit.log", makeChain(20))], fromStart: true))
    }

    func testEditedLineIsNamedByTheLineAfterIt() {
        var lines = makeChain(20)
        lines[9] = Array(String(decoding: lines[9], as: UTF8.self).replacingOccurrences(of: "evt_9", with: "evt_X").utf8)
        let failure = verify([("audit.log", lines)])
        XCTAssertEqual(failure?.location, .init(file: "audit.log", line: 11))
        XCTAssertTrue(failure?.message.contains("hash mismatch: audit.log:10 was edited") ?? false, "\(String(describing: failure))")
    }

    func testDeletedLineIsNamed() {
        var lines = makeChain(20)
        lines.remove(at: 6)
        let failure = verify([("audit.log", lines)])
        XCTAssertEqual(failure?.location.line, 7)
        XCTAssertTrue(failure?.message.contains("1 line missing") ?? false)
    }

    func testReorderedLinesAreNamed() {
        var lines = makeChain(20)
        lines.swapAt(4, 5)
        XCTAssertEqual(verify([("audit.log", lines)])?.location.line, 5)
    }

    func testDeletedFirstLineIsCaughtOnlyFromStart() {
        let lines = Array(makeChain(5).dropFirst())
        XCTAssertNil(verify([("audit.log", lines)]))
        XCTAssertEqual(verify([("audit.log", lines)], fromStart: true)?.location.line, 1)
    }

    func testChainContinuesAcrossFiles() {
        let old = makeChain(5)
        let new = makeChain(3, start: AuditChain.hash(old.last!), firstSeq: 6)
        XCTAssertNil(verify([("audit.log.1", old), ("audit.log", new)], fromStart: true))
        // Given in the wrong order, the break is at the first line of the second file.
        XCTAssertEqual(verify([("audit.log", new), ("audit.log.1", old)])?.location, .init(file: "audit.log.1", line: 1))
    }

    func testHeadCatchesLinesRemovedFromTheEnd() {
        let lines = makeChain(10)
        let head = AuditHead(seq: 10, hash: AuditChain.hash(lines[9]))
        XCTAssertNil(verify([("audit.log", lines)], head: head))
        let failure = verify([("audit.log", Array(lines.dropLast(2)))], head: head)
        XCTAssertEqual(failure?.location.line, 9)
        XCTAssertTrue(failure?.message.contains("2 lines missing at the end") ?? false)
    }

    func testHeadCatchesAnEditedLastLine() {
        var lines = makeChain(4)
        let head = AuditHead(seq: 4, hash: AuditChain.hash(lines[3]))
        lines[3] = Array(String(decoding: lines[3], as: UTF8.self).replacingOccurrences(of: "evt_3", with: "evt_9").utf8)
        XCTAssertEqual(verify([("audit.log", lines)], head: head)?.location.line, 4)
    }

    func testNonJSONLineIsNamed() {
        var lines = makeChain(3)
        lines[1] = Array("garbage".utf8)
        XCTAssertEqual(verify([("f", lines)])?.location.line, 2)
    }
}
