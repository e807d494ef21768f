import XCTest
import Records
import Crypto
import KV
import Subscriptions
@testable import apply_webhook

/// Users with several subscriptions, and stored state that must not depend on the order
/// events arrive in (issue 19, item 1).
final class SubscriptionsTests: XCTestCase {
    let month = 2_592_000

    func run(_ events: [JSON], store: MemoryStore) throws -> [Outcome] {
        let (applier, _) = makeApplier(store)
        return try events.map { try applier.apply(Events.parsed($0)) }
    }

    /// The issue's batch: A.created at 100, B.created at 102, A.deleted at 3702.
    func switchScenario() -> [JSON] {
        [Events.subscription("evt_A_created", "customer.subscription.created", created: 100, status: "active",
                             periodEnd: 100 + month, subscription: "sub_A", uid: "user-1"),
         Events.subscription("evt_B_created", "customer.subscription.created", created: 102, status: "active",
                             periodEnd: 102 + month, price: "price_basic_m", subscription: "sub_B", uid: "user-1"),
         Events.subscription("evt_A_deleted", "customer.subscription.deleted", created: 3702, status: "canceled",
                             periodEnd: 100 + month, subscription: "sub_A", uid: "user-1")]
    }

    func testTheIssuesSwitchEndsActiveOnBWhenFedNewestFirst() throws {
        let newestFirst = MemoryStore(), oldestFirst = MemoryStore()
        let outcomes = try run(switchScenario().reversed(), store: newestFirst)
        _ = try run(switchScenario(), store: oldestFirst)
        // A.created is older than A.deleted: stale. B's event is about another subscription.
        XCTAssertEqual(outcomes.map(\.kind), [.applied, .applied, .stale])
        XCTAssertEqual(outcomes[1].after, .active)
        for store in [newestFirst, oldestFirst] {
            let s = try XCTUnwrap(store.state("user-1"))
            XCTAssertEqual(s.status, .active)
            XCTAssertEqual(s.subscription, "sub_B")
            XCTAssertEqual(s.plan, "basic")
            XCTAssertEqual(s.updated, 3702, "the newest event, whatever subscription it is about")
            XCTAssertEqual(s.lastEventID, "evt_A_deleted")
        }
        XCTAssertEqual(newestFirst.entries["sub/user-1"]?.value.serialized(), oldestFirst.entries["sub/user-1"]?.value.serialized())
    }

    func testEachSubscriptionIsKeptBesideTheUsersState() throws {
        let store = MemoryStore()
        _ = try run(switchScenario(), store: store)
        let s = try XCTUnwrap(store.state("user-1"))
        let book = Bookkeeping(of: s)
        XCTAssertEqual(book.subscriptions.map(\.id), ["sub_A", "sub_B"])
        XCTAssertEqual(book.record("sub_A")?.status, .cancelled)
        XCTAssertEqual(book.record("sub_B")?.status, .active)
    }

    func testAnEndedSubscriptionIsShownWhenNoneIsLive() throws {
        let store = MemoryStore()
        _ = try run(switchScenario() + [
            Events.subscription("evt_B_deleted", "customer.subscription.deleted", created: 5000, status: "canceled",
                                periodEnd: 102 + month, subscription: "sub_B", uid: "user-1")], store: store)
        XCTAssertEqual(store.state("user-1")?.status, .cancelled)
        XCTAssertEqual(store.state("user-1")?.subscription, "sub_B", "the one started last")
    }

    func testAGrantingSubscriptionOutranksAnUnpaidOne() throws {
        let store = MemoryStore()
        _ = try run([
            Events.subscription("evt_1", created: 100, status: "active", periodEnd: 100 + month, subscription: "sub_new", uid: "u"),
            Events.subscription("evt_2", created: 50, status: "unpaid", periodEnd: 50 + month, subscription: "sub_old", uid: "u"),
            Events.subscription("evt_3", created: 200, status: "unpaid", periodEnd: 50 + month, subscription: "sub_old", uid: "u"),
        ], store: store)
        XCTAssertEqual(store.state("u")?.subscription, "sub_new")
        XCTAssertEqual(store.state("u")?.status, .active)
    }

    func testAStateWrittenByTheOneSubscriptionFormatIsCarriedOver() throws {
        // The layout before per-subscription records: bookkeeping of one subscription.
        let store = MemoryStore()
        let old: JSON = ["uid": "u", "status": "active", "plan": "pro", "current_period_end": 5000, "trial_end": .null,
                         "cancel_at_period_end": false, "customer": "cus_1", "subscription": "sub_A", "updated": 100,
                         "last_event_id": "evt_old",
                         "stripe": ["since": [100, 2, "evt_old"], "status": [100, 2, "evt_old"], "plan": [100, 2, "evt_old"],
                                    "period": [100, 2, "evt_old"], "trial": .null, "cancel": .null, "last": [100, 2, "evt_old"],
                                    "period_snapshot": 5000, "paid_through": .null, "events": ["evt_old"]]]
        store.entries["sub/u"] = KVEntry(key: "sub/u", value: old, version: 1)
        let outcomes = try run([
            Events.subscription("evt_old", created: 100, status: "active", periodEnd: 5000, subscription: "sub_A", uid: "u"),
            Events.subscription("evt_B", "customer.subscription.created", created: 50, status: "trialing", periodEnd: 900,
                                trialEnd: 900, subscription: "sub_B", uid: "u"),
        ], store: store)
        XCTAssertEqual(outcomes.map(\.kind), [.duplicate, .applied])
        let s = try XCTUnwrap(store.state("u"))
        // Both grant access: the one started last (A, at 100) is shown; B is kept beside it.
        XCTAssertEqual(s.subscription, "sub_A")
        XCTAssertEqual(s.plan, "pro")
        XCTAssertEqual(s.currentPeriodEnd, 5000)
        XCTAssertEqual(Bookkeeping(of: s).record("sub_B")?.status, .trial)
    }

    // MARK: Order independence

    /// Scenarios whose stored state must be byte-identical in every arrival order.
    func scenarios() -> [(String, [JSON])] {
        let t = 1_700_000_000
        let switchWithCheckouts: [JSON] = [
            Events.checkout("evt_s1", created: t, subscription: "sub_A"),
            Events.subscription("evt_s2", "customer.subscription.created", created: t, status: "active", periodEnd: t + month,
                                subscription: "sub_A"),
            Events.invoice("evt_s3", "invoice.paid", created: t, periodEnd: t + month, reason: "subscription_create",
                           subscription: "sub_A"),
            Events.checkout("evt_s4", created: t + 900, subscription: "sub_B", metadata: ["plan": "basic_monthly"]),
            Events.subscription("evt_s5", "customer.subscription.created", created: t + 900, status: "active",
                                periodEnd: t + 900 + month, price: "price_basic_m", subscription: "sub_B"),
            Events.subscription("evt_s6", "customer.subscription.deleted", created: t + 901, status: "canceled",
                                periodEnd: t + month, subscription: "sub_A"),
            Events.invoice("evt_s7", "invoice.payment_succeeded", created: t + 900, periodEnd: t + 900 + month,
                           reason: "subscription_create", subscription: "sub_B"),
        ]
        // Same second: statuses of two subscriptions, and two announcements of one payment.
        let paid = Self.setting(Events.invoice("evt_d2", "invoice.paid", created: t + 5, periodEnd: t + month), invoiceID: "in_same")
        let succeeded = Self.setting(Events.invoice("evt_d3", "invoice.payment_succeeded", created: t + 5, periodEnd: t + month),
                                     invoiceID: "in_same")
        let sameSecond: [JSON] = [
            Events.subscription("evt_d1", created: t + 5, status: "past_due", periodEnd: t + month, uid: "user-1"),
            paid, succeeded,
            Events.subscription("evt_d4", created: t + 5, status: "active", periodEnd: t + month, uid: "user-1"),
            Events.subscription("evt_d5", created: t + 5, status: "trialing", periodEnd: t + month, trialEnd: t + month,
                                subscription: "sub_2", uid: "user-1"),
            Events.subscription("evt_d6", "customer.subscription.deleted", created: t + 5, status: "canceled",
                                periodEnd: t + month, subscription: "sub_2", uid: "user-1"),
        ]
        // Events of a customer whose user only a later event names: parked, then drained.
        let parked: [JSON] = [
            Events.subscription("evt_p1", "customer.subscription.created", created: t, status: "incomplete", periodEnd: t + month),
            Events.invoice("evt_p2", "invoice.payment_failed", created: t + 10, periodEnd: t + month, reason: "subscription_create"),
            Events.subscription("evt_p3", created: t + 20, status: "active", periodEnd: t + month),
            Events.invoice("evt_p4", "invoice.paid", created: t + 20, periodEnd: t + month, reason: "subscription_create"),
            Events.subscription("evt_p5", created: t + 30, status: "active", periodEnd: t + month, cancelAtPeriodEnd: true),
            Events.checkout("evt_p6", created: t + 20),
            Events.subscription("evt_p7", "customer.subscription.created", created: t + 40, status: "trialing",
                                periodEnd: t + 40 + month, trialEnd: t + 40 + month, customer: "cus_2", subscription: "sub_9"),
        ]
        return [("switch", switchWithCheckouts), ("same second", sameSecond), ("parked", parked),
                ("issue batch", switchScenario())]
    }

    static func setting(_ event: JSON, invoiceID: String) -> JSON {
        guard case .object(var e) = event, case .object(var d)? = e["data"], case .object(var o)? = d["object"] else { return event }
        o["id"] = .string(invoiceID)
        d["object"] = .object(o); e["data"] = .object(d)
        return .object(e)
    }

    /// The stored documents a reader or a later event sees (markers and their audit
    /// record each event's own processing, which is order-dependent by nature).
    func stateBytes(_ store: MemoryStore) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for (k, e) in store.entries where k.hasPrefix("sub/") || k.hasPrefix("customer/") || k.hasPrefix("pending/") {
            out[k] = e.value.serialized()
        }
        return out
    }

    func testEveryOrderOfEveryScenarioStoresByteIdenticalState() throws {
        for (name, events) in scenarios() {
            let reference = MemoryStore()
            _ = try run(events, store: reference)
            let expected = stateBytes(reference)
            XCTAssertFalse(expected.isEmpty, name)
            var rng = SplitMix(seed: 19)
            // Every permutation for up to 6 events, else 200 random orders.
            let orders: [[JSON]] = events.count <= 6 ? Self.permutations(events)
                : (0..<200).map { _ in events.shuffled(using: &rng) }
            for (i, order) in orders.enumerated() {
                let store = MemoryStore()
                _ = try run(order, store: store)
                let got = stateBytes(store)
                XCTAssertEqual(got.keys.sorted(), expected.keys.sorted(), "\(name), order \(i)")
                for (k, v) in expected where got[k] != v {
                    XCTFail("\(name), order \(i): \(k) differs:\n\(String(decoding: got[k] ?? [], as: UTF8.self))\n"
                            + "\(String(decoding: v, as: UTF8.self))")
                    break
                }
                if got != expected { break }
            }
        }
    }

    func testTheParkedScenarioEndsOnTheNamedUserWithNothingParkedButTheStranger() throws {
        let store = MemoryStore()
        _ = try run(scenarios()[2].1, store: store)
        let s = try XCTUnwrap(store.state("user-1"))
        XCTAssertEqual(s.status, .active)
        XCTAssertTrue(s.cancelAtPeriodEnd)
        XCTAssertEqual(store.keys(prefix: "pending/"), ["pending/cus_2/evt_p7"])
    }

    static func permutations(_ a: [JSON]) -> [[JSON]] {
        if a.count <= 1 { return [a] }
        var out: [[JSON]] = []
        for i in a.indices {
            var rest = a
            let x = rest.remove(at: i)
            for p in permutations(rest) { out.append([x] + p) }
        }
        return out
    }

    func testSeveralDeliveriesOfEveryEventInAnyOrderStillAgree() throws {
        let events = scenarios()[0].1
        let reference = MemoryStore()
        _ = try run(events, store: reference)
        var rng = SplitMix(seed: 7)
        for round in 0..<50 {
            let store = MemoryStore()
            _ = try run((events + events.prefix(4)).shuffled(using: &rng), store: store)
            XCTAssertEqual(stateBytes(store), stateBytes(reference), "round \(round)")
        }
    }
}
