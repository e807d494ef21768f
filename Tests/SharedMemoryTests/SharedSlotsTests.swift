#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import SharedMemory

final class SharedSlotsTests: XCTestCase {
    private func path() -> String { "/tmp/edgepipe-slots-\(getpid())-\(Int.random(in: 0..<1_000_000))" }

    func test_a_new_file_starts_at_zero_and_adds_return_the_new_value() throws {
        let p = path(); defer { unlink(p) }
        let slots = try SharedSlots(path: p, count: 4)
        XCTAssertEqual(slots.load(3), 0)
        XCTAssertEqual(slots.add(3), 1)
        XCTAssertEqual(slots.add(3, 41), 42)
    }

    func test_two_mappings_of_one_file_see_each_others_updates() throws {
        let p = path(); defer { unlink(p) }
        let a = try SharedSlots(path: p, count: 8)
        let b = try SharedSlots(path: p, count: 8)
        a.add(5, 7)
        XCTAssertEqual(b.load(5), 7)
        b.store(1, -3)
        XCTAssertEqual(a.load(1), -3)
    }

    func test_reopening_with_more_slots_keeps_values_and_never_shrinks() throws {
        let p = path(); defer { unlink(p) }
        try SharedSlots(path: p, count: 2).add(1, 9)
        let bigger = try SharedSlots(path: p, count: 100)
        XCTAssertEqual(bigger.load(1), 9)
        XCTAssertEqual(bigger.load(99), 0)
        _ = try SharedSlots(path: p, count: 2)
        var st = stat()
        XCTAssertEqual(stat(p, &st), 0)
        XCTAssertEqual(Int(st.st_size), 100 * 8)
    }

    /// A page first written on a full disk would kill its writer (SIGBUS): every slot has
    /// its blocks from the start, a sparse file left by someone else included.
    func test_every_slot_has_its_disk_blocks_once_opened() throws {
        let p = path(); defer { unlink(p) }
        var st = stat()
        _ = try SharedSlots(path: p, count: 10_000)
        XCTAssertEqual(stat(p, &st), 0)
        XCTAssertGreaterThanOrEqual(Int(st.st_blocks) * 512, 10_000 * 8)
        let sparse = path(); defer { unlink(sparse) }
        let fd = open(sparse, O_RDWR | O_CREAT, 0o600)
        XCTAssertEqual(ftruncate(fd, 80_000), 0)
        close(fd)
        _ = try SharedSlots(path: sparse, count: 10_000)
        XCTAssertEqual(stat(sparse, &st), 0)
        XCTAssertGreaterThanOrEqual(Int(st.st_blocks) * 512, 80_000)
    }

    func test_compare_exchange_only_replaces_the_expected_value() throws {
        let p = path(); defer { unlink(p) }
        let slots = try SharedSlots(path: p, count: 1)
        XCTAssertEqual(slots.compareExchange(0, expected: 0, desired: 10).exchanged, true)
        let second = slots.compareExchange(0, expected: 0, desired: 20)
        XCTAssertEqual(second.exchanged, false)
        XCTAssertEqual(second.original, 10)
        XCTAssertEqual(slots.load(0), 10)
    }

    func test_concurrent_processes_lose_no_increment() throws {
        let p = path(); defer { unlink(p) }
        let slots = try SharedSlots(path: p, count: 1)
        var children: [pid_t] = []
        for _ in 0..<4 {
            let pid = fork()
            if pid == 0 {
                if let child = try? SharedSlots(path: p, count: 1) {
                    for _ in 0..<100_000 { child.add(0) }
                }
                _exit(0)
            }
            children.append(pid)
        }
        for pid in children { var status: Int32 = 0; waitpid(pid, &status, 0) }
        XCTAssertEqual(slots.load(0), 400_000)
    }

    func test_an_unopenable_path_is_a_clear_error() {
        XCTAssertThrowsError(try SharedSlots(path: "/nonexistent-dir/slots", count: 1)) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent-dir/slots"))
        }
    }
}
