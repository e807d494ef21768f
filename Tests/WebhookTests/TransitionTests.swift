import XCTest
import Records
import Subscriptions
@testable import apply_webhook

/// Each transition in isolation, through the applier and an in-memory store.
final class TransitionTests: XCTestCase {
    let t0 = 1_700_000_000
    let month = 2_592_000
    var store: MemoryStore!
    var applier: WebhookApplier!
    var logs: (() -> [String])!

    override func setUp() {
        store = MemoryStore()
        (applier, logs) = makeApplier(store)
    }

    @discardableResult
    func apply(_ json: JSON) throws -> Outcome { try applier.apply(Events.parsed(json)) }

    /// A user known to the store through a checkout, with the given status afterwards.
    func checkedOut() throws {
        try apply(Events.checkout("evt_checkout", created: t0))
    }

    func testCheckoutMakesTheUserActiveWithThePlanAndRemembersTheCustomer() throws {
        let o = try apply(Events.checkout("evt_1", created: t0))
        XCTAssertEqual(o.kind, .applied)
        XCTAssertEqual(o.uid, "user-1")
        XCTAssertNil(o.before)
        XCTAssertEqual(o.after, .active)
        let s = try XCTUnwrap(store.state("user-1"))
        XCTAssertEqual(s.status, .active)
        XCTAssertEqual(s.plan, "pro")
        XCTAssertEqual(s.customer, "cus_1")
        XCTAssertEqual(s.subscription, "sub_1")
        XCTAssertEqual(s.updated, t0)
        XCTAssertEqual(s.lastEventID, "evt_1")
        XCTAssertEqual(store.entries["customer/cus_1"]?.value, ["uid": "user-1"])
        XCTAssertEqual(store.entries["event/evt_1"]?.value["outcome"], "applied")
    }

    func testCheckoutTakesTheUserFromMetadataWithoutClientReferenceID() throws {
        try apply(Events.checkout("evt_1", created: t0, uid: nil, metadata: ["uid": "user-9", "plan": "basic_monthly"]))
        XCTAssertEqual(store.state("user-9")?.plan, "basic")
        XCTAssertEqual(store.entries["customer/cus_1"]?.value, ["uid": "user-9"])
    }

    func testCheckoutOfAOneOffPaymentIsIgnored() throws {
        var json = Events.checkout("evt_1", created: t0)
        if case .object(var e) = json, case .object(var d)? = e["data"], case .object(var s)? = d["object"] {
            s["mode"] = "payment"; s["subscription"] = .null
            d["object"] = .object(s); e["data"] = .object(d); json = .object(e)
        }
        let o = try apply(json)
        XCTAssertEqual(o.kind, .ignored)
        XCTAssertEqual(o.reason, "checkout session in payment mode, not a subscription")
        XCTAssertNil(store.state("user-1"))
    }

    func testSubscriptionCreatedSetsStatusPlanTrialAndPeriodEnd() throws {
        try checkedOut()
        let o = try apply(Events.subscription("evt_2", "customer.subscription.created", created: t0 + 1,
                                              status: "trialing", periodEnd: t0 + 14 * 86400, trialEnd: t0 + 14 * 86400,
                                              price: "price_basic_m"))
        XCTAssertEqual(o.kind, .applied)
        XCTAssertEqual(o.before, .active)
        XCTAssertEqual(o.after, .trial)
        let s = try XCTUnwrap(store.state("user-1"))
        XCTAssertEqual(s.status, .trial)
        XCTAssertEqual(s.plan, "basic")
        XCTAssertEqual(s.trialEnd, t0 + 14 * 86400)
        XCTAssertEqual(s.currentPeriodEnd, t0 + 14 * 86400)
    }

    func testAllEightStripeStatusesAreMapped() throws {
        let expected: [(String, SubscriptionState.Status)] = [
            ("trialing", .trial), ("active", .active), ("past_due", .past_due), ("canceled", .cancelled),
            ("unpaid", .unpaid), ("incomplete", .incomplete), ("incomplete_expired", .incomplete_expired),
            ("paused", .paused),
        ]
        for (i, (stripe, ours)) in expected.enumerated() {
            let uid = "user-\(stripe)"
            try apply(Events.subscription("evt_s\(i)", created: t0, status: stripe, periodEnd: t0 + month,
                                          customer: "cus_\(stripe)", subscription: "sub_\(stripe)", uid: uid))
            XCTAssertEqual(store.state(uid)?.status, ours, stripe)
        }
    }

    func testUnknownStatusIsIgnored() throws {
        let o = try apply(Events.subscription("evt_1", created: t0, status: "levitating", uid: "user-1"))
        XCTAssertEqual(o.kind, .ignored)
        XCTAssertNil(store.state("user-1"))
    }

    func testPeriodEndIsReadFromTheItemsAndFromTheSubscription() throws {
        try apply(Events.subscription("evt_new", created: t0, status: "active", periodEnd: t0 + month,
                                      customer: "cus_a", subscription: "sub_a", uid: "new-shape", newShape: true))
        try apply(Events.subscription("evt_old", created: t0, status: "active", periodEnd: t0 + 2 * month,
                                      customer: "cus_b", subscription: "sub_b", uid: "old-shape", newShape: false))
        XCTAssertEqual(store.state("new-shape")?.currentPeriodEnd, t0 + month)
        XCTAssertEqual(store.state("old-shape")?.currentPeriodEnd, t0 + 2 * month)
    }

    func testPlanTierFromLookupKeyWhenThePriceIdIsUnknown() throws {
        try apply(Events.subscription("evt_1", created: t0, status: "active", periodEnd: t0 + month,
                                      price: "price_1NewUnlisted", lookupKey: "pro_yearly", uid: "user-1"))
        XCTAssertEqual(store.state("user-1")?.plan, "pro")
        XCTAssertEqual(logs(), [])
    }

    func testUnknownPriceLeavesThePlanAndWarns() throws {
        try checkedOut()
        try apply(Events.subscription("evt_2", created: t0 + 1, status: "active", periodEnd: t0 + month, price: "price_mystery"))
        XCTAssertEqual(store.state("user-1")?.plan, "pro")
        XCTAssertEqual(logs(), ["event evt_2: price price_mystery not in the plans file"])
    }

    func testPausedAndResumed() throws {
        try checkedOut()
        try apply(Events.subscription("evt_2", "customer.subscription.paused", created: t0 + 10, status: "paused", periodEnd: t0 + month))
        XCTAssertEqual(store.state("user-1")?.status, .paused)
        try apply(Events.subscription("evt_3", "customer.subscription.resumed", created: t0 + 20, status: "active", periodEnd: t0 + 2 * month))
        XCTAssertEqual(store.state("user-1")?.status, .active)
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, t0 + 2 * month)
    }

    func testDeletedCancels() throws {
        try checkedOut()
        let o = try apply(Events.subscription("evt_2", "customer.subscription.deleted", created: t0 + 10, status: "canceled",
                                              periodEnd: t0 + month))
        XCTAssertEqual(o.before, .active)
        XCTAssertEqual(o.after, .cancelled)
        XCTAssertEqual(store.state("user-1")?.status, .cancelled)
    }

    func testCancelAtPeriodEndIsRecorded() throws {
        try checkedOut()
        try apply(Events.subscription("evt_2", created: t0 + 10, status: "active", periodEnd: t0 + month, cancelAtPeriodEnd: true))
        XCTAssertEqual(store.state("user-1")?.cancelAtPeriodEnd, true)
        XCTAssertEqual(store.state("user-1")?.status, .active)
    }

    func testPaymentFailedMakesTheUserPastDue() throws {
        try checkedOut()
        let o = try apply(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + month, periodEnd: t0 + 2 * month))
        XCTAssertEqual(o.kind, .applied)
        XCTAssertEqual(o.after, .past_due)
    }

    func testFailedFirstInvoiceLeavesAnIncompleteSubscriptionIncomplete() throws {
        try apply(Events.subscription("evt_1", "customer.subscription.created", created: t0, status: "incomplete",
                                      periodEnd: t0 + month, uid: "user-1"))
        let o = try apply(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + 1, periodEnd: t0 + month,
                                         reason: "subscription_create"))
        XCTAssertEqual(o.kind, .ignored)
        XCTAssertEqual(o.reason, "failed first invoice: the subscription stays incomplete")
        XCTAssertEqual(store.state("user-1")?.status, .incomplete)
    }

    func testInvoicePaidActivatesAndExtendsExpiryToThePaidPeriod() throws {
        try apply(Events.subscription("evt_1", created: t0, status: "past_due", periodEnd: t0 + month, uid: "user-1"))
        let o = try apply(Events.invoice("evt_2", "invoice.paid", created: t0 + 5, periodEnd: t0 + 2 * month))
        XCTAssertEqual(o.before, .past_due)
        XCTAssertEqual(o.after, .active)
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, t0 + 2 * month)
        // The pre-2025-03-31 invoice shape (invoice.subscription) works the same.
        try apply(Events.invoice("evt_3", "invoice.paid", created: t0 + month, periodEnd: t0 + 3 * month, newShape: false))
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, t0 + 3 * month)
    }

    func testInvoicePaidNeverShortensExpiry() throws {
        try apply(Events.subscription("evt_1", created: t0, status: "active", periodEnd: t0 + 2 * month, uid: "user-1"))
        try apply(Events.invoice("evt_2", "invoice.paid", created: t0 + 5, periodEnd: t0 + month))
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, t0 + 2 * month)
    }

    func testZeroAmountTrialInvoiceKeepsTheTrial() throws {
        try apply(Events.subscription("evt_1", "customer.subscription.created", created: t0, status: "trialing",
                                      periodEnd: t0 + 14 * 86400, trialEnd: t0 + 14 * 86400, uid: "user-1"))
        try apply(Events.invoice("evt_2", "invoice.paid", created: t0, periodEnd: t0 + 14 * 86400,
                                 reason: "subscription_create", amountPaid: 0))
        XCTAssertEqual(store.state("user-1")?.status, .trial)
    }

    func testUnknownEventTypesAreIgnoredAndRecorded() throws {
        let o = try apply(Events.event("evt_x", "customer.created", t0, ["id": "cus_1", "object": "customer"]))
        XCTAssertEqual(o.kind, .ignored)
        XCTAssertEqual(o.reason, "event type customer.created is not handled")
        XCTAssertEqual(store.entries["event/evt_x"]?.value["outcome"], "ignored")
        XCTAssertEqual(try apply(Events.event("evt_x", "customer.created", t0, ["id": "cus_1"])).kind, .duplicate)
    }

    func testAnEventNamingNoUserAndNoCustomerIsIgnored() throws {
        let o = try apply(Events.event("evt_1", "customer.subscription.updated", t0,
                                       ["id": "sub_1", "object": "subscription", "status": "active"]))
        XCTAssertEqual(o.kind, .ignored)
        XCTAssertEqual(o.reason, "the event names neither a user nor a customer")
    }

    func testInvoiceOutsideASubscriptionIsIgnored() throws {
        let o = try apply(Events.event("evt_1", "invoice.paid", t0, ["id": "in_1", "object": "invoice", "customer": "cus_1"]))
        XCTAssertEqual(o.kind, .ignored)
        XCTAssertEqual(o.reason, "invoice is not for a subscription")
    }

    func testSubscriptionMetadataUidRecordsTheCustomer() throws {
        try apply(Events.subscription("evt_1", "customer.subscription.created", created: t0, status: "active",
                                      periodEnd: t0 + month, customer: "cus_7", uid: "user-7"))
        XCTAssertEqual(store.entries["customer/cus_7"]?.value, ["uid": "user-7"])
        try apply(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + month, periodEnd: t0 + 2 * month, customer: "cus_7"))
        XCTAssertEqual(store.state("user-7")?.status, .past_due)
    }
}
