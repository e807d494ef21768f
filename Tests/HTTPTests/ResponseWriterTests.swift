import XCTest
import Foundation
import Records
@testable import HTTPEncodeTool

/// 1994-11-06 08:49:37 UTC, the RFC's example date.
private let fixedNow = 784111777

private func encode(_ json: String) -> (text: String, bytes: [UInt8], close: Bool) {
    var writer = ResponseWriter(now: { fixedNow })
    var out: [UInt8] = []
    let close = Array(json.utf8).withUnsafeBufferPointer { writer.write(line: $0, into: &out) }
    return (String(decoding: out, as: UTF8.self), out, close)
}

/// Splits a response into (status line, header lines, body).
private func split(_ bytes: [UInt8]) -> (String, [String], [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let r = text.range(of: "\r\n\r\n") else { return ("", [], []) }
    let head = text[..<r.lowerBound].components(separatedBy: "\r\n")
    let headBytes = text[..<r.upperBound].utf8.count
    return (head[0], Array(head.dropFirst()), Array(bytes[headBytes...]))
}

final class ResponseWriterTests: XCTestCase {

    func testAnInterim100IsAStatusLineAloneAndKeepsTheConnection() {
        let r = encode(#"{"id":"1","version":"HTTP/1.1","keep_alive":true,"status":100,"interim":true}"#)
        XCTAssertEqual(r.text, "HTTP/1.1 100 Continue\r\n\r\n")
        XCTAssertFalse(r.close)
    }

    func testAnInterim103CarriesItsLinkHeaders() {
        let r = encode(#"{"id":"1","keep_alive":true,"status":103,"interim":true,"headers":[["link","</a.css>; rel=preload"],["connection","close"]]}"#)
        XCTAssertEqual(r.text, "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
        XCTAssertFalse(r.close)
    }

    func testAnInterimRecordWithAFinalStatusIsA500ThatCloses() {
        let r = encode(#"{"id":"1","keep_alive":true,"status":200,"interim":true}"#)
        XCTAssertTrue(r.text.hasPrefix("HTTP/1.1 500 "))
        XCTAssertTrue(r.close)
    }

    func testFramingOfASimpleResponse() {
        let r = encode(#"{"id":"1","method":"GET","version":"HTTP/1.1","keep_alive":true,"status":200,"headers":[["content-type","application/json"],["x-a","b"]],"body":"{\"ok\":true}"}"#)
        let (status, headers, body) = split(r.bytes)
        XCTAssertEqual(status, "HTTP/1.1 200 OK")
        XCTAssertEqual(headers, ["date: Sun, 06 Nov 1994 08:49:37 GMT", "content-type: application/json", "x-a: b", "content-length: 11"])
        XCTAssertEqual(String(decoding: body, as: UTF8.self), #"{"ok":true}"#)
        XCTAssertFalse(r.close)
    }

    func testDefaultContentTypeWhenAbsent() {
        let (_, headers, _) = split(encode(#"{"method":"GET","keep_alive":true,"status":200,"body":"x"}"#).bytes)
        XCTAssertTrue(headers.contains("content-type: application/octet-stream"))
        XCTAssertTrue(headers.contains("content-length: 1"))
    }

    func testOnlyTheFirstContentTypeIsWritten() {
        let (_, headers, _) = split(encode(#"{"keep_alive":true,"status":200,"headers":[["content-type","a/b"],["content-type","c/d"]],"body":""}"#).bytes)
        XCTAssertEqual(headers.filter { $0.hasPrefix("content-type") }, ["content-type: a/b"])
    }

    func testBase64BodyWrittenAsExactBytes() {
        let r = encode(#"{"keep_alive":true,"status":200,"body_base64":"AP8NCoA="}"#)
        let (_, headers, body) = split(r.bytes)
        XCTAssertEqual(body, [0x00, 0xFF, 0x0D, 0x0A, 0x80])
        XCTAssertTrue(headers.contains("content-length: 5"))
    }

    func testHeadHasLengthButNoBody() {
        let (_, headers, body) = split(encode(#"{"method":"HEAD","keep_alive":true,"status":200,"body":"hello"}"#).bytes)
        XCTAssertTrue(headers.contains("content-length: 5"))
        XCTAssertEqual(body, [])
    }

    func testNoContentAndNotModifiedHaveNoBodyOrLength() {
        for code in [204, 304] {
            let (status, headers, body) = split(encode(#"{"keep_alive":true,"status":\#(code),"body":"ignored"}"#).bytes)
            XCTAssertTrue(status.hasPrefix("HTTP/1.1 \(code) "))
            XCTAssertFalse(headers.contains { $0.hasPrefix("content-length") }, "\(code)")
            XCTAssertEqual(body, [])
        }
    }

    func testConnectionCloseWhenNotKeepAlive() {
        let r = encode(#"{"keep_alive":false,"status":200,"body":""}"#)
        XCTAssertTrue(split(r.bytes).1.contains("connection: close"))
        XCTAssertTrue(r.close)
        // A record without keep_alive closes too: keeping a connection open is opt-in.
        XCTAssertTrue(encode(#"{"status":200,"body":""}"#).close)
    }

    func testHTTP10KeepAliveAnnounced() {
        let r = encode(#"{"version":"HTTP/1.0","keep_alive":true,"status":200,"body":""}"#)
        XCTAssertTrue(split(r.bytes).1.contains("connection: keep-alive"))
        XCTAssertTrue(split(r.bytes).0.hasPrefix("HTTP/1.1 200"))
        XCTAssertFalse(r.close)
    }

    func testHTTP11KeepAliveSendsNoConnectionHeader() {
        XCTAssertFalse(split(encode(#"{"version":"HTTP/1.1","keep_alive":true,"status":200,"body":""}"#).bytes).1.contains { $0.hasPrefix("connection") })
    }

    func testFramingHeadersFromFiltersIgnored() {
        let r = encode(#"{"keep_alive":true,"status":200,"headers":[["Transfer-Encoding","chunked"],["connection","close"],["content-length","999"],["date","yesterday"],["keep-alive","timeout=5"],["upgrade","h2c"],["x-kept","1"]],"body":"abc"}"#)
        let (_, headers, body) = split(r.bytes)
        XCTAssertEqual(headers, ["date: Sun, 06 Nov 1994 08:49:37 GMT", "x-kept: 1", "content-type: application/octet-stream", "content-length: 3"])
        XCTAssertEqual(body, Array("abc".utf8))
        XCTAssertFalse(r.close)
    }

    func testUnansweredRequestBecomes502() {
        let r = encode(#"{"id":"7","method":"GET","path":"/x","query":"","version":"HTTP/1.1","headers":[["host","h"]],"body":"","keep_alive":true}"#)
        let (status, headers, body) = split(r.bytes)
        XCTAssertEqual(status, "HTTP/1.1 502 Bad Gateway")
        XCTAssertTrue(headers.contains("content-type: application/json"))
        let json = try? JSONReader.parse(body)
        XCTAssertEqual(json?["error"]?.string, "no_response")
        XCTAssertNotNil(json?["message"]?.string)
        XCTAssertFalse(r.close)
    }

    func testMalformedLineBecomes500AndCloses() {
        let r = encode("this is not json")
        let (status, headers, body) = split(r.bytes)
        XCTAssertEqual(status, "HTTP/1.1 500 Internal Server Error")
        XCTAssertTrue(headers.contains("connection: close"))
        XCTAssertEqual((try? JSONReader.parse(body))?["error"]?.string, "internal_error")
        XCTAssertTrue(r.close)
    }

    func testHeaderValueWithCRLFBecomes500() {
        let r = encode(#"{"keep_alive":true,"status":200,"headers":[["x-a","b\r\nset-cookie: evil"]],"body":""}"#)
        XCTAssertTrue(r.text.hasPrefix("HTTP/1.1 500 "))
        XCTAssertFalse(r.text.contains("set-cookie"))
        XCTAssertTrue(r.close)
    }

    func testInvalidHeaderNameBecomes500() {
        XCTAssertTrue(encode(#"{"keep_alive":true,"status":200,"headers":[["x a","b"]],"body":""}"#).text.hasPrefix("HTTP/1.1 500 "))
        XCTAssertTrue(encode(#"{"keep_alive":true,"status":200,"headers":[["x:a","b"]],"body":""}"#).text.hasPrefix("HTTP/1.1 500 "))
    }

    func testInvalidStatusBecomes500() {
        for s in ["100", "101", "600", "\"200\"", "200.5", "-1"] {
            let r = encode(#"{"keep_alive":true,"status":\#(s),"body":""}"#)
            XCTAssertTrue(r.text.hasPrefix("HTTP/1.1 500 "), s)
            XCTAssertTrue(r.close, s)
        }
    }

    func testCorruptBase64Becomes500() {
        XCTAssertTrue(encode(#"{"keep_alive":true,"status":200,"body_base64":"!!!"}"#).text.hasPrefix("HTTP/1.1 500 "))
    }

    func testUnknownStatusHasEmptyReason() {
        XCTAssertTrue(encode(#"{"keep_alive":true,"status":299,"body":""}"#).text.hasPrefix("HTTP/1.1 299 \r\n"))
    }

    func testErrorResponseToHeadCarriesNoBody() {
        let r = encode(#"{"id":"1","method":"HEAD","version":"HTTP/1.1","keep_alive":false,"status":400,"headers":[["content-type","application/json"]],"body":"{\"error\":\"bad_request\",\"message\":\"x\"}"}"#)
        let (_, headers, body) = split(r.bytes)
        XCTAssertTrue(headers.contains("content-length: \(#"{"error":"bad_request","message":"x"}"#.utf8.count)"))
        XCTAssertEqual(body, [])
    }

    func testDateIsCurrent() {
        var writer = ResponseWriter()
        var out: [UInt8] = []
        _ = writer.write(Record(JSONObject([("status", 200), ("keep_alive", true)])), into: &out)
        XCTAssertTrue(String(decoding: out, as: UTF8.self).contains("date: \(Clock.httpDate())\r\n")
                      || String(decoding: out, as: UTF8.self).contains("date: \(Clock.httpDate(Clock.now() - 1))\r\n"))
    }
}
