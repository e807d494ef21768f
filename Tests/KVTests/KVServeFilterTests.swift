import XCTest
import Foundation
import Records
import KV
import Subscriptions
@testable import KVTool

final class KVServeFilterTests: XCTestCase {
    let now = 1_800_000_000
    var store: DirectoryStore!

    override func setUpWithError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvread-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        store = try DirectoryStore(path: dir)
    }

    func reader(route: String = "subscription", store: KVServeFilter.StoreOpening? = nil) -> KVServeFilter {
        let now = self.now
        return KVServeFilter(route: route, grace: 0, store: store ?? .success(self.store), now: { now })
    }

    func request(method: String = "GET", uid: String? = "u1", route: String? = "subscription") -> Record {
        let fields: JSON = ["id": "1", "method": .string(method), "path": "/v1/subscription", "query": "",
                            "version": "HTTP/1.1", "headers": [["host", "x"]], "body": "", "keep_alive": true]
        var r = Record(fields.object!)
        if let uid { r.addHeader("x-authenticated-uid", uid) }
        if let route { r.setAnnotation(AnnotationKey.route, ["name": JSON.string(route), "params": [:]] as JSON) }
        return r
    }

    func answer(_ r: Record, _ reader: KVServeFilter? = nil) -> (Int?, JSON?, Record) {
        var r = r
        (reader ?? self.reader()).handle(&r)
        return (r.status, try? JSONReader.parse(r.body), r)
    }

    func save(_ s: SubscriptionState) throws {
        try store.put(SubscriptionState.key(uid: s.uid), s.json, metadata: nil, expiresAt: nil)
    }

    func testUserWithoutStateGetsStatusNone() {
        let (status, body, r) = answer(request())
        XCTAssertEqual(status, 200)
        XCTAssertEqual(body?["status"], "none")
        XCTAssertEqual(body?["uid"], "u1")
        XCTAssertEqual(r.header("cache-control"), "no-store")
        XCTAssertEqual(r.header("content-type"), "application/json")
        XCTAssertEqual(r.annotation(AnnotationKey.route)?["name"], "subscription", "annotations are kept")
    }

    func testActiveSubscriptionIsReadFromItsKey() throws {
        try save(SubscriptionState(uid: "u1", status: .active, plan: "pro", currentPeriodEnd: now + 86400))
        let (status, body, _) = answer(request())
        XCTAssertEqual(status, 200)
        XCTAssertEqual(body?["status"], "active")
        XCTAssertEqual(body?["plan"], "pro")
        XCTAssertEqual(body?["expires_at"], JSON(now + 86400))
    }

    func testEndedPeriodReadsAsExpiredWithoutAnyEvent() throws {
        try save(SubscriptionState(uid: "u1", status: .active, plan: "pro", currentPeriodEnd: now - 1))
        XCTAssertEqual(answer(request()).1?["status"], "expired")
    }

    func testHeadIsAnsweredLikeGet() throws {
        try save(SubscriptionState(uid: "u1", status: .trial, trialEnd: now + 10))
        let (status, body, _) = answer(request(method: "HEAD"))
        XCTAssertEqual(status, 200)
        XCTAssertEqual(body?["status"], "trial")
    }

    func testMissingUidIs401() {
        let (status, body, r) = answer(request(uid: nil))
        XCTAssertEqual(status, 401)
        XCTAssertEqual(body?["error"], "unauthorized")
        XCTAssertEqual(r.header("www-authenticate"), "Bearer")
        XCTAssertEqual(answer(request(uid: "")).0, 401)
    }

    func testConflictingUidsAre401() {
        var r = request(uid: "u1")
        r.addHeader("x-authenticated-uid", "u2")
        XCTAssertEqual(answer(r).0, 401)
    }

    func testOtherRoutesAndResponsesPassUntouched() {
        let other = request(route: "webhook")
        XCTAssertEqual(answer(other).2, other)
        let unrouted = request(route: nil)
        XCTAssertEqual(answer(unrouted).2, unrouted)
        XCTAssertEqual(answer(request(), reader(route: "mine")).2, request(), "route name is configurable")
    }

    func testOtherMethodsOnTheRouteAre405() {
        let (status, _, r) = answer(request(method: "POST"))
        XCTAssertEqual(status, 405)
        XCTAssertEqual(r.header("allow"), "GET, HEAD")
    }

    func testUnavailableStoreIs503() {
        let (status, body, r) = answer(request(), reader(store: .failure(.unavailable("connection refused"))))
        XCTAssertEqual(status, 503)
        XCTAssertEqual(body?["error"], "unavailable")
        XCTAssertEqual(r.header("retry-after"), "1")
    }

    func testUnreadableStateIs500() throws {
        try store.put("sub/u1", ["uid": "u1", "status": "weird"], metadata: nil, expiresAt: nil)
        XCTAssertEqual(answer(request()).0, 500)
    }
}
