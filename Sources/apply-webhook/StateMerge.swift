import Records
import Subscriptions

/// One Stripe subscription of a user, as the events about it left it: its fields, and
/// for every field the clock of the event that last set it.
struct SubscriptionRecord: Equatable {
    var status: SubscriptionState.Status = .incomplete
    var plan: String?
    var customer: String?
    var trialEnd: Int?
    var cancelAtPeriodEnd = false
    /// The subscription's own period end, and the end of the latest period an invoice
    /// paid for: the current period end is the later of the two.
    var periodSnapshot: Int?
    var paidThrough: Int?
    /// The earliest and the newest event about this subscription (minimum and maximum,
    /// not first and last to arrive, so neither depends on arrival order).
    var since: EventClock?
    var last: EventClock?
    var statusClock: EventClock?
    var planClock: EventClock?
    var periodClock: EventClock?
    var trialClock: EventClock?
    var cancelClock: EventClock?

    var currentPeriodEnd: Int? {
        switch (periodSnapshot, paidThrough) {
        case let (a?, b?): return max(a, b)
        case let (a, b): return a ?? b
        }
    }

    /// The fields and the clocks that set them: an event that changes none of them (it
    /// was newer for no field) is `stale`.
    var fields: JSON {
        var r = self
        r.since = nil; r.last = nil
        return r.json
    }

    /// Per-field last-writer-wins by EventClock: a max over a total order, so the record a
    /// set of events leaves is the same in every arrival order.
    mutating func merge(_ change: Change) {
        let clock = change.fieldClock
        if let s = change.status {
            // A terminal status is never left for a non-terminal one (Stripe never revives
            // a subscription): it compares above every clock.
            if (s.isTerminal ? 1 : 0, clock) > (status.isTerminal ? 1 : 0, statusClock ?? .unset) {
                status = s; statusClock = clock
            }
        }
        if let p = change.plan, clock > (planClock ?? .unset) { plan = p; planClock = clock }
        if let e = change.periodEnd, clock > (periodClock ?? .unset) { periodSnapshot = e; periodClock = clock }
        if case .set(let e) = change.trialEnd, clock > (trialClock ?? .unset) { trialEnd = e; trialClock = clock }
        if let c = change.cancelAtPeriodEnd, clock > (cancelClock ?? .unset) { cancelAtPeriodEnd = c; cancelClock = clock }
        if let p = change.paidThrough, p > (paidThrough ?? Int.min) { paidThrough = p }
        // Stripe never moves a subscription to another customer; the smaller id if two
        // events disagreed keeps the result independent of their order.
        if let c = change.customer, customer.map({ c.utf8.lexicographicallyPrecedes($0.utf8) }) ?? true { customer = c }
        if change.clock < (since ?? change.clock) || since == nil { since = change.clock }
        if change.clock > (last ?? .unset) { last = change.clock }
    }

    /// How much a subscription counts when choosing the one a user's state shows: one
    /// that grants access, then one that may still come back (unpaid, paused, or
    /// waiting for its first payment), then an ended one.
    var liveness: Int {
        switch status {
        case .active, .trial, .past_due: return 2
        case .unpaid, .paused, .incomplete: return 1
        case .cancelled, .incomplete_expired, .expired: return 0
        }
    }

    init() {}

    init(json: JSON) {
        guard let o = json.object else { return }
        status = o["status"]?.string.flatMap { SubscriptionState.Status(rawValue: $0) } ?? .incomplete
        plan = o["plan"]?.string; customer = o["customer"]?.string
        trialEnd = o["trial_end"]?.int; cancelAtPeriodEnd = o["cancel_at_period_end"]?.bool ?? false
        periodSnapshot = o["period_snapshot"]?.int; paidThrough = o["paid_through"]?.int
        let c = o["clocks"]
        since = EventClock(json: c?["since"]); last = EventClock(json: c?["last"])
        statusClock = EventClock(json: c?["status"]); planClock = EventClock(json: c?["plan"])
        periodClock = EventClock(json: c?["period"]); trialClock = EventClock(json: c?["trial"])
        cancelClock = EventClock(json: c?["cancel"])
    }

    var json: JSON {
        var o = JSONObject()
        o["status"] = .string(status.rawValue)
        o["plan"] = plan.map { .string($0) } ?? .null
        o["customer"] = customer.map { .string($0) } ?? .null
        o["trial_end"] = trialEnd.map { JSON($0) } ?? .null
        o["cancel_at_period_end"] = .bool(cancelAtPeriodEnd)
        o["period_snapshot"] = periodSnapshot.map { JSON($0) } ?? .null
        o["paid_through"] = paidThrough.map { JSON($0) } ?? .null
        var c = JSONObject()
        func put(_ k: String, _ v: EventClock?) { c[k] = v?.json ?? .null }
        put("since", since); put("last", last); put("status", statusClock); put("plan", planClock)
        put("period", periodClock); put("trial", trialClock); put("cancel", cancelClock)
        o["clocks"] = .object(c)
        return .object(o)
    }
}

/// What apply-webhook keeps beside a user's SubscriptionState (in its `extra`, under
/// "stripe"): every subscription of the user, the newest event, and the recently
/// applied event ids. Everything in it is a function of the set of events applied, not
/// of their order, so the stored document is byte-identical in every arrival order.
struct Bookkeeping: Equatable {
    static let key = "stripe"
    /// How many recent event ids (and paid invoice ids) are kept: a re-delivery is
    /// recognised even when the process died between writing the state and the event
    /// marker. The newest by clock, not the last to arrive.
    static let recentLimit = 64
    static let format = 2

    /// By subscription id, in byte order of the ids.
    var subscriptions: [(id: String, record: SubscriptionRecord)] = []
    /// The newest event recorded for the user (its time and id are the state's
    /// `updated` and `last_event_id`), whether or not it changed a field.
    var last: EventClock?
    /// Ascending by clock, at most `recentLimit`; ids are event ids, or `invoice:<in_id>`
    /// for an invoice whose payment was applied.
    var recent: [EventClock] = []

    static func == (a: Bookkeeping, b: Bookkeeping) -> Bool { a.json == b.json }

    init() {}

    /// Reads the bookkeeping of `state`: this format, the one-subscription format before
    /// it, or none (a state written by hand), whose fields count as older than any event.
    init(of state: SubscriptionState) {
        let json = state.extra[Self.key]
        if let o = json?.object, o["format"]?.int == Self.format {
            for m in o["subscriptions"]?.object?.members ?? [] { subscriptions.append((m.key, SubscriptionRecord(json: m.value))) }
            last = EventClock(json: o["last"])
            recent = (o["recent"]?.array ?? []).compactMap { EventClock(json: $0) }
            return
        }
        let old = json?.object
        var r = SubscriptionRecord()
        r.status = state.status; r.plan = state.plan; r.customer = state.customer
        r.trialEnd = state.trialEnd; r.cancelAtPeriodEnd = state.cancelAtPeriodEnd
        r.periodSnapshot = old?["period_snapshot"]?.int ?? state.currentPeriodEnd
        r.paidThrough = old?["paid_through"]?.int
        r.since = EventClock(json: old?["since"]); r.last = EventClock(json: old?["last"])
        r.statusClock = EventClock(json: old?["status"]); r.planClock = EventClock(json: old?["plan"])
        r.periodClock = EventClock(json: old?["period"]); r.trialClock = EventClock(json: old?["trial"])
        r.cancelClock = EventClock(json: old?["cancel"])
        subscriptions = [(state.subscription ?? "", r)]
        last = r.last ?? state.updated.map { EventClock(created: $0, rank: 0, eventID: state.lastEventID ?? "") }
        // Ids of the old format have no clock: below every event, in id order.
        recent = (old?["events"]?.array ?? []).compactMap(\.string).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .map { EventClock(created: Int.min, rank: 0, eventID: $0) }
    }

    var json: JSON {
        var o = JSONObject()
        o["format"] = JSON(Self.format)
        var subs = JSONObject()
        for s in subscriptions { subs[s.id] = s.record.json }
        o["subscriptions"] = .object(subs)
        o["last"] = last?.json ?? .null
        o["recent"] = .array(recent.map(\.json))
        return .object(o)
    }

    func record(_ id: String) -> SubscriptionRecord? { subscriptions.first { $0.id == id }?.record }

    mutating func set(_ id: String, _ record: SubscriptionRecord) {
        if let i = subscriptions.firstIndex(where: { $0.id == id }) { subscriptions[i].record = record; return }
        let i = subscriptions.firstIndex { id.utf8.lexicographicallyPrecedes($0.id.utf8) } ?? subscriptions.count
        subscriptions.insert((id, record), at: i)
    }

    func remembers(_ id: String) -> Bool { recent.contains { $0.eventID == id } }

    /// Adds an id to the recent list, keeping the newest clock per id and the newest
    /// `recentLimit` ids: the result depends on the set of ids noted, not their order.
    mutating func remember(_ clock: EventClock) {
        if let i = recent.firstIndex(where: { $0.eventID == clock.eventID }) {
            if recent[i] >= clock { return }
            recent.remove(at: i)
        }
        let i = recent.firstIndex { clock < $0 } ?? recent.count
        recent.insert(clock, at: i)
        if recent.count > Self.recentLimit { recent.removeFirst(recent.count - Self.recentLimit) }
    }

    /// The subscription the user's state shows: the most live one, then the one started
    /// last, then the greater id. Nil when the user has none.
    var shown: (id: String, record: SubscriptionRecord)? {
        subscriptions.max { a, b in
            let x = (a.record.liveness, a.record.since ?? .unset), y = (b.record.liveness, b.record.since ?? .unset)
            if x != y { return x < y }
            return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
        }
    }
}

/// The pure state machine: one event's `Change` merged into a user's stored state.
///
/// Every subscription of the user has its own record, merged field by field (newest
/// event wins, terminal statuses stick); the user's state shows one of them (a live
/// subscription outranks an ended one, see `Bookkeeping.shown`). Applying an event twice
/// changes nothing, and the stored document is the same whatever order the events came in.
enum StateMerge {
    enum Result: Equatable {
        case applied(SubscriptionState)
        /// The event id is among those applied last: nothing to write.
        case duplicate
        /// The invoice's payment was already applied under another event
        /// (invoice.paid and invoice.payment_succeeded announce one payment): the state
        /// to write (the event's id is noted), with the other event's id.
        case duplicateInvoice(String, SubscriptionState?)
        /// Nothing the event says is newer than what its subscription holds. The state to
        /// write anyway (the bookkeeping learned the event), or nil when nothing changed.
        case stale(String, SubscriptionState?)
    }

    static func merge(_ change: Change, uid: String, into current: SubscriptionState?) -> Result {
        var book = current.map { Bookkeeping(of: $0) } ?? Bookkeeping()
        if book.remembers(change.eventID) { return .duplicate }
        let sub = change.subscription ?? ""
        let before = book.record(sub)
        var record = before ?? SubscriptionRecord()
        record.merge(change)
        book.set(sub, record)
        book.remember(change.clock)
        var paidBefore: String?
        if let invoice = change.paidInvoice {
            let key = "invoice:" + invoice
            paidBefore = book.recent.first { $0.eventID == key }.map { _ in invoice }
            book.remember(EventClock(created: change.clock.created, rank: change.clock.rank, eventID: key))
        }
        if change.clock > (book.last ?? .unset) { book.last = change.clock }

        let next = derive(uid: uid, book: book, base: current)
        let written = next.json == current?.json ? nil : next
        if let paidBefore { return .duplicateInvoice(paidBefore, written) }
        if before?.fields == record.fields {
            let newest = before?.last.map { " (newest for \(sub): \($0.eventID) at \($0.created))" } ?? ""
            return .stale("every field this event sets was set by a newer event\(newest)", written)
        }
        return .applied(next)
    }

    /// The user's state: the shown subscription's fields, the newest event's time and id,
    /// the bookkeeping, and whatever else the stored document held.
    static func derive(uid: String, book: Bookkeeping, base: SubscriptionState?) -> SubscriptionState {
        var state = SubscriptionState(uid: uid, status: .incomplete, extra: base?.extra ?? JSONObject())
        if let (id, r) = book.shown {
            state.status = r.status; state.plan = r.plan; state.currentPeriodEnd = r.currentPeriodEnd
            state.trialEnd = r.trialEnd; state.cancelAtPeriodEnd = r.cancelAtPeriodEnd
            state.customer = r.customer; state.subscription = id.isEmpty ? nil : id
        }
        state.updated = book.last?.created
        state.lastEventID = book.last?.eventID
        state.extra[Bookkeeping.key] = book.json
        return state
    }
}
