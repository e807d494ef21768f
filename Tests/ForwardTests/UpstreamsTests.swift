import XCTest
@testable import ForwardTool
@testable import Net
import Records
import Net

/// The upstreams file: what each line means, and each mistake refused with its line number.
final class UpstreamsTests: XCTestCase {
    func assertRefused(_ text: String, line expected: Int?, _ reasonPart: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try UpstreamTable.parse(text)
            XCTFail("accepted a bad file: \(text)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.line, expected, "line of: \(error)", file: file, line: line)
            XCTAssert(error.reason.contains(reasonPart), "reason '\(error.reason)' lacks '\(reasonPart)'", file: file, line: line)
        }
    }

    func testTheShippedFileIsValidAndForwardsNothing() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../pipelines/upstreams").path
        let t = try UpstreamTable.load(path: path)
        XCTAssertTrue(t.isEmpty)
    }

    func testParsesNamesURLsAndOptions() throws {
        let t = try UpstreamTable.parse("""
        # comment
        orders   http://127.0.0.1:9001        strip=/v1
        search   https://search.internal:8443 timeout=2.5 connect-timeout=250 host=client max-response=1000
        billing  unix:/run/billing.sock       prefix=/api   # trailing comment

        multi    http://10.0.0.5:8080 http://[::1]:8081/
        """)
        XCTAssertEqual(t.upstreams.map(\.name), ["orders", "search", "billing", "multi"])
        let orders = try XCTUnwrap(t.upstream(named: "orders"))
        XCTAssertEqual(orders.endpoints, [UpstreamEndpoint.parse("http://127.0.0.1:9001")!])
        XCTAssertEqual(orders.endpoints[0].kind, .tcp(host: "127.0.0.1", port: 9001))
        XCTAssertEqual(orders.strip, "/v1")
        XCTAssertEqual(orders.timeoutMillis, 30_000)
        XCTAssertEqual(orders.line, 2)
        let search = try XCTUnwrap(t.upstream(named: "search"))
        XCTAssertEqual(search.endpoints[0].kind, .tls(host: "search.internal", port: 8443))
        XCTAssertEqual(search.timeoutMillis, 2500)
        XCTAssertEqual(search.connectTimeoutMillis, 250)
        XCTAssertEqual(search.host, .client)
        XCTAssertEqual(search.maxResponse, 1000)
        XCTAssertEqual(t.upstream(named: "billing")?.endpoints[0].kind, .unix(path: "/run/billing.sock"))
        XCTAssertEqual(t.upstream(named: "billing")?.prefix, "/api")
        XCTAssertEqual(t.upstream(named: "multi")?.endpoints.map(\.kind), [.tcp(host: "10.0.0.5", port: 8080), .tcp(host: "::1", port: 8081)])
        XCTAssertNil(t.upstream(named: "nope"))
    }

    func testAuthorityIsWhatTheUpstreamExpectsAsHost() {
        XCTAssertEqual(UpstreamEndpoint.parse("http://127.0.0.1:80")?.authority, "127.0.0.1")
        XCTAssertEqual(UpstreamEndpoint.parse("https://a.example")?.authority, "a.example")
        XCTAssertEqual(UpstreamEndpoint.parse("https://a.example:8443")?.authority, "a.example:8443")
        XCTAssertEqual(UpstreamEndpoint.parse("http://[::1]:9000")?.authority, "[::1]:9000")
        XCTAssertEqual(UpstreamEndpoint.parse("unix:/run/x.sock")?.authority, "localhost")
    }

    func testEachMistakeIsRefusedWithItsLine() {
        assertRefused("a http://127.0.0.1:1\na http://127.0.0.1:2", line: 2, "already defined on line 1")
        assertRefused("orders", line: 1, "no upstream URL")
        assertRefused("orders ftp://x", line: 1, "not an upstream URL")
        assertRefused("orders http://x:1/base", line: 1, "no path")
        assertRefused("orders http://x:1?a=b", line: 1, "not an upstream URL")
        assertRefused("orders http://user@x:1", line: 1, "not an upstream URL")
        assertRefused("orders unix:relative.sock", line: 1, "not an upstream URL")
        assertRefused("orders http://x:1 timeout=0", line: 1, "timeout=")
        assertRefused("orders http://x:1 timeout=abc", line: 1, "timeout=")
        assertRefused("orders http://x:1 connect-timeout=-5", line: 1, "connect-timeout=")
        assertRefused("orders http://x:1 host=proxy", line: 1, "host=")
        assertRefused("orders http://x:1 strip=v1", line: 1, "strip=")
        assertRefused("orders http://x:1 prefix=/v1/", line: 1, "prefix=")
        assertRefused("orders http://x:1 prefix=/a?b", line: 1, "prefix=")
        assertRefused("orders http://x:1 max-response=0", line: 1, "max-response=")
        assertRefused("orders http://x:1 max-response=99999999999", line: 1, "max-response=")
        assertRefused("orders http://x:1 retries=3", line: 1, "unknown option retries=")
        assertRefused("orders http://x:1 timeout=1 timeout=2", line: 1, "given twice")
        assertRefused("orders timeout=1 http://x:1", line: 1, "after the options")
        assertRefused("orders http://x:1 timeout=1 http://y:1", line: 1, "after the options")
        assertRefused("orders https://x:1 ca=/nonexistent/ca.pem", line: 1, "ca=/nonexistent/ca.pem")
        assertRefused("orders http://x:1 ca=/etc/hostname", line: 1, "ca= is for https")
        assertRefused("ord/ers http://x:1", line: 1, "not a route name")
        assertRefused("# ok\n\nx http://127.0.0.1:1\n\u{FF}", line: 4, "not a route name")
        XCTAssertThrowsError(try UpstreamTable.parse(Array("# ok\nx http://127.0.0.1:1\n".utf8) + [0xFF, 0x0A])) { error in
            XCTAssertEqual(error as? ConfigError, ConfigError(line: 3, "not valid UTF-8"))
        }
    }

    func testAFileThatCannotBeReadIsAWholeFileError() {
        XCTAssertThrowsError(try UpstreamTable.load(path: "/nonexistent/upstreams")) { error in
            let e = error as! ConfigError
            XCTAssertNil(e.line)
            XCTAssertEqual(e.report(file: "/nonexistent/upstreams"), "/nonexistent/upstreams: cannot read the upstreams file: No such file or directory")
        }
    }

    func testStripAndPrefixApplyToWholeSegmentsOfTheRawPath() {
        var u = Upstream(name: "o", endpoints: [])
        u.strip = "/v1"
        XCTAssertEqual(u.upstreamPath("/v1/orders/%2F7"), "/orders/%2F7")
        XCTAssertEqual(u.upstreamPath("/v1"), "/")
        XCTAssertEqual(u.upstreamPath("/v10/orders"), "/v10/orders")
        XCTAssertEqual(u.upstreamPath("/other"), "/other")
        u.prefix = "/api"
        XCTAssertEqual(u.upstreamPath("/v1/orders"), "/api/orders")
        XCTAssertEqual(u.upstreamPath("/v1"), "/api/")
        u.strip = nil
        XCTAssertEqual(u.upstreamPath("/x/y"), "/api/x/y")
    }
}
