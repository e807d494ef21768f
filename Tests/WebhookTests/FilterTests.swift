import XCTest
import Foundation
import Records
import KV
@testable import apply_webhook

/// Filter mode: records in, records out, as the pipeline runs it.
final class FilterTests: XCTestCase {
    let secret = "whsec_filter_test"
    let now = 1_700_000_000
    var store: MemoryStore!
    var filter: ApplyWebhookFilter!

    override func setUp() {
        store = MemoryStore()
        let processor = WebhookProcessor(secrets: [secret], tolerance: 300, plans: testPlans,
                                         store: StoreHandle(store), now: { [now] in now }, log: { _ in })
        filter = ApplyWebhookFilter(routeName: "stripe-webhook", processor: processor)
    }

    func record(body: [UInt8], signature: String?, route: String = "stripe-webhook") -> Record {
        var r = Record(JSONObject([("id", "7"), ("method", "POST"), ("path", "/v1/webhooks/stripe"), ("query", ""),
                                   ("version", "HTTP/1.1"), ("headers", .array([])), ("keep_alive", true)]))
        if let signature { r.addHeader("stripe-signature", signature) }
        r.body = body
        r.setAnnotation(AnnotationKey.route, ["name": .string(route), "params": [:]])
        return r
    }

    func signed(_ body: [UInt8]) -> Record {
        record(body: body, signature: StripeSignature.header(payload: body, secret: secret, timestamp: now - 5))
    }

    func run(_ r: Record) -> Record {
        var r = r
        filter.handle(&r)
        return r
    }

    func body(_ r: Record) -> JSON? { try? JSONReader.parse(r.body) }

    func testOtherRoutesPassThroughUntouched() {
        let r = record(body: Array("{}".utf8), signature: nil, route: "subscription")
        XCTAssertEqual(run(r), r)
    }

    func testAValidDeliveryIsAppliedAndAcknowledged() throws {
        let event = Events.checkout("evt_1", created: now).serialized()
        let out = run(signed(event))
        XCTAssertEqual(out.status, 200)
        XCTAssertEqual(body(out), ["received": true])
        XCTAssertEqual(out["id"], "7")
        XCTAssertEqual(out.header("content-type"), "application/json")
        let audit = try XCTUnwrap(out.annotation(AnnotationKey.audit))
        XCTAssertEqual(audit, ["kind": "stripe", "event_id": "evt_1", "event_type": "checkout.session.completed",
                               "uid": "user-1", "outcome": "applied", "before": nil, "after": "active"])
        XCTAssertEqual(out.annotation(AnnotationKey.route)?["name"], "stripe-webhook")
        XCTAssertEqual(store.state("user-1")?.status, .active)
    }

    func testABadSignatureIs400NamingTheCheck() throws {
        let event = Events.checkout("evt_1", created: now).serialized()
        let out = run(record(body: event, signature: "t=\(now),v1=00"))
        XCTAssertEqual(out.status, 400)
        XCTAssertEqual(body(out), ["error": "invalid_signature",
                                   "message": "No signatures found matching the expected signature for payload",
                                   "check": "no_matching_signature"])
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["outcome"], "invalid")
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["reason"], "No signatures found matching the expected signature for payload")
        XCTAssertNil(store.state("user-1"))
    }

    func testAMissingSignatureIs400() {
        let out = run(record(body: Array("{}".utf8), signature: nil))
        XCTAssertEqual(out.status, 400)
        XCTAssertEqual(body(out)?["check"], "missing_header")
    }

    func testAnOldSignatureIsOutsideTheTolerance() {
        let event = Events.checkout("evt_1", created: now).serialized()
        let out = run(record(body: event, signature: StripeSignature.header(payload: event, secret: secret, timestamp: now - 301)))
        XCTAssertEqual(out.status, 400)
        XCTAssertEqual(body(out)?["check"], "timestamp_outside_tolerance")
    }

    func testAValidSignatureOverInvalidJSONIsAParseError() {
        let out = run(signed(Array("this is not valid JSON".utf8)))
        XCTAssertEqual(out.status, 400)
        XCTAssertEqual(body(out)?["error"], "invalid_payload")
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["outcome"], "invalid")
    }

    // Any JSON Stripe signs is acknowledged: a 4xx would only make it retry for three days.
    func testAValidSignatureOverJSONThatIsNotASnapshotEventIsAcknowledgedAndIgnored() {
        let out = run(signed(Array("{\"id\":\"evt_1\"}".utf8)))
        XCTAssertEqual(out.status, 200)
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["outcome"], "ignored")
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["event_id"], "evt_1")
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["reason"], "not a snapshot event: event evt_1 has no type")
    }

    func testAThinV2EventIsAcknowledgedAndIgnored() {
        // The shape of Stripe's event notifications (thin events): no data.object, an ISO time.
        let thin: JSON = ["id": "evt_test_65R9Ijk8ld0Swe2rSyF16RlVb2AWSQ5DBJN2zmGz5uG8sX", "object": "v2.core.event",
                          "type": "v1.billing.meter.error_report_triggered", "livemode": false,
                          "created": "2024-09-17T06:20:52.246Z",
                          "related_object": ["id": "mtr_test_61R9IiFC", "type": "billing.meter",
                                             "url": "/v1/billing/meters/mtr_test_61R9IiFC"]]
        let out = run(signed(thin.serialized()))
        XCTAssertEqual(out.status, 200)
        let audit = out.annotation(AnnotationKey.audit)
        XCTAssertEqual(audit?["outcome"], "ignored")
        XCTAssertEqual(audit?["event_type"], "v1.billing.meter.error_report_triggered")
        XCTAssertEqual(audit?["reason"]?.string?.contains("v2.core.event"), true)
    }

    func testUnknownEventTypesAreAcknowledged() {
        let out = run(signed(Events.event("evt_9", "charge.refunded", now, ["id": "ch_1"]).serialized()))
        XCTAssertEqual(out.status, 200)
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["outcome"], "ignored")
    }

    func testAOneMebibytePayloadIsApplied() throws {
        // Large metadata is how real payloads get big; the signature covers every byte.
        let filler = String(repeating: "x", count: 1 << 20)
        let event = Events.subscription("evt_big", created: now, status: "active", periodEnd: now + 86400, uid: "big")
        guard case .object(var e) = event, case .object(var d)? = e["data"], case .object(var s)? = d["object"] else {
            return XCTFail("event shape")
        }
        s["metadata"] = ["uid": "big", "notes": .string(filler)]
        d["object"] = .object(s); e["data"] = .object(d)
        let bytes = JSON.object(e).serialized()
        XCTAssertGreaterThan(bytes.count, 1 << 20)
        let out = run(signed(bytes))
        XCTAssertEqual(out.status, 200)
        XCTAssertEqual(store.state("big")?.status, .active)
    }

    func testStoreUnavailableIs503SoStripeRetries() {
        store.unavailable = true
        let out = run(signed(Events.checkout("evt_1", created: now).serialized()))
        XCTAssertEqual(out.status, 503)
        XCTAssertEqual(body(out)?["error"], "store_unavailable")
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["outcome"], "error")
        XCTAssertEqual(out.annotation(AnnotationKey.audit)?["event_id"], "evt_1")
        store.unavailable = false
        XCTAssertEqual(run(signed(Events.checkout("evt_1", created: now).serialized())).status, 200)
    }

    func testACorruptBase64BodyIs400() {
        var r = record(body: [], signature: "t=1,v1=00")
        r["body"] = nil
        r["body_base64"] = "!!!"
        XCTAssertEqual(run(r).status, 400)
    }

    func testTheStoreIsOpenedLazilyAndRetried() {
        var attempts = 0
        let handle = StoreHandle(open: { () throws(KVError) -> any KVStore in
            attempts += 1
            if attempts == 1 { throw KVError.unavailable("not mounted yet") }
            return self.store
        })
        let processor = WebhookProcessor(secrets: [secret], tolerance: 300, plans: testPlans, store: handle,
                                         now: { [now] in now }, log: { _ in })
        filter = ApplyWebhookFilter(routeName: "stripe-webhook", processor: processor)
        XCTAssertEqual(run(signed(Events.checkout("evt_1", created: now).serialized())).status, 503)
        XCTAssertEqual(run(signed(Events.checkout("evt_1", created: now).serialized())).status, 200)
    }
}

final class PlansTests: XCTestCase {
    func testParsesMappingsAndComments() throws {
        let plans = try Plans.parse("# header\nprice_123 pro  # monthly\n\n  pro_yearly\tpro\nbasic_monthly basic\r\n")
        XCTAssertEqual(plans.tier(priceID: "price_123", lookupKey: nil), "pro")
        XCTAssertEqual(plans.tier(priceID: "price_x", lookupKey: "pro_yearly"), "pro")
        XCTAssertEqual(plans.tier(priceID: nil, lookupKey: "basic_monthly"), "basic")
        XCTAssertNil(plans.tier(priceID: "price_x", lookupKey: nil))
    }

    func testPriceIdWinsOverLookupKey() throws {
        let plans = try Plans.parse("price_1 pro\nlegacy basic\n")
        XCTAssertEqual(plans.tier(priceID: "price_1", lookupKey: "legacy"), "pro")
    }

    func testRefusesBadLinesAndConflicts() {
        XCTAssertThrowsError(try Plans.parse("price_1\n"))
        XCTAssertThrowsError(try Plans.parse("price_1 pro extra\n"))
        XCTAssertThrowsError(try Plans.parse("price_1 pro\nprice_1 basic\n"))
    }

    func testTheDefaultPlansFileParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("pipelines/plans").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let plans = try Plans.parse(text)
        XCTAssertEqual(plans.tier(priceID: nil, lookupKey: "pro_monthly"), "pro")
    }
}
