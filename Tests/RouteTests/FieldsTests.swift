import XCTest
@testable import RouteTool

/// The route table's field splitter works on bytes; fields are split at spaces and tabs only.
final class FieldsTests: XCTestCase {
    func testSplitsAtSpacesAndTabsAndKeepsTheRestWhole() {
        var f = Fields("  GET,HEAD\t/healthz   healthz respond 200 {\"status\": \"ok\"}  \t")
        XCTAssertEqual(f.next(), "GET,HEAD")
        XCTAssertEqual(f.next(), "/healthz")
        XCTAssertEqual(f.next(), "healthz")
        XCTAssertEqual(f.next(), "respond")
        XCTAssertEqual(f.next(), "200")
        XCTAssertEqual(f.rest(), "{\"status\": \"ok\"}")
        XCTAssertNil(f.next())
    }

    func testKeepsNonASCIIFieldsIntact() {
        var f = Fields("é\u{301}  /caf\u{e9} ü ö")
        XCTAssertEqual(f.next(), "é\u{301}")
        XCTAssertEqual(f.next(), "/café")
        XCTAssertEqual(f.rest(), "ü ö")
    }

    func testABlankLineHasNoFields() {
        var f = Fields(" \t ")
        XCTAssertNil(f.next())
        XCTAssertEqual(f.rest(), "")
    }
}
