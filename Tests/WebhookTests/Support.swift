import Records
import KV
import Subscriptions
@testable import apply_webhook

/// An in-memory KVStore with the protocol's semantics (versions, create-only, CAS,
/// expiry, prefix listing with a cursor), plus fault injection for crash tests.
final class MemoryStore: KVStore {
    var entries: [String: KVEntry] = [:]
    var now = 1_700_000_000
    /// Called before every write with the key; throw to simulate a failure or a crash.
    var beforeWrite: ((String) throws(KVError) -> Void)?
    /// Called before every compare-and-swap with the key, to interleave a rival writer.
    var beforeCAS: ((String) -> Void)?
    var unavailable = false
    private(set) var writes: [String] = []

    private func check() throws(KVError) {
        if unavailable { throw KVError.unavailable("memory store switched off") }
    }

    private func live(_ key: String) -> KVEntry? {
        guard let e = entries[key] else { return nil }
        if let exp = e.expiresAt, exp <= now { return nil }
        return e
    }

    private func write(_ key: String, _ value: JSON, _ metadata: JSON?, _ expiresAt: Int?) throws(KVError) -> KVEntry {
        try beforeWrite?(key)
        let e = KVEntry(key: key, value: value, version: (entries[key]?.version ?? 0) + 1,
                        metadata: metadata, expiresAt: expiresAt)
        entries[key] = e
        writes.append(key)
        return e
    }

    func get(_ key: String) throws(KVError) -> KVEntry? { try check(); return live(key) }

    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try check(); return try write(key, value, metadata, expiresAt)
    }

    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try check()
        if live(key) != nil { throw KVError.exists }
        return try write(key, value, metadata, expiresAt)
    }

    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try check()
        beforeCAS?(key)
        let current = live(key)?.version
        guard current == expected else { throw KVError.versionMismatch(current: current) }
        return try write(key, value, metadata, expiresAt)
    }

    func delete(_ key: String) throws(KVError) -> Bool {
        try check()
        try beforeWrite?(key)
        return entries.removeValue(forKey: key) != nil
    }

    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        try check()
        let keys = entries.keys.filter { $0.hasPrefix(prefix) && live($0) != nil }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .filter { cursor == nil || $0.utf8.lexicographicallyPrecedes(cursor!.utf8) == false && $0 != cursor }
        let page = Array(keys.prefix(limit))
        return KVPage(keys: page, cursor: keys.count > limit ? page.last : nil)
    }

    func state(_ uid: String) -> SubscriptionState? {
        entries[SubscriptionState.key(uid: uid)].flatMap { try? SubscriptionState(json: $0.value) }
    }

    /// Every value by key (versions and expiry left out): what two runs must agree on.
    var values: [String: JSON] { entries.mapValues(\.value) }
}

struct Crash: Error {}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSON)...) { self.init(elements) }
}

let testPlans = Plans(["price_basic_m": "basic", "basic_monthly": "basic", "price_pro_m": "pro",
                       "pro_monthly": "pro", "pro_yearly": "pro"])

/// Builders for Stripe events in the shapes Stripe sends.
enum Events {
    static func event(_ id: String, _ type: String, _ created: Int, _ object: JSON) -> JSON {
        ["id": .string(id), "object": "event", "api_version": "2025-03-31.basil", "type": .string(type),
         "created": JSON(created), "livemode": false, "data": ["object": object]]
    }

    static func checkout(_ id: String, created: Int, uid: String? = "user-1", customer: String = "cus_1",
                         subscription: String = "sub_1", metadata: JSON = ["plan": "pro_monthly"]) -> JSON {
        var o: JSONObject = ["id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
                             "customer": .string(customer), "subscription": .string(subscription),
                             "payment_status": "paid", "status": "complete", "metadata": metadata]
        o["client_reference_id"] = uid.map { .string($0) } ?? .null
        return event(id, "checkout.session.completed", created, .object(o))
    }

    /// A subscription object; `newShape` puts the period end on the items (API 2025-03-31+).
    static func subscription(_ id: String, _ type: String = "customer.subscription.updated", created: Int,
                             status: String, periodEnd: Int? = nil, trialEnd: Int? = nil,
                             price: String = "price_pro_m", lookupKey: String? = nil,
                             customer: String = "cus_1", subscription: String = "sub_1",
                             uid: String? = nil, newShape: Bool = true, cancelAtPeriodEnd: Bool = false) -> JSON {
        var item: JSONObject = ["id": "si_1", "object": "subscription_item",
                                "price": ["id": .string(price), "object": "price",
                                          "lookup_key": lookupKey.map { .string($0) } ?? .null]]
        var o: JSONObject = ["id": .string(subscription), "object": "subscription", "status": .string(status),
                             "customer": .string(customer), "cancel_at_period_end": .bool(cancelAtPeriodEnd),
                             "metadata": uid.map { ["uid": .string($0)] } ?? [:]]
        if let periodEnd {
            if newShape { item["current_period_end"] = JSON(periodEnd); item["current_period_start"] = JSON(periodEnd - 2_592_000) }
            else { o["current_period_end"] = JSON(periodEnd); o["current_period_start"] = JSON(periodEnd - 2_592_000) }
        }
        o["trial_end"] = trialEnd.map { JSON($0) } ?? .null
        o["items"] = ["object": "list", "data": [.object(item)]]
        return event(id, type, created, .object(o))
    }

    /// An invoice; `newShape` names the subscription under parent.subscription_details.
    static func invoice(_ id: String, _ type: String, created: Int, periodEnd: Int, reason: String = "subscription_cycle",
                        amountPaid: Int = 1500, customer: String = "cus_1", subscription: String = "sub_1",
                        newShape: Bool = true) -> JSON {
        var o: JSONObject = ["id": .string("in_" + id), "object": "invoice", "customer": .string(customer),
                             "billing_reason": .string(reason), "amount_paid": JSON(amountPaid),
                             "period_end": JSON(periodEnd - 2_592_000),
                             "lines": ["object": "list", "data": [["period": ["start": JSON(periodEnd - 2_592_000), "end": JSON(periodEnd)]]]]]
        if newShape {
            o["parent"] = ["type": "subscription_details", "subscription_details": ["subscription": .string(subscription), "metadata": [:]]]
        } else {
            o["subscription"] = .string(subscription)
        }
        return event(id, type, created, .object(o))
    }

    static func parsed(_ json: JSON) -> StripeEvent { try! StripeEvent(json: json) }
}

func makeApplier(_ store: MemoryStore, plans: Plans = testPlans) -> (WebhookApplier, () -> [String]) {
    let applier = WebhookApplier(store: store, plans: plans, now: { store.now })
    var logs: [String] = []
    applier.log = { logs.append($0) }
    return (applier, { logs })
}
