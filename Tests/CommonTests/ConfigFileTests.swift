import XCTest
@testable import Records

final class ConfigFileTests: XCTestCase {
    func test_eachLine_gives_the_meaningful_lines_with_their_numbers_in_the_file() throws {
        let text = "# a comment\n\nGET /a a\n   \t# indented comment\r\n\t \nGET /b b # trailing\r\n"
        var seen: [String] = []
        try ConfigFile.eachLine(Array(text.utf8)) { number, line in seen.append("\(number):\(line)") }
        XCTAssertEqual(seen, ["3:GET /a a", "6:GET /b b # trailing"])
    }

    func test_eachLine_refuses_invalid_UTF8_in_a_comment_line_too() {
        let bytes = Array("GET /a a\n# caf".utf8) + [0xC3, 0x28] + Array("\n".utf8)
        XCTAssertThrowsError(try ConfigFile.eachLine(bytes) { _, _ in }) { error in
            XCTAssertEqual(error as? ConfigError, ConfigError(line: 2, "not valid UTF-8"))
        }
    }
}
