import XCTest
import Records
@testable import VerifyJWTTool

final class AccessRulesTests: XCTestCase {
    let rules = try! AccessRules.parse("""
        subscription  optional
        admin         require roles contains admin
        admin         require email_verified=true
        account       require firebase.sign_in_provider in {password, google.com}
        tier          require level∋3
        """)

    private func record(_ route: String) -> Record {
        Record(JSONObject([("annotations", .object(JSONObject([("route", .object(JSONObject([("name", .string(route))])))])))]))
    }

    private func claims(_ json: String) -> JSONObject { try! JSONReader.parse(json).object! }

    func test_optional_applies_only_to_its_route() {
        XCTAssertTrue(rules.isOptional(record("subscription")))
        XCTAssertFalse(rules.isOptional(record("admin")))
        XCTAssertFalse(rules.isOptional(Record(JSONObject())))
    }

    func test_every_requirement_of_a_route_must_hold_and_the_first_unmet_is_named() {
        XCTAssertNil(rules.unmet(record("admin"), claims(#"{"roles":["user","admin"],"email_verified":true}"#)))
        XCTAssertEqual(rules.unmet(record("admin"), claims(#"{"roles":["user"],"email_verified":true}"#))?.text, "roles contains admin")
        XCTAssertEqual(rules.unmet(record("admin"), claims(#"{"roles":["admin"],"email_verified":"true"}"#))?.text,
                       "email_verified=true", "a string is not the boolean")
        XCTAssertEqual(rules.unmet(record("admin"), claims(#"{"roles":"admin","email_verified":true}"#))?.text,
                       "roles contains admin", "contains needs an array")
        XCTAssertNil(rules.unmet(record("other"), claims("{}")), "a route without rules")
    }

    func test_nested_claims_and_sets() {
        XCTAssertNil(rules.unmet(record("account"), claims(#"{"firebase":{"sign_in_provider":"google.com"}}"#)))
        XCTAssertNil(rules.unmet(record("account"), claims(#"{"firebase.sign_in_provider":"password"}"#)))
        XCTAssertNotNil(rules.unmet(record("account"), claims(#"{"firebase":{"sign_in_provider":"anonymous"}}"#)))
        XCTAssertNotNil(rules.unmet(record("account"), claims(#"{"firebase":"password"}"#)))
        XCTAssertNil(rules.unmet(record("tier"), claims(#"{"level":[1,3]}"#)))
        XCTAssertNotNil(rules.unmet(record("tier"), claims(#"{"level":["3"]}"#)))
    }

    func test_bad_lines_are_refused_with_their_line_number() {
        for (text, line) in [("a require", 1), ("a optional now", 1), ("\na maybe x=1", 2), ("* optional", 1),
                             ("a require roles in admin", 1), ("a require x=", 1), ("a require x y", 1), ("a require .x=1", 1)] {
            XCTAssertThrowsError(try AccessRules.parse(text), text) { e in XCTAssertEqual((e as! ConfigError).line, line, text) }
        }
    }
}

/// The access rules through the gate, on the general path (the system tests take the raw one).
extension GateTests {
    func accessGate(_ text: String) -> VerifyJWTFilter {
        var settings = GateSettings()
        settings.access = try! AccessRules.parse(text)
        return gate(settings)
    }

    func testAnOptionalRoutePassesWithoutATokenAndStillStripsSpoofedIdentity() {
        let out = run(accessGate("subscription optional"),
                      request(route: "subscription", headers: [("host", "h"), ("x-authenticated-uid", "mallory")]))
        XCTAssertFalse(out.isResponse)
        XCTAssertEqual(out.headers, [Header("host", "h")])
        XCTAssertNil(out.annotation("auth"))
    }

    func testAnOptionalRouteStillVerifiesATokenItIsGiven() {
        let g = accessGate("subscription optional")
        let valid = run(g, request(route: "subscription", headers: [("authorization", "Bearer " + validToken)]))
        XCTAssertEqual(valid.annotation("auth"), .object(JSONObject([("uid", "user-1")])))
        let expired = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["exp": "\(Mint.now - 3600)"]))
        XCTAssertEqual(run(g, request(route: "subscription", headers: [("authorization", "Bearer " + expired)])).status, 401)
        XCTAssertEqual(run(g, request(route: "other", headers: [])).status, 401, "only the named route is optional")
    }

    func testAnUnmetRequirementIs403ForbiddenNamingTheRuleNotTheValue() {
        let g = accessGate("admin require roles contains admin")
        let user = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["roles": #"["secret-role-name"]"#]))
        let out = run(g, request(route: "admin", headers: [("authorization", "Bearer " + user)]))
        XCTAssertEqual(out.status, 403)
        XCTAssertEqual(body(out), JSONObject([("error", "forbidden"), ("message", "this route requires roles contains admin")]))
        XCTAssertFalse(out.text.contains("secret-role-name"))
        let admin = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["roles": #"["admin"]"#]))
        XCTAssertFalse(run(g, request(route: "admin", headers: [("authorization", "Bearer " + admin)])).isResponse)
    }
}
