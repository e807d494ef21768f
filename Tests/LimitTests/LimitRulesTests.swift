#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Records
import KV
import SharedMemory
@testable import RateLimit

final class LimitRulesTests: XCTestCase {
    func test_a_rule_has_route_key_rate_and_options() throws {
        let rules = try LimitRules.parse("""
            # comment
            *               ip              100/s  burst=20
            reserve-submit  header:X-Api-Key 20/min redis-down=closed
            subscription    uid             5/h
            """)
        XCTAssertEqual(rules.count, 3)
        XCTAssertEqual(rules[0].route, "*")
        XCTAssertEqual(rules[0].key, .ip)
        XCTAssertEqual(rules[0].rate, GCRA(count: 100, periodSeconds: 1, burst: 20))
        XCTAssertEqual(rules[1].key, .header("x-api-key"))
        XCTAssertTrue(rules[1].failClosed)
        XCTAssertEqual(rules[1].burst, 20, "burst defaults to the count")
        XCTAssertEqual(rules[2].periodSeconds, 3600)
        XCTAssertEqual(rules[2].line, 4)
    }

    func test_bad_lines_are_refused_with_their_line_number() {
        let cases = [
            ("* ip 100/s\n\n* ip 5/min", 3, "a second ip limit"),
            ("* ip 100/week", 1, "rate '100/week'"),
            ("* ip 0/s", 1, "rate '0/s'"),
            ("* cookie 1/s", 1, "unknown key"),
            ("* ip 1/s burst=0", 1, "burst="),
            ("* ip 1/s redis-down=maybe", 1, "unknown option"),
            ("a/b ip 1/s", 1, "not a route name"),
            ("* header:authorization 1/s", 1, "use uid"),
            ("* ip", 1, "expected ROUTE KEY RATE"),
        ]
        for (text, line, reason) in cases {
            XCTAssertThrowsError(try LimitRules.parse(text), text) { error in
                let e = error as! ConfigError
                XCTAssertEqual(e.line, line, text)
                XCTAssertTrue(e.reason.contains(reason), "\(text): \(e.reason)")
                XCTAssertTrue(e.report(file: "limits").hasPrefix("limits:\(line): "))
            }
        }
    }

    func test_stages_split_rules_by_key() {
        XCTAssertTrue(LimitStage.ip.includes(.ip))
        XCTAssertTrue(LimitStage.ip.includes(.header("x")))
        XCTAssertFalse(LimitStage.ip.includes(.uid))
        XCTAssertTrue(LimitStage.uid.includes(.uid))
        XCTAssertFalse(LimitStage.uid.includes(.ip))
    }

    private func request(route: String, remote: String?, uid: String? = nil) -> Record {
        var o = JSONObject([("id", "1"), ("method", "POST"), ("path", "/x"), ("version", "HTTP/1.1"), ("keep_alive", .bool(true))])
        if let remote { o["remote"] = .string(remote) }
        var notes = JSONObject([("route", .object(JSONObject([("name", .string(route))])))])
        if let uid { notes["auth"] = .object(JSONObject([("uid", .string(uid))])) }
        o["annotations"] = .object(notes)
        return Record(o)
    }

    func test_the_filter_answers_429_with_retry_after_and_ratelimit_fields() throws {
        let p = "/tmp/edgepipe-limit-\(getpid())"; defer { unlink(p) }
        let table = try RateTable(path: p, buckets: 64)
        var t: Int64 = 1_000_000_000
        let filter = LimitFilter(rules: try LimitRules.parse("reserve-submit ip 2/min"), backend: LocalLimits(table: table),
                                 counters: table, now: { t })
        for _ in 0..<2 {
            var r = request(route: "reserve-submit", remote: "192.0.2.1")
            filter.handle(&r)
            XCTAssertFalse(r.isResponse)
        }
        var other = request(route: "reserve-list", remote: "192.0.2.1")
        filter.handle(&other)
        XCTAssertFalse(other.isResponse, "another route is not limited by this rule")
        var r = request(route: "reserve-submit", remote: "192.0.2.1")
        filter.handle(&r)
        XCTAssertEqual(r.status, 429)
        XCTAssertEqual(r.header("retry-after"), "30")
        XCTAssertEqual(r.header("ratelimit-policy"), "\"reserve-submit/ip\";q=2;w=60")
        XCTAssertEqual(r.header("ratelimit"), "\"reserve-submit/ip\";r=0;t=60")
        let body = try JSONReader.parse(r.body)
        XCTAssertEqual(body["error"]?.string, "rate_limited")
        XCTAssertEqual(body["retry_after"]?.int, 30)
        XCTAssertEqual(table.counter(.limited), 1)
        var elsewhere = request(route: "reserve-submit", remote: "192.0.2.2")
        filter.handle(&elsewhere)
        XCTAssertFalse(elsewhere.isResponse, "another address has its own allowance")
        t += 30_000_000
        var later = request(route: "reserve-submit", remote: "192.0.2.1")
        filter.handle(&later)
        XCTAssertFalse(later.isResponse, "one request back after the interval")
    }

    private struct Down: LimitBackend {
        func acquire(_ rule: LimitRule, _ key: String, now: Int64) throws(KVError) -> GCRA.Decision {
            throw KVError.unavailable("redis://127.0.0.1:1: connection refused")
        }
    }

    func test_a_store_outage_passes_and_counts_by_default_and_503s_a_closed_rule() throws {
        let p = "/tmp/edgepipe-limit-down-\(getpid())"; defer { unlink(p) }
        let table = try RateTable(path: p, buckets: 64)
        let open = LimitFilter(rules: try LimitRules.parse("* ip 1/s"), backend: Down(), counters: table)
        var r = request(route: "a", remote: "192.0.2.1")
        open.handle(&r)
        XCTAssertFalse(r.isResponse)
        XCTAssertEqual(table.counter(.failOpen), 1)
        let closed = LimitFilter(rules: try LimitRules.parse("* ip 1/s redis-down=closed"), backend: Down(), counters: table)
        var c = request(route: "a", remote: "192.0.2.1")
        closed.handle(&c)
        XCTAssertEqual(c.status, 503)
        XCTAssertEqual(try JSONReader.parse(c.body)["error"]?.string, "limit_unavailable")
    }

    func test_a_uid_rule_keys_on_the_verified_uid_and_skips_anonymous_requests() throws {
        let p = "/tmp/edgepipe-limit-uid-\(getpid())"; defer { unlink(p) }
        let table = try RateTable(path: p, buckets: 64)
        let filter = LimitFilter(rules: try LimitRules.parse("* uid 1/min"), backend: LocalLimits(table: table), counters: table,
                                 now: { 5_000_000 })
        var a = request(route: "x", remote: "192.0.2.1", uid: "alice")
        filter.handle(&a)
        XCTAssertFalse(a.isResponse)
        var a2 = request(route: "x", remote: "192.0.2.9", uid: "alice")
        filter.handle(&a2)
        XCTAssertEqual(a2.status, 429, "the uid, not the address, is the key")
        for _ in 0..<3 {
            var anonymous = request(route: "x", remote: "192.0.2.1")
            filter.handle(&anonymous)
            XCTAssertFalse(anonymous.isResponse)
        }
    }
}
