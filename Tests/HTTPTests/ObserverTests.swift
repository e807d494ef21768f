import XCTest
import Foundation
import Records
import SharedMemory
@testable import HTTPEncodeTool
@testable import HTTPDecodeTool

/// What http-encode logs and counts once a response is out, and the ids and arrival
/// stamps http-decode gives requests.
final class ObserverTests: XCTestCase {
    private func record(_ json: String) -> Record { try! Record.parse(json) }

    func test_a_line_has_the_facts_and_never_a_header_but_the_agent() {
        let r = record(#"""
        {"id":"1","method":"GET","version":"HTTP/1.1","keep_alive":true,"remote":"192.0.2.7","status":401,
         "headers":[["www-authenticate","Bearer"]],"body":"","request_id":"abc",
         "access":{"received_at":1000,"received_us":5000,"bytes_in":321,"path":"/v1/x","query":"token=SECRET","user_agent":"ua/1"},
         "annotations":{"route":{"name":"subscription"},"auth":{"refused":"expired"}}}
        """#)
        var observer = ResponseObserver(log: nil, metrics: nil)
        let facts = ResponseObserver.facts(r, status: r.status ?? 0, access: r["access"]?.object, monoNow: 17_345)
        XCTAssertEqual(facts.durationMicros, 12_345)
        let line = observer.line(r, facts, access: r["access"]?.object, bytesOut: 99, wallMillis: 1_700_000_000_123)
        let text = String(decoding: line, as: UTF8.self)
        XCTAssertTrue(text.hasSuffix("}\n"))
        XCTAssertEqual(text, #"{"time":"2023-11-14T22:13:20.123Z","request_id":"abc","remote":"192.0.2.7","method":"GET","path":"/v1/x","route":"subscription","status":401,"bytes_in":321,"bytes_out":99,"duration_ms":12.345,"auth_error":"expired","user_agent":"ua/1"}"# + "\n")
        var withQuery = observer
        withQuery.logQuery = true
        XCTAssertTrue(String(decoding: withQuery.line(r, facts, access: r["access"]?.object, bytesOut: 99, wallMillis: 0), as: UTF8.self)
            .contains(#""query":"token=SECRET""#))
    }

    /// A chain hands http-encode records whose annotations its filters set as trees, and
    /// whose access is still bytes; a separate http-encode reads both as bytes, and a test
    /// may hand either as trees: the facts are the same.
    func test_the_facts_are_the_same_whether_members_are_bytes_or_trees() {
        let text = #"{"id":"1","status":502,"access":{"received_us":5000,"received_at":1000,"bytes_in":9},"# +
            #""annotations":{"route":{"name":"orders","params":{"id":"7"}},"auth":{"uid":"u-1","refused":"expired"},"# +
            #""upstream":{"name":"billing","status":503,"ms":12.5}}}"#
        let raw = record(text)
        var trees = record(text)
        trees["annotations"] = trees["annotations"]
        var all = trees
        all["access"] = all["access"]
        let expected = ResponseObserver.Facts(route: "orders", status: 502, durationMicros: 1_000, uid: nil, refusal: "expired",
                                              upstream: ("billing", 503, "12.5"))
        for r in [raw, trees, all] {
            XCTAssertEqual(ResponseObserver.facts(r, status: 502, access: nil, monoNow: 6_000), expected)
            var logged = expected
            logged.uid = "u-1"
            XCTAssertEqual(ResponseObserver.facts(r, status: 502, access: r["access"]?.object, monoNow: 6_000), logged)
        }
        var moved = record(#"{"id":"1","status":200,"access":{"bytes_in":9,"received_us":5000}}"#)
        XCTAssertEqual(ResponseObserver.facts(moved, status: 200, access: nil, monoNow: 6_000).durationMicros, 1_000,
                       "received_us read wherever it is")
        moved["access"] = moved["access"]
        XCTAssertEqual(ResponseObserver.facts(moved, status: 200, access: nil, monoNow: 6_000).durationMicros, 1_000)
    }

    func test_the_response_carries_the_request_id_and_replaces_one_set_downstream() {
        var writer = ResponseWriter(now: { 0 })
        var out: [UInt8] = []
        _ = writer.write(record(#"{"id":"1","status":200,"keep_alive":true,"request_id":"r-9","headers":[["x-request-id","upstream-id"]],"body":""}"#), into: &out)
        let text = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(text.contains("x-request-id: r-9\r\n"))
        XCTAssertFalse(text.contains("upstream-id"))
        XCTAssertEqual(writer.written?.requestID, "r-9")
    }

    func test_requests_and_durations_are_counted_by_route_and_status() throws {
        let path = "/tmp/edgepipe-observer-\(getpid())"
        defer { unlink(path) }
        let metrics = try Metrics(path: path)
        var observer = ResponseObserver(log: nil, metrics: metrics, now: { (0, 2_000) })
        for _ in 0..<3 {
            observer.responded(record(#"{"id":"1","status":200,"access":{"received_us":1000},"annotations":{"route":{"name":"healthz"}}}"#), bytesOut: 10)
        }
        observer.responded(record(#"{"id":"1","status":418}"#), bytesOut: 10)
        let text = PrometheusText.render(metrics, now: 0)
        XCTAssertTrue(text.contains("edgepipe_http_requests_total{route=\"healthz\",status=\"200\"} 3\n"), text)
        XCTAssertTrue(text.contains("edgepipe_http_requests_total{route=\"none\",status=\"4xx\"} 1\n"))
        XCTAssertTrue(text.contains("edgepipe_http_request_duration_seconds_bucket{route=\"healthz\",le=\"0.001\"} 3\n"))
    }

    func test_request_ids_are_128_bit_hex_and_distinct() {
        var ids = RequestIDs()
        let many = (0..<1000).map { _ in ids.next() }   // crosses a refill of the pool
        XCTAssertEqual(Set(many).count, 1000)
        XCTAssertTrue(many.allSatisfy { $0.count == 32 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
    }

    func test_an_incoming_id_is_well_formed_only_with_safe_characters_and_bounded() {
        XCTAssertTrue(RequestIDs.isWellFormed("abc-DEF_1.2:3+4/5=6@7"))
        XCTAssertTrue(RequestIDs.isWellFormed(String(repeating: "a", count: 128)))
        for bad in ["", String(repeating: "a", count: 129), "a b", "a\"b", "a;b", "é", "a\tb"] {
            XCTAssertFalse(RequestIDs.isWellFormed(bad), bad)
        }
    }

    func test_pipelined_requests_are_stamped_with_their_own_size() {
        var settings = DecoderSettings()
        var fds: [Int32] = [0, 0], outFds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0); XCTAssertEqual(pipe(&outFds), 0)
        settings.input = fds[0]; settings.output = outFds[1]; settings.lingerMs = 0
        let a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", b = "GET /bb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        _ = (a + b).withCString { write(fds[1], $0, strlen($0)) }
        close(fds[1])
        _ = HTTPDecodeFilter(settings: settings, remote: nil).run()
        close(outFds[1])
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true { let n = read(outFds[0], &chunk, 4096); if n <= 0 { break }; bytes += chunk[0..<n] }
        let records = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { try! Record.parse(String($0)) }
        XCTAssertEqual(records.map { $0["access"]?["bytes_in"]?.int }, [a.utf8.count, b.utf8.count])
        XCTAssertEqual(records[0]["access"]?["received_us"], records[1]["access"]?["received_us"], "both arrived in one read")
        XCTAssertNotEqual(records[0].requestID, records[1].requestID)
    }
}
