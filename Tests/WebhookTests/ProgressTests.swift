import XCTest
@testable import apply_webhook

final class ProgressTests: XCTestCase {
    func test_the_line_shows_done_total_rate_and_time_left() {
        XCTAssertEqual(Progress.line(done: 250, total: 1000, elapsedMillis: 500, detail: "d"),
                       "250/1000 events (25%), 500/s, ETA 2s - d")
        XCTAssertEqual(Progress.line(done: 250, total: nil, elapsedMillis: 500, detail: "d"), "250 events, 500/s - d")
        XCTAssertEqual(Progress.line(done: 10, total: 10, elapsedMillis: 1000, detail: "d"), "10/10 events (100%), 10/s - d")
    }

    func test_long_times_read_as_minutes_and_hours() {
        XCTAssertEqual(Progress.duration(59), "59s")
        XCTAssertEqual(Progress.duration(61), "1m01s")
        XCTAssertEqual(Progress.duration(3 * 3600 + 5 * 60), "3h05m")
    }

    func test_redraws_are_at_most_five_a_second_and_the_line_is_cleared() {
        var now = 0
        var written: [String] = []
        var p = Progress(total: 3, clock: { now }, output: { written.append(String(decoding: $0, as: UTF8.self)) })
        now = 250; p.update(done: 1, detail: "")
        now = 300; p.update(done: 2, detail: "")
        now = 460; p.update(done: 3, detail: "")
        XCTAssertEqual(written.count, 2)
        p.finish()
        XCTAssertEqual(written.last, "\r\u{1B}[K")
    }

    func test_the_total_counts_non_blank_lines_and_directory_files() throws {
        let dir = NSTemporaryDirectory() + "progress-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/d", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "{}\n\n  \n{}\n{}".write(toFile: dir + "/f.jsonl", atomically: true, encoding: .utf8)
        for name in ["a", "b", ".hidden"] { try "{}".write(toFile: dir + "/d/" + name, atomically: true, encoding: .utf8) }
        XCTAssertEqual(Progress.count([dir + "/f.jsonl", dir + "/d"]), 5)
        XCTAssertNil(Progress.count([]))
        XCTAssertNil(Progress.count([dir + "/missing"]))
    }
}
