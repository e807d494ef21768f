import Records
import KV
import Subscriptions

/// The outcome of one event, as the audit annotation and the batch summary report it.
struct Outcome: Equatable {
    enum Kind: String, CaseIterable {
        case applied, duplicate, stale, pending, ignored, invalid
        /// Acknowledged but never applicable (an id no key can hold, say): retrying could
        /// only fail the same way, so it is answered 200 and audited with its reason.
        case rejected
        /// The store failed: nothing is known to be written; Stripe (or a re-run) retries.
        case error
    }
    var kind: Kind
    var eventID: String?
    var eventType: String?
    var uid: String?
    var before: SubscriptionState.Status?
    var after: SubscriptionState.Status?
    var reason: String?
    /// Pending events this one unblocked (it brought the customer's user), and theirs.
    var drained: [Outcome] = []
    /// For a duplicate: how the event was first processed (`outcome`, `uid`, `before`,
    /// `after`, ...), kept in its marker. Repeated on every redelivery, so the audit log
    /// holds the application even when the first delivery's entry was lost.
    var original: JSON?

    /// The `annotations.audit` value read by the audit tool.
    var audit: JSON {
        var o = JSONObject()
        o["kind"] = "stripe"
        o["event_id"] = eventID.map { .string($0) } ?? .null
        o["event_type"] = eventType.map { .string($0) } ?? .null
        o["uid"] = uid.map { .string($0) } ?? .null
        o["outcome"] = .string(kind.rawValue)
        o["before"] = before.map { .string($0.rawValue) } ?? .null
        o["after"] = after.map { .string($0.rawValue) } ?? .null
        if let reason { o["reason"] = .string(reason) }
        if let original { o["original"] = original }
        if !drained.isEmpty {
            o["drained"] = .array(drained.map { d in
                var e = JSONObject()
                e["event_id"] = d.eventID.map { .string($0) } ?? .null
                e["event_type"] = d.eventType.map { .string($0) } ?? .null
                e["outcome"] = .string(d.kind.rawValue)
                e["after"] = d.after.map { .string($0.rawValue) } ?? .null
                return .object(e)
            })
        }
        return .object(o)
    }

    /// What a redelivery repeats: the annotation without the fields the duplicate's own
    /// entry already carries.
    var firstProcessing: JSON {
        guard case .object(var o) = audit else { return .null }
        for key in ["kind", "event_id", "event_type"] { o[key] = nil }
        return .object(o)
    }
}

/// Applies verified events to the store. Keys (all in one KV store; an id too long for a
/// key is replaced by its digest, KVKeyPart):
///
///   sub/<uid>                  the user's SubscriptionState (read by `kv serve`), with
///                              every subscription of the user inside it (Bookkeeping)
///   customer/<cus_id>          {"uid": ...}: who a Stripe customer is
///   event/<evt_id>             {"uid","type","outcome"}: processed (expires after `eventTTL`);
///                              metadata {"audit": the first processing's annotation}
///   pending/<cus_id>/<evt_id>  {"event","customer","parked_at"}: waiting for the
///                              customer's user (expires after `pendingTTL`)
///
/// Crash safety comes from the order of writes and from every step being idempotent:
/// the user's state is updated (compare-and-swap, so concurrent processes serialise)
/// with the event id in its recent list, then pending events are drained, then the
/// event marker is written. A process killed between any two steps leaves an event
/// Stripe re-delivers (no 200 was sent) or a batch re-run replays; the replay finds the
/// id in the state's recent list (or the merge finds nothing newer to write) and
/// completes the remaining steps.
final class WebhookApplier {
    let store: any KVStore
    let interpreter: Interpreter
    let eventTTL: Int
    let pendingTTL: Int
    let now: () -> Int
    var log: (String) -> Void = { Log.error($0) }
    private var warnedPrices: Set<String> = []

    static let defaultEventTTL = 30 * 86_400
    static let defaultPendingTTL = 30 * 86_400

    init(store: any KVStore, plans: Plans, eventTTL: Int = WebhookApplier.defaultEventTTL,
         pendingTTL: Int = WebhookApplier.defaultPendingTTL, now: @escaping () -> Int = { Clock.now() }) {
        self.store = store
        self.interpreter = Interpreter(plans: plans)
        self.eventTTL = eventTTL
        self.pendingTTL = pendingTTL
        self.now = now
    }

    static func eventKey(_ id: String) -> String { KVKeyPart.key("event/", id) }
    static func customerKey(_ id: String) -> String { KVKeyPart.key("customer/", id) }
    static let pendingRoot = "pending/"
    /// Two ids in one key: each gets 200 bytes before it is hashed (Stripe's ids are ~30).
    static func pendingPrefix(_ customer: String) -> String {
        pendingRoot + KVKeyPart.part(customer, maxBytes: 200) + "/"
    }
    static func pendingKey(_ customer: String, _ event: String) -> String {
        pendingPrefix(customer) + KVKeyPart.part(event, maxBytes: 200)
    }

    /// Applies one event. Throws only when the store fails (KVError) or holds a state
    /// it cannot read; the caller answers 503 / 500 and the event is retried.
    func apply(_ event: StripeEvent) throws -> Outcome {
        var outcome = Outcome(kind: .applied, eventID: event.id, eventType: event.type)

        if let marker = try store.get(Self.eventKey(event.id)) {
            outcome.kind = .duplicate
            outcome.uid = marker.value["uid"]?.string
            if let uid = outcome.uid {
                let status = try readState(uid)?.status
                outcome.before = status; outcome.after = status
            }
            outcome.reason = "event already processed (\(marker.value["outcome"]?.string ?? "?"))"
            // Markers written before the annotation was kept name only the outcome.
            outcome.original = marker.metadata?["audit"]
                ?? .object(JSONObject([("outcome", marker.value["outcome"] ?? .null), ("uid", marker.value["uid"] ?? .null)]))
            return outcome
        }

        let change: Change
        switch interpreter.interpret(event) {
        case .ignored(let why):
            outcome.kind = .ignored
            outcome.reason = why
            try writeMarker(event, uid: nil, outcome: .ignored, audit: outcome.firstProcessing)
            return outcome
        case .change(let c):
            change = c
        }
        let unknown = change.unknownPrices.filter { !warnedPrices.contains($0) }
        if !unknown.isEmpty {
            // Once per price and process: a replay must not print it a million times.
            warnedPrices.formUnion(unknown)
            log("event \(event.id): price \(unknown.joined(separator: ", ")) not in the plans file")
        }

        // Who is the user: named on the object, else known from the customer.
        var mapped: String?
        if let customer = change.customer {
            mapped = try store.get(Self.customerKey(customer))?.value["uid"]?.string
        }
        guard let uid = change.uid ?? mapped else {
            guard let customer = change.customer else {
                outcome.kind = .ignored
                outcome.reason = "the event names neither a user nor a customer"
                try writeMarker(event, uid: nil, outcome: .ignored, audit: outcome.firstProcessing)
                return outcome
            }
            return try park(event, customer: customer)
        }
        outcome.uid = uid

        if let customer = change.customer, mapped != uid {
            try store.put(Self.customerKey(customer), ["uid": .string(uid)], metadata: nil, expiresAt: nil)
            if let mapped { log("customer \(customer) moves from user \(mapped) to \(uid) (event \(event.id))") }
        }

        var merged: StateMerge.Result = .duplicate
        var before: SubscriptionState.Status?
        let entry = try store.update(SubscriptionState.key(uid: uid)) { entry in
            let current = try entry.map { try SubscriptionState(json: $0.value) }
            before = current?.status
            merged = StateMerge.merge(change, uid: uid, into: current)
            switch merged {
            case .applied(let next), .stale(_, let next?), .duplicateInvoice(_, let next?): return next.json
            default: return nil
            }
        }
        outcome.before = before
        outcome.after = try entry.map { try SubscriptionState(json: $0.value).status }
        let markerOutcome: Outcome.Kind
        switch merged {
        case .applied:
            outcome.kind = .applied
            markerOutcome = .applied
        case .duplicate:
            // Applied by an earlier delivery that died before its marker was written, so
            // before any audit entry: this one records the application.
            outcome.kind = .duplicate
            outcome.reason = "event already applied to the user's state"
            markerOutcome = .applied
            var first = Outcome(kind: .applied, uid: uid)
            first.after = outcome.after
            first.reason = "applied by an earlier delivery that was not answered"
            outcome.original = first.firstProcessing
        case .stale(let why, _):
            outcome.kind = .stale
            outcome.reason = why
            markerOutcome = .stale
        case .duplicateInvoice(let invoice, _):
            outcome.kind = .duplicate
            outcome.reason = "the payment of invoice \(invoice) was already applied (Stripe announces it as invoice.paid and invoice.payment_succeeded)"
            markerOutcome = .duplicate
        }

        // An event naming its user is the kind that creates the customer's mapping, so it
        // drains the customer's pending events: also when re-delivered, which finishes a
        // drain a crash interrupted. Events found through the mapping do not list.
        if change.uid != nil, let customer = change.customer {
            outcome.drained = try drain(customer: customer)
        }
        try writeMarker(event, uid: uid, outcome: markerOutcome, audit: outcome.original ?? outcome.firstProcessing)
        return outcome
    }

    /// Keeps an event nobody can be found for yet, then looks again: a checkout for the
    /// same customer may have stored the mapping (and drained) between our two reads.
    private func park(_ event: StripeEvent, customer: String) throws -> Outcome {
        let key = Self.pendingKey(customer, event.id)
        let value: JSON = ["event": event.json, "customer": .string(customer), "parked_at": JSON(now())]
        // Parked events of customers no checkout ever names (an account shared with other
        // products) must not pile up: they expire, and `--pending purge` removes them.
        try store.put(key, value, metadata: nil, expiresAt: now() + pendingTTL)
        if try store.get(Self.customerKey(customer))?.value["uid"]?.string != nil {
            let drained = try drain(customer: customer)
            if let mine = drained.first(where: { $0.eventID == event.id }) { return mine }
        }
        var outcome = Outcome(kind: .pending, eventID: event.id, eventType: event.type)
        outcome.reason = "no user known for customer \(customer) yet"
        return outcome
    }

    /// Applies every pending event of a customer whose user is now known. Safe to run
    /// in several processes at once: each event is applied idempotently, then removed.
    func drain(customer: String) throws -> [Outcome] {
        let prefix = Self.pendingPrefix(customer)
        var keys: [String] = []
        var cursor: String?
        repeat {
            let page = try store.list(prefix: prefix, limit: 1000, cursor: cursor)
            keys += page.keys
            cursor = page.cursor
        } while cursor != nil
        var results: [Outcome] = []
        for key in keys {
            guard let entry = try store.get(key) else { continue }   // another process took it
            guard let json = entry.value["event"], let event = try? StripeEvent(json: json) else {
                log("pending entry \(key) is not an event; left in place")
                continue
            }
            let outcome = try apply(event)
            if outcome.kind == .pending { continue }   // mapping vanished: stays parked
            try store.delete(key)
            results.append(outcome)
        }
        return results
    }

    /// `audit`: the annotation of the processing the marker records, repeated by every
    /// redelivery (see Outcome.original).
    private func writeMarker(_ event: StripeEvent, uid: String?, outcome: Outcome.Kind, audit: JSON) throws {
        var value = JSONObject()
        value["uid"] = uid.map { .string($0) } ?? .null
        value["type"] = .string(event.type)
        value["outcome"] = .string(outcome.rawValue)
        // Beside the value: it tells how the event was audited, not whether it was processed.
        try store.put(Self.eventKey(event.id), .object(value), metadata: ["audit": audit], expiresAt: now() + eventTTL)
    }

    private func readState(_ uid: String) throws -> SubscriptionState? {
        try store.get(SubscriptionState.key(uid: uid)).map { try SubscriptionState(json: $0.value) }
    }
}
