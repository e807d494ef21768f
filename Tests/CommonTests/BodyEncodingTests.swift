import XCTest
@testable import Records

/// Issue 19 §7: every body fits in a record at base64's cost or less.
final class BodyEncodingTests: XCTestCase {
    /// The body's member as written: its value's length, quotes excluded.
    private func written(_ bytes: [UInt8]) -> (key: String, length: Int) {
        var r = Record(JSONObject())
        r.body = bytes
        let key = r.object["body"] != nil ? "body" : "body_base64"
        let text = r.serialized()
        XCTAssertEqual(r.body, bytes, "the bytes survive")
        XCTAssertEqual(try Record.parse(String(decoding: text, as: UTF8.self)).body, bytes, "and read back")
        return (key, text.count - #"{"":""}"#.utf8.count - key.utf8.count)
    }

    func testEscapedLengthIsWhatTheWriterWrites() {
        let alphabet: [UInt8] = [0x00, 0x01, 0x08, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x22, 0x41, 0x5C, 0x7F, 0xC3, 0xA9]
        for n in 0..<40 {
            for seed in 0..<12 {
                let bytes = (0..<n).map { alphabet[($0 * (seed + 3) + seed + $0 / 5) % alphabet.count] }
                guard let s = validUTF8String(bytes) else { continue }
                var out: [UInt8] = []
                JSON.writeString(s, to: &out)
                let counted = bytes.withUnsafeBufferPointer { JSON.escapedLength($0, stoppingAbove: .max) }
                XCTAssertEqual(counted, out.count - 2, "\(bytes)")
            }
        }
    }

    func testLargeBodiesThatEscapingWouldBlowUpGoAsBase64() {
        for fill in [[UInt8(0x01)], [0x22], [0x5C], [0x0A, 0x01, 0x22]] {
            let bytes = Array((0..<300_000).map { fill[$0 % fill.count] })
            let (key, length) = written(bytes)
            XCTAssertEqual(key, "body_base64", "\(fill)")
            XCTAssertEqual(length, BodyEncoding.base64Length(bytes.count))
        }
    }

    func testOrdinaryAndSmallBodiesStayText() {
        XCTAssertEqual(written(Array(#"{"a":"b","c":["",""]}"#.utf8)).key, "body", "a small JSON body stays readable")
        XCTAssertEqual(written([UInt8](repeating: 0x01, count: 1000)).key, "body", "small: the choice cannot matter")
        XCTAssertEqual(written(Array(String(repeating: "plain text, é and \"quotes\"\n", count: 20_000).utf8)).key, "body")
        XCTAssertEqual(written([0xFF, 0x00]).key, "body_base64", "not UTF-8")
    }

    func testNoBodyTakesMoreThanItsWorstCase() {
        for count in [0, 1, 2, 3, 1000, 65_536, 70_000, 200_001] {
            for fill: UInt8 in [0x01, 0x22, 0x41, 0xFF] {
                let (_, length) = written([UInt8](repeating: fill, count: count))
                XCTAssertLessThanOrEqual(length, BodyEncoding.worstCaseLength(count), "\(count) × \(fill)")
            }
        }
    }
}
