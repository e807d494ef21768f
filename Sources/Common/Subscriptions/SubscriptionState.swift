import Records
import KV
// The contract between the writer of subscription state (apply-webhook) and its reader
// (kv serve): one key per user, `sub/<uid>`, holding this document as its value.
// Both sides encode and decode through this type so the layout lives in one place
// (documented in docs/kv.md).

/// What the service knows about one user's subscription, as stored under `sub/<uid>`.
public struct SubscriptionState: Equatable, Sendable {
    /// Stored statuses: Stripe's eight subscription statuses (`trialing` stored as
    /// `trial`, `canceled` as `cancelled`) plus `expired`, which the writer may set
    /// when it learns a period ended without renewal.
    public enum Status: String, CaseIterable, Sendable {
        case active, trial, past_due, cancelled, expired
        case incomplete, incomplete_expired, unpaid, paused

        /// Parses a stored status or Stripe's own spelling of it (`trialing`, `canceled`).
        public init?(stripe text: String) {
            switch text {
            case "trialing": self = .trial
            case "canceled": self = .cancelled
            default: self.init(rawValue: text)
            }
        }
    }

    /// What readers are told: the seven statuses of `GET /v1/subscription`.
    public enum PublicStatus: String, CaseIterable, Sendable {
        case active, trial, past_due, unpaid, cancelled, expired, none
    }

    public var uid: String
    public var status: Status
    /// The plan tier name (from the plans file), when known.
    public var plan: String?
    /// End of the paid period, Unix seconds: access ends here unless a renewal extends it.
    public var currentPeriodEnd: Int?
    /// End of the trial, Unix seconds.
    public var trialEnd: Int?
    public var cancelAtPeriodEnd: Bool
    /// Stripe ids: `cus_...` and `sub_...`.
    public var customer: String?
    public var subscription: String?
    /// `created` of the last event applied (Unix seconds): older events must not overwrite.
    public var updated: Int?
    public var lastEventID: String?
    /// Members this type does not know, kept so that a writer can add fields without
    /// an older reader dropping them on a read-modify-write.
    public var extra: JSONObject

    public init(uid: String, status: Status, plan: String? = nil, currentPeriodEnd: Int? = nil,
                trialEnd: Int? = nil, cancelAtPeriodEnd: Bool = false, customer: String? = nil,
                subscription: String? = nil, updated: Int? = nil, lastEventID: String? = nil,
                extra: JSONObject = JSONObject()) {
        self.uid = uid; self.status = status; self.plan = plan
        self.currentPeriodEnd = currentPeriodEnd; self.trialEnd = trialEnd
        self.cancelAtPeriodEnd = cancelAtPeriodEnd; self.customer = customer
        self.subscription = subscription; self.updated = updated; self.lastEventID = lastEventID
        self.extra = extra
    }

    /// The KV key of a user's state. The uid is used as is (the store encodes keys, so any
    /// uid, slashes, dots, unicode, is safe), unless the key would be too long: then the
    /// uid's digest stands for it (KVKeyPart), for the writer and the reader alike.
    public static func key(uid: String) -> String { KVKeyPart.key(keyPrefix, uid) }
    public static let keyPrefix = "sub/"

    /// A switch, not a Set: every read of a state asks this of each member, and hashing a
    /// String costs more than comparing it with a few literals of its length.
    private static func isKnownField(_ key: String) -> Bool {
        switch key {
        case "uid", "status", "plan", "current_period_end", "trial_end", "cancel_at_period_end",
             "customer", "subscription", "updated", "last_event_id":
            return true
        default:
            return false
        }
    }

    // MARK: JSON

    private static func nullable(_ s: String?) -> JSON { s.map { JSON.string($0) } ?? JSON.null }
    private static func nullable(_ n: Int?) -> JSON { n.map { JSON($0) } ?? JSON.null }

    /// The stored document. Absent optionals are written as null so the layout is
    /// visible in every value.
    public var json: JSON {
        var o = JSONObject()
        o["uid"] = .string(uid)
        o["status"] = .string(status.rawValue)
        o["plan"] = Self.nullable(plan)
        o["current_period_end"] = Self.nullable(currentPeriodEnd)
        o["trial_end"] = Self.nullable(trialEnd)
        o["cancel_at_period_end"] = .bool(cancelAtPeriodEnd)
        o["customer"] = Self.nullable(customer)
        o["subscription"] = Self.nullable(subscription)
        o["updated"] = Self.nullable(updated)
        o["last_event_id"] = Self.nullable(lastEventID)
        for m in extra.members where o[m.key] == nil { o.members.append(m) }
        return .object(o)
    }

    public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// Decodes a stored document. Missing optional fields read as nil (false for
    /// `cancel_at_period_end`); `uid` and a known `status` are required.
    public init(json: JSON) throws(DecodeError) {
        guard let o = json.object else { throw DecodeError("subscription state is not a JSON object") }
        guard let uid = o["uid"]?.string else { throw DecodeError("subscription state has no uid") }
        guard let text = o["status"]?.string else { throw DecodeError("subscription state has no status") }
        guard let status = Status(stripe: text) else { throw DecodeError("unknown subscription status '\(text)'") }
        func string(_ k: String) throws(DecodeError) -> String? {
            guard let v = o[k], !v.isNull else { return nil }
            guard let s = v.string else { throw DecodeError("\(k) must be a string") }
            return s
        }
        func int(_ k: String) throws(DecodeError) -> Int? {
            guard let v = o[k], !v.isNull else { return nil }
            guard let n = v.int else { throw DecodeError("\(k) must be an integer (Unix seconds)") }
            return n
        }
        var extra = JSONObject()
        for m in o.members where !Self.isKnownField(m.key) { extra.members.append(m) }
        let cancel: Bool
        switch o["cancel_at_period_end"] {
        case nil, .null?: cancel = false
        case .bool(let b)?: cancel = b
        default: throw DecodeError("cancel_at_period_end must be a boolean")
        }
        self.init(uid: uid, status: status, plan: try string("plan"),
                  currentPeriodEnd: try int("current_period_end"), trialEnd: try int("trial_end"),
                  cancelAtPeriodEnd: cancel, customer: try string("customer"),
                  subscription: try string("subscription"), updated: try int("updated"),
                  lastEventID: try string("last_event_id"), extra: extra)
    }

    // MARK: Reading

    /// The status a reader sees at `now`. Stored statuses map as follows (docs/kv.md):
    /// unpaid → unpaid (Stripe's guidance: revoke access once retries are exhausted; it is
    /// its own status because paying the open invoice restores the subscription, unlike
    /// cancelled), incomplete → none (the first payment never went through: no access
    /// was ever granted), incomplete_expired → expired, paused → expired (Stripe pauses
    /// only a trial that ended without a payment method). A subscription that grants
    /// access (active, trial, past_due) reads as expired once its trial or paid period
    /// has ended (`+ grace` seconds), even if no event said so.
    public func publicStatus(now: Int, grace: Int = 0) -> PublicStatus {
        switch status {
        case .cancelled: return .cancelled
        case .expired, .incomplete_expired, .paused: return .expired
        case .incomplete: return .none
        case .trial:
            if let end = trialEnd ?? currentPeriodEnd, now >= end + grace { return .expired }
            return .trial
        case .unpaid: return .unpaid
        case .active, .past_due:
            if let end = currentPeriodEnd, now >= end + grace { return .expired }
            return status == .active ? .active : .past_due
        }
    }

    /// When access ends (Unix seconds): the trial's end during a trial, else the paid period's.
    public var expiresAt: Int? {
        status == .trial ? (trialEnd ?? currentPeriodEnd) : currentPeriodEnd
    }

    /// The body of `GET /v1/subscription`.
    public func publicView(now: Int, grace: Int = 0) -> JSON {
        var o = JSONObject()
        o.members.reserveCapacity(8)   // one allocation, not four growths: this is every read
        o["uid"] = .string(uid)
        o["status"] = .string(publicStatus(now: now, grace: grace).rawValue)
        o["plan"] = Self.nullable(plan)
        o["expires_at"] = Self.nullable(expiresAt)
        o["trial_ends_at"] = Self.nullable(trialEnd)
        o["cancel_at_period_end"] = .bool(cancelAtPeriodEnd)
        o["stored_status"] = .string(status.rawValue)
        o["updated_at"] = Self.nullable(updated)
        return .object(o)
    }

    /// The body for a user with no stored state.
    public static func noneView(uid: String) -> JSON {
        var o = JSONObject()
        o.members.reserveCapacity(8)
        o["uid"] = .string(uid)
        o["status"] = .string(PublicStatus.none.rawValue)
        o["plan"] = .null
        o["expires_at"] = .null
        o["trial_ends_at"] = .null
        o["cancel_at_period_end"] = .bool(false)
        o["stored_status"] = .null
        o["updated_at"] = .null
        return .object(o)
    }
}
