import XCTest
@testable import reserve

final class SubdomainRuleTests: XCTestCase {
    private func accepted(_ s: String) -> String? { try? SubdomainRule.check(s) }

    private func refusal(_ s: String, file: StaticString = #filePath, line: UInt = #line) -> FieldError? {
        do { _ = try SubdomainRule.check(s); XCTFail("\(s) was accepted", file: file, line: line); return nil }
        catch { return error }
    }

    func testLettersDigitsAndInnerHyphensAreAccepted() {
        for name in ["a", "abc", "my-site", "a1", "123", "a--b", "x-y-z", String(repeating: "a", count: 63)] {
            XCTAssertEqual(accepted(name), name)
        }
    }

    func testNameIsLowerCased() {
        XCTAssertEqual(accepted("MySite"), "mysite")
        XCTAssertEqual(accepted("XN--BCHER-KVA"), "xn--bcher-kva")
    }

    func testEmptyNameIsRefusedNamingTheField() {
        XCTAssertEqual(refusal("")?.field, "subdomain")
    }

    func testNameLongerThan63IsRefused() {
        XCTAssertEqual(refusal(String(repeating: "a", count: 64))?.message, "the subdomain is longer than 63 characters")
    }

    func testCharactersOutsideLettersDigitsHyphenAreRefused() {
        for name in ["my_site", "my.site", "my site", "bücher", "a/b", "a@b", "tab\t", "\u{212A}elvin"] {
            XCTAssertNotNil(refusal(name), name)
        }
    }

    func testLeadingOrTrailingHyphenIsRefused() {
        XCTAssertNotNil(refusal("-abc"))
        XCTAssertNotNil(refusal("abc-"))
        XCTAssertNotNil(refusal("-"))
    }

    func testValidPunycodeIsAccepted() {
        XCTAssertEqual(accepted("xn--bcher-kva"), "xn--bcher-kva")
        XCTAssertEqual(accepted("xn--mnchen-3ya"), "xn--mnchen-3ya")
    }

    func testInvalidPunycodeIsRefused() {
        for name in ["xn--a", "xn--99999999999999999999", "xn--bcher-kv9", "xn--abc-d"] {
            XCTAssertEqual(refusal(name)?.message, "the subdomain starts with xn-- but is not valid Punycode", name)
        }
    }

    func testOtherReservedHyphenPositionsAreRefused() {
        XCTAssertNotNil(refusal("ab--cd"))
        XCTAssertNotNil(refusal("zz--zz"))
    }
}

final class EmailRuleTests: XCTestCase {
    private func accepted(_ s: String) -> String? { try? EmailRule.check(s) }
    private func refused(_ s: String) -> Bool {
        do { _ = try EmailRule.check(s); return false } catch { XCTAssertEqual(error.field, "email"); return true }
    }

    func testPlainAddressesAreAccepted() {
        for a in ["a@b.co", "x_y@sub.example.org", "o'brien@example.ie", "user+tag@example.com", "1@2.example"] {
            XCTAssertEqual(accepted(a), a)
        }
    }

    func testAddressIsLowerCased() {
        XCTAssertEqual(accepted("First.Last+Tag@Example.COM"), "first.last+tag@example.com")
    }

    func testInternationalisedDomainInACEFormIsAccepted() {
        XCTAssertEqual(accepted("a@xn--bcher-kva.example"), "a@xn--bcher-kva.example")
    }

    func testDisplayNamesAreRefused() {
        XCTAssertTrue(refused("Ann <ann@example.com>"))
        XCTAssertTrue(refused("<ann@example.com>"))
    }

    func testSpacesAndControlsAreRefused() {
        XCTAssertTrue(refused("ann smith@example.com"))
        XCTAssertTrue(refused(" ann@example.com"))
        XCTAssertTrue(refused("ann@example.com\n"))
        XCTAssertTrue(refused("ann@example.com\r\nBcc: x@y.z"))
    }

    func testExactlyOneAtIsRequired() {
        XCTAssertTrue(refused("ann.example.com"))
        XCTAssertTrue(refused("ann@@example.com"))
        XCTAssertTrue(refused("a@b@example.com"))
        XCTAssertTrue(refused("@example.com"))
        XCTAssertTrue(refused("ann@"))
    }

    func testDomainMustHoldADot() {
        XCTAssertTrue(refused("ann@localhost"))
    }

    func testDomainMustBeAValidHostName() {
        for a in ["a@b..co", "a@-b.co", "a@b-.co", "a@.b.co", "a@b.co.", "a@b_c.co", "a@b.123", "a@[1.2.3.4]", "a@xn--a.co"] {
            XCTAssertTrue(refused(a), a)
        }
    }

    func testLocalPartDotsMayNotLeadTrailOrRepeat() {
        XCTAssertTrue(refused(".a@b.co"))
        XCTAssertTrue(refused("a.@b.co"))
        XCTAssertTrue(refused("a..b@b.co"))
    }

    func testQuotedLocalPartsAndOtherSpecialsAreRefused() {
        XCTAssertTrue(refused("\"a\"@b.co"))
        XCTAssertTrue(refused("a(comment)@b.co"))
        XCTAssertTrue(refused("a,b@b.co"))
    }

    func testNonASCIIIsRefused() {
        XCTAssertTrue(refused("ü@b.co"))
        XCTAssertTrue(refused("a@bücher.de"))
    }

    func testLengthLimits() {
        XCTAssertNotNil(accepted(String(repeating: "a", count: 64) + "@b.co"))
        XCTAssertTrue(refused(String(repeating: "a", count: 65) + "@b.co"))
        let label = String(repeating: "d", count: 60)
        let long = "a@" + [label, label, label, label].joined(separator: ".") + ".com"
        let longest = String(repeating: "b", count: 254 - long.utf8.count) + long
        XCTAssertEqual(longest.utf8.count, 254)
        XCTAssertNotNil(accepted(longest))
        XCTAssertTrue(refused("b" + longest))
    }
}
