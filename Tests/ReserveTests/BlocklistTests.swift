import XCTest
@testable import reserve

final class BlocklistTests: XCTestCase {
    let list = Blocklist(text: """
    # reserved for us
    admin
    www      # the site itself
    *cloudflare*

    Mail?
    """)

    func testExactNameBlocksOnlyThatName() {
        XCTAssertEqual(list.match("admin")?.text, "admin")
        XCTAssertEqual(list.match("www")?.line, 3)
        XCTAssertNil(list.match("admins"))
        XCTAssertNil(list.match("myadmin"))
        XCTAssertNil(list.match("ww"))
    }

    func testPatternBlocksEveryNameItMatches() {
        for name in ["cloudflare", "mycloudflare", "cloudflaresite", "my-cloudflare-site"] {
            XCTAssertEqual(list.match(name)?.text, "*cloudflare*", name)
            XCTAssertEqual(list.match(name)?.isPattern, true)
        }
        XCTAssertNil(list.match("cloud-flare"))
        XCTAssertNil(list.match("cloudflar"))
    }

    func testQuestionMarkMatchesOneCharacterAndRulesAreLowerCased() {
        XCTAssertEqual(list.match("mails")?.text, "mail?")
        XCTAssertNil(list.match("mail"))
        XCTAssertNil(list.match("mailer"))
    }

    func testCommentsAndBlankLinesAreNotRules() {
        XCTAssertEqual(list.rules.map(\.text), ["admin", "www", "*cloudflare*", "mail?"])
    }

    func testGlobEdgeCases() {
        XCTAssertTrue(Blocklist.glob(Array("*".utf8), Array("".utf8)))
        XCTAssertTrue(Blocklist.glob(Array("a*b*c".utf8), Array("aXXbYYc".utf8)))
        XCTAssertFalse(Blocklist.glob(Array("a*b*c".utf8), Array("aXXbYY".utf8)))
        XCTAssertTrue(Blocklist.glob(Array("*a*a*a*a*b".utf8), Array((String(repeating: "a", count: 63) + "b").utf8)))
        XCTAssertFalse(Blocklist.glob(Array("*a*a*a*a*b".utf8), Array(String(repeating: "a", count: 63).utf8)))
    }

    func testCRLFFilesReadLikeLFFiles() {
        let crlf = Blocklist(text: "admin\r\n*cloudflare*\r\n# note\r\nwww\r\n")
        XCTAssertEqual(crlf.rules.map(\.text), ["admin", "*cloudflare*", "www"])
        XCTAssertEqual(crlf.rules.map(\.line), [1, 2, 4])
    }

    func testEmptyListBlocksNothing() {
        XCTAssertNil(Blocklist().match("admin"))
    }
}
