import XCTest
@testable import Common

final class JSONTests: XCTestCase {
    func testRoundTripsCompactJSONByteForByte() throws {
        let text = #"{"a":[1,-2.5e3,true,false,null],"b":{"c":"d\"\\\n\u0001é"}}"#
        XCTAssertEqual(try JSONReader.parse(text).text, text)
    }
}
