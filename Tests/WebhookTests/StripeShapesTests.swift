import XCTest
import Records
import Crypto
import KV
import Subscriptions
@testable import apply_webhook

/// Ids at Stripe's limits and the shapes real Stripe payloads take (issue 19, items 2, 3).
final class StripeShapesTests: XCTestCase {
    let t0 = 1_700_000_000
    let month = 2_592_000
    var store: MemoryStore!
    var applier: WebhookApplier!

    override func setUp() {
        store = MemoryStore()
        (applier, _) = makeApplier(store)
    }

    @discardableResult
    func apply(_ json: JSON) throws -> Outcome { try applier.apply(Events.parsed(json)) }

    /// Sets `path` (keys under data.object) in an event.
    func setting(_ event: JSON, _ path: [String], _ value: JSON) -> JSON {
        func set(_ v: JSON, _ p: ArraySlice<String>) -> JSON {
            guard let k = p.first else { return value }
            var o = v.object ?? JSONObject()
            o[k] = set(o[k] ?? .null, p.dropFirst())
            return .object(o)
        }
        return set(event, ["data", "object"] + path)
    }

    // MARK: Ids at the limits (item 2)

    func testA200EmojiClientReferenceIDIsStoredUnderItsDigest() throws {
        let uid = String(repeating: "🦄", count: 200)   // 800 bytes: Stripe allows 200 characters
        let o = try apply(Events.checkout("evt_1", created: t0, uid: uid))
        XCTAssertEqual(o.kind, .applied)
        let key = SubscriptionState.key(uid: uid)
        XCTAssertEqual(key, "sub/#sha256:" + Hex.encode(Digest.sha256(Array(uid.utf8))))
        XCTAssertEqual(store.state(uid)?.uid, uid, "the document keeps the whole uid")
        XCTAssertEqual(store.entries["customer/cus_1"]?.value, ["uid": .string(uid)])
        XCTAssertTrue(store.entries.keys.allSatisfy { $0.utf8.count <= 512 })
    }

    func testA500CharacterMetadataUIDIsAppliedAndItsLaterEventsFindIt() throws {
        let uid = String(repeating: "u", count: 500)
        XCTAssertEqual(try apply(Events.subscription("evt_1", created: t0, status: "active", periodEnd: t0 + month, uid: uid)).kind, .applied)
        XCTAssertEqual(try apply(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + 10, periodEnd: t0 + month)).kind, .applied)
        XCTAssertEqual(store.state(uid)?.status, .past_due)
    }

    func testShortIDsStayVerbatimAndOnlyTheMarkerPrefixIsHashedBelowTheLimit() {
        XCTAssertEqual(SubscriptionState.key(uid: "user-1"), "sub/user-1")
        XCTAssertEqual(SubscriptionState.key(uid: String(repeating: "a", count: 508)), "sub/" + String(repeating: "a", count: 508))
        XCTAssertTrue(SubscriptionState.key(uid: String(repeating: "a", count: 509)).hasPrefix("sub/#sha256:"))
        // A uid spelled like a digest cannot take the place of the user it stands for.
        let long = String(repeating: "x", count: 600)
        let spoof = String(SubscriptionState.key(uid: long).dropFirst(4))
        XCTAssertNotEqual(SubscriptionState.key(uid: spoof), SubscriptionState.key(uid: long))
    }

    func testAnEventThatCannotBeStoredIsRejectedWith200NotRetriedForever() throws {
        store.beforeWrite = { key throws(KVError) in
            if key.hasPrefix("sub/") { throw KVError.invalidKey("key longer than 512 bytes (900)") }
        }
        let processor = WebhookProcessor(secrets: [], tolerance: 0, plans: testPlans, store: StoreHandle(store), log: { _ in })
        let response = processor.apply(Events.parsed(Events.checkout("evt_1", created: t0)))
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.outcome.kind, .rejected)
        XCTAssertEqual(response.outcome.audit["outcome"], "rejected")
        XCTAssertEqual(response.outcome.reason, "cannot be stored: invalid key: key longer than 512 bytes (900)")
    }

    // MARK: invoice.payment_succeeded

    func testPaymentSucceededIsAppliedLikePaidAndOnlyOncePerInvoice() throws {
        try apply(Events.checkout("evt_c", created: t0))
        try apply(Events.invoice("evt_f", "invoice.payment_failed", created: t0 + month, periodEnd: t0 + 2 * month))
        let succeeded = try apply(Events.invoice("in_x", "invoice.payment_succeeded", created: t0 + month + 60, periodEnd: t0 + 2 * month))
        XCTAssertEqual(succeeded.kind, .applied)
        XCTAssertEqual(succeeded.after, .active)
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, t0 + 2 * month)
        // The same invoice announced again as invoice.paid (the builder names it in_<id>).
        let paid = try apply(setting(Events.invoice("evt_p", "invoice.paid", created: t0 + month + 60, periodEnd: t0 + 2 * month),
                                     ["id"], "in_in_x"))
        XCTAssertEqual(paid.kind, .duplicate)
        XCTAssertEqual(paid.reason?.contains("in_in_x"), true)
        XCTAssertEqual(store.entries["event/evt_p"]?.value["outcome"], "duplicate")
    }

    // MARK: Plans (item 3)

    func subscriptionWith(price: JSON) -> JSON {
        setting(Events.subscription("evt_1", created: t0, status: "trialing", periodEnd: t0 + month, trialEnd: t0 + month, uid: "u"),
                ["items", "data"], [["id": "si_1", "object": "subscription_item", "current_period_end": JSON(t0 + month), "price": price]])
    }

    func testThePlanComesFromTheLookupKeyThenPriceMetadataThenExpandedProduct() throws {
        let cases: [(JSON, String?)] = [
            // An unknown price id with a known lookup key.
            (["id": "price_new", "object": "price", "lookup_key": "pro_yearly", "metadata": ["plan": "basic"]], "pro"),
            // No lookup key: the price's metadata.plan (a tier of the plans file).
            (["id": "price_new", "object": "price", "lookup_key": .null, "metadata": ["plan": "basic"],
              "product": ["id": "prod_1", "object": "product", "metadata": ["plan": "pro"]]], "basic"),
            // Only the expanded product says it.
            (["id": "price_new", "object": "price", "lookup_key": .null, "metadata": [:],
              "product": ["id": "prod_1", "object": "product", "metadata": ["plan": "pro"]]], "pro"),
            // A product that is not expanded says nothing.
            (["id": "price_new", "object": "price", "lookup_key": .null, "metadata": [:], "product": "prod_1"], nil),
            // A price id in the plans file wins over everything.
            (["id": "price_basic_m", "object": "price", "lookup_key": "pro_yearly", "metadata": ["plan": "pro"]], "basic"),
        ]
        for (i, (price, tier)) in cases.enumerated() {
            let store = MemoryStore()
            let (applier, logs) = makeApplier(store)
            _ = try applier.apply(Events.parsed(subscriptionWith(price: price)))
            XCTAssertEqual(store.state("u")?.plan, tier, "case \(i)")
            XCTAssertEqual(store.state("u")?.status, .trial, "case \(i)")
            XCTAssertEqual(logs().isEmpty, tier != nil, "case \(i): an unresolved price is warned about")
        }
    }

    // MARK: Parked events

    func testParkedEventsExpireAndCanBeListedAndPurged() throws {
        let store = MemoryStore()
        let applier = WebhookApplier(store: store, plans: testPlans, pendingTTL: 3600, now: { store.now })
        _ = try applier.apply(Events.parsed(Events.subscription("evt_a", created: t0, status: "active", periodEnd: t0 + month)))
        store.now += 600
        _ = try applier.apply(Events.parsed(Events.subscription("evt_b", created: t0, status: "active", periodEnd: t0 + month,
                                                                customer: "cus_2")))
        XCTAssertEqual(store.entries["pending/cus_1/evt_a"]?.expiresAt, store.now - 600 + 3600)
        let parked = ParkedEvents(store: store, now: { store.now })
        var listed: [JSON] = []
        try parked.forEach { listed.append($0.json) }
        XCTAssertEqual(listed.map { $0["event_id"] }, ["evt_a", "evt_b"])
        XCTAssertEqual(listed.map { $0["customer"] }, ["cus_1", "cus_2"])
        XCTAssertEqual(listed[0]["type"], "customer.subscription.updated")
        XCTAssertEqual(try parked.purge(olderThan: 300), 1, "only the one parked 600 s ago")
        XCTAssertEqual(store.keys(prefix: "pending/"), ["pending/cus_2/evt_b"])
        store.now += 3600
        var left = 0
        try parked.forEach { _ in left += 1 }
        XCTAssertEqual(left, 0, "expired after its lifetime")
        // A checkout for the expired event's customer finds nothing to drain.
        XCTAssertEqual(try applier.apply(Events.parsed(Events.checkout("evt_c", created: t0, customer: "cus_2"))).drained.count, 0)
    }
}
