import XCTest
import Records
import KV
import Subscriptions
@testable import apply_webhook

/// Lifecycles, at-least-once delivery, out-of-order delivery and crashes.
final class OrderingTests: XCTestCase {
    let t0 = 1_700_000_000
    let month = 2_592_000

    /// A user's whole life: checkout, two renewals, a failed payment, recovery, cancellation.
    func lifecycle() -> [JSON] {
        let p1 = t0 + month, p2 = t0 + 2 * month, p3 = t0 + 3 * month
        return [
            Events.checkout("evt_01_checkout", created: t0),
            Events.subscription("evt_02_created", "customer.subscription.created", created: t0, status: "active", periodEnd: p1),
            Events.invoice("evt_03_paid", "invoice.paid", created: t0, periodEnd: p1, reason: "subscription_create"),
            Events.subscription("evt_04_renewed", created: p1, status: "active", periodEnd: p2),
            Events.invoice("evt_05_paid", "invoice.paid", created: p1 + 2, periodEnd: p2),
            Events.invoice("evt_06_failed", "invoice.payment_failed", created: p2 + 1, periodEnd: p3),
            Events.subscription("evt_07_past_due", created: p2 + 1, status: "past_due", periodEnd: p3),
            Events.invoice("evt_08_paid", "invoice.paid", created: p2 + 3 * 86400, periodEnd: p3),
            Events.subscription("evt_09_recovered", created: p2 + 3 * 86400, status: "active", periodEnd: p3),
            Events.subscription("evt_10_deleted", "customer.subscription.deleted", created: p2 + 10 * 86400,
                                status: "canceled", periodEnd: p3),
        ]
    }

    func run(_ events: [JSON], store: MemoryStore) throws -> [Outcome] {
        let (applier, _) = makeApplier(store)
        return try events.map { try applier.apply(Events.parsed($0)) }
    }

    func testFullLifecycleOfAUser() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        var statuses: [SubscriptionState.Status?] = []
        for e in lifecycle() {
            let o = try applier.apply(Events.parsed(e))
            XCTAssertEqual(o.kind, .applied, o.eventID ?? "")
            statuses.append(o.after)
        }
        XCTAssertEqual(statuses, [.active, .active, .active, .active, .active, .past_due, .past_due, .active, .active, .cancelled])
        let s = try XCTUnwrap(store.state("user-1"))
        XCTAssertEqual(s.status, .cancelled)
        XCTAssertEqual(s.plan, "pro")
        XCTAssertEqual(s.currentPeriodEnd, t0 + 3 * month)
        XCTAssertEqual(s.lastEventID, "evt_10_deleted")
    }

    func testTrialToActive() throws {
        let store = MemoryStore()
        let trialEnd = t0 + 14 * 86400
        let outcomes = try run([
            Events.checkout("evt_1", created: t0),
            Events.subscription("evt_2", "customer.subscription.created", created: t0, status: "trialing",
                                periodEnd: trialEnd, trialEnd: trialEnd),
            Events.invoice("evt_3", "invoice.paid", created: t0, periodEnd: trialEnd, reason: "subscription_create", amountPaid: 0),
        ], store: store)
        XCTAssertEqual(outcomes.map(\.after), [.active, .trial, .trial])
        XCTAssertEqual(store.state("user-1")?.trialEnd, trialEnd)
        let later = try run([
            Events.subscription("evt_4", created: trialEnd, status: "active", periodEnd: trialEnd + month, trialEnd: trialEnd),
            Events.invoice("evt_5", "invoice.paid", created: trialEnd + 1, periodEnd: trialEnd + month),
        ], store: store)
        XCTAssertEqual(later.map(\.after), [.active, .active])
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, trialEnd + month)
    }

    func testARepeatedEventIsAcknowledgedAndNotAppliedTwice() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        let e = Events.parsed(Events.checkout("evt_1", created: t0))
        XCTAssertEqual(try applier.apply(e).kind, .applied)
        let writes = store.writes.count
        let again = try applier.apply(e)
        XCTAssertEqual(again.kind, .duplicate)
        XCTAssertEqual(again.uid, "user-1")
        XCTAssertEqual(again.before, .active)
        XCTAssertEqual(again.after, .active)
        XCTAssertEqual(store.writes.count, writes, "a duplicate writes nothing")
    }

    func testDeletedBeforeUpdatedStaysCancelled() throws {
        let store = MemoryStore()
        let outcomes = try run([
            Events.checkout("evt_1", created: t0),
            Events.subscription("evt_3", "customer.subscription.deleted", created: t0 + 100, status: "canceled", periodEnd: t0 + month),
            Events.subscription("evt_2", created: t0 + 50, status: "active", periodEnd: t0 + month, price: "price_basic_m"),
        ], store: store)
        XCTAssertEqual(outcomes.map(\.kind), [.applied, .applied, .stale])
        XCTAssertEqual(outcomes[2].after, .cancelled)
        let s = try XCTUnwrap(store.state("user-1"))
        XCTAssertEqual(s.status, .cancelled, "the older update must not revive the subscription")
        XCTAssertEqual(s.plan, "pro", "nor bring back its plan")
        XCTAssertEqual(s.lastEventID, "evt_3")
    }

    func testAnOlderEventIsStaleWhenEveryFieldIsNewer() throws {
        let store = MemoryStore()
        let outcomes = try run([
            Events.subscription("evt_2", created: t0 + 100, status: "past_due", periodEnd: t0 + 2 * month, uid: "user-1"),
            Events.subscription("evt_1", created: t0 + 50, status: "active", periodEnd: t0 + month, uid: "user-1"),
        ], store: store)
        XCTAssertEqual(outcomes[1].kind, .stale)
        XCTAssertEqual(outcomes[1].before, .past_due)
        XCTAssertEqual(outcomes[1].after, .past_due)
        XCTAssertEqual(store.state("user-1")?.currentPeriodEnd, t0 + 2 * month)
        XCTAssertEqual(store.entries["event/evt_1"]?.value["outcome"], "stale")
    }

    func testUpdatedBeforeCheckoutWaitsInPendingThenApplies() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        let early = try applier.apply(Events.parsed(Events.subscription("evt_2", created: t0 + 1, status: "past_due", periodEnd: t0 + month)))
        XCTAssertEqual(early.kind, .pending)
        XCTAssertNil(early.uid)
        XCTAssertNotNil(store.entries["pending/cus_1/evt_2"])
        XCTAssertNil(store.entries["event/evt_2"], "a pending event is not marked processed")
        XCTAssertNil(store.state("user-1"))

        let checkout = try applier.apply(Events.parsed(Events.checkout("evt_1", created: t0)))
        XCTAssertEqual(checkout.kind, .applied)
        XCTAssertEqual(checkout.drained.map(\.eventID), ["evt_2"])
        XCTAssertEqual(checkout.drained.map(\.kind), [.applied])
        XCTAssertNil(store.entries["pending/cus_1/evt_2"])
        XCTAssertEqual(store.entries["event/evt_2"]?.value["outcome"], "applied")
        // The subscription's own status beats the checkout's guess.
        XCTAssertEqual(store.state("user-1")?.status, .past_due)
        XCTAssertEqual(checkout.audit["drained"]?.array?.count, 1)
    }

    func testARedeliveredPendingEventStaysPending() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        let e = Events.parsed(Events.subscription("evt_2", created: t0, status: "active", periodEnd: t0 + month))
        XCTAssertEqual(try applier.apply(e).kind, .pending)
        XCTAssertEqual(try applier.apply(e).kind, .pending)
        XCTAssertEqual(store.entries.keys.filter { $0.hasPrefix("pending/") }.count, 1)
    }

    func testCheckoutArrivingWhileAnEventIsParkedStillDrainsIt() throws {
        // The mapping appears between the event's lookup and its parking (another process's
        // checkout): the parking process must notice and apply it itself.
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        store.beforeWrite = { key throws(KVError) in
            if key == "pending/cus_1/evt_2" {
                store.entries["customer/cus_1"] = KVEntry(key: "customer/cus_1", value: ["uid": "user-1"], version: 1)
            }
        }
        let o = try applier.apply(Events.parsed(Events.subscription("evt_2", created: t0, status: "active", periodEnd: t0 + month)))
        XCTAssertEqual(o.kind, .applied)
        XCTAssertEqual(o.uid, "user-1")
        XCTAssertNil(store.entries["pending/cus_1/evt_2"])
        XCTAssertEqual(store.state("user-1")?.status, .active)
    }

    func testSameSecondEventsResolveByStatusPrecedenceWhateverTheOrder() throws {
        // active and past_due in the same second: past_due (the later lifecycle stage) wins
        // in both arrival orders; so does a cancellation over an update.
        let pairs: [(JSON, JSON, SubscriptionState.Status)] = [
            (Events.subscription("evt_b", created: t0, status: "active", periodEnd: t0 + month, uid: "u"),
             Events.subscription("evt_a", created: t0, status: "past_due", periodEnd: t0 + month, uid: "u"), .past_due),
            (Events.subscription("evt_a", created: t0, status: "active", periodEnd: t0 + month, uid: "u"),
             Events.subscription("evt_b", "customer.subscription.deleted", created: t0, status: "canceled", periodEnd: t0 + month, uid: "u"), .cancelled),
            (Events.subscription("evt_z", created: t0, status: "trialing", periodEnd: t0 + month, uid: "u"),
             Events.subscription("evt_y", created: t0, status: "active", periodEnd: t0 + month, uid: "u"), .active),
        ]
        for (x, y, winner) in pairs {
            let one = MemoryStore(), two = MemoryStore()
            _ = try run([x, y], store: one)
            _ = try run([y, x], store: two)
            XCTAssertEqual(one.state("u")?.status, winner)
            XCTAssertEqual(one.state("u")?.withoutHistory, two.state("u")?.withoutHistory)
        }
    }

    func testSameSecondSameStatusIsDecidedByEventID() throws {
        let x = Events.subscription("evt_A", created: t0, status: "active", periodEnd: t0 + month, price: "price_basic_m", uid: "u")
        let y = Events.subscription("evt_B", created: t0, status: "active", periodEnd: t0 + month, price: "price_pro_m", uid: "u")
        let one = MemoryStore(), two = MemoryStore()
        _ = try run([x, y], store: one)
        _ = try run([y, x], store: two)
        XCTAssertEqual(one.state("u")?.plan, "pro")
        XCTAssertEqual(one.state("u")?.withoutHistory, two.state("u")?.withoutHistory)
    }

    func testEveryArrivalOrderOfALifecycleEndsInTheSameState() throws {
        let events = lifecycle()
        let reference = MemoryStore()
        _ = try run(events, store: reference)
        let expected = try XCTUnwrap(reference.state("user-1"))
        // 40 pseudo-random orders (a fixed generator, so a failure reproduces).
        var rng = SplitMix(seed: 42)
        for round in 0..<40 {
            var order = events
            order.shuffle(using: &rng)
            let store = MemoryStore()
            let outcomes = try run(order, store: store)
            let s = try XCTUnwrap(store.state("user-1"), "round \(round)")
            XCTAssertEqual(s.status, .cancelled, "round \(round)")
            XCTAssertEqual(s.withoutHistory, expected.withoutHistory, "round \(round)")
            XCTAssertEqual(store.keys(prefix: "pending/"), [], "round \(round)")
            XCTAssertFalse(outcomes.contains { $0.kind == .stale && $0.eventID == expected.lastEventID }, "round \(round)")
        }
    }

    func testAnOldSubscriptionsCancellationDoesNotCancelTheNewOne() throws {
        let store = MemoryStore()
        let outcomes = try run([
            Events.checkout("evt_1", created: t0, subscription: "sub_old"),
            Events.checkout("evt_2", created: t0 + 5 * month, subscription: "sub_new"),
            Events.subscription("evt_3", "customer.subscription.deleted", created: t0 + 6 * month, status: "canceled",
                                periodEnd: t0 + 6 * month, subscription: "sub_old"),
        ], store: store)
        // The old subscription's record is cancelled; the user's state shows the live one.
        XCTAssertEqual(outcomes.map(\.kind), [.applied, .applied, .applied])
        XCTAssertEqual(outcomes[2].after, .active)
        XCTAssertEqual(store.state("user-1")?.subscription, "sub_new")
        XCTAssertEqual(store.state("user-1")?.status, .active)
    }

    func testANewerSubscriptionTakesOverFromACancelledOne() throws {
        let store = MemoryStore()
        let outcomes = try run([
            Events.subscription("evt_1", created: t0, status: "canceled", periodEnd: t0 + month, subscription: "sub_old", uid: "user-1"),
            Events.subscription("evt_2", "customer.subscription.created", created: t0 + 10, status: "active",
                                periodEnd: t0 + month + 10, subscription: "sub_new", uid: "user-1"),
            // A late update about the old subscription is older than the takeover.
            Events.subscription("evt_0", created: t0 - 10, status: "active", periodEnd: t0 + month, subscription: "sub_old", uid: "user-1"),
        ], store: store)
        XCTAssertEqual(outcomes.map(\.kind), [.applied, .applied, .stale])
        XCTAssertEqual(store.state("user-1")?.subscription, "sub_new")
        XCTAssertEqual(store.state("user-1")?.status, .active)
    }

    // MARK: Crashes and concurrency

    func testCrashBetweenStateAndMarkerIsSafeOnRedelivery() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        _ = try applier.apply(Events.parsed(Events.checkout("evt_1", created: t0)))
        store.beforeWrite = { key throws(KVError) in if key == "event/evt_2" { throw KVError.unavailable("crash") } }
        let e = Events.parsed(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + month, periodEnd: t0 + 2 * month))
        XCTAssertThrowsError(try applier.apply(e))
        XCTAssertEqual(store.state("user-1")?.status, .past_due, "the state was written before the crash")
        let stateBefore = store.entries["sub/user-1"]
        store.beforeWrite = nil
        let again = try applier.apply(e)
        XCTAssertEqual(again.kind, .duplicate)
        XCTAssertEqual(store.entries["sub/user-1"], stateBefore, "not applied a second time")
        XCTAssertEqual(store.entries["event/evt_2"]?.value["outcome"], "applied")
    }

    func testCrashDuringTheDrainLosesNoPendingEvent() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        for (i, status) in ["past_due", "active"].enumerated() {
            _ = try applier.apply(Events.parsed(Events.subscription("evt_p\(i)", created: t0 + 10 + i, status: status, periodEnd: t0 + month)))
        }
        XCTAssertEqual(store.keys(prefix: "pending/"), ["pending/cus_1/evt_p0", "pending/cus_1/evt_p1"])
        store.beforeWrite = { key throws(KVError) in if key == "pending/cus_1/evt_p1" { throw KVError.unavailable("crash") } }
        let checkout = Events.parsed(Events.checkout("evt_1", created: t0))
        XCTAssertThrowsError(try applier.apply(checkout))
        XCTAssertNil(store.entries["event/evt_1"], "the checkout is not marked done: Stripe re-delivers it")
        store.beforeWrite = nil
        // Stripe re-delivers the checkout (it never got its 200): the drain completes.
        let again = try applier.apply(checkout)
        XCTAssertEqual(again.kind, .duplicate)
        XCTAssertEqual(again.drained.map(\.eventID), ["evt_p1"])
        XCTAssertEqual(again.drained.map(\.kind), [.duplicate])
        XCTAssertEqual(store.keys(prefix: "pending/"), [])
        XCTAssertEqual(store.state("user-1")?.status, .active)
        XCTAssertEqual(store.state("user-1")?.lastEventID, "evt_p1")
    }

    func testCrashAfterTheMappingBeforeTheDrainAppliesPendingEventsOnRedelivery() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        _ = try applier.apply(Events.parsed(Events.subscription("evt_p", created: t0 + 10, status: "past_due", periodEnd: t0 + month)))
        store.beforeWrite = { key throws(KVError) in if key == "sub/user-1" { throw KVError.unavailable("crash") } }
        let checkout = Events.parsed(Events.checkout("evt_1", created: t0))
        XCTAssertThrowsError(try applier.apply(checkout))
        XCTAssertNotNil(store.entries["customer/cus_1"], "the mapping was written before the crash")
        XCTAssertNotNil(store.entries["pending/cus_1/evt_p"])
        store.beforeWrite = nil
        let again = try applier.apply(checkout)
        XCTAssertEqual(again.kind, .applied)
        XCTAssertEqual(again.drained.map(\.kind), [.applied])
        XCTAssertEqual(store.keys(prefix: "pending/"), [])
        XCTAssertEqual(store.state("user-1")?.status, .past_due)
    }

    func testAConcurrentWriterIsNotOverwritten() throws {
        let t0 = self.t0, month = self.month
        // Another process applies evt_rival between our read and our compare-and-swap:
        // the CAS fails, we re-read and merge on top of its result.
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        _ = try applier.apply(Events.parsed(Events.checkout("evt_1", created: t0)))
        let rival = MemoryStore()
        let (rivalApplier, _) = makeApplier(rival)
        var interfered = false
        store.beforeCAS = { key in
            guard key == "sub/user-1", !interfered else { return }
            interfered = true
            rival.entries = store.entries
            _ = try? rivalApplier.apply(Events.parsed(Events.subscription("evt_rival", created: t0 + 100, status: "past_due",
                                                                         periodEnd: t0 + month, price: "price_basic_m")))
            store.entries["sub/user-1"] = rival.entries["sub/user-1"]
        }
        let o = try applier.apply(Events.parsed(Events.invoice("evt_mine", "invoice.paid", created: t0 + 200,
                                                              periodEnd: t0 + 2 * month)))
        XCTAssertTrue(interfered)
        XCTAssertEqual(o.kind, .applied)
        XCTAssertEqual(o.before, .past_due, "merged on top of the rival's write, not the state first read")
        let s = try XCTUnwrap(store.state("user-1"))
        XCTAssertEqual(s.status, .active)
        XCTAssertEqual(s.plan, "basic", "the rival's plan survives")
        XCTAssertEqual(s.currentPeriodEnd, t0 + 2 * month)
        XCTAssertEqual(s.lastEventID, "evt_mine")
        let book = Bookkeeping(of: s)
        XCTAssertTrue(book.remembers("evt_rival") && book.remembers("evt_mine"))
    }
}

/// A small deterministic generator, so shuffled orders are the same on every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SubscriptionState {
    /// The whole stored document: since the recent ids are the newest by clock, not the
    /// last to arrive, nothing in it depends on arrival order any more.
    var withoutHistory: String { String(decoding: json.serialized(), as: UTF8.self) }
}

extension MemoryStore {
    func keys(prefix: String) -> [String] { entries.keys.filter { $0.hasPrefix(prefix) }.sorted() }
}
