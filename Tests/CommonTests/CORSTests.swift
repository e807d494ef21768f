import XCTest
import Records
@testable import CORS

final class CORSTests: XCTestCase {
    let policy = try! CORSPolicy.parse("""
        *       origins=https://app.example.com,https://*.example.com,http://localhost:3000 methods=GET,POST headers=authorization,content-type expose=retry-after credentials=true max-age=600
        public  origins=* credentials=false
        admin   origins=https://admin.example.com methods=GET upstream=keep
        closed  origins=none
        """)

    func test_origins_match_exactly_or_as_subdomains_never_by_suffix_alone() {
        let cases: [(String, Bool)] = [
            ("https://app.example.com", true), ("https://a.b.example.com", true), ("http://localhost:3000", true),
            ("https://example.com", false), ("https://evilexample.com", false), ("http://app.example.com", false),
            ("https://app.example.com:8443", false), ("http://localhost:3001", false), ("null", false),
            ("https://app.example.com/", false), ("https://app.example.com.evil.org", false),
            ("https://x.example.com\r\nset-cookie: a", false), ("HTTPS://APP.EXAMPLE.COM", false),
        ]
        for (origin, allowed) in cases {
            XCTAssertEqual(policy.annotation(origin: origin, route: "subscription") != nil, allowed, origin)
        }
    }

    func test_a_route_line_inherits_the_default_and_changes_what_it_names() {
        XCTAssertEqual(policy.rule(for: "admin")?.methods, ["GET"])
        XCTAssertEqual(policy.rule(for: "admin")?.maxAge, 600)
        XCTAssertEqual(policy.rule(for: "admin")?.credentials, true)
        XCTAssertEqual(policy.rule(for: "nameless")?.methods, ["GET", "POST"])
        XCTAssertNil(policy.annotation(origin: "https://app.example.com", route: "closed"))
    }

    func test_an_allowed_preflight_gets_the_allow_headers() {
        guard case .allowed(let h) = policy.preflight(origin: "https://app.example.com", method: "GET",
                                                       requestHeaders: "Authorization, content-type", route: "subscription") else {
            return XCTFail("refused")
        }
        XCTAssertEqual(h.first { $0.name == "access-control-allow-origin" }?.value, "https://app.example.com")
        XCTAssertEqual(h.first { $0.name == "access-control-allow-methods" }?.value, "GET, POST")
        XCTAssertEqual(h.first { $0.name == "access-control-allow-headers" }?.value, "authorization, content-type")
        XCTAssertEqual(h.first { $0.name == "access-control-allow-credentials" }?.value, "true")
        XCTAssertEqual(h.first { $0.name == "access-control-max-age" }?.value, "600")
        XCTAssertTrue(h.first { $0.name == "vary" }?.value.contains("Origin") ?? false)
    }

    func test_preflights_are_refused_for_other_origins_methods_and_headers() {
        for (origin, method, headers) in [("https://evil.org", "GET", ""), ("https://app.example.com", "DELETE", ""),
                                          ("https://app.example.com", "GET", "x-secret")] {
            guard case .refused = policy.preflight(origin: origin, method: method, requestHeaders: headers, route: "s") else {
                return XCTFail("\(origin) \(method) \(headers) allowed")
            }
        }
    }

    func test_a_wildcard_rule_answers_star_and_never_with_credentials() {
        XCTAssertEqual(policy.annotation(origin: "https://anyone.org", route: "public"),
                       .object(JSONObject([("origin", "*"), ("expose", "retry-after")])))
        XCTAssertThrowsError(try CORSPolicy.parse("* origins=* credentials=true")) { e in
            XCTAssertEqual((e as! ConfigError).line, 1)
        }
        XCTAssertThrowsError(try CORSPolicy.parse("* origins=https://a.com credentials=true\nx origins=*")) { e in
            XCTAssertEqual((e as! ConfigError).line, 2, "inherited credentials count too")
        }
    }

    func test_bad_settings_are_refused_with_their_line() {
        for (text, line) in [("* origins=ftp://a.com", 1), ("* origins=https://a.*.com", 1), ("*\tmax-age=-1", 1),
                             ("\n* colour=blue", 2), ("* credentials=yes", 1), ("a origins=none\na origins=none", 2),
                             ("* upstream=merge", 1), ("* methods=G E", 1)] {
            XCTAssertThrowsError(try CORSPolicy.parse(text), text) { e in XCTAssertEqual((e as! ConfigError).line, line, text) }
        }
    }

    private func response(_ notes: JSON?, headers: [Header]) -> Record {
        var r = Record(JSONObject([("id", "1"), ("method", "GET"), ("version", "HTTP/1.1")])).response(status: 401, headers: headers)
        if let notes { r.setAnnotation(AnnotationKey.cors, notes) }
        return r
    }

    func test_the_response_side_adds_origin_vary_credentials_and_exposed_headers() {
        var r = response(policy.annotation(origin: "https://app.example.com", route: "s"),
                         headers: [Header("content-type", "application/json"), Header("vary", "Accept-Encoding")])
        CORSResponse.apply(to: &r)
        XCTAssertEqual(r.header("access-control-allow-origin"), "https://app.example.com")
        XCTAssertEqual(r.header("access-control-allow-credentials"), "true")
        XCTAssertEqual(r.header("access-control-expose-headers"), "retry-after")
        XCTAssertEqual(r.header("vary"), "Accept-Encoding, Origin")
        var none = response(nil, headers: [])
        CORSResponse.apply(to: &none)
        XCTAssertNil(none.header("access-control-allow-origin"), "no annotation, no CORS headers")
    }

    func test_an_upstreams_cors_headers_are_replaced_unless_the_route_keeps_them() {
        let upstream = [Header("Access-Control-Allow-Origin", "*"), Header("access-control-allow-methods", "PUT")]
        var replaced = response(policy.annotation(origin: "https://app.example.com", route: "s"), headers: upstream)
        CORSResponse.apply(to: &replaced)
        XCTAssertEqual(replaced.headers.filter { $0.name.lowercased().hasPrefix("access-control-allow-origin") }.map(\.value),
                       ["https://app.example.com"])
        XCTAssertNil(replaced.header("access-control-allow-methods"))
        var kept = response(policy.annotation(origin: "https://admin.example.com", route: "admin"), headers: upstream)
        CORSResponse.apply(to: &kept)
        XCTAssertEqual(kept.headers, upstream)
    }
}
