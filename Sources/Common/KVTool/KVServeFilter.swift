import Records
import KV
import Subscriptions

/// `kv serve`: answers the read route (`GET /v1/subscription`) with the caller's
/// subscription, from one key read. The caller is the uid verify-jwt put in
/// `x-authenticated-uid`; this filter trusts nothing else (the pipeline's verify-jwt
/// removes any client-sent copy of that header before setting it).
struct KVServeFilter {
    /// Records routed here (annotations.route.name) are ours; everything else passes.
    var route = "subscription"
    /// Seconds after a period's or trial's end during which it still counts (renewal
    /// events can arrive a little after the period rolls over). 0 by default.
    var grace = 0
    /// The store, or why it could not be opened (then every request gets a 503).
    var store: StoreOpening
    var now: () -> Int = { Clock.now() }

    private static let noStore = Header("cache-control", "no-store")

    func handle(_ record: inout Record) {
        guard record.routeName == route else { return }
        guard record.method == "GET" || record.method == "HEAD" else {
            record = record.errorResponse(status: 405, error: "method_not_allowed",
                                          message: "\(route) answers GET and HEAD only",
                                          headers: [Header("allow", "GET, HEAD"), Self.noStore])
            return
        }
        // Defence in depth: without a verified uid there is nobody to answer for.
        // Repeats of one value are one uid; no Set: hashing costs more than comparing one or two.
        let values = record.headerValues("x-authenticated-uid")
        let conflicting = values.contains { $0 != values[0] }
        guard !values.isEmpty, !conflicting, let uid = values.first, !uid.isEmpty else {
            record = record.errorResponse(status: 401, error: "unauthorized",
                                          message: conflicting ? "conflicting authenticated uids"
                                                                  : "no authenticated user (x-authenticated-uid is missing)",
                                          headers: [Header("www-authenticate", "Bearer"), Self.noStore])
            return
        }
        let body: JSON
        switch lookup(uid) {
        case .success(let view):
            body = view
        case .failure(.store(let error)):
            Log.error("subscription of \(uid): \(error)")
            record = record.errorResponse(status: 503, error: "unavailable",
                                          message: "subscription state is unavailable, retry shortly",
                                          headers: [Header("retry-after", "1"), Self.noStore])
            return
        case .failure(let error):
            // Not transient: a value no writer of this layout produces.
            Log.error("subscription of \(uid): \(error)")
            record = record.errorResponse(status: 500, error: "internal_error",
                                          message: "stored subscription state is unreadable",
                                          headers: [Self.noStore])
            return
        }
        record = record.jsonResponse(status: 200, body, headers: [Self.noStore])
    }

    /// Concrete enums rather than `Result<...>`: a generic type's metadata is built at run
    /// time, at every start of a process that runs once per connection.
    enum StoreOpening {
        case success(any KVStore)
        case failure(KVError)
    }

    enum Lookup {
        case success(JSON)
        case failure(LookupError)
    }

    enum LookupError: Error, CustomStringConvertible {
        case store(KVError)
        case corrupt(String)
        var description: String {
            switch self {
            case .store(let e): return e.description
            case .corrupt(let why): return "stored state is unreadable: \(why)"
            }
        }
    }

    /// The public view of a user's subscription: one get of `sub/<uid>`.
    func lookup(_ uid: String) -> Lookup {
        let store: any KVStore
        switch self.store {
        case .success(let s): store = s
        case .failure(let e): return .failure(.store(e))
        }
        let entry: KVEntry?
        do {
            entry = try store.get(SubscriptionState.key(uid: uid))
        } catch .invalidKey {
            // A uid too long to be a key can have no state.
            return .success(SubscriptionState.noneView(uid: uid))
        } catch {
            return .failure(.store(error))
        }
        guard let entry else { return .success(SubscriptionState.noneView(uid: uid)) }
        do {
            var state = try SubscriptionState(json: entry.value)
            state.uid = uid
            return .success(state.publicView(now: now(), grace: grace))
        } catch {
            return .failure(.corrupt(error.message))
        }
    }
}
