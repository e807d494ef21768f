import XCTest
@testable import RouteTool

/// Matching: exact, prefix, named segments, precedence, 404/405/410/OPTIONS/HEAD, and
/// the paths refused before any matching.
final class RouterTests: XCTestCase {
    let table = try! RouteTable.parse("""
        GET,HEAD  /healthz              healthz   respond 200 {"status":"ok"}
        GET       /v1/subscription      subscription
        POST      /v1/webhooks/stripe   stripe-webhook
        GET       /v1/users/:id         user
        DELETE    /v1/users/:id         delete-user
        GET       /v1/users/me          me
        GET       /v1/orgs/:org/users/:user  org-user
        *         /static/*             static
        GET       /static/special/*     special
        OPTIONS   /v1/cors              cors-preflight
        POST      /v1/cors              cors
        GET       /v1/head              head-get
        HEAD      /v1/head              head-own
        GONE      /v1/profile           removed=2025-06-01 replacement=/v1/subscription
        GONE      /v1/legacy/*          removed=2024-01-31
        """)

    func name(_ method: String, _ path: String) -> String? {
        if case .matched(let r, _) = table.match(method: method, path: path) { return r.name ?? "GONE" }
        return nil
    }

    func params(_ method: String, _ path: String) -> [String: String] {
        guard case .matched(_, let p) = table.match(method: method, path: path) else { return [:] }
        return Dictionary(uniqueKeysWithValues: p)
    }

    func isBadPath(_ path: String) -> Bool {
        if case .badPath = table.match(method: "GET", path: path) { return true }
        return false
    }

    // MARK: Matching

    func testExactPathMatches() {
        XCTAssertEqual(name("GET", "/v1/subscription"), "subscription")
        XCTAssertEqual(name("POST", "/v1/webhooks/stripe"), "stripe-webhook")
    }

    func testExactPathDoesNotMatchLongerOrShorterPaths() {
        XCTAssertEqual(table.match(method: "GET", path: "/v1/subscription/"), .notFound)
        XCTAssertEqual(table.match(method: "GET", path: "/v1/subscriptions"), .notFound)
        XCTAssertEqual(table.match(method: "GET", path: "/v1"), .notFound)
    }

    func testMatchingIsCaseSensitive() {
        XCTAssertEqual(table.match(method: "GET", path: "/V1/subscription"), .notFound)
    }

    func testNamedSegmentCapturesTheValue() {
        XCTAssertEqual(name("GET", "/v1/users/42"), "user")
        XCTAssertEqual(params("GET", "/v1/users/42"), ["id": "42"])
        XCTAssertEqual(params("GET", "/v1/orgs/acme/users/7"), ["org": "acme", "user": "7"])
    }

    func testNamedSegmentValueIsPercentDecoded() {
        XCTAssertEqual(params("GET", "/v1/users/a%20b%C3%A9"), ["id": "a bé"])
    }

    func testNamedSegmentNeverMatchesEmptyOrSeveralSegments() {
        XCTAssertEqual(table.match(method: "GET", path: "/v1/users/"), .notFound)
        XCTAssertEqual(table.match(method: "GET", path: "/v1/users/1/2"), .notFound)
    }

    func testLiteralSegmentBeatsParameterWhateverTheLineOrder() {
        XCTAssertEqual(name("GET", "/v1/users/me"), "me")
        XCTAssertEqual(params("GET", "/v1/users/me"), [:])
    }

    func testPrefixMatchesEverythingBelowIt() {
        XCTAssertEqual(name("GET", "/static/app.js"), "static")
        XCTAssertEqual(params("PUT", "/static/img/a%20b.png"), ["*": "img/a b.png"])
        XCTAssertEqual(params("GET", "/static/"), ["*": ""])
    }

    func testPrefixDoesNotMatchItsOwnDirectoryWithoutSlash() {
        XCTAssertEqual(table.match(method: "GET", path: "/static"), .notFound)
        XCTAssertEqual(table.match(method: "GET", path: "/staticfiles/x"), .notFound)
    }

    func testLongerPrefixWins() {
        XCTAssertEqual(name("GET", "/static/special/x"), "special")
        XCTAssertEqual(name("POST", "/static/special/x"), "static")   // the longer prefix routes only GET
    }

    // MARK: Methods

    func testHeadIsAllowedWhereGetIs() {
        XCTAssertEqual(name("HEAD", "/v1/subscription"), "subscription")
        XCTAssertEqual(name("HEAD", "/v1/users/9"), "user")
    }

    func testExplicitHeadRouteTakesHeadFromGet() {
        XCTAssertEqual(name("GET", "/v1/head"), "head-get")
        XCTAssertEqual(name("HEAD", "/v1/head"), "head-own")
    }

    func testWrongMethodIs405WithAllow() {
        XCTAssertEqual(table.match(method: "POST", path: "/v1/subscription"),
                       .methodNotAllowed(allow: ["GET", "HEAD", "OPTIONS"]))
        XCTAssertEqual(table.match(method: "GET", path: "/v1/webhooks/stripe"),
                       .methodNotAllowed(allow: ["POST", "OPTIONS"]))
    }

    func testAllowListsMethodsOfEveryRouteOfThePath() {
        XCTAssertEqual(table.match(method: "PUT", path: "/v1/users/5"),
                       .methodNotAllowed(allow: ["GET", "HEAD", "DELETE", "OPTIONS"]))
    }

    func testMethodsAreCaseSensitive() {
        XCTAssertEqual(table.match(method: "get", path: "/v1/subscription"),
                       .methodNotAllowed(allow: ["GET", "HEAD", "OPTIONS"]))
    }

    func testOptionsOnAKnownPathListsItsMethods() {
        XCTAssertEqual(table.match(method: "OPTIONS", path: "/healthz"), .options(allow: ["GET", "HEAD", "OPTIONS"]))
    }

    func testOptionsRoutedWhenTheTableSaysSo() {
        XCTAssertEqual(name("OPTIONS", "/v1/cors"), "cors-preflight")
        XCTAssertEqual(name("OPTIONS", "/static/x"), "static")   // '*' takes any method
    }

    func testOptionsOnAnUnknownPathIs404() {
        XCTAssertEqual(table.match(method: "OPTIONS", path: "/nope"), .notFound)
    }

    func testOptionsStarListsEveryMethod() {
        guard case .options(let allow) = table.match(method: "OPTIONS", path: "*") else { return XCTFail() }
        XCTAssertEqual(Set(allow), ["GET", "HEAD", "POST", "DELETE", "OPTIONS"])
        XCTAssertTrue(isBadPath("*"))
    }

    func testUnknownPathIs404() {
        XCTAssertEqual(table.match(method: "GET", path: "/nope"), .notFound)
        XCTAssertEqual(table.match(method: "GET", path: "/"), .notFound)
    }

    // MARK: Gone

    func testGoneMatchesEveryMethod() {
        for m in ["GET", "POST", "DELETE", "OPTIONS"] {
            guard case .matched(let r, _) = table.match(method: m, path: "/v1/profile") else { return XCTFail(m) }
            XCTAssertEqual(r.action, .gone(removed: "2025-06-01", replacement: "/v1/subscription"))
        }
    }

    func testGonePrefixCoversEverythingBelow() {
        XCTAssertEqual(name("GET", "/v1/legacy/a/b"), "GONE")
    }

    // MARK: Paths refused before matching

    func testRefusesDotSegments() {
        XCTAssertTrue(isBadPath("/static/../v1/subscription"))
        XCTAssertTrue(isBadPath("/static/./x"))
        XCTAssertTrue(isBadPath("/static/.."))
        XCTAssertTrue(isBadPath("/static/%2e%2E/x"))
        XCTAssertTrue(isBadPath("/static/.%2e"))
        XCTAssertFalse(isBadPath("/static/...x"))
        XCTAssertFalse(isBadPath("/static/.well-known"))
    }

    func testRefusesEncodedSlashBackslashAndNul() {
        XCTAssertTrue(isBadPath("/v1%2Fsubscription"))
        XCTAssertTrue(isBadPath("/v1/users/a%2fb"))
        XCTAssertTrue(isBadPath("/v1/users/a%5Cb"))
        XCTAssertTrue(isBadPath("/v1/users/a%00b"))
    }

    func testRefusesRawNulControlsSpaceBackslashAndNonASCII() {
        XCTAssertTrue(isBadPath("/v1/users/a\u{0}b"))
        XCTAssertTrue(isBadPath("/v1/users/a\tb"))
        XCTAssertTrue(isBadPath("/v1/users/a b"))
        XCTAssertTrue(isBadPath("/v1/users/a\\b"))
        XCTAssertTrue(isBadPath("/v1/users/é"))
    }

    func testRefusesMalformedEscapes() {
        XCTAssertTrue(isBadPath("/v1/users/%"))
        XCTAssertTrue(isBadPath("/v1/users/%4"))
        XCTAssertTrue(isBadPath("/v1/users/%zz"))
    }

    func testRefusesEmptySegmentsButNotATrailingSlash() {
        XCTAssertTrue(isBadPath("//v1/subscription"))
        XCTAssertTrue(isBadPath("/v1//subscription"))
        XCTAssertFalse(isBadPath("/v1/subscription/"))
    }

    func testRefusesRelativeTargets() {
        XCTAssertTrue(isBadPath("v1/subscription"))
        XCTAssertTrue(isBadPath(""))
    }

    func testParameterMustDecodeToUTF8() {
        XCTAssertTrue(isBadPath("/v1/users/%FF"))
    }

    func testEncodedCharactersAreNotDecodedForMatching() {
        // %73 is 's': matching the decoded path would route it to "subscription".
        XCTAssertEqual(table.match(method: "GET", path: "/v1/%73ubscription"), .notFound)
    }

    func testSubDelimitersAndColonsAreOrdinaryPathCharacters() {
        XCTAssertEqual(params("GET", "/v1/users/a:b@c!$&'()*+,;=-._~"), ["id": "a:b@c!$&'()*+,;=-._~"])
    }
}
