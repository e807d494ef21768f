import XCTest
@testable import ForwardTool
import Records
import Net

/// The request an upstream receives, and the response record made of its answer.
final class RewriteTests: XCTestCase {
    let endpoint = UpstreamEndpoint.parse("http://127.0.0.1:9001")!
    var upstream: Upstream { Upstream(name: "orders", endpoints: [endpoint]) }

    func record(_ headers: [[String]], path: String = "/v1/orders", query: String = "", body: String = "",
                method: String = "GET", remote: String? = "192.0.2.7", verified: Bool = true) throws -> Record {
        var o: [String: Any] = ["id": "1", "method": method, "path": path, "query": query, "version": "HTTP/1.1",
                                "headers": headers, "body": body, "keep_alive": true]
        if let remote { o["remote"] = remote }
        var notes: [String: Any] = ["route": ["name": "orders", "params": [:] as [String: Any]]]
        if verified { notes["auth"] = ["uid": "u1"] }
        o["annotations"] = notes
        let data = try JSONSerialization.data(withJSONObject: o)
        return try Record.parse(String(decoding: data, as: UTF8.self))
    }

    func request(_ r: Record, trust: Bool = false, upstream u: Upstream? = nil) throws -> String {
        String(decoding: try UpstreamRequest(trustForwardedProto: trust).build(r, for: u ?? upstream, at: endpoint), as: UTF8.self)
    }

    func testIdentityPassesAndTheTokenNever() throws {
        let r = try record([["host", "api.example"], ["authorization", "Bearer eyJ.x.y"], ["x-authenticated-uid", "u1"],
                            ["accept", "application/json"]])
        let text = try request(r)
        XCTAssertTrue(text.hasPrefix("GET /v1/orders HTTP/1.1\r\nhost: 127.0.0.1:9001\r\n"), text)
        XCTAssertTrue(text.contains("x-authenticated-uid: u1\r\n"))
        XCTAssertTrue(text.contains("accept: application/json\r\n"))
        XCTAssertFalse(text.lowercased().contains("bearer"))
        XCTAssertTrue(text.hasSuffix("\r\n\r\n"), "a GET without a body has no content-length: \(text)")
        XCTAssertFalse(text.contains("content-length"))
    }

    func testAClaimedIdentityOnAnUnverifiedRequestIsDropped() throws {
        let r = try record([["host", "h"], ["x-authenticated-uid", "admin"], ["x-authenticated-email", "a@b"],
                            ["authorization", "bearer abc"], ["authorization", "Basic dXNlcg=="]], verified: false)
        let text = try request(r)
        XCTAssertFalse(text.contains("x-authenticated"))
        XCTAssertFalse(text.contains("bearer abc"))
        XCTAssertTrue(text.contains("authorization: Basic dXNlcg==\r\n"), "other schemes are the upstream's business")
    }

    func testHopByHopFieldsAndTheFieldsConnectionNamesAreRemoved() throws {
        let r = try record([["host", "h"], ["connection", "keep-alive, x-secret, x-authenticated-uid"], ["keep-alive", "timeout=5"],
                            ["te", "trailers"], ["trailer", "x"], ["transfer-encoding", "chunked"], ["proxy-connection", "x"],
                            ["proxy-authorization", "Basic x"], ["x-secret", "s"], ["x-authenticated-uid", "u1"],
                            ["expect", "100-continue"], ["content-length", "999"], ["x-kept", "k"]])
        let text = try request(r).lowercased()
        for gone in ["connection:", "keep-alive:", "\r\nte:", "trailer:", "transfer-encoding:", "proxy-", "x-secret", "expect:", "999"] {
            XCTAssertFalse(text.contains(gone), "\(gone) in \(text)")
        }
        XCTAssertTrue(text.contains("x-authenticated-uid: u1"), "Connection cannot remove the identity")
        XCTAssertTrue(text.contains("x-kept: k"))
    }

    func testForwardingHeaders() throws {
        var text = try request(try record([["host", "api.example"]]))
        XCTAssertTrue(text.contains("x-forwarded-for: 192.0.2.7\r\n"))
        XCTAssertTrue(text.contains("x-forwarded-proto: http\r\n"))
        XCTAssertTrue(text.contains("x-forwarded-host: api.example\r\n"))
        // Appended to what came before, once, and only the gateway's own Proto/Host.
        text = try request(try record([["host", "api.example"], ["x-forwarded-for", "6.6.6.6"], ["x-forwarded-proto", "https"],
                                       ["x-forwarded-host", "evil"]]))
        XCTAssertTrue(text.contains("x-forwarded-for: 6.6.6.6, 192.0.2.7\r\n"), text)
        XCTAssertTrue(text.contains("x-forwarded-proto: http\r\n"), "not believed without a trusted proxy")
        XCTAssertFalse(text.contains("evil"))
        // Behind a trusted proxy that already appended the client: not appended twice.
        text = try request(try record([["host", "h"], ["x-forwarded-for", "6.6.6.6, 192.0.2.7"], ["x-forwarded-proto", "https"]]), trust: true)
        XCTAssertTrue(text.contains("x-forwarded-for: 6.6.6.6, 192.0.2.7\r\n"), text)
        XCTAssertTrue(text.contains("x-forwarded-proto: https\r\n"))
        // No remote (a pipe): nothing invented.
        text = try request(try record([["host", "h"]], remote: nil))
        XCTAssertFalse(text.contains("x-forwarded-for"))
    }

    func testPathQueryBodyAndHostOption() throws {
        var u = upstream
        u.strip = "/v1"
        u.host = .client
        let r = try record([["host", "api.example"], ["content-type", "application/json"]], path: "/v1/orders/a%2Fb",
                           query: "x=%20&y", body: "{\"n\":1}", method: "POST")
        let text = try request(r, upstream: u)
        XCTAssertTrue(text.hasPrefix("POST /orders/a%2Fb?x=%20&y HTTP/1.1\r\nhost: api.example\r\n"), text)
        XCTAssertTrue(text.hasSuffix("content-length: 7\r\n\r\n{\"n\":1}"), text)
        let empty = try request(try record([["host", "h"]], method: "POST"))
        XCTAssertTrue(empty.hasSuffix("content-length: 0\r\n\r\n"), "a POST always says its length")
    }

    func testBinaryBodiesAreSentAsTheirExactBytes() throws {
        var r = try record([["host", "h"]], method: "PUT")
        let bytes: [UInt8] = [0, 0xFF, 0xFE, 0x80, 13, 10, 0x41]
        r.body = bytes
        let out = try UpstreamRequest(trustForwardedProto: false).build(r, for: upstream, at: endpoint)
        XCTAssertEqual(Array(out.suffix(bytes.count + 4)), Array("\r\n\r\n".utf8) + bytes)
    }

    func testAFieldThatWouldSplitTheRequestIsRefused() throws {
        let r = try record([["host", "h"], ["x-evil", "a\r\nx-injected: 1"]])
        XCTAssertThrowsError(try request(r))
        let n = try record([["host", "h"], ["bad name", "v"]])
        XCTAssertThrowsError(try request(n))
    }

    func testTheResponseRecordDropsHopByHopAndKeepsRepeatsInOrder() throws {
        let r = try record([["host", "h"]])
        let parsed = ParsedResponse(status: 201, headers: [
            Header("set-cookie", "a=1"), Header("connection", "x-hop"), Header("x-hop", "h"), Header("keep-alive", "timeout=5"),
            Header("transfer-encoding", "chunked"), Header("content-length", "3"), Header("set-cookie", "b=2"), Header("etag", "\"e\""),
        ], body: [0x61, 0x62, 0x63], reusable: true)
        let out = ResponseRecord.make(r, parsed, upstream: upstream, endpoint: endpoint, millis: 3)
        XCTAssertEqual(out.status, 201)
        XCTAssertEqual(out.headers, [Header("set-cookie", "a=1"), Header("set-cookie", "b=2"), Header("etag", "\"e\"")])
        XCTAssertEqual(out.body, [0x61, 0x62, 0x63])
        XCTAssertEqual(out.id, "1")
        let note: JSON = try XCTUnwrap(out.annotation("upstream"))
        XCTAssertEqual(note["name"]?.string, "orders")
        XCTAssertEqual(note["address"]?.string, "http://127.0.0.1:9001")
        XCTAssertEqual(note["status"]?.int, 201)
        XCTAssertEqual(note["ms"]?.int, 3)
        XCTAssertNotNil(out.annotation("route"), "earlier annotations are kept")
    }

    func testEverySpecialFieldIsKnownByItsExactLowerCaseName() {
        let roles: [String: FieldRole] = [
            "connection": .connection, "keep-alive": .hopByHop, "te": .hopByHop, "trailer": .hopByHop,
            "transfer-encoding": .hopByHop, "upgrade": .hopByHop, "proxy-connection": .hopByHop,
            "proxy-authorization": .hopByHop, "host": .replaced, "content-length": .replaced,
            "expect": .replaced, "x-forwarded-host": .replaced, "x-forwarded-for": .forwardedFor,
            "x-forwarded-proto": .forwardedProto, "authorization": .authorization,
        ]
        for (name, role) in roles { XCTAssertEqual(FieldRole.of(name), role, name) }
        for name in ["", "t", "tf", "hosts", "connectioN", "keep_alive", "x-forwarded-fox", "x-authenticated-uid",
                     "content-type", "proxy-authorisation", "transfer-encodinG", "é"] {
            XCTAssertNil(FieldRole.of(name), name)
        }
    }
}
