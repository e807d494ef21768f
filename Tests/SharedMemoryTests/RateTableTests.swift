#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import SharedMemory

final class RateTableTests: XCTestCase {
    private func path() -> String { "/tmp/edgepipe-rate-\(getpid())-\(Int.random(in: 0..<1_000_000))" }

    func test_gcra_allows_the_burst_at_once_then_one_per_interval() {
        let rate = GCRA(count: 100, periodSeconds: 1, burst: 5)   // 10 ms apart
        var tat: Int64 = 0
        let now: Int64 = 1_000_000_000
        for i in 0..<5 {
            let d = rate.decide(tat: tat, now: now)
            XCTAssertTrue(d.allowed, "request \(i) of the burst")
            XCTAssertEqual(d.remaining, 4 - i)
            tat = d.newTAT
        }
        let refused = rate.decide(tat: tat, now: now)
        XCTAssertFalse(refused.allowed)
        XCTAssertEqual(refused.retryAfter, 10_000)
        XCTAssertTrue(rate.decide(tat: tat, now: now + 10_000).allowed)
    }

    func test_gcra_over_a_long_run_accepts_burst_plus_rate_times_duration() {
        // 5 s of a request every 100 µs against 100/s, burst 20: 20 + 500 (one at t=0 is in both).
        let rate = GCRA(count: 100, periodSeconds: 1, burst: 20)
        var tat: Int64 = 0
        var accepted = 0
        var t: Int64 = 1_000_000
        while t < 1_000_000 + 5_000_000 {
            let d = rate.decide(tat: tat, now: t)
            if d.allowed { accepted += 1; tat = d.newTAT }
            t += 100
        }
        XCTAssertEqual(accepted, 520, accuracy: 1)
    }

    func test_a_late_reader_never_resets_a_busy_key() {
        // Another process kept the key busy up to its full burst at t = 10 s; this process read
        // the clock 2 s earlier and was descheduled. It must be refused, not given a new burst.
        let rate = GCRA(count: 100, periodSeconds: 1, burst: 50)
        let busyTAT = 10_000_000 + rate.tolerance + rate.interval
        let late = rate.decide(tat: busyTAT, now: 8_000_000)
        XCTAssertFalse(late.allowed)
    }

    func test_a_clock_that_went_back_does_not_lock_a_key_out() {
        let rate = GCRA(count: 1, periodSeconds: 60, burst: 1)
        XCTAssertTrue(rate.decide(tat: Int64.max / 2, now: 1_000).allowed)
    }

    func test_keys_are_independent_and_state_is_shared_between_openers() throws {
        let p = path(); defer { unlink(p) }
        let a = try RateTable(path: p, buckets: 64, ways: 4)
        let b = try RateTable(path: p, buckets: 64, ways: 4)
        XCTAssertEqual(a.seed, b.seed, "the seed is set once, by the first opener")
        let rate = GCRA(count: 1, periodSeconds: 60, burst: 2)
        let alice = a.hash(Array("alice".utf8)), bob = a.hash(Array("bob".utf8))
        XCTAssertTrue(a.acquire(alice, rate, now: 1_000_000).allowed)
        XCTAssertTrue(b.acquire(alice, rate, now: 1_000_000).allowed)
        XCTAssertFalse(a.acquire(alice, rate, now: 1_000_000).allowed, "the second process spent the burst too")
        XCTAssertTrue(b.acquire(bob, rate, now: 1_000_000).allowed)
    }

    func test_a_million_distinct_keys_keep_the_table_its_size_and_an_active_key_survives() throws {
        let p = path(); defer { unlink(p) }
        let table = try RateTable(path: p, buckets: 1024, ways: 4)
        var st = stat()
        XCTAssertEqual(stat(p, &st), 0)
        let size = Int(st.st_size)
        let rate = GCRA(count: 10, periodSeconds: 1, burst: 10)
        let now: Int64 = 10_000_000
        // An active key: its TAT runs ahead of now for the whole flood.
        let victim = table.hash(Array("203.0.113.7".utf8))
        for _ in 0..<10 { XCTAssertTrue(table.acquire(victim, rate, now: now).allowed) }
        XCTAssertFalse(table.acquire(victim, rate, now: now).allowed)
        // A million one-off addresses, each seen once a little earlier than the victim's
        // last request: idle after one request, so the flood evicts its own entries first.
        for i in 0..<1_000_000 {
            let key = table.hash(Array("10.\(i >> 16).\((i >> 8) & 255).\(i & 255)".utf8))
            _ = table.acquire(key, rate, now: now - 1_000_000)
        }
        XCTAssertEqual(stat(p, &st), 0)
        XCTAssertEqual(Int(st.st_size), size, "the file never grows")
        XCTAssertEqual(table.slotCount, RateTable.header + 1024 * 4 * 2)
        XCTAssertGreaterThan(table.counter(.evictions), 900_000)
        XCTAssertFalse(table.acquire(victim, rate, now: now).allowed, "the active key kept its state through the flood")
    }

    func test_concurrent_processes_spend_exactly_the_burst() throws {
        let p = path(); defer { unlink(p) }
        let rate = GCRA(count: 1, periodSeconds: 3600, burst: 100)
        let key: UInt64 = 12345
        var children: [pid_t] = []
        for _ in 0..<4 {
            let pid = fork()
            if pid == 0 {
                let t = try! RateTable(path: p, buckets: 16, ways: 2)
                var n: Int64 = 0
                for _ in 0..<100 where t.acquire(key, rate, now: 5_000_000).allowed { n += 1 }
                t.slots.add(7, n)
                _exit(0)
            }
            children.append(pid)
        }
        for pid in children { var status: Int32 = 0; waitpid(pid, &status, 0) }
        let table = try RateTable(path: p, buckets: 16, ways: 2)
        XCTAssertEqual(table.slots.load(7), 100, "400 attempts from 4 processes, 100 allowed")
    }
}
