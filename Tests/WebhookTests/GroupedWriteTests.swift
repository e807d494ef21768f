import XCTest
import Foundation
import Records
import KV
@testable import apply_webhook

/// Batch mode's grouped durable writes (KVWriteGroup over a DirectoryStore) must give
/// exactly what per-event durable writes give, and nothing to other processes before commit.
final class GroupedWriteTests: XCTestCase {
    let t0 = 1_700_000_000
    let month = 2_592_000
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("grouped-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Two users; a subscription event before its checkout (parked, then drained by the
    /// checkout in the same group); two events of one user back to back; an exact
    /// redelivery inside the group and one of an event from an earlier group; an ignored
    /// event; a stale one.
    func mixedInput() -> [JSON] {
        let p1 = t0 + month, p2 = t0 + 2 * month
        let early = Events.subscription("evt_a2_early", created: t0 + 5, status: "past_due", periodEnd: p1,
                                        customer: "cus_a", subscription: "sub_a")
        let paid = Events.invoice("evt_b3_paid", "invoice.paid", created: p1 + 2, periodEnd: p2,
                                  customer: "cus_b", subscription: "sub_b")
        return [
            Events.checkout("evt_b1_checkout", created: t0, uid: "user-b", customer: "cus_b", subscription: "sub_b"),
            early,
            Events.subscription("evt_b2_renewed", created: p1, status: "active", periodEnd: p2,
                                customer: "cus_b", subscription: "sub_b"),
            paid,
            paid,                                                     // duplicate in the same group
            Events.event("evt_x_ignored", "customer.created", t0, ["id": "cus_x", "object": "customer"]),
            Events.checkout("evt_a1_checkout", created: t0, uid: "user-a", customer: "cus_a", subscription: "sub_a"),
            Events.subscription("evt_b0_stale", created: t0 - 100, status: "trialing", periodEnd: p1,
                                customer: "cus_b", subscription: "sub_b"),
            Events.invoice("evt_b4_failed", "invoice.payment_failed", created: p2 + 1, periodEnd: p2 + month,
                           customer: "cus_b", subscription: "sub_b"),
            early,                                                    // a duplicate of a drained event
            Events.checkout("evt_b1_checkout", created: t0, uid: "user-b", customer: "cus_b", subscription: "sub_b"),
        ]
    }

    func applier(_ store: any KVStore) -> WebhookApplier {
        let a = WebhookApplier(store: store, plans: testPlans, now: { self.t0 })
        a.log = { _ in }
        return a
    }

    /// Every entry of the store, read back from disk by a fresh handle.
    func contents(_ path: String) throws -> [KVEntry] {
        let store = try DirectoryStore(path: path, now: { 1_700_000_000 })
        let keys = try store.list(prefix: "", limit: 10_000, cursor: nil).keys
        return try keys.map { try XCTUnwrap(store.get($0)) }
    }

    func testGroupedEqualsPerEventWhateverTheGroupSize() throws {
        let events = mixedInput().map(Events.parsed)
        let single = applier(try DirectoryStore(path: dir + "/single", now: { 1_700_000_000 }))
        let expected = try events.map { try single.apply($0).audit }
        XCTAssertEqual(expected.map { $0["outcome"]?.string },
                       ["applied", "pending", "applied", "applied", "duplicate", "ignored", "applied", "stale",
                        "applied", "duplicate", "duplicate"])
        let reference = try contents(dir + "/single")

        for size in [1, 2, 3, 64] {
            let path = dir + "/grouped-\(size)"
            let group = writeGroup(over: try DirectoryStore(path: path, now: { 1_700_000_000 }), publishLast: ["event/"])
            let grouped = applier(group)
            var audits: [JSON] = []
            for (i, e) in events.enumerated() {
                audits.append(try grouped.apply(e).audit)
                if (i + 1) % size == 0 { try group.commit() }
            }
            try group.commit()
            XCTAssertEqual(audits, expected, "group of \(size)")
            XCTAssertEqual(try contents(path), reference, "group of \(size)")
        }
    }

    func testNothingIsVisibleToOthersBeforeCommitAndAbandonLeavesTheOldValues() throws {
        let store = try DirectoryStore(path: dir)
        try store.put("sub/u", ["v": 1], metadata: nil, expiresAt: nil)
        let group = writeGroup(over: store, publishLast: ["event/"])
        try group.put("sub/u", ["v": 2], metadata: nil, expiresAt: nil)
        try group.put("event/e", ["done": true], metadata: nil, expiresAt: nil)
        XCTAssertEqual(try group.get("sub/u")?.value, ["v": 2], "the group reads its own writes")
        XCTAssertEqual(try group.list(prefix: "event/", limit: 10, cursor: nil).keys, ["event/e"])
        let other = try DirectoryStore(path: dir)
        XCTAssertEqual(try other.get("sub/u")?.value, ["v": 1])
        XCTAssertNil(try other.get("event/e"))
        group.abandon()
        XCTAssertEqual(try other.get("sub/u")?.value, ["v": 1])
        XCTAssertNil(try other.get("event/e"))

        try group.put("sub/u", ["v": 3], metadata: nil, expiresAt: nil)
        XCTAssertEqual(try group.delete("sub/u"), true)
        try group.put("sub/u", ["v": 4], metadata: nil, expiresAt: nil)
        try group.commit()
        XCTAssertEqual(try other.get("sub/u"), KVEntry(key: "sub/u", value: ["v": 4], version: 1),
                       "removed then written again: a new key, as the store itself numbers it")
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir).filter { $0.contains(".tmp.") }
        XCTAssertEqual(leftovers, [], "no temporary file is left")
    }

    func testAGroupHoldsItsKeysLocksSoCompareAndSwapStaysExact() throws {
        let store = try DirectoryStore(path: dir)
        let group = writeGroup(over: store)
        try group.put("sub/u", ["v": 1], metadata: nil, expiresAt: nil)
        // Another writer of the same key waits for the group's commit, then sees version 1.
        let done = expectation(description: "rival wrote")
        let path = dir
        DispatchQueue.global().async {
            let rival = try! DirectoryStore(path: path)
            _ = try! rival.compareAndSwap("sub/u", expected: 1, ["v": "rival"], metadata: nil, expiresAt: nil)
            done.fulfill()
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertNil(try DirectoryStore(path: dir).get("sub/u"), "the rival has not written: it waits")
        try group.commit()
        wait(for: [done], timeout: 10)
        XCTAssertEqual(try store.get("sub/u")?.value, ["v": "rival"])
        XCTAssertEqual(try store.get("sub/u")?.version, 2)
    }
}

/// Task: no applied event may end without an audit entry. A redelivery of a processed
/// event repeats how it was first processed (`original`), from the event's marker.
final class RedeliveryAuditTests: XCTestCase {
    let t0 = 1_700_000_000

    func testARedeliveryCarriesTheFirstProcessingsAnnotation() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        _ = try applier.apply(Events.parsed(Events.checkout("evt_1", created: t0)))
        let failed = Events.parsed(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + 10, periodEnd: t0 + 99))
        let first = try applier.apply(failed)
        XCTAssertEqual(first.kind, .applied)
        XCTAssertNil(first.audit["original"], "a first delivery has nothing to repeat")

        let again = try applier.apply(failed)
        XCTAssertEqual(again.kind, .duplicate)
        let original = try XCTUnwrap(again.audit["original"])
        XCTAssertEqual(original["outcome"], "applied")
        XCTAssertEqual(original["uid"], "user-1")
        XCTAssertEqual(original["before"], "active")
        XCTAssertEqual(original["after"], "past_due")
        XCTAssertNil(original["kind"], "kind and ids are the duplicate entry's own")
        XCTAssertEqual(store.entries["event/evt_2"]?.value, ["uid": "user-1", "type": "invoice.payment_failed",
                                                              "outcome": "applied"], "the marker itself is unchanged")
        XCTAssertEqual(try applier.apply(failed).audit, again.audit, "every redelivery repeats it")
    }

    func testARedeliveryAfterACrashBeforeTheMarkerRecordsTheApplication() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        _ = try applier.apply(Events.parsed(Events.checkout("evt_1", created: t0)))
        store.beforeWrite = { key throws(KVError) in if key == "event/evt_2" { throw KVError.unavailable("crash") } }
        let failed = Events.parsed(Events.invoice("evt_2", "invoice.payment_failed", created: t0 + 10, periodEnd: t0 + 99))
        XCTAssertThrowsError(try applier.apply(failed))
        store.beforeWrite = nil
        let again = try applier.apply(failed)
        XCTAssertEqual(again.kind, .duplicate)
        XCTAssertEqual(again.audit["original"]?["outcome"], "applied")
        XCTAssertEqual(again.audit["original"]?["after"], "past_due")
        XCTAssertEqual(try applier.apply(failed).audit["original"], again.audit["original"])
    }

    func testIgnoredAndStaleEventsRepeatTheirOwnOutcome() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        let ignored = Events.parsed(Events.event("evt_i", "customer.created", t0, ["id": "cus_9", "object": "customer"]))
        _ = try applier.apply(ignored)
        XCTAssertEqual(try applier.apply(ignored).audit["original"]?["outcome"], "ignored")
    }

    func testAMarkerWithoutTheAnnotationStillNamesTheOutcome() throws {
        let store = MemoryStore()
        let (applier, _) = makeApplier(store)
        store.entries["event/evt_old"] = KVEntry(key: "event/evt_old", value: ["uid": "user-1", "type": "invoice.paid",
                                                                              "outcome": "applied"], version: 1)
        let o = try applier.apply(Events.parsed(Events.invoice("evt_old", "invoice.paid", created: t0, periodEnd: t0 + 9)))
        XCTAssertEqual(o.kind, .duplicate)
        XCTAssertEqual(o.audit["original"], ["outcome": "applied", "uid": "user-1"])
    }
}
