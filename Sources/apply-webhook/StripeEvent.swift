import Records
import Subscriptions

/// A Stripe event (a "snapshot" event: `data.object` is the object as it was when the
/// event happened). Only the envelope is checked here; `Interpreter` reads the object.
struct StripeEvent: Equatable {
    let id: String
    let type: String
    /// Unix seconds, one-second resolution: ordering needs a tie-break (EventClock).
    let created: Int
    let object: JSONObject
    /// The whole event, kept for the pending area.
    let json: JSON

    struct Invalid: Error, Equatable, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    init(json: JSON) throws(Invalid) {
        guard let o = json.object else { throw Invalid(message: "the payload is not a JSON object") }
        guard let id = o["id"]?.string, !id.isEmpty else { throw Invalid(message: "the event has no id") }
        guard let type = o["type"]?.string, !type.isEmpty else { throw Invalid(message: "event \(id) has no type") }
        guard let created = o["created"]?.int else {
            throw Invalid(message: "event \(id) has no integer created time (not a snapshot event)")
        }
        guard let object = o["data"]?["object"]?.object else {
            throw Invalid(message: "event \(id) has no data.object")
        }
        self.id = id; self.type = type; self.created = created; self.object = object; self.json = json
    }

    init(bytes: [UInt8]) throws(Invalid) {
        let value: JSON
        do { value = try JSONReader.parse(bytes) } catch {
            throw Invalid(message: "invalid JSON payload: \(error)")
        }
        try self.init(json: value)
    }
}

/// Orders events that touched the same field: by `created`, then (same second) by the
/// precedence of the status the event reports, then by event id. A total order, so the
/// state a set of events leaves does not depend on the order they arrived in.
struct EventClock: Comparable, Equatable {
    var created: Int
    var rank: Int
    var eventID: String

    static func < (a: EventClock, b: EventClock) -> Bool {
        if a.created != b.created { return a.created < b.created }
        if a.rank != b.rank { return a.rank < b.rank }
        return a.eventID.utf8.lexicographicallyPrecedes(b.eventID.utf8)
    }

    /// Below every real event: what a checkout session fills in (its status and plan are
    /// a guess until the subscription's own events speak).
    static func provisional(_ eventID: String) -> EventClock { EventClock(created: -1, rank: 0, eventID: eventID) }
    /// Below everything: a field no event has set yet.
    static let unset = EventClock(created: Int.min, rank: 0, eventID: "")

    var json: JSON { .array([JSON(created), JSON(rank), .string(eventID)]) }

    init(created: Int, rank: Int, eventID: String) {
        self.created = created; self.rank = rank; self.eventID = eventID
    }

    init?(json: JSON?) {
        guard let a = json?.array, a.count == 3, let c = a[0].int, let r = a[1].int, let e = a[2].string else { return nil }
        self.init(created: c, rank: r, eventID: e)
    }
}

extension SubscriptionState.Status {
    /// Stripe's eight subscription statuses; nil for anything else (including our own
    /// spellings, so a Stripe object saying "trial" is not silently accepted).
    init?(stripeStatus text: String) {
        switch text {
        case "trialing": self = .trial
        case "active": self = .active
        case "past_due": self = .past_due
        case "canceled": self = .cancelled
        case "unpaid": self = .unpaid
        case "incomplete": self = .incomplete
        case "incomplete_expired": self = .incomplete_expired
        case "paused": self = .paused
        default: return nil
        }
    }

    /// A subscription in a terminal status never leaves it: Stripe does not revive a
    /// cancelled or expired subscription (a new purchase is a new subscription).
    var isTerminal: Bool { self == .cancelled || self == .incomplete_expired }

    /// Precedence between two events of the same second: the later stage of Stripe's
    /// lifecycle wins (incomplete → trial → active → past_due → unpaid → paused →
    /// cancelled / incomplete_expired). docs/apply-webhook.md explains the choice.
    var rank: Int {
        switch self {
        case .incomplete: return 0
        case .trial: return 1
        case .active: return 2
        case .past_due: return 3
        case .unpaid: return 4
        case .paused: return 5
        case .cancelled: return 6
        case .incomplete_expired: return 7
        case .expired: return 8
        }
    }
}

/// What one event says about a subscription, independent of any stored state.
struct Change: Equatable {
    enum Source: Equatable { case checkout, subscription, invoicePaid, invoiceFailed }
    /// A field an event either leaves alone or sets (possibly to null).
    enum Field<T: Equatable>: Equatable { case absent, set(T?) }

    var source: Source
    var eventID: String
    var created: Int
    var subscription: String?
    var customer: String?
    /// The user named on the object itself (client_reference_id or metadata.uid).
    var uid: String?
    var status: SubscriptionState.Status?
    var plan: String?
    /// The subscription's own period end (snapshot events).
    var periodEnd: Int?
    /// The end of a period an invoice paid for.
    var paidThrough: Int?
    var trialEnd: Field<Int> = .absent
    var cancelAtPeriodEnd: Bool?
    /// Prices the plans file does not know, for a warning.
    var unknownPrices: [String] = []
    /// The invoice a payment event is about: Stripe announces one payment as
    /// `invoice.paid` and `invoice.payment_succeeded`, applied once (by invoice id).
    var paidInvoice: String?

    init(source: Source, eventID: String, created: Int) {
        self.source = source; self.eventID = eventID; self.created = created
    }

    var clock: EventClock { EventClock(created: created, rank: (status ?? .incomplete).rank, eventID: eventID) }
    /// The clock this event's fields are written with: a checkout only fills gaps.
    var fieldClock: EventClock { source == .checkout ? .provisional(eventID) : clock }
    var isTerminal: Bool { status?.isTerminal ?? false }
}

/// Turns an event into a `Change`, or says why it is ignored. Reads both object shapes
/// Stripe has used: before API version 2025-03-31 the period end is on the subscription
/// and an invoice names its subscription directly; since then both live deeper
/// (subscription items, `parent.subscription_details`).
struct Interpreter {
    var plans: Plans

    enum Result: Equatable {
        case change(Change)
        case ignored(String)
    }

    func interpret(_ event: StripeEvent) -> Result {
        // Cases, not a Set<String>: a Set's generic metadata and hashing are built afresh
        // in every process, and this one starts per connection.
        switch event.type {
        case "checkout.session.completed": return checkout(event)
        case "customer.subscription.created", "customer.subscription.updated",
             "customer.subscription.paused", "customer.subscription.resumed",
             "customer.subscription.deleted":
            return subscription(event)
        case "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed": return invoice(event)
        default: return .ignored("event type \(event.type) is not handled")
        }
    }

    // MARK: Objects

    private func checkout(_ event: StripeEvent) -> Result {
        let o = event.object
        if let mode = o["mode"]?.string, mode != "subscription" {
            return .ignored("checkout session in \(mode) mode, not a subscription")
        }
        guard let sub = Self.id(o["subscription"]) else { return .ignored("checkout session has no subscription") }
        var c = Change(source: .checkout, eventID: event.id, created: event.created)
        c.subscription = sub
        c.customer = Self.id(o["customer"])
        c.uid = Self.nonEmpty(o["client_reference_id"]?.string) ?? Self.nonEmpty(o["metadata"]?["uid"]?.string)
        c.status = .active
        // Line items are only present when expanded; metadata is the usual way to say
        // which price a session sold.
        for item in o["line_items"]?["data"]?.array ?? [] {
            if let t = resolve(item["price"], into: &c) { c.plan = t; break }
        }
        if c.plan == nil {
            for key in ["plan", "price", "lookup_key"] {
                guard let v = Self.nonEmpty(o["metadata"]?[key]?.string) else { continue }
                if let t = tier(named: v) { c.plan = t; break }
                c.unknownPrices.append(v)
            }
        }
        return .change(c)
    }

    private func subscription(_ event: StripeEvent) -> Result {
        let o = event.object
        guard let sub = o["id"]?.string else { return .ignored("subscription object has no id") }
        var c = Change(source: .subscription, eventID: event.id, created: event.created)
        c.subscription = sub
        c.customer = Self.id(o["customer"])
        c.uid = Self.nonEmpty(o["metadata"]?["uid"]?.string)
        let reported = o["status"]?.string.flatMap { SubscriptionState.Status(stripeStatus: $0) }
        switch event.type {
        case "customer.subscription.deleted":
            c.status = (reported?.isTerminal ?? false) ? reported : .cancelled
        case "customer.subscription.paused":
            c.status = reported ?? .paused
        case "customer.subscription.resumed":
            c.status = reported ?? .active
        default:
            guard let reported else {
                return .ignored("subscription \(sub) has no known status (\(o["status"]?.string ?? "none"))")
            }
            c.status = reported
        }
        var ends: [Int] = []
        if let e = o["current_period_end"]?.int { ends.append(e) }
        for item in o["items"]?["data"]?.array ?? [] {
            if let e = item["current_period_end"]?.int { ends.append(e) }
            if c.plan == nil, let t = resolve(item["price"] ?? item["plan"], into: &c) { c.plan = t }
        }
        if c.plan == nil, let t = resolve(o["plan"], into: &c) { c.plan = t }
        c.periodEnd = ends.max()
        if let t = o["trial_end"] { c.trialEnd = .set(t.int) }
        c.cancelAtPeriodEnd = o["cancel_at_period_end"]?.bool
        return .change(c)
    }

    private func invoice(_ event: StripeEvent) -> Result {
        let o = event.object
        let details = o["parent"]?["subscription_details"]
        guard let sub = Self.id(o["subscription"]) ?? Self.id(details?["subscription"]) else {
            return .ignored("invoice is not for a subscription")
        }
        var c = Change(source: event.type == "invoice.payment_failed" ? .invoiceFailed : .invoicePaid,
                       eventID: event.id, created: event.created)
        c.subscription = sub
        c.customer = Self.id(o["customer"])
        c.uid = Self.nonEmpty(details?["metadata"]?["uid"]?.string)
            ?? Self.nonEmpty(o["subscription_details"]?["metadata"]?["uid"]?.string)
            ?? Self.nonEmpty(o["metadata"]?["uid"]?.string)
        let firstInvoice = o["billing_reason"]?.string == "subscription_create"
        if c.source == .invoiceFailed {
            // While the first payment fails the subscription stays incomplete (Stripe
            // retries, then expires it); its own events say so. past_due is for renewals.
            if firstInvoice { return .ignored("failed first invoice: the subscription stays incomplete") }
            c.status = .past_due
            return .change(c)
        }
        c.paidInvoice = Self.nonEmpty(o["id"]?.string)
        // A trial starts with a paid invoice of 0: the user is still in the trial.
        let zeroTrialInvoice = firstInvoice && (o["amount_paid"]?.int ?? -1) == 0
        c.status = zeroTrialInvoice ? nil : .active
        // invoice.period_end is the *previous* period for subscription invoices; the
        // paid period is on the lines.
        c.paidThrough = (o["lines"]?["data"]?.array ?? []).compactMap { $0["period"]?["end"]?.int }.max()
        if c.status == nil && c.paidThrough == nil { return .ignored("zero-amount first invoice with no period") }
        return .change(c)
    }

    // MARK: Helpers

    /// The tier of a price object (or a bare price id, or a legacy plan object), in this
    /// order (docs/apply-webhook.md, "Plans"): the price id in the plans file; its
    /// `lookup_key`; its `metadata.plan`; its product's `metadata.plan` when the product
    /// is expanded. A lookup key or metadata value counts when the plans file lists it
    /// as a key or as a tier name.
    private func resolve(_ price: JSON?, into c: inout Change) -> String? {
        guard let price else { return nil }
        let id = price.string ?? price["id"]?.string
        if let id, let t = plans.tier(priceID: id, lookupKey: nil) { return t }
        let candidates = [price["lookup_key"]?.string, price["metadata"]?["plan"]?.string,
                          price["product"]?["metadata"]?["plan"]?.string]
        for v in candidates {
            if let v = Self.nonEmpty(v), let t = tier(named: v) { return t }
        }
        if let p = id ?? price["lookup_key"]?.string { c.unknownPrices.append(p) }
        return nil
    }

    /// A name from a lookup key or metadata: a key of the plans file, or one of its tiers.
    private func tier(named v: String) -> String? {
        plans.tier(priceID: v, lookupKey: v) ?? (plans.knownTiers.contains(v) ? v : nil)
    }

    /// An id field that is either the id or the expanded object.
    static func id(_ v: JSON?) -> String? {
        guard let v else { return nil }
        return nonEmpty(v.string ?? v["id"]?.string)
    }

    static func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.isEmpty else { return nil }
        return s
    }
}
