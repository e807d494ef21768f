import XCTest
import Foundation
@testable import RouteTool

/// The table parser: what each line means, and each mistake refused with its line number.
final class RouteTableTests: XCTestCase {
    func parse(_ text: String) throws -> RouteTable { try RouteTable.parse(text) }

    /// The error for `text`, which must be refused.
    func refusal(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> TableError? {
        do {
            _ = try RouteTable.parse(text)
            XCTFail("accepted a bad table: \(text)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func assertRefused(_ text: String, line expected: Int?, _ reasonPart: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        guard let e = refusal(text, file: file, line: line) else { return }
        XCTAssertEqual(e.line, expected, "line of: \(e)", file: file, line: line)
        XCTAssert(e.reason.contains(reasonPart), "reason '\(e.reason)' lacks '\(reasonPart)'", file: file, line: line)
    }

    // MARK: Accepted syntax

    func testParsesMethodsPatternAndName() throws {
        let t = try parse("GET,POST  /v1/subscription\tsubscription\n")
        XCTAssertEqual(t.routes.count, 1)
        let r = t.routes[0]
        XCTAssertEqual(r.methods, ["GET", "POST"])
        XCTAssertEqual(r.pattern.text, "/v1/subscription")
        XCTAssertEqual(r.name, "subscription")
        XCTAssertEqual(r.action, .forward)
        XCTAssertEqual(r.line, 1)
    }

    func testStarMeansAnyMethod() throws {
        let r = try parse("* /static/* static").routes[0]
        XCTAssertNil(r.methods)
        XCTAssertTrue(r.allows("PATCH"))
        XCTAssertTrue(r.pattern.isPrefix)
    }

    func testSkipsCommentsBlankLinesAndCarriageReturns() throws {
        let t = try parse("# a comment\n\n   \n  # indented comment\r\nGET /a a\r\n\n")
        XCTAssertEqual(t.routes.map(\.line), [5])
    }

    func testParsesNamedSegmentsAndPrefix() throws {
        let p = try RouteTable.parsePattern("/v1/users/:id/files/*")
        XCTAssertEqual(p.segments, [.literal(Array("v1".utf8)), .literal(Array("users".utf8)), .param("id"),
                                    .literal(Array("files".utf8))])
        XCTAssertTrue(p.isPrefix)
        XCTAssertFalse(p.isExact)
        XCTAssertTrue(try RouteTable.parsePattern("/v1/subscription").isExact)
    }

    func testParsesRespondClauseAndCompactsItsJSON() throws {
        let r = try parse(#"GET,HEAD /healthz healthz respond 200 { "status" : "ok" }"#).routes[0]
        XCTAssertEqual(r.action, .respond(status: 200, body: Array(#"{"status":"ok"}"#.utf8)))
        XCTAssertEqual(r.name, "healthz")
    }

    func testRespondWithoutBody() throws {
        let r = try parse("GET /ping ping respond 204").routes[0]
        XCTAssertEqual(r.action, .respond(status: 204, body: []))
    }

    func testParsesGoneLineInAnyKeyOrder() throws {
        let r = try parse("GONE /v1/profile replacement=/v1/subscription removed=2025-06-01").routes[0]
        XCTAssertEqual(r.action, .gone(removed: "2025-06-01", replacement: "/v1/subscription"))
        XCTAssertNil(r.methods)
        XCTAssertNil(r.name)
    }

    func testGoneReplacementIsOptional() throws {
        let r = try parse("GONE /v1/old removed=2024-02-29").routes[0]
        XCTAssertEqual(r.action, .gone(removed: "2024-02-29", replacement: nil))
    }

    func testGetImpliesHeadUnlessTheSamePatternListsHead() throws {
        let t = try parse("GET /a a\nGET /b b\nHEAD /b b-head\n")
        let a = t.routes.first { $0.name == "a" }!, b = t.routes.first { $0.name == "b" }!
        XCTAssertTrue(a.allows("HEAD"))
        XCTAssertEqual(a.allowList, ["GET", "HEAD"])
        XCTAssertFalse(b.allows("HEAD"))
    }

    func testDifferentMethodsOnTheSamePatternAreFine() throws {
        XCTAssertEqual(try parse("GET /users/:id get-user\nDELETE /users/:uid delete-user\n").routes.count, 2)
    }

    func testSortsMoreSpecificPatternsFirst() throws {
        let t = try parse("* /* all\nGET /a/* a-any\nGET /a/:x a-param\nGET /a/b a-b\n")
        XCTAssertEqual(t.routes.map(\.name), ["a-b", "a-param", "a-any", "all"])
    }

    func testDefaultTableParses() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../pipelines/routes").standardized
        let t = try RouteTable.load(path: url.path)
        XCTAssertEqual(Set(t.routes.compactMap(\.name)), ["healthz", "readyz", "metrics", "subscription", "stripe-webhook", "auth"])
        XCTAssertGreaterThanOrEqual(t.routes.filter { if case .gone = $0.action { return true }; return false }.count, 2)
    }

    // MARK: Refused, with the line number

    func testRefusesLowerCaseMethod() { assertRefused("GET /a a\nget /b b", line: 2, "upper-case") }
    func testRefusesNonTokenMethod() { assertRefused("\nGE(T /a a", line: 2, "not a method") }
    func testRefusesEmptyMethod() { assertRefused("GET,,POST /a a", line: 1, "empty method") }
    func testRefusesDuplicateMethod() { assertRefused("GET,GET /a a", line: 1, "listed twice") }
    func testRefusesStarMixedWithMethods() { assertRefused("GET,* /a a", line: 1, "cannot be combined") }
    func testRefusesGoneAsAMethod() { assertRefused("GET,GONE /a a", line: 1, "not a method") }
    func testRefusesMissingPattern() { assertRefused("# x\nGET", line: 2, "missing the path pattern") }
    func testRefusesRelativePattern() { assertRefused("GET healthz h", line: 1, "must start with '/'") }
    func testRefusesMissingName() { assertRefused("GET /a\n", line: 1, "missing the route name") }
    func testRefusesRespondWithoutName() { assertRefused("GET /a respond 200", line: 1, "missing the route name before") }
    func testRefusesBadName() { assertRefused("GET /a -x", line: 1, "route name") }
    func testRefusesTrailingWords() { assertRefused("GET /a a # comment", line: 1, "unexpected '#'") }
    func testRefusesStarInsideSegment() { assertRefused("GET /a* a", line: 1, "whole segment") }
    func testRefusesStarBeforeTheEnd() { assertRefused("GET /a/*/b a", line: 1, "last segment") }
    func testRefusesEmptySegment() { assertRefused("GET /a//b a", line: 1, "empty segment") }
    func testRefusesDotSegment() { assertRefused("GET /a/../b a", line: 1, "dot segment") }
    func testRefusesPercentInPattern() { assertRefused("GET /a%20b a", line: 1, "percent-encoding") }
    func testRefusesBadCharacterInPattern() { assertRefused("GET /a\\b a", line: 1, "invalid character") }
    func testRefusesUnnamedParameter() { assertRefused("GET /a/: a", line: 1, "needs a name") }
    func testRefusesParameterStartingWithDigit() { assertRefused("GET /a/:1x a", line: 1, "needs a name") }
    func testRefusesRepeatedParameter() { assertRefused("GET /:id/x/:id a", line: 1, "appears twice") }
    func testRefusesRespondWithoutStatus() { assertRefused("GET /a a respond", line: 1, "needs a status") }
    func testRefusesOutOfRangeStatus() { assertRefused("GET /a a respond 100", line: 1, "200 to 599") }
    func testRefusesNonNumericStatus() { assertRefused("GET /a a respond ok", line: 1, "200 to 599") }
    func testRefusesBodyThatIsNotJSON() { assertRefused(#"GET /a a respond 200 {"a":}"#, line: 1, "not JSON") }
    func testRefusesBodyOn204() { assertRefused("GET /a a respond 204 {}", line: 1, "cannot have a body") }
    func testRefusesGoneWithoutDate() { assertRefused("GONE /a replacement=/b", line: 1, "needs removed=") }
    func testRefusesGoneWithoutPattern() { assertRefused("GONE", line: 1, "missing the path pattern") }
    func testRefusesImpossibleDate() { assertRefused("GONE /a removed=2025-02-29", line: 1, "not a date") }
    func testRefusesMalformedDate() { assertRefused("GONE /a removed=1.6.2025", line: 1, "not a date") }
    func testRefusesRelativeReplacement() { assertRefused("GONE /a removed=2025-01-01 replacement=b", line: 1, "replacement=") }
    func testRefusesUnknownGoneKey() { assertRefused("GONE /a removed=2025-01-01 since=x", line: 1, "unknown key 'since'") }
    func testRefusesRepeatedGoneKey() { assertRefused("GONE /a removed=2025-01-01 removed=2025-01-02", line: 1, "twice") }
    func testRefusesWordWithoutValueOnGoneLine() { assertRefused("GONE /a removed=2025-01-01 now", line: 1, "key=value") }
    func testRefusesInvalidUTF8() {
        XCTAssertThrowsError(try RouteTable.parse(Array("GET /a a\n".utf8) + [0xFF, 0x0A])) { error in
            XCTAssertEqual(error as? TableError, TableError(line: 2, "not valid UTF-8"))
        }
    }

    func testRefusesTwoRoutesForTheSamePathAndMethod() {
        assertRefused("GET /a one\n\nGET,POST /a two\n", line: 3, "conflicts with line 1")
    }

    func testRefusesSameShapeWithDifferentParameterNames() {
        assertRefused("GET /u/:id one\nGET /u/:uid two", line: 2, "conflicts with line 1")
    }

    func testRefusesGoneOverARoutedPath() {
        assertRefused("GET /a a\nGONE /a removed=2025-01-01", line: 2, "every method")
    }

    func testRefusesEmptyTable() {
        assertRefused("# only comments\n\n", line: nil, "no routes")
    }

    func testReportsFileAndLine() {
        XCTAssertEqual(TableError(line: 7, "bad").report(file: "routes"), "routes:7: bad")
        XCTAssertEqual(TableError(line: nil, "bad").report(file: "routes"), "routes: bad")
    }
}
