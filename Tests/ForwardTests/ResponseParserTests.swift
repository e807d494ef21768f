import XCTest
import Records
import Net

/// The strict response parser: framing, interim responses, bodiless statuses, and every
/// smuggling-shaped response refused. Each case is also fed in every two-way split and
/// byte by byte: TCP may cut anywhere.
final class ResponseParserTests: XCTestCase {
    enum Outcome: Equatable {
        case response(ParsedResponse)
        case failure(ResponseFailure.Kind)
        case incomplete
    }

    func feed(_ parts: [[UInt8]], head: Bool = false, close: Bool = true, maxBody: Int = 10 << 20) -> Outcome {
        var limits = ResponseLimits()
        limits.maxBody = maxBody
        var p = ResponseParser(limits: limits, headRequest: head)
        for part in parts {
            p.append(part)
            switch p.next() {
            case .needMore: continue
            case .response(let r): return .response(r)
            case .failure(let f): return .failure(f.kind)
            }
        }
        guard close else { return .incomplete }
        switch p.finish() {
        case .needMore: return .incomplete
        case .response(let r): return .response(r)
        case .failure(let f): return .failure(f.kind)
        }
    }

    /// The outcome of `text`, checked to be the same for every split of the stream.
    func outcome(_ text: String, head: Bool = false, close: Bool = true, maxBody: Int = 10 << 20,
                 file: StaticString = #filePath, line: UInt = #line) -> Outcome {
        let bytes = Array(text.utf8)
        let whole = feed([bytes], head: head, close: close, maxBody: maxBody)
        for cut in 0...bytes.count {
            let split = feed([Array(bytes[..<cut]), Array(bytes[cut...])], head: head, close: close, maxBody: maxBody)
            XCTAssertEqual(split, whole, "split at \(cut)", file: file, line: line)
        }
        XCTAssertEqual(feed(bytes.map { [$0] }, head: head, close: close, maxBody: maxBody), whole, "byte by byte", file: file, line: line)
        return whole
    }

    func response(_ text: String, head: Bool = false, close: Bool = true,
                  file: StaticString = #filePath, line: UInt = #line) -> ParsedResponse? {
        guard case .response(let r) = outcome(text, head: head, close: close, file: file, line: line) else {
            XCTFail("no response from \(text.debugDescription)", file: file, line: line)
            return nil
        }
        return r
    }

    func assertMalformed(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(outcome(text, file: file, line: line), .failure(.malformed), text.debugDescription, file: file, line: line)
    }

    func testContentLengthBody() {
        let r = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", close: false)
        XCTAssertEqual(r?.status, 200)
        XCTAssertEqual(r?.body, Array("hello".utf8))
        XCTAssertEqual(r?.headers, [Header("content-length", "5"), Header("x-a", "1")])
        XCTAssertEqual(r?.reusable, true)
    }

    func testChunkedBodyWithExtensionsAndTrailersDropped() {
        let r = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", close: false)
        XCTAssertEqual(r?.body, Array("hello world".utf8))
        XCTAssertEqual(r?.headers, [Header("transfer-encoding", "chunked")])
        XCTAssertEqual(r?.reusable, true)
    }

    func testCloseDelimitedBodyEndsAtTheCloseAndIsNotReusable() {
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\n\r\npartial", close: false), .incomplete)
        let r = response("HTTP/1.1 200 OK\r\n\r\nall of it")
        XCTAssertEqual(r?.body, Array("all of it".utf8))
        XCTAssertEqual(r?.reusable, false)
    }

    func testInterimResponsesAreSkipped() {
        let r = response("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", close: false)
        XCTAssertEqual(r?.status, 201)
        XCTAssertEqual(r?.headers, [Header("content-length", "2")])
        XCTAssertEqual(r?.body, Array("ok".utf8))
    }

    func testNoBodyForHead204And304() {
        XCTAssertEqual(response("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", head: true, close: false)?.body, [])
        XCTAssertEqual(response("HTTP/1.1 204 No Content\r\n\r\n", close: false)?.status, 204)
        XCTAssertEqual(response("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", close: false)?.body, [])
    }

    func testRepeatedHeadersKeptInOrder() {
        let r = response("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX: y\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", close: false)
        XCTAssertEqual(r?.headers.filter { $0.name == "set-cookie" }.map(\.value), ["a=1", "b=2"])
    }

    func testConnectionCloseAndHTTP10AreNotReusable() {
        XCTAssertEqual(response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", close: false)?.reusable, false)
        XCTAssertEqual(response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", close: false)?.reusable, false)
    }

    func testBinaryBodyExact() {
        var bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 256\r\n\r\n".utf8)
        let body = (0..<256).map { UInt8($0) }
        bytes += body
        guard case .response(let r) = feed([bytes], close: false) else { return XCTFail() }
        XCTAssertEqual(r.body, body)
    }

    func testSmugglingShapedResponsesAreRefused() {
        assertMalformed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello")
        assertMalformed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        assertMalformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n")
        assertMalformed("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\nContent-Length: 0\n\n")
        assertMalformed("HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n")
        assertMalformed("HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n")
        assertMalformed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        assertMalformed("HTTP/2 200 OK\r\n\r\n")
        assertMalformed("HTTP/1.1 2000 OK\r\n\r\n")
        assertMalformed("HTTP/1.1 099 X\r\n\r\n")
        assertMalformed("garbage\r\n\r\n")
        assertMalformed("SSH-2.0-OpenSSH_9.2\r\n")
    }

    func testTruncatedResponsesFail() {
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), .failure(.malformed))
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), .failure(.malformed))
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nContent-Le"), .failure(.malformed))
        XCTAssertEqual(outcome(""), .failure(.malformed))
    }

    func testBodiesOverTheLimitAreTooLarge() {
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", maxBody: 10), .failure(.tooLarge))
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", maxBody: 10), .failure(.tooLarge))
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n", maxBody: 10), .failure(.tooLarge))
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\n\r\nhello world", maxBody: 10), .failure(.tooLarge))
        XCTAssertEqual(outcome("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhelloworld", maxBody: 10),
                       .response(ParsedResponse(status: 200, headers: [Header("content-length", "10")], body: Array("helloworld".utf8), reusable: true)))
    }

    func testBytesAfterTheResponseMakeTheConnectionUnusable() {
        var p = ResponseParser()
        p.append(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n".utf8))
        guard case .response = p.next() else { return XCTFail() }
        XCTAssertTrue(p.hasLeftover, "a second, unasked response would answer the next request")
        var clean = ResponseParser()
        clean.append(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8))
        _ = clean.next()
        XCTAssertFalse(clean.hasLeftover)
    }

    /// Random streams of valid responses cut into random reads always parse to the same thing.
    func testRandomSplitsOfRandomResponsesAgree() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let body = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var bytes = Array("HTTP/1.1 200 OK\r\n".utf8)
            if Bool.random(using: &rng) {
                bytes += Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
            } else {
                bytes += Array("Transfer-Encoding: chunked\r\n\r\n".utf8)
                var i = 0
                while i < body.count {
                    let n = min(Int.random(in: 1...64, using: &rng), body.count - i)
                    bytes += Array((String(n, radix: 16) + "\r\n").utf8) + body[i..<(i + n)] + [13, 10]
                    i += n
                }
                bytes += Array("0\r\n\r\n".utf8)
            }
            var parts: [[UInt8]] = []
            var i = 0
            while i < bytes.count {
                let n = min(Int.random(in: 1...40, using: &rng), bytes.count - i)
                parts.append(Array(bytes[i..<(i + n)]))
                i += n
            }
            guard case .response(let r) = feed(parts, close: false) else { return XCTFail("no response") }
            XCTAssertEqual(r.body, body)
            XCTAssertTrue(r.reusable)
        }
    }
}
