import Records
import Crypto
import KV

// The reservation logic over a KVStore. Keys (all under "reserve/"):
//
//   reserve/token/<sha256 hex of the token>   {"subdomain","email","state","created_at","updated_at"}
//   reserve/subdomain/<name>                  {"subdomain","email","token","reserved_at"}
//   reserve/email/<address>                   the same document
//
// Only the token's hash is stored, so a copy of the store confirms nothing.
//
// The store is atomic per key only, so a reservation (two keys) is made in steps that
// can each be repeated, and the token entry is the record of how far it got:
//
//   1. token pending → confirming (compare-and-swap: of two clicks on one link, one goes on)
//   2. create-only reserve/subdomain/<name>  (of two tokens for one name, one gets it)
//   3. create-only reserve/email/<address>   (if taken: delete step 2's key, token → conflict)
//   4. token confirming → confirmed
//
// A crash between the steps leaves a token in "confirming" that nobody updates. After
// `grace` seconds it counts as stale, and whoever meets it finishes the job: the visitor
// clicking the link again, or any request that finds one of its keys in the way. The
// steps are keyed by the token's hash, so finishing them is the same code as doing them
// first: keys already held by that token count as done. A stale confirmation is thereby
// rolled forward (both keys) or back (its subdomain key is released), never left half made.

/// What happened to one request: the HTTP answer and the audit outcome follow from it.
enum Outcome: Equatable {
    case verificationSent
    case invalid(FieldError)
    case blocked(rule: Blocklist.Rule)
    /// "subdomain" or "email".
    case taken(field: String)
    case confirmed
    /// The name is already reserved for this very address: a second submit, or the
    /// owner's second mail clicked after the first.
    case alreadyYours
    case tokenUsed
    case tokenExpired
    case mailFailed(String)
}

struct ReservationSettings {
    /// How long a verification link works.
    var tokenTTL = 86_400
    /// How long a confirmation may stay half done before others may finish it. Far above
    /// the milliseconds a confirmation takes; a crash costs that much delay, no more.
    var grace = 30
    /// Where the page is served; the link in the mail is `<baseURL>/?token=...`.
    var baseURL = "http://localhost:8080"
    var mailFrom = "edgepipe reservations <noreply@localhost>"
}

final class Reservations {
    let store: any KVStore
    let blocklist: Blocklist
    let mailer: any Mailer
    let settings: ReservationSettings
    let now: () -> Int
    let randomBytes: (Int) -> [UInt8]

    init(store: any KVStore, blocklist: Blocklist, mailer: any Mailer, settings: ReservationSettings,
         now: @escaping () -> Int = { Clock.now() },
         randomBytes: @escaping (Int) -> [UInt8] = { Digest.randomBytes($0) }) {
        self.store = store; self.blocklist = blocklist; self.mailer = mailer; self.settings = settings
        self.now = now; self.randomBytes = randomBytes
    }

    static let subdomainPrefix = "reserve/subdomain/"
    static func subdomainKey(_ name: String) -> String { subdomainPrefix + name }
    static func emailKey(_ address: String) -> String { "reserve/email/" + address }
    static func tokenKey(_ hash: String) -> String { "reserve/token/" + hash }

    /// The subdomain and email of a request, as far as they are known (for the audit).
    struct Subject: Equatable {
        var subdomain: String?
        var email: String?
    }

    // MARK: Asking for a reservation

    func submit(subdomain rawSubdomain: String??, email rawEmail: String??) throws(KVError) -> (Outcome, Subject) {
        var subject = Subject(subdomain: rawSubdomain ?? nil, email: rawEmail ?? nil)
        let subdomain: String, email: String
        do throws(FieldError) {
            subdomain = try SubdomainRule.check(trimmedLikeThePage(try Self.field("subdomain", rawSubdomain)))
            subject.subdomain = subdomain
            email = try EmailRule.check(trimmedLikeThePage(try Self.field("email", rawEmail)))
            subject.email = email
        } catch {
            return (.invalid(error), subject)
        }
        if let rule = blocklist.match(subdomain) { return (.blocked(rule: rule), subject) }
        if case .other = try holder(of: Self.subdomainKey(subdomain), token: nil) {
            return (try isHeld(Self.subdomainKey(subdomain), by: email) ? .alreadyYours : .taken(field: "subdomain"), subject)
        }
        if case .other = try holder(of: Self.emailKey(email), token: nil) { return (.taken(field: "email"), subject) }

        let raw = randomBytes(32)
        let token = Base64.urlEncode(raw)
        let key = Self.tokenKey(Hex.encode(Digest.sha256(raw)))
        let t = now()
        let value: JSON = ["subdomain": .string(subdomain), "email": .string(email), "state": "pending",
                           "created_at": JSON(t), "updated_at": JSON(t)]
        do {
            try store.create(key, value, metadata: nil, expiresAt: t + settings.tokenTTL)
        } catch .exists {
            throw KVError.unavailable("random token collided: the random source is broken")
        }
        let mail = ConfirmationMail(from: settings.mailFrom, to: email, subdomain: subdomain,
                                    link: Self.link(base: settings.baseURL, token: token),
                                    expiresInSeconds: settings.tokenTTL, date: t,
                                    messageID: Hex.encode(randomBytes(16)) + "@edgepipe.reserve")
        do {
            try mailer.send(mail.bytes)
        } catch {
            // Nobody can ever hold this token: drop it rather than leave it to expire.
            _ = try? store.delete(key)
            return (.mailFailed(error.description), subject)
        }
        return (.verificationSent, subject)
    }

    static func field(_ name: String, _ value: String??) throws(FieldError) -> String {
        switch value {
        case .none: throw FieldError(field: name, message: "the \(name) is missing")
        case .some(.none): throw FieldError(field: name, message: "the \(name) must be given once, as a string")
        case .some(.some(let s)): return s
        }
    }

    static func link(base: String, token: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/?token=" + token
    }

    // MARK: Confirming

    func confirm(token rawToken: String??) throws(KVError) -> (Outcome, Subject) {
        let text: String
        do throws(FieldError) { text = try Self.field("token", rawToken) } catch { return (.invalid(error), Subject()) }
        guard let raw = Base64.urlDecode(text), raw.count == 32 else {
            return (.invalid(FieldError(field: "token", message: "the token is not one this service issued")), Subject())
        }
        let hash = Hex.encode(Digest.sha256(raw))
        let key = Self.tokenKey(hash)
        for _ in 0..<16 {
            // Absent covers expired: the store forgets an expired entry.
            guard let entry = try store.get(key) else { return (.tokenExpired, Subject()) }
            let subject = Subject(subdomain: entry.value["subdomain"]?.string, email: entry.value["email"]?.string)
            switch entry.value["state"]?.string {
            case "pending":
                // The blocklist may have grown since the mail went out.
                if let sub = subject.subdomain, let rule = blocklist.match(sub) {
                    guard try swap(entry, to: "blocked") != nil else { continue }
                    return (.blocked(rule: rule), subject)
                }
                guard let claimed = try swap(entry, to: "confirming") else { continue }
                return (try complete(hash, claimed, depth: 0), subject)
            case "confirming" where isStale(entry):
                guard let claimed = try swap(entry, to: "confirming") else { continue }
                return (try complete(hash, claimed, depth: 0), subject)
            default:
                return (.tokenUsed, subject)
            }
        }
        return (.tokenUsed, Subject())
    }

    /// Steps 2–4 for the token `hash`, which this process holds in "confirming".
    func complete(_ hash: String, _ token: KVEntry, depth: Int) throws(KVError) -> Outcome {
        guard let subdomain = token.value["subdomain"]?.string, let email = token.value["email"]?.string else {
            try finish(hash, "conflict")
            throw KVError.unavailable("token entry without subdomain or email")
        }
        let reservation: JSON = ["subdomain": .string(subdomain), "email": .string(email), "token": .string(hash),
                                 "reserved_at": JSON(now())]
        let subdomainKey = Self.subdomainKey(subdomain), emailKey = Self.emailKey(email)

        guard let subdomainEntry = try claim(subdomainKey, reservation, hash: hash, depth: depth) else {
            // This token holds no key, so "conflict" releases nothing of the owner's.
            try finish(hash, "conflict")
            return try isHeld(subdomainKey, by: email) ? .alreadyYours : .taken(field: "subdomain")
        }
        guard try claim(emailKey, reservation, hash: hash, depth: depth) != nil else {
            try release(subdomainKey, version: subdomainEntry.version, hash: hash)
            try finish(hash, "conflict")
            return .taken(field: "email")
        }
        try finish(hash, "confirmed")
        return .confirmed
    }

    /// Creates `key` for the token `hash` unless another token holds it. The entry when
    /// this token holds it afterwards (created now, or earlier by a run of the same
    /// confirmation), nil when another does.
    private func claim(_ key: String, _ value: JSON, hash: String, depth: Int) throws(KVError) -> KVEntry? {
        switch try holder(of: key, token: hash, depth: depth) {
        case .ours(let entry):
            return entry
        case .other:
            return nil
        case .free:
            do {
                return try store.create(key, value, metadata: nil, expiresAt: nil)
            } catch .exists {
                // Created between the check and now: by a finisher of this same token, or not.
                guard let entry = try store.get(key), entry.value["token"]?.string == hash else { return nil }
                return entry
            }
        }
    }

    /// Whether the reservation key `key` names `email` as its owner.
    private func isHeld(_ key: String, by email: String) throws(KVError) -> Bool {
        try store.get(key)?.value["email"]?.string == email
    }

    enum Holder {
        case free
        case ours(KVEntry)
        case other
    }

    /// Who holds a reservation key. A key held by a stale confirmation is settled first
    /// (finished or released), so a crash never blocks a name for good.
    func holder(of key: String, token: String?, depth: Int = 0) throws(KVError) -> Holder {
        for _ in 0..<3 {
            guard let entry = try store.get(key) else { return .free }
            let owner = entry.value["token"]?.string
            if let token, owner == token { return .ours(entry) }
            guard let owner, depth < 4, try settle(owner, entry: entry, key: key, depth: depth + 1) else { return .other }
        }
        return .other
    }

    /// Finishes the confirmation `owner` when it is stale, or releases `entry` when it is
    /// debris of a confirmation that ended in conflict. True when it changed something,
    /// so the caller reads the key again.
    private func settle(_ owner: String, entry: KVEntry, key: String, depth: Int) throws(KVError) -> Bool {
        // No token entry: it was confirmed and its bookkeeping expired since.
        guard let token = try store.get(Self.tokenKey(owner)) else { return false }
        switch token.value["state"]?.string {
        case "confirming" where isStale(token):
            guard let claimed = try swap(token, to: "confirming") else { return true }
            Log.error("finishing a confirmation left half done \(now() - (token.value["updated_at"]?.int ?? 0)) s ago")
            _ = try complete(owner, claimed, depth: depth)
            return true
        case "conflict", "blocked":
            try release(key, version: entry.version, hash: owner)
            return true
        default:
            return false
        }
    }

    private func isStale(_ token: KVEntry) -> Bool {
        (token.value["updated_at"]?.int ?? 0) + settings.grace <= now()
    }

    /// Moves a token entry to `state` if nobody changed it since it was read; nil if
    /// somebody did. While "confirming" it never expires: it is the record a crashed
    /// confirmation is recovered from. Once settled it lives one more TTL, so a second
    /// click on the link says "used" rather than "expired".
    private func swap(_ entry: KVEntry, to state: String) throws(KVError) -> KVEntry? {
        guard var object = entry.value.object else { return nil }
        object["state"] = .string(state)
        object["updated_at"] = JSON(now())
        do {
            return try store.compareAndSwap(entry.key, expected: entry.version, .object(object), metadata: entry.metadata,
                                            expiresAt: state == "confirming" ? nil : now() + settings.tokenTTL)
        } catch .versionMismatch {
            return nil
        }
    }

    private func finish(_ hash: String, _ state: String) throws(KVError) {
        for _ in 0..<16 {
            guard let entry = try store.get(Self.tokenKey(hash)) else { return }
            if try swap(entry, to: state) != nil { return }
        }
        throw KVError.unavailable("too much contention on a token entry")
    }

    /// Deletes a reservation key only if it is still the version this token wrote: the
    /// store has no delete-if-version, so it is a compare-and-swap to an entry that has
    /// already expired (which reads, lists and re-creates as absent).
    private func release(_ key: String, version: Int, hash: String) throws(KVError) {
        do {
            try store.compareAndSwap(key, expected: version, ["released_by": .string(hash)], metadata: nil, expiresAt: 1)
        } catch .versionMismatch {
            // Changed since: no longer ours to release.
        }
    }

    // MARK: Listing

    /// One page of reservations in subdomain order, and the cursor of the next page.
    func list(limit: Int, cursor: String?) throws(KVError) -> (reservations: [JSON], next: String?) {
        let page = try store.list(prefix: Self.subdomainPrefix, limit: limit, cursor: cursor)
        var out: [JSON] = []
        for key in page.keys {
            guard let entry = try store.get(key) else { continue }
            var item = JSONObject()
            item["subdomain"] = entry.value["subdomain"] ?? .string(String(key.dropFirst(Self.subdomainPrefix.count)))
            item["email"] = entry.value["email"] ?? .null
            item["reserved_at"] = entry.value["reserved_at"] ?? .null
            out.append(.object(item))
        }
        return (out, page.cursor)
    }
}
