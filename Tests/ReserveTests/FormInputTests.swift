import XCTest
@testable import reserve

final class FormInputTests: XCTestCase {
    private func fields(_ body: String, _ type: String?) throws -> [String: String?] {
        try FormInput.fields(body: Array(body.utf8), contentType: type)
    }

    func testJSONBodyFields() throws {
        let f = try fields(#"{"subdomain":"abc","email":"a@b.co"}"#, "application/json; charset=utf-8")
        XCTAssertEqual(f["subdomain"], "abc")
        XCTAssertEqual(f["email"], "a@b.co")
    }

    func testNonStringJSONValueIsNamedButHasNoValue() throws {
        let f = try fields(#"{"subdomain":42}"#, "application/json")
        XCTAssertEqual(f["subdomain"], .some(nil))
        XCTAssertFalse(f.keys.contains("email"))
    }

    func testFormBodyIsPercentAndPlusDecoded() throws {
        let f = try fields("subdomain=my-site&email=a%2Btag%40b.co&note=two+words&u=%C3%BC", "application/x-www-form-urlencoded")
        XCTAssertEqual(f["subdomain"], "my-site")
        XCTAssertEqual(f["email"], "a+tag@b.co")
        XCTAssertEqual(f["note"], "two words")
        XCTAssertEqual(f["u"], "ü")
    }

    func testFieldGivenTwiceIsAmbiguous() throws {
        let f = try fields("subdomain=a&subdomain=b", "application/x-www-form-urlencoded")
        XCTAssertEqual(f["subdomain"], .some(nil))
    }

    func testBrokenEscapesAndInvalidUTF8Are400() {
        for body in ["a=%zz", "a=%4", "a=%", "a=%ff"] {
            XCTAssertThrowsError(try fields(body, "application/x-www-form-urlencoded"), body) { e in
                XCTAssertEqual((e as? InputError)?.status, 400)
            }
        }
    }

    func testMalformedJSONIs400() {
        XCTAssertThrowsError(try fields("{", "application/json")) { XCTAssertEqual(($0 as? InputError)?.status, 400) }
        XCTAssertThrowsError(try fields("[1]", "application/json")) { XCTAssertEqual(($0 as? InputError)?.status, 400) }
    }

    func testOtherMediaTypesAre415() {
        XCTAssertThrowsError(try fields("x", "text/plain")) { XCTAssertEqual(($0 as? InputError)?.status, 415) }
    }

    func testWithoutContentTypeTheBodyIsSniffed() throws {
        XCTAssertEqual(try fields(#" {"token":"t"}"#, nil)["token"], "t")
        XCTAssertEqual(try fields("token=t", nil)["token"], "t")
    }
}
