import XCTest
@testable import apply_webhook

/// Plans.parse splits ASCII files as bytes (it runs at every connection's start) and
/// anything else as Characters; both must read a file the same way.
final class PlansParsingTests: XCTestCase {
    /// The same text through the Character path: a non-ASCII comment line at the end.
    func viaCharacters(_ text: String) -> String { text + "\n# é" }

    func testASCIIAndCharacterSplittingReadTheSameMappings() throws {
        let texts = [
            "# header\nprice_123 pro  # monthly\n\n  pro_yearly\tpro\nbasic_monthly basic\r\n",
            "a b\rc d\r\ne f\n\u{0B}g\u{0C}h\u{0B}\n",
            "x y#comment\n#only\n   \t  \n",
            "",
        ]
        for text in texts {
            XCTAssertEqual(try Plans.parse(text), try Plans.parse(viaCharacters(text)), text)
        }
        XCTAssertEqual(try Plans.parse("a b\rc d\r\ne f\n").tier(priceID: "c", lookupKey: nil), "d")
    }

    func testBothPathsReportTheSameLineNumbers() {
        for text in ["a b\r\nc\n", "a b\rc d e\n", "a b\n\r\na c\n", "\n\n\nx"] {
            var ascii = "", characters = ""
            do { _ = try Plans.parse(text) } catch { ascii = error.message }
            do { _ = try Plans.parse(viaCharacters(text)) } catch { characters = error.message }
            XCTAssertFalse(ascii.isEmpty, text)
            XCTAssertEqual(ascii, characters, text)
        }
    }
}
