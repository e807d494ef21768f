import XCTest
import Foundation
import Records
import Crypto
import KV
import Subscriptions
@testable import apply_webhook

/// The per-subscription state on the real engines: the directory store and Redis
/// (EDGEPIPE_TEST_REDIS_URL, set by Tests/run; skipped without it). Every order of the
/// issue's switch, with a uid at Stripe's limit, must store the same bytes under the same
/// keys as the in-memory reference: one document per user, written by compare-and-swap,
/// so both engines make it atomic the same way.
final class BackendTests: XCTestCase {
    let month = 2_592_000
    /// 200 emoji: Stripe's limit for client_reference_id, 800 bytes.
    let longUID = String(repeating: "🦄", count: 200)

    func scenario() -> [JSON] {
        let k = (customer: "cus_long", uid: longUID)
        return [
            Events.checkout("evt_1", created: 100, uid: k.uid, customer: k.customer, subscription: "sub_A"),
            Events.subscription("evt_2", "customer.subscription.created", created: 102, status: "active",
                                periodEnd: 102 + month, price: "price_basic_m", customer: k.customer, subscription: "sub_B"),
            Events.subscription("evt_3", "customer.subscription.deleted", created: 3702, status: "canceled",
                                periodEnd: 100 + month, customer: k.customer, subscription: "sub_A"),
            Events.invoice("evt_4", "invoice.payment_succeeded", created: 102, periodEnd: 102 + month,
                           reason: "subscription_create", customer: k.customer, subscription: "sub_B"),
        ]
    }

    func orders() -> [[JSON]] { SubscriptionsTests.permutations(scenario()) }

    func stored(_ store: any KVStore) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for key in [SubscriptionState.key(uid: longUID), WebhookApplier.customerKey("cus_long")] {
            out[key] = try store.get(key)?.value.serialized()
        }
        return out
    }

    func reference() throws -> [String: [UInt8]] {
        let memory = MemoryStore()
        let (applier, _) = makeApplier(memory)
        for e in scenario() { _ = try applier.apply(Events.parsed(e)) }
        let r = try stored(memory)
        XCTAssertEqual(try XCTUnwrap(memory.state(longUID)).subscription, "sub_B")
        return r
    }

    func check(open: (Int) throws -> any KVStore) throws {
        let expected = try reference()
        for (i, order) in orders().enumerated() {
            let store = try open(i)
            let applier = WebhookApplier(store: store, plans: testPlans, now: { Clock.now() })   // the engines expire by the real clock
            applier.log = { _ in }
            for e in order { XCTAssertNotEqual(try applier.apply(Events.parsed(e)).kind, .rejected) }
            XCTAssertEqual(try stored(store), expected, "order \(i)")
            XCTAssertEqual(try store.list(prefix: "pending/", limit: 10, cursor: nil).keys, [], "order \(i)")
        }
    }

    func testEveryOrderStoresTheSameBytesInADirectoryStore() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("backend-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try check { i in try openStore(root + "/\(i)") }
    }

    func testEveryOrderStoresTheSameBytesInRedis() throws {
        guard let url = ProcessInfo.processInfo.environment["EDGEPIPE_TEST_REDIS_URL"], !url.isEmpty else {
            throw XCTSkip("EDGEPIPE_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6390/0)")
        }
        let run = UUID().uuidString.prefix(8)
        try check { i in try openStore(url + "?prefix=t19-\(run)-\(i):") }
    }
}
