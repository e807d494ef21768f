import Records
import Subscriptions

/// What apply-webhook keeps beside a user's SubscriptionState (in its `extra`, under
/// "stripe"), so that events arriving late, twice or out of order leave the same state:
/// for every field, the clock of the event that last set it.
struct Bookkeeping: Equatable {
    static let key = "stripe"
    /// Event ids recently applied to this user, newest last: a re-delivery is recognised
    /// even when the process died between writing the state and the event marker.
    static let recentLimit = 32

    /// The earliest event applied for the current `subscription` (the minimum, not the
    /// first to arrive, so it does not depend on arrival order).
    var since: EventClock?
    var status: EventClock?
    var plan: EventClock?
    var period: EventClock?
    var trial: EventClock?
    var cancel: EventClock?
    /// The newest event applied (its id and time are the state's last_event_id, updated).
    var last: EventClock?
    /// The subscription's own period end, and the end of the latest period an invoice
    /// paid for: the state's current_period_end is the later of the two.
    var periodSnapshot: Int?
    var paidThrough: Int?
    var events: [String] = []

    init() {}

    init(_ json: JSON?) {
        guard let o = json?.object else { return }
        since = EventClock(json: o["since"]); status = EventClock(json: o["status"])
        plan = EventClock(json: o["plan"]); period = EventClock(json: o["period"])
        trial = EventClock(json: o["trial"]); cancel = EventClock(json: o["cancel"])
        last = EventClock(json: o["last"])
        periodSnapshot = o["period_snapshot"]?.int; paidThrough = o["paid_through"]?.int
        events = (o["events"]?.array ?? []).compactMap(\.string)
    }

    var json: JSON {
        var o = JSONObject()
        func put(_ k: String, _ c: EventClock?) { o[k] = c?.json ?? .null }
        put("since", since); put("status", status); put("plan", plan); put("period", period)
        put("trial", trial); put("cancel", cancel); put("last", last)
        o["period_snapshot"] = periodSnapshot.map { JSON($0) } ?? .null
        o["paid_through"] = paidThrough.map { JSON($0) } ?? .null
        o["events"] = .array(events.map { .string($0) })
        return .object(o)
    }
}

/// The pure state machine: one event's `Change` merged into a user's stored state.
///
/// Each field takes the value of the newest event (by EventClock) that set it, so the
/// result is the state an in-order replay would give, whatever order the events came
/// in; applying an event twice changes nothing. Two rules on top:
/// - a terminal status (cancelled, incomplete_expired) is never left for a non-terminal
///   one on the same subscription;
/// - the state follows one subscription, the current one. An event about another
///   subscription takes over only when it is newer than the event that made the
///   current one current, and never when it reports that other subscription ended.
enum StateMerge {
    enum Result: Equatable {
        case applied(SubscriptionState)
        case duplicate
        /// Nothing of the event is newer than the state. The state to write anyway when
        /// only the bookkeeping learned something (an earlier `since`), else nil.
        case stale(String, SubscriptionState?)
    }

    static func merge(_ change: Change, uid: String, into current: SubscriptionState?) -> Result {
        guard let current else { return .applied(fresh(change, uid: uid, customer: nil, events: [])) }
        var book = current.extra[Bookkeeping.key].map { Bookkeeping($0) } ?? legacyBookkeeping(current)
        if book.events.contains(change.eventID) { return .duplicate }

        if let mine = current.subscription, let theirs = change.subscription, mine != theirs {
            if change.isTerminal {
                return .stale("subscription \(theirs) ended, but the user's current subscription is \(mine)", nil)
            }
            if let since = book.since, change.clock <= since {
                return .stale("subscription \(theirs) is older than the user's current subscription \(mine)", nil)
            }
            return .applied(fresh(change, uid: uid, customer: current.customer, events: book.events))
        }

        var state = current
        let clock = change.fieldClock
        var changed = false

        if let status = change.status {
            let mine = (current.status.isTerminal ? 1 : 0, book.status ?? .unset)
            let theirs = (status.isTerminal ? 1 : 0, clock)
            if theirs > mine {
                state.status = status; book.status = clock; changed = true
            }
        }
        if let plan = change.plan, clock > (book.plan ?? .unset) {
            state.plan = plan; book.plan = clock; changed = true
        }
        if let end = change.periodEnd, clock > (book.period ?? .unset) {
            book.periodSnapshot = end; book.period = clock; changed = true
        }
        if case .set(let end) = change.trialEnd, clock > (book.trial ?? .unset) {
            state.trialEnd = end; book.trial = clock; changed = true
        }
        if let cancel = change.cancelAtPeriodEnd, clock > (book.cancel ?? .unset) {
            state.cancelAtPeriodEnd = cancel; book.cancel = clock; changed = true
        }
        if let paid = change.paidThrough, paid > (book.paidThrough ?? Int.min) {
            book.paidThrough = paid; changed = true
        }
        if state.customer == nil, let customer = change.customer {
            state.customer = customer; changed = true
        }
        if state.subscription == nil, let sub = change.subscription {
            state.subscription = sub; book.since = change.clock; changed = true
        }
        var earlier = false
        if state.subscription == change.subscription, change.clock < (book.since ?? change.clock) {
            book.since = change.clock; earlier = true
        }
        guard changed else {
            let last = book.last.map { " (newest applied: \($0.eventID) at \($0.created))" } ?? ""
            let why = "every field this event sets was set by a newer event\(last)"
            guard earlier else { return .stale(why, nil) }
            finish(&state, &book, change)
            return .stale(why, state)
        }
        finish(&state, &book, change)
        return .applied(state)
    }

    /// A state started by `change` alone (first event for the user, or a new
    /// subscription taking over). A status no event gave yet reads `incomplete`
    /// (`none` to readers) until one does.
    private static func fresh(_ change: Change, uid: String, customer: String?, events: [String]) -> SubscriptionState {
        var book = Bookkeeping()
        book.events = events
        book.since = change.clock
        var state = SubscriptionState(uid: uid, status: .incomplete, customer: change.customer ?? customer,
                                      subscription: change.subscription)
        let clock = change.fieldClock
        if let s = change.status { state.status = s; book.status = clock }
        if let p = change.plan { state.plan = p; book.plan = clock }
        if let e = change.periodEnd { book.periodSnapshot = e; book.period = clock }
        if case .set(let e) = change.trialEnd { state.trialEnd = e; book.trial = clock }
        if let c = change.cancelAtPeriodEnd { state.cancelAtPeriodEnd = c; book.cancel = clock }
        book.paidThrough = change.paidThrough
        finish(&state, &book, change)
        return state
    }

    private static func finish(_ state: inout SubscriptionState, _ book: inout Bookkeeping, _ change: Change) {
        switch (book.periodSnapshot, book.paidThrough) {
        case let (a?, b?): state.currentPeriodEnd = max(a, b)
        case let (a, b): state.currentPeriodEnd = a ?? b
        }
        if change.clock > (book.last ?? .unset) {
            book.last = change.clock
            state.updated = change.created
            state.lastEventID = change.eventID
        }
        book.events.append(change.eventID)
        if book.events.count > Bookkeeping.recentLimit { book.events.removeFirst(book.events.count - Bookkeeping.recentLimit) }
        state.extra[Bookkeeping.key] = book.json
    }

    /// A state written without our bookkeeping (by hand, or by an older tool): its
    /// fields count as older than any event, except that its period end is kept.
    private static func legacyBookkeeping(_ s: SubscriptionState) -> Bookkeeping {
        var b = Bookkeeping()
        b.periodSnapshot = s.currentPeriodEnd
        if let u = s.updated { b.last = EventClock(created: u, rank: 0, eventID: s.lastEventID ?? "") }
        return b
    }
}
