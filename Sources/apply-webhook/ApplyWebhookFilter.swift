import Records
import KV
import SharedMemory

/// The store, opened on first use and reopened after a failure to open, so a filter
/// started while the data directory is missing or read-only answers 503 (Stripe
/// retries) instead of dying. Holds the one applier built over it.
final class StoreHandle {
    private let open: () throws(KVError) -> any KVStore
    private var store: (any KVStore)?
    private var applier: WebhookApplier?

    init(open: @escaping () throws(KVError) -> any KVStore) { self.open = open }
    init(_ store: any KVStore) { self.open = { store }; self.store = store }

    func get() throws(KVError) -> any KVStore {
        if let store { return store }
        let s = try open()
        store = s
        return s
    }

    /// The store's write group when it was opened as one (batch mode with --group).
    var group: (any KVWriteGroup)? { store as? any KVWriteGroup }

    func applier(_ make: (any KVStore) -> WebhookApplier) throws(KVError) -> WebhookApplier {
        if let applier { return applier }
        let a = make(try get())
        applier = a
        return a
    }
}

/// One delivery (raw body and its Stripe-Signature header) in, a status and an outcome
/// out. The webhook route (filter mode) and `--batch` share it, so a replay applies an
/// event exactly as the live endpoint would have.
struct WebhookProcessor {
    var secrets: [String]
    var tolerance: Int
    var plans: Plans
    var eventTTL: Int = WebhookApplier.defaultEventTTL
    var pendingTTL: Int = WebhookApplier.defaultPendingTTL
    var store: StoreHandle
    var now: () -> Int = { Clock.now() }
    var log: (String) -> Void = { Log.error($0) }

    struct Response {
        var status: Int
        /// The JSON body: {"received": true} or {"error", "message"}.
        var body: JSON
        var outcome: Outcome
    }

    /// `verify: false` only for trusted exports in batch mode.
    func process(body: [UInt8], signature: String?, verify: Bool) -> Response {
        let response = decide(body: body, signature: signature, verify: verify)
        if let metrics = Metrics.shared { Self.count(response.outcome, metrics) }
        return response
    }

    /// edgepipe_webhook_events_total{type,outcome}, for the event and those it unblocked.
    static func count(_ outcome: Outcome, _ m: Metrics) {
        let type = m.nameIndex(m.layout.eventTypes, outcome.eventType ?? "unknown")
        let kind = MetricsLayout.webhookOutcomes.firstIndex(of: outcome.kind.rawValue) ?? MetricsLayout.webhookOutcomes.count - 1
        m.add(m.layout.webhookEvents, type, kind)
        for drained in outcome.drained { count(drained, m) }
    }

    private func decide(body: [UInt8], signature: String?, verify: Bool) -> Response {
        if verify {
            do {
                try StripeSignature.verify(payload: body, header: signature, secrets: secrets,
                                           tolerance: tolerance, now: now())
            } catch {
                return invalid(400, "invalid_signature", error.message, check: error.check.rawValue)
            }
        }
        // A body that is not JSON (or is ambiguous: duplicate keys, too deep) is no event
        // Stripe sends: refused. Any JSON it does send is acknowledged (apply(json:)).
        let value: JSON
        do { value = try JSONReader.parse(body) } catch {
            return invalid(400, "invalid_payload", "invalid JSON payload: \(error)")
        }
        return apply(json: value)
    }

    /// A parsed payload: a snapshot event is applied; any other shape (a thin or v2
    /// event, an event without data.object...) is acknowledged and audited `ignored`.
    func apply(json: JSON) -> Response {
        do { return apply(try StripeEvent(json: json)) } catch {
            let o = json.object
            if let kind = o?["object"]?.string, kind != "event" {
                return ignored(o, "an object of type \(kind), not a snapshot event (thin and v2 events are not handled)")
            }
            return ignored(o, "not a snapshot event: \(error.message)")
        }
    }

    private func ignored(_ envelope: JSONObject?, _ reason: String) -> Response {
        var o = Outcome(kind: .ignored, eventID: envelope?["id"]?.string, eventType: envelope?["type"]?.string)
        o.reason = reason
        return Response(status: 200, body: ["received": true], outcome: o)
    }

    func apply(_ event: StripeEvent) -> Response {
        do {
            let applier = try store.applier { s in
                let a = WebhookApplier(store: s, plans: plans, eventTTL: eventTTL, pendingTTL: pendingTTL, now: now)
                a.log = log
                return a
            }
            let outcome = try applier.apply(event)
            return Response(status: 200, body: ["received": true], outcome: outcome)
        } catch KVError.invalidKey(let why) {
            // Keys are built so that no id fits badly (KVKeyPart); should one still not,
            // the event can never be stored: a retry would loop, so acknowledge it.
            log("event \(event.id): rejected: \(why)")
            var o = Outcome(kind: .rejected, eventID: event.id, eventType: event.type)
            o.reason = "cannot be stored: invalid key: \(why)"
            return Response(status: 200, body: ["received": true], outcome: o)
        } catch let e as KVError {
            let (status, code): (Int, String) = {
                if case .unavailable = e { return (503, "store_unavailable") }
                return (500, "store_error")
            }()
            log("event \(event.id): \(e)")
            var o = Outcome(kind: .error, eventID: event.id, eventType: event.type)
            o.reason = e.description
            return Response(status: status, body: Self.error(code, "could not record the event: \(e)"), outcome: o)
        } catch {
            log("event \(event.id): \(error)")
            var o = Outcome(kind: .error, eventID: event.id, eventType: event.type)
            o.reason = "\(error)"
            return Response(status: 500, body: Self.error("internal_error", "could not apply the event"), outcome: o)
        }
    }

    private func invalid(_ status: Int, _ code: String, _ message: String, check: String? = nil) -> Response {
        var o = Outcome(kind: .invalid)
        o.reason = message
        var body = JSONObject([("error", JSON.string(code)), ("message", JSON.string(message))])
        if let check { body["check"] = .string(check) }
        return Response(status: status, body: .object(body), outcome: o)
    }

    static func error(_ code: String, _ message: String) -> JSON {
        .object(JSONObject([("error", JSON.string(code)), ("message", JSON.string(message))]))
    }
}

/// Filter mode: answers the records routed to the webhook route, passes others on.
struct ApplyWebhookFilter {
    var routeName: String
    var processor: WebhookProcessor

    func handle(_ record: inout Record) {
        guard record.routeName == routeName else { return }
        let response: WebhookProcessor.Response
        if record.hasCorruptBody {
            var o = Outcome(kind: .invalid)
            o.reason = "body_base64 is not valid base64"
            response = .init(status: 400, body: WebhookProcessor.error("bad_record", o.reason!), outcome: o)
        } else {
            response = processor.process(body: record.body, signature: record.header("stripe-signature"), verify: true)
        }
        var answered = record.jsonResponse(status: response.status, response.body)
        answered.setAnnotation(AnnotationKey.audit, response.outcome.audit)
        record = answered
    }
}
