import XCTest
@testable import Records
@testable import Crypto
@testable import KV
@testable import reserve

final class SubmitTests: XCTestCase {
    func testValidRequestStoresAPendingTokenAndMailsTheLink() throws {
        let h = Harness()
        let (outcome, subject) = try h.service().submit(subdomain: "My-Site", email: "Ann@Example.com")
        XCTAssertEqual(outcome, .verificationSent)
        XCTAssertEqual(subject, .init(subdomain: "my-site", email: "ann@example.com"))
        XCTAssertEqual(h.mailer.messages.count, 1)
        let mail = h.mailer.messages[0]
        XCTAssertTrue(mail.contains("\nTo: ann@example.com\n"), mail)
        XCTAssertTrue(mail.contains("Subject: Confirm your reservation of my-site"))
        XCTAssertTrue(mail.contains("https://reserve.example/?token="), mail)
        let token = try XCTUnwrap(h.mailer.lastToken)
        XCTAssertEqual(Base64.urlDecode(token)?.count, 32)

        let keys = h.store.liveKeys
        XCTAssertEqual(keys.count, 1)
        let entry = try XCTUnwrap(h.store.get(keys[0]))
        XCTAssertEqual(entry.value["state"], "pending")
        XCTAssertEqual(entry.expiresAt, h.clock.now + 3600)
        // Only the hash is stored: the token appears in no key and no value.
        XCTAssertEqual(keys[0], "reserve/token/" + Hex.encode(Digest.sha256(Base64.urlDecode(token)!)))
        XCTAssertFalse(h.store.allValues.contains { $0.text.contains(token) })
    }

    func testTokensAreDifferentEachTime() throws {
        let h = Harness()
        let a = try h.submitted("one", "a@example.com")
        let b = try h.submitted("two", "b@example.com")
        XCTAssertNotEqual(a, b)
    }

    func testMissingFieldsAreInvalidNamingTheField() throws {
        let h = Harness()
        XCTAssertEqual(try h.service().submit(subdomain: nil, email: "a@b.co").0,
                       .invalid(FieldError(field: "subdomain", message: "the subdomain is missing")))
        XCTAssertEqual(try h.service().submit(subdomain: "abc", email: nil).0,
                       .invalid(FieldError(field: "email", message: "the email is missing")))
        XCTAssertEqual(try h.service().submit(subdomain: .some(nil), email: "a@b.co").0,
                       .invalid(FieldError(field: "subdomain", message: "the subdomain must be given once, as a string")))
        XCTAssertTrue(h.mailer.messages.isEmpty)
        XCTAssertTrue(h.store.liveKeys.isEmpty)
    }

    func testInvalidSubdomainAndEmailAreInvalid() throws {
        let h = Harness()
        guard case .invalid(let e1) = try h.service().submit(subdomain: "-bad", email: "a@b.co").0 else { return XCTFail() }
        XCTAssertEqual(e1.field, "subdomain")
        guard case .invalid(let e2) = try h.service().submit(subdomain: "good", email: "Ann <a@b.co>").0 else { return XCTFail() }
        XCTAssertEqual(e2.field, "email")
    }

    func testBlocklistedExactNameIsBlocked() throws {
        let h = Harness()
        guard case .blocked(let rule) = try h.service().submit(subdomain: "Admin", email: "a@b.co").0 else { return XCTFail() }
        XCTAssertEqual(rule.text, "admin")
        XCTAssertFalse(rule.isPattern)
        XCTAssertTrue(h.mailer.messages.isEmpty)
    }

    func testBlocklistedPatternIsBlocked() throws {
        let h = Harness()
        guard case .blocked(let rule) = try h.service().submit(subdomain: "my-cloudflare-app", email: "a@b.co").0 else { return XCTFail() }
        XCTAssertEqual(rule.text, "*cloudflare*")
        XCTAssertTrue(rule.isPattern)
    }

    func testReservedSubdomainIsTaken() throws {
        let h = Harness()
        let t = try h.submitted("taken", "first@example.com")
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        XCTAssertEqual(try h.service().submit(subdomain: "taken", email: "second@example.com").0, .taken(field: "subdomain"))
    }

    func testEmailHoldingAReservationIsTaken() throws {
        let h = Harness()
        let t = try h.submitted("first", "ann@example.com")
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        XCTAssertEqual(try h.service().submit(subdomain: "second", email: "ANN@example.com").0, .taken(field: "email"))
    }

    func testFailedMailIsReportedAndLeavesNoToken() throws {
        let h = Harness()
        h.mailer.failWith = "exit 75"
        XCTAssertEqual(try h.service().submit(subdomain: "abc", email: "a@b.co").0, .mailFailed("exit 75"))
        XCTAssertTrue(h.store.liveKeys.isEmpty)
    }
}

final class ConfirmTests: XCTestCase {
    func testConfirmationCreatesBothKeys() throws {
        let h = Harness()
        let t = try h.submitted("my-site", "ann@example.com")
        let (outcome, subject) = try h.service().confirm(token: t)
        XCTAssertEqual(outcome, .confirmed)
        XCTAssertEqual(subject, .init(subdomain: "my-site", email: "ann@example.com"))
        let s = try XCTUnwrap(h.store.get("reserve/subdomain/my-site"))
        let e = try XCTUnwrap(h.store.get("reserve/email/ann@example.com"))
        XCTAssertEqual(s.value["email"], "ann@example.com")
        XCTAssertEqual(e.value["subdomain"], "my-site")
        XCTAssertNil(s.expiresAt)
        XCTAssertNil(e.expiresAt)
    }

    func testTokenWorksOnce() throws {
        let h = Harness()
        let t = try h.submitted("once", "ann@example.com")
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenUsed)
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenUsed)
    }

    func testTokenExpiresAfterItsTTL() throws {
        let h = Harness(ttl: 600)
        let t = try h.submitted("late", "ann@example.com")
        h.clock.advance(599)
        let early = try h.submitted("early", "bob@example.com")
        h.clock.advance(1)
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenExpired)
        XCTAssertEqual(try h.service().confirm(token: early).0, .confirmed)
        XCTAssertNil(try h.store.get("reserve/subdomain/late"))
    }

    func testUnknownTokenReadsAsExpiredAndMalformedTokenIsInvalid() throws {
        let h = Harness()
        XCTAssertEqual(try h.service().confirm(token: Base64.urlEncode([UInt8](repeating: 7, count: 32))).0, .tokenExpired)
        guard case .invalid(let e) = try h.service().confirm(token: "not-a-token").0 else { return XCTFail() }
        XCTAssertEqual(e.field, "token")
        guard case .invalid = try h.service().confirm(token: nil).0 else { return XCTFail() }
    }

    func testSubdomainTakenMeanwhileIsAConflictAndLeavesNoEmailKey() throws {
        let h = Harness()
        let a = try h.submitted("race", "ann@example.com")
        let b = try h.submitted("race", "bob@example.com")
        XCTAssertEqual(try h.service().confirm(token: b).0, .confirmed)
        XCTAssertEqual(try h.service().confirm(token: a).0, .taken(field: "subdomain"))
        XCTAssertNil(try h.store.get("reserve/email/ann@example.com"))
        XCTAssertEqual(try h.store.get("reserve/subdomain/race")?.value["email"], "bob@example.com")
        // The losing token is spent.
        XCTAssertEqual(try h.service().confirm(token: a).0, .tokenUsed)
    }

    func testEmailTakenMeanwhileIsAConflictAndReleasesTheSubdomain() throws {
        let h = Harness()
        let a = try h.submitted("first-choice", "ann@example.com")
        let b = try h.submitted("second-choice", "ann@example.com")
        XCTAssertEqual(try h.service().confirm(token: b).0, .confirmed)
        XCTAssertEqual(try h.service().confirm(token: a).0, .taken(field: "email"))
        XCTAssertNil(try h.store.get("reserve/subdomain/first-choice"))
        XCTAssertEqual(try h.service().submit(subdomain: "first-choice", email: "bob@example.com").0, .verificationSent)
    }

    func testEmailTakenBetweenCheckAndCreateReleasesTheSubdomain() throws {
        // The check passes, then another confirmation creates the email key first.
        let h = Harness()
        let a = try h.submitted("mine", "ann@example.com")
        let racing = RacingStore(h.store) { key in
            if key == "reserve/email/ann@example.com" {
                _ = try? h.store.create(key, ["subdomain": "other", "email": "ann@example.com", "token": "x"], metadata: nil, expiresAt: nil)
            }
        }
        XCTAssertEqual(try h.service(store: racing).confirm(token: a).0, .taken(field: "email"))
        XCTAssertNil(try h.store.get("reserve/subdomain/mine"))
    }

    func testNameBlockedAfterTheMailWentOutIsBlockedAtConfirmation() throws {
        let h = Harness()
        let t = try h.submitted("newsroom", "ann@example.com")
        let (outcome, _) = try h.service(blocklist: Blocklist(text: "news*")).confirm(token: t)
        guard case .blocked(let rule) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(rule.text, "news*")
        XCTAssertNil(try h.store.get("reserve/subdomain/newsroom"))
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenUsed)
    }

    func testConfirmationsOfOneSubdomainFromManyThreadsHaveOneWinner() throws {
        let h = Harness()
        var tokens: [String] = []
        for i in 0..<20 { tokens.append(try h.submitted("contested", "user\(i)@example.com")) }
        let results = ThreadSafeList<Outcome>()
        let services = tokens.map { _ in UncheckedBox(h.service()) }
        let all = tokens
        DispatchQueue.concurrentPerform(iterations: all.count) { i in
            if let (o, _) = try? services[i].value.confirm(token: all[i]) { results.append(o) }
        }
        XCTAssertEqual(results.items.count, 20)
        XCTAssertEqual(results.items.filter { $0 == .confirmed }.count, 1)
        XCTAssertEqual(results.items.filter { $0 == .taken(field: "subdomain") }.count, 19)
        XCTAssertEqual(h.store.liveKeys.filter { $0.hasPrefix("reserve/subdomain/") }, ["reserve/subdomain/contested"])
        XCTAssertEqual(h.store.liveKeys.filter { $0.hasPrefix("reserve/email/") }.count, 1)
    }
}

/// Crashes between the steps of a confirmation: nothing half made may remain once the
/// grace period has passed and someone meets the leftovers.
final class CrashRecoveryTests: XCTestCase {
    /// Runs a confirmation that dies after `writes` store writes.
    private func crash(_ h: Harness, _ token: String, afterWrites writes: Int) {
        let store = CrashingStore(h.store, writesBeforeCrash: writes)
        XCTAssertThrowsError(try h.service(store: store).confirm(token: token))
    }

    func testCrashAfterClaimingTheTokenIsFinishedByClickingAgainAfterGrace() throws {
        let h = Harness(grace: 30)
        let t = try h.submitted("alpha", "ann@example.com")
        crash(h, t, afterWrites: 1)               // token → confirming, then dead
        XCTAssertNil(try h.store.get("reserve/subdomain/alpha"))
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenUsed)   // still in progress
        h.clock.advance(30)
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        XCTAssertNotNil(try h.store.get("reserve/email/ann@example.com"))
    }

    func testCrashAfterTheSubdomainKeyIsRolledForwardByTheNextRequestForIt() throws {
        let h = Harness(grace: 30)
        let t = try h.submitted("beta", "ann@example.com")
        crash(h, t, afterWrites: 2)               // token claimed, subdomain key made, no email key
        XCTAssertNotNil(try h.store.get("reserve/subdomain/beta"))
        XCTAssertNil(try h.store.get("reserve/email/ann@example.com"))
        // Within grace the half-made reservation holds the name.
        XCTAssertEqual(try h.service().submit(subdomain: "beta", email: "bob@example.com").0, .taken(field: "subdomain"))
        h.clock.advance(31)
        XCTAssertEqual(try h.service().submit(subdomain: "beta", email: "bob@example.com").0, .taken(field: "subdomain"))
        // Finished on the way: both keys, and the token says confirmed.
        XCTAssertEqual(try h.store.get("reserve/email/ann@example.com")?.value["subdomain"], "beta")
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenUsed)
    }

    func testCrashAfterTheSubdomainKeyIsRolledBackWhenTheEmailWasTakenSince() throws {
        let h = Harness(grace: 30)
        let t = try h.submitted("gamma", "ann@example.com")
        crash(h, t, afterWrites: 2)
        let other = try h.submitted("delta", "ann@example.com")
        XCTAssertEqual(try h.service().confirm(token: other).0, .confirmed)
        h.clock.advance(31)
        // Bob meets the leftover: it cannot be finished (the email is taken), so it goes.
        XCTAssertEqual(try h.service().submit(subdomain: "gamma", email: "bob@example.com").0, .verificationSent)
        XCTAssertNil(try h.store.get("reserve/subdomain/gamma"))
        XCTAssertEqual(try h.service().confirm(token: h.mailer.lastToken!).0, .confirmed)
    }

    func testCrashBeforeMarkingConfirmedLeavesAWholeReservation() throws {
        let h = Harness(grace: 30)
        let t = try h.submitted("epsilon", "ann@example.com")
        crash(h, t, afterWrites: 3)               // both keys made, token still confirming
        h.clock.advance(31)
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        XCTAssertEqual(h.store.liveKeys.filter { !$0.hasPrefix("reserve/token/") },
                       ["reserve/email/ann@example.com", "reserve/subdomain/epsilon"])
    }

    func testKeyCreatedByAFinisherOfTheSameTokenMeanwhileCountsAsOurs() throws {
        // A stalled confirmation wakes after a finisher made the email key for the same
        // token: "exists" must not read as taken, or it would release its own subdomain.
        let h = Harness()
        let t = try h.submitted("theta", "ann@example.com")
        let hash = Hex.encode(Digest.sha256(Base64.urlDecode(t)!))
        let racing = RacingStore(h.store) { key in
            if key == "reserve/email/ann@example.com" {
                _ = try? h.store.create(key, ["subdomain": "theta", "email": "ann@example.com", "token": .string(hash)],
                                        metadata: nil, expiresAt: nil)
            }
        }
        XCTAssertEqual(try h.service(store: racing).confirm(token: t).0, .confirmed)
        XCTAssertNotNil(try h.store.get("reserve/subdomain/theta"))
    }

    func testEmailKeyLeftByATokenThatEndedInConflictIsReleasedOnSight() throws {
        let h = Harness()
        let t = try h.submitted("iota", "ann@example.com")
        let hash = Hex.encode(Digest.sha256(Base64.urlDecode(t)!))
        XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        // Make it look like debris: the token ended in conflict, its email key remained.
        let token = try XCTUnwrap(h.store.get("reserve/token/" + hash))
        var value = token.value.object!
        value["state"] = "conflict"
        _ = try h.store.put(token.key, .object(value), metadata: nil, expiresAt: token.expiresAt)
        XCTAssertEqual(try h.service().submit(subdomain: "kappa", email: "ann@example.com").0, .verificationSent)
        XCTAssertNil(try h.store.get("reserve/email/ann@example.com"))
    }

    func testEmailCheckAlsoSettlesAStaleConfirmation() throws {
        let h = Harness(grace: 30)
        let t = try h.submitted("zeta", "ann@example.com")
        crash(h, t, afterWrites: 3)
        h.clock.advance(31)
        XCTAssertEqual(try h.service().submit(subdomain: "other", email: "ann@example.com").0, .taken(field: "email"))
        XCTAssertEqual(try h.service().confirm(token: t).0, .tokenUsed)
    }
}

final class ListTests: XCTestCase {
    func testPagesCoverEveryReservationOnceInOrder() throws {
        let h = Harness()
        for i in 0..<7 {
            let t = try h.submitted("site\(i)", "user\(i)@example.com")
            XCTAssertEqual(try h.service().confirm(token: t).0, .confirmed)
        }
        var seen: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try h.service().list(limit: 3, cursor: cursor)
            seen += page.reservations.compactMap { $0["subdomain"]?.string }
            XCTAssertTrue(page.reservations.allSatisfy { $0["email"]?.string?.hasSuffix("@example.com") == true })
            cursor = page.next
            pages += 1
        } while cursor != nil
        XCTAssertEqual(seen, (0..<7).map { "site\($0)" })
        XCTAssertEqual(pages, 3)
    }
}

/// Runs `before` just before each create, to stage a racing writer.
final class RacingStore: KVStore {
    let inner: MemoryStore
    let before: (String) -> Void
    init(_ inner: MemoryStore, before: @escaping (String) -> Void) { self.inner = inner; self.before = before }
    func get(_ key: String) throws(KVError) -> KVEntry? { try inner.get(key) }
    func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try inner.put(key, value, metadata: metadata, expiresAt: expiresAt)
    }
    func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        before(key); return try inner.create(key, value, metadata: metadata, expiresAt: expiresAt)
    }
    func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try inner.compareAndSwap(key, expected: expected, value, metadata: metadata, expiresAt: expiresAt)
    }
    func delete(_ key: String) throws(KVError) -> Bool { try inner.delete(key) }
    func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        try inner.list(prefix: prefix, limit: limit, cursor: cursor)
    }
}

final class ThreadSafeList<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [T] = []
    func append(_ x: T) { lock.lock(); storage.append(x); lock.unlock() }
    var items: [T] { lock.lock(); defer { lock.unlock() }; return storage }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
