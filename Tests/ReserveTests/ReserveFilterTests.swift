import XCTest
@testable import Records
@testable import reserve

/// The HTTP answers and audit annotations, on records as the pipeline passes them.
final class ReserveFilterTests: XCTestCase {
    private func run(_ f: ReserveFilter, _ r: Record) -> Record {
        var r = r
        f.handle(&r)
        return r
    }

    private func audit(_ r: Record) -> JSON? { r.annotation(AnnotationKey.audit) }

    func testSubmitAnswers202AndAuditsTheEvent() throws {
        let h = Harness()
        let r = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"Hello","email":"Ann@Example.com"}"#))
        XCTAssertEqual(r.status, 202)
        XCTAssertEqual(r.header("content-type"), "application/json")
        XCTAssertEqual(bodyJSON(r), ["status": "verification_sent"])
        XCTAssertEqual(audit(r), ["kind": "reservation", "action": "submit", "outcome": "verification_sent",
                                  "subdomain": "hello", "email": "ann@example.com"])
        XCTAssertEqual(r.id, "1")
        XCTAssertEqual(r.keepAlive, true)
    }

    func testFormEncodedSubmitIsAccepted() {
        let h = Harness()
        var req = postJSON("/v1/reservations", "subdomain=form-site&email=a%40b.co")
        req.setHeader("content-type", "application/x-www-form-urlencoded")
        XCTAssertEqual(run(h.filter(), req).status, 202)
    }

    func testInvalidFieldIs422NamingIt() {
        let h = Harness()
        let r = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"bad_name","email":"a@b.co"}"#))
        XCTAssertEqual(r.status, 422)
        XCTAssertEqual(bodyJSON(r)?["error"], "invalid_field")
        XCTAssertEqual(bodyJSON(r)?["field"], "subdomain")
        XCTAssertEqual(audit(r)?["outcome"], "invalid")
        XCTAssertEqual(audit(r)?["field"], "subdomain")
        let e = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"good","email":"a b@c.co"}"#))
        XCTAssertEqual(e.status, 422)
        XCTAssertEqual(bodyJSON(e)?["field"], "email")
    }

    func testBlockedNameIs403WithAReason() {
        let h = Harness()
        let exact = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"www","email":"a@b.co"}"#))
        XCTAssertEqual(exact.status, 403)
        XCTAssertEqual(bodyJSON(exact)?["error"], "blocked")
        XCTAssertEqual(bodyJSON(exact)?["reason"], "the subdomain is reserved")
        let pattern = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"cloudflare-fan","email":"a@b.co"}"#))
        XCTAssertEqual(pattern.status, 403)
        XCTAssertEqual(bodyJSON(pattern)?["reason"], "the subdomain matches a blocked pattern")
        XCTAssertEqual(audit(pattern)?["outcome"], "blocked")
        XCTAssertEqual(audit(pattern)?["rule"], "*cloudflare*")
    }

    func testTakenIs409NamingWhich() throws {
        let h = Harness()
        let t = try h.submitted("mine", "ann@example.com")
        XCTAssertEqual(run(h.filter(), postJSON("/v1/reservations/confirm", #"{"token":"\#(t)"}"#)).status, 201)
        let sub = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"mine","email":"bob@example.com"}"#))
        XCTAssertEqual(sub.status, 409)
        XCTAssertEqual(bodyJSON(sub)?["field"], "subdomain")
        let mail = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"yours","email":"ann@example.com"}"#))
        XCTAssertEqual(mail.status, 409)
        XCTAssertEqual(bodyJSON(mail)?["field"], "email")
        XCTAssertEqual(audit(mail)?["outcome"], "taken")
    }

    func testConfirmAnswers201ThenTheTokenIs410() throws {
        let h = Harness()
        let t = try h.submitted("yes", "ann@example.com")
        let ok = run(h.filter(), postJSON("/v1/reservations/confirm", #"{"token":"\#(t)"}"#))
        XCTAssertEqual(ok.status, 201)
        XCTAssertEqual(bodyJSON(ok), ["status": "confirmed", "subdomain": "yes", "email": "ann@example.com"])
        XCTAssertEqual(audit(ok), ["kind": "reservation", "action": "confirm", "outcome": "confirmed",
                                   "subdomain": "yes", "email": "ann@example.com"])
        let again = run(h.filter(), postJSON("/v1/reservations/confirm", #"{"token":"\#(t)"}"#))
        XCTAssertEqual(again.status, 410)
        XCTAssertEqual(bodyJSON(again)?["error"], "token_used")
        XCTAssertEqual(audit(again)?["outcome"], "token_used")
    }

    func testExpiredTokenIs410Expired() throws {
        let h = Harness(ttl: 60)
        let t = try h.submitted("slow", "ann@example.com")
        h.clock.advance(61)
        let r = run(h.filter(), postJSON("/v1/reservations/confirm", #"{"token":"\#(t)"}"#))
        XCTAssertEqual(r.status, 410)
        XCTAssertEqual(bodyJSON(r)?["error"], "token_expired")
    }

    func testMailFailureIs503() {
        let h = Harness()
        h.mailer.failWith = "exit 75"
        let r = run(h.filter(), postJSON("/v1/reservations", #"{"subdomain":"abc","email":"a@b.co"}"#))
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(bodyJSON(r)?["error"], "mail_unavailable")
        XCTAssertEqual(audit(r)?["outcome"], "mail_failed")
    }

    func testUnreadableBodiesAre400And415AndAudited() {
        let h = Harness()
        let bad = run(h.filter(), postJSON("/v1/reservations", "{nope"))
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(audit(bad), ["kind": "reservation", "action": "submit", "outcome": "bad_request"])
        var plain = postJSON("/v1/reservations/confirm", "hi")
        plain.setHeader("content-type", "text/plain")
        let unsupported = run(h.filter(), plain)
        XCTAssertEqual(unsupported.status, 415)
        XCTAssertEqual(audit(unsupported), ["kind": "reservation", "action": "confirm", "outcome": "unsupported_media_type"])
    }

    func testPageIsServedWithHeadersThatKeepTheTokenPrivate() {
        let h = Harness()
        let r = run(h.filter(), rec(["id": "1", "method": "GET", "path": "/", "query": "token=abc", "headers": [],
                                        "body": "", "keep_alive": true]))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("content-type"), "text/html; charset=utf-8")
        XCTAssertEqual(r.header("referrer-policy"), "no-referrer")
        XCTAssertEqual(r.header("cache-control"), "no-store")
        XCTAssertEqual(String(decoding: r.body, as: UTF8.self), "<html>page</html>")
    }

    func testRouteAnnotationDecidesAndOtherRoutesPassThrough() {
        let h = Harness()
        var routed = postJSON("/anything", #"{"subdomain":"abc","email":"a@b.co"}"#,
                              annotations: ["route": ["name": "reserve-submit", "params": [:]]])
        routed = run(h.filter(), routed)
        XCTAssertEqual(routed.status, 202)
        let other = postJSON("/v1/reservations", "{}", annotations: ["route": ["name": "healthz", "params": [:]]])
        XCTAssertEqual(run(h.filter(), other), other)
        let unrouted = rec(["id": "2", "method": "GET", "path": "/elsewhere", "query": "", "headers": [], "body": ""])
        XCTAssertEqual(run(h.filter(), unrouted), unrouted)
    }

    // MARK: Listing

    private func listRequest(uid: String?, header: String? = nil, query: String = "") -> Record {
        var r = rec(["id": "9", "method": "GET", "path": "/v1/reservations", "query": .string(query),
                        "headers": [], "body": "", "keep_alive": true])
        if let uid { r.setAnnotation(AnnotationKey.auth, ["uid": .string(uid)]) }
        if let header { r.setHeader("x-authenticated-uid", header) }
        return r
    }

    func testListingWithoutAUidIs401() {
        let h = Harness()
        let r = run(h.filter(), listRequest(uid: nil))
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(r.header("www-authenticate"), "Bearer")
        XCTAssertEqual(audit(r)?["outcome"], "unauthenticated")
    }

    func testAUidHeaderAloneIsNotTrusted() {
        let h = Harness()
        XCTAssertEqual(run(h.filter(), listRequest(uid: nil, header: "root-uid")).status, 401)
        XCTAssertEqual(run(h.filter(), listRequest(uid: "someone", header: "root-uid")).status, 401)
    }

    func testListingByANonAdminIs403() {
        let h = Harness()
        let r = run(h.filter(), listRequest(uid: "someone", header: "someone"))
        XCTAssertEqual(r.status, 403)
        XCTAssertEqual(audit(r)?["outcome"], "denied")
    }

    func testAdminListsPageByPage() throws {
        let h = Harness()
        for name in ["c-site", "a-site", "b-site"] {
            let t = try h.submitted(name, "\(name)@example.com")
            XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        }
        let first = run(h.filter(), listRequest(uid: "root-uid", header: "root-uid", query: "limit=2"))
        XCTAssertEqual(first.status, 200)
        let body = try XCTUnwrap(bodyJSON(first))
        XCTAssertEqual(body["reservations"]?.array?.compactMap { $0["subdomain"]?.string }, ["a-site", "b-site"])
        let cursor = try XCTUnwrap(body["next_cursor"]?.string)
        let second = try XCTUnwrap(bodyJSON(run(h.filter(), listRequest(uid: "root-uid", query: "limit=2&cursor=\(cursor)"))))
        XCTAssertEqual(second["reservations"]?.array?.compactMap { $0["email"]?.string }, ["c-site@example.com"])
        XCTAssertEqual(second["next_cursor"], .null)
    }

    func testBadLimitAndBadCursorAre400() {
        let h = Harness()
        XCTAssertEqual(run(h.filter(), listRequest(uid: "root-uid", query: "limit=0")).status, 400)
        XCTAssertEqual(run(h.filter(), listRequest(uid: "root-uid", query: "limit=x")).status, 400)
        XCTAssertEqual(run(h.filter(), listRequest(uid: "root-uid", query: "cursor=zz")).status, 400)
    }

    func testAdminListsTakeOneUidPerLineOrCommaSeparated() {
        XCTAssertEqual(ReserveFilter.uids("# admins\nalice\n\n bob  # on call\r\ndave\r\n"), ["alice", "bob", "dave"])
        XCTAssertEqual(ReserveFilter.uids("alice, bob,,carol"), ["alice", "bob", "carol"])
    }

    func testUnavailableStoreIs503ButThePageStillWorks() {
        let f = ReserveFilter(reservations: nil, storeProblem: "disk gone", page: Array("p".utf8), admins: [])
        var r = postJSON("/v1/reservations", #"{"subdomain":"abc","email":"a@b.co"}"#)
        f.handle(&r)
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(audit(r)?["outcome"], "unavailable")
        var page = rec(["id": "1", "method": "GET", "path": "/", "query": "", "headers": [], "body": ""])
        f.handle(&page)
        XCTAssertEqual(page.status, 200)
    }
}
