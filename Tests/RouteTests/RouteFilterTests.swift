import XCTest
import Records
@testable import RouteTool

/// What the filter does to records: annotations, fixed answers and error responses.
final class RouteFilterTests: XCTestCase {
    let table = try! RouteTable.parse("""
        GET,HEAD  /healthz         healthz   respond 200 {"status":"ok"}
        GET       /v1/users/:id    user
        GONE      /v1/profile      removed=2025-06-01 replacement=/v1/subscription
        GONE      /v1/old          removed=2024-01-01
        """)

    func run(_ json: String, auditGone: Bool = false) throws -> Record {
        var record = try Record.parse(json)
        try RouteFilter(table: table, auditGone: auditGone).handle(&record)
        return record
    }

    func body(_ r: Record) throws -> JSON { try JSONReader.parse(r.body) }

    func testRoutedRequestGetsRouteAnnotationAndKeepsEverythingElse() throws {
        let r = try run(#"{"id":"1","method":"GET","path":"/v1/users/42","x-extra":[1],"annotations":{"auth":{"uid":"u"}}}"#)
        XCTAssertNil(r.status)
        XCTAssertEqual(r.annotation("route"), ["name": "user", "params": ["id": "42"]])
        XCTAssertEqual(r.annotation("auth"), ["uid": "u"])
        XCTAssertEqual(r["x-extra"], [1])
        XCTAssertEqual(r.path, "/v1/users/42")
    }

    func testFixedAnswer() throws {
        let r = try run(#"{"id":"1","method":"GET","path":"/healthz","version":"HTTP/1.1","keep_alive":true}"#)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(try body(r), ["status": "ok"])
        XCTAssertEqual(r.header("content-type"), "application/json")
        XCTAssertEqual(r.keepAlive, true)
        XCTAssertEqual(r.id, "1")
    }

    func testFixedAnswerToHeadKeepsMethodSoTheEncoderDropsTheBody() throws {
        let r = try run(#"{"id":"1","method":"HEAD","path":"/healthz"}"#)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.method, "HEAD")
    }

    func testNotFoundIsJSON404() throws {
        let r = try run(#"{"id":"1","method":"GET","path":"/nope"}"#)
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual(try body(r), ["error": "not_found", "message": "no route for /nope"])
    }

    func testWrongMethodIs405WithAllowHeader() throws {
        let r = try run(#"{"id":"1","method":"POST","path":"/healthz"}"#)
        XCTAssertEqual(r.status, 405)
        XCTAssertEqual(r.header("allow"), "GET, HEAD, OPTIONS")
        XCTAssertEqual(try body(r)["error"], "method_not_allowed")
    }

    func testOptionsIs204WithAllow() throws {
        let r = try run(#"{"id":"1","method":"OPTIONS","path":"/v1/users/1"}"#)
        XCTAssertEqual(r.status, 204)
        XCTAssertEqual(r.header("allow"), "GET, HEAD, OPTIONS")
        XCTAssertEqual(r.body, [])
    }

    func testGoneIs410WithDateAndReplacement() throws {
        let r = try run(#"{"id":"1","method":"GET","path":"/v1/profile"}"#)
        XCTAssertEqual(r.status, 410)
        let b = try body(r)
        XCTAssertEqual(b["error"], "gone")
        XCTAssertEqual(b["removed_at"], "2025-06-01")
        XCTAssertEqual(b["replacement"], "/v1/subscription")
        XCTAssertEqual(r.header("link"), "</v1/subscription>; rel=\"successor-version\"")
        XCTAssertNil(r.annotation("audit"))
    }

    func testGoneWithoutReplacementSaysNull() throws {
        let r = try run(#"{"id":"1","method":"GET","path":"/v1/old"}"#)
        XCTAssertEqual(try body(r)["replacement"], .null)
        XCTAssertNil(r.header("link"))
    }

    func testAuditGoneAnnotates410() throws {
        let r = try run(#"{"id":"1","method":"DELETE","path":"/v1/profile"}"#, auditGone: true)
        XCTAssertEqual(r.annotation("audit"), ["kind": "gone", "path": "/v1/profile", "outcome": "gone"])
    }

    func testAuditGoneLeavesOtherAnswersAlone() throws {
        XCTAssertNil(try run(#"{"id":"1","method":"GET","path":"/nope"}"#, auditGone: true).annotation("audit"))
    }

    func testRefusedPathIs400BadPath() throws {
        let r = try run(#"{"id":"1","method":"GET","path":"/v1/users/a%2Fb"}"#)
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(try body(r)["error"], "bad_path")
    }

    func testRecordWithoutMethodOrPathIsRefused() throws {
        var record = try Record.parse(#"{"id":"1","path":"/healthz"}"#)
        XCTAssertThrowsError(try RouteFilter(table: table).handle(&record)) { error in
            XCTAssertEqual((error as? FilterError)?.status, 400)
        }
    }

    func testLongPathsAreClippedInMessages() throws {
        let long = "/" + String(repeating: "a", count: 5000)
        let r = try run(#"{"id":"1","method":"GET","path":"\#(long)"}"#)
        XCTAssertLessThan(r.body.count, 300)
    }
}
