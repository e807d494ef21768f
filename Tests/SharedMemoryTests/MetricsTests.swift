#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import SharedMemory

final class MetricsTests: XCTestCase {
    private func path() -> String { "/tmp/edgepipe-metrics-\(getpid())-\(Int.random(in: 0..<1_000_000))" }

    func test_every_family_has_its_own_slots_inside_the_file() {
        let layout = MetricsLayout()
        var ranges = layout.allFamilies.map { ($0.base, $0.base + $0.slotCount) }
        ranges += [layout.routes, layout.upstreams, layout.eventTypes].map { ($0.base, $0.base + $0.slotCount) }
        ranges.append((layout.upstreamCheck, layout.upstreamCheck + 2))
        ranges.sort { $0.0 < $1.0 }
        XCTAssertEqual(ranges.first?.0, 1, "slot 0 is the fingerprint")
        for (a, b) in zip(ranges, ranges.dropFirst()) {
            if b.0 == layout.countersBase {
                XCTAssert(a.1 <= b.0 && b.0 - a.1 < 8, "the families start on the next cache line")
            } else {
                XCTAssertEqual(a.1, b.0, "no gap and no overlap")
            }
        }
        XCTAssertEqual(layout.countersBase % 8, 0)
        XCTAssertEqual(layout.shardStride % 8, 0, "a shard is whole cache lines")
        XCTAssertEqual(layout.countersBase + layout.shardStride, layout.slotCount)
        XCTAssert(ranges.last!.1 <= layout.slotCount && layout.slotCount - ranges.last!.1 < 8)
        XCTAssertEqual(MetricsLayout().computedFingerprint, layout.computedFingerprint, "every process computes the same layout")
        XCTAssertEqual(layout.computedFingerprint, MetricsLayout.fingerprint,
                       "the layout changed: set MetricsLayout.fingerprint to \(layout.computedFingerprint)")
    }

    func test_two_openers_count_into_the_same_series() throws {
        let p = path(); defer { unlink(p) }
        let a = try Metrics(path: p), b = try Metrics(path: p)
        let route = a.nameIndex(a.layout.routes, "subscription")
        XCTAssertEqual(b.nameIndex(b.layout.routes, "subscription"), route, "the name table is shared")
        a.add(a.layout.requests, route, MetricsLayout.statusIndex(200))
        b.add(b.layout.requests, route, MetricsLayout.statusIndex(200))
        let text = PrometheusText.render(a, now: 0)
        XCTAssertTrue(text.contains("edgepipe_http_requests_total{route=\"subscription\",status=\"200\"} 2\n"), text)
    }

    func test_statuses_map_to_their_code_or_their_class() {
        for code in [200, 201, 204, 301, 304, 307, 400, 401, 404, 410, 413, 429, 431, 500, 502, 503, 505] {
            XCTAssertEqual(MetricsLayout.statuses[MetricsLayout.statusIndex(code)], String(code))
        }
        XCTAssertEqual(MetricsLayout.statuses[MetricsLayout.statusIndex(299)], "2xx")
        XCTAssertEqual(MetricsLayout.statuses[MetricsLayout.statusIndex(418)], "4xx")
        XCTAssertEqual(MetricsLayout.statuses[MetricsLayout.statusIndex(599)], "5xx")
        XCTAssertEqual(MetricsLayout.statuses[MetricsLayout.statusIndex(103)], "1xx")
    }

    func test_a_full_name_table_counts_new_names_as_other() throws {
        let p = path(); defer { unlink(p) }
        let m = try Metrics(path: p)
        let table = m.layout.upstreams
        var seen = Set<Int>()
        for i in 0..<table.capacity { seen.insert(m.nameIndex(table, "u\(i)")) }
        XCTAssertEqual(seen, Set(0..<table.capacity), "each name its own entry")
        XCTAssertEqual(m.nameIndex(table, "one-too-many"), table.capacity)
        XCTAssertEqual(m.nameIndex(table, String(repeating: "x", count: 64)), table.capacity, "too long")
        XCTAssertEqual(m.nameIndex(table, "u7"), m.nameIndex(table, "u7"))
    }

    func test_a_histogram_renders_cumulative_buckets_sum_and_count() throws {
        let p = path(); defer { unlink(p) }
        let m = try Metrics(path: p)
        let r = m.nameIndex(m.layout.routes, "healthz")
        for micros: Int64 in [100, 600, 600, 3_000_000, 20_000_000] { m.observe(m.layout.requestDuration, r, micros: micros) }
        assertDurations(of: m, route: "healthz", buckets: [("0.0005", 1), ("0.001", 3), ("5", 4), ("+Inf", 5)],
                        sum: "23.0013", count: 5)
    }

    /// The request-duration histogram of `route` as rendered: some cumulative buckets, sum and count.
    func assertDurations(of m: Metrics, route: String, buckets: [(le: String, count: Int)], sum: String, count: Int,
                         file: StaticString = #filePath, line: UInt = #line) {
        let text = PrometheusText.render(m, now: 0)
        let name = "edgepipe_http_request_duration_seconds"
        var expected = buckets.map { "\(name)_bucket{route=\"\(route)\",le=\"\($0.le)\"} \($0.count)\n" }
        expected += ["\(name)_sum{route=\"\(route)\"} \(sum)\n", "\(name)_count{route=\"\(route)\"} \(count)\n"]
        for e in expected { XCTAssertTrue(text.contains(e), "\(e) in\n\(text)", file: file, line: line) }
    }

    func test_a_file_of_another_layout_is_refused_not_misread() throws {
        let p = path(); defer { unlink(p) }
        let slots = try SharedSlots(path: p, count: 4)
        slots.store(0, 12345)
        XCTAssertThrowsError(try Metrics(path: p))
    }

    func test_label_values_are_escaped() {
        XCTAssertEqual(PrometheusText.escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd")
        XCTAssertEqual(PrometheusText.seconds(2_500), "0.0025")
        XCTAssertEqual(PrometheusText.seconds(10_000_000), "10")
    }

    func test_concurrent_claims_of_one_name_agree() throws {
        let p = path(); defer { unlink(p) }
        let metrics = try (0..<4).map { _ in try Metrics(path: p) }
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4 * 20)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for n in 0..<20 { results[t * 20 + n] = metrics[t].nameIndex(metrics[t].layout.eventTypes, "evt.\(n)") }
        }
        for n in 0..<20 {
            XCTAssertEqual(Set((0..<4).map { results[$0 * 20 + n] }).count, 1, "evt.\(n) has one index")
        }
        XCTAssertEqual(Set((0..<20).map { results[$0] }).count, 20)
    }
}

/// Glibc declares it only under _GNU_SOURCE (as Metrics does sched_getcpu).
@_silgen_name("sched_setaffinity") private func sched_setaffinity(_ pid: Int32, _ size: Int, _ mask: UnsafeRawPointer) -> Int32

extension MetricsTests {
    /// Runs `body` on a thread held to `cpu`.
    private func onCPU(_ cpu: Int, _ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        Thread {
            var mask = [UInt64](repeating: 0, count: 16)   // 1024 CPUs, as glibc's cpu_set_t
            mask[cpu / 64] = 1 << UInt64(cpu % 64)
            XCTAssertEqual(mask.withUnsafeBytes { sched_setaffinity(0, $0.count, $0.baseAddress!) }, 0)
            body()
            done.signal()
        }.start()
        done.wait()
    }

    func test_each_cpu_counts_into_its_own_shard_and_a_scrape_sums_them() throws {
        let p = path(); defer { unlink(p) }
        let m = try Metrics(path: p)
        XCTAssertEqual(m.shards, Metrics.machineShards)
        let cpus = min(Metrics.machineShards, 4)
        let series = m.layout.requests.series.slot(m.nameIndex(m.layout.routes, "subscription"), MetricsLayout.statusIndex(200))
        for cpu in 0..<cpus {
            onCPU(cpu) { for _ in 0...cpu { m.add(slot: series) } }
        }
        XCTAssertEqual(m.value(series), Int64(cpus * (cpus + 1) / 2), "the sum of every shard")
        for cpu in 0..<cpus {
            XCTAssertEqual(m.slots.load(series + cpu * m.layout.shardStride), Int64(cpu + 1), "CPU \(cpu) added to its own copy")
        }
        XCTAssertTrue(PrometheusText.render(m, now: 0)
            .contains("edgepipe_http_requests_total{route=\"subscription\",status=\"200\"} \(cpus * (cpus + 1) / 2)\n"))
    }

    func test_a_histogram_observed_on_two_cpus_renders_as_one() throws {
        let p = path(); defer { unlink(p) }
        let m = try Metrics(path: p, shards: 2)
        let r = m.nameIndex(m.layout.routes, "healthz")
        let series = m.layout.requestDuration.series.slot(r)
        onCPU(0) { m.observe(series: series, micros: 300) }
        onCPU(min(1, Metrics.machineShards - 1)) { m.observe(series: series, micros: 2_000) }
        assertDurations(of: m, route: "healthz", buckets: [("0.0005", 1), ("0.0025", 2)], sum: "0.0023", count: 2)
    }

    func test_a_gauge_that_goes_up_on_one_cpu_and_down_on_another_sums_to_zero() throws {
        let p = path(); defer { unlink(p) }
        let m = try Metrics(path: p, shards: 2)
        let open = m.layout.connectionsOpen
        onCPU(0) { m.add(open) }
        onCPU(min(1, Metrics.machineShards - 1)) { m.add(open, delta: -1) }
        XCTAssertEqual(m.value(open.base), 0)
        XCTAssertTrue(PrometheusText.render(m, now: 0).contains("edgepipe_connections_open 0\n"))
    }

    func test_a_file_made_for_another_number_of_cpus_is_refused() throws {
        let p = path(); defer { unlink(p) }
        _ = try Metrics(path: p, shards: 2)
        XCTAssertThrowsError(try Metrics(path: p, shards: 3))
        XCTAssertNoThrow(try Metrics(path: p, shards: 2))
    }
}

extension MetricsTests {
    func test_each_bound_closes_its_bucket() {
        for (i, bound) in Histogram.boundsMicros.enumerated() {
            XCTAssertEqual(Histogram.bucket(bound), i, "\(bound) µs is in its own bucket")
            XCTAssertEqual(Histogram.bucket(bound + 1), i + 1, "\(bound + 1) µs is in the next")
        }
        XCTAssertEqual(Histogram.bucket(0), 0)
        XCTAssertEqual(Histogram.bucket(-5), 0)
        XCTAssertEqual(Histogram.bucket(.max), Histogram.boundsMicros.count, "+Inf")
    }

    func test_a_response_counts_once_and_observes_its_duration_in_one_shard() throws {
        let p = path(); defer { unlink(p) }
        let m = try Metrics(path: p)
        let r = m.nameIndex(m.layout.routes, "subscription")
        m.responded(requests: m.layout.requests.series.slot(r, 0), duration: m.layout.requestDuration.series.slot(r), micros: 700)
        m.responded(requests: m.layout.requests.series.slot(r, 0), duration: m.layout.requestDuration.series.slot(r), micros: nil)
        XCTAssertTrue(PrometheusText.render(m, now: 0).contains("edgepipe_http_requests_total{route=\"subscription\",status=\"200\"} 2\n"))
        assertDurations(of: m, route: "subscription", buckets: [("0.0005", 0), ("0.001", 1)], sum: "0.0007", count: 1)
    }
}
