import XCTest
@testable import HTTPDecodeTool
@testable import Records

/// Feeds `input` whole, and again one byte at a time, and checks that both ways give the
/// same requests and the same failure: a parser that depends on how reads split the
/// stream is a smuggling bug of its own.
private func parse(_ input: [UInt8], limits: HTTPLimits = HTTPLimits(),
                   file: StaticString = #filePath, line: UInt = #line) -> (requests: [HTTPRequest], failure: HTTPFailure?) {
    func run(chunks: [[UInt8]]) -> ([HTTPRequest], HTTPFailure?) {
        var parser = RequestParser(limits: limits)
        var requests: [HTTPRequest] = []
        for chunk in chunks {
            parser.append(chunk)
            loop: while true {
                switch parser.next() {
                case .needMore: break loop
                case .continueExpected: continue
                case .request(let r): requests.append(r)
                case .failure(let f): return (requests, f)
                }
            }
        }
        return (requests, nil)
    }
    let whole = run(chunks: [input])
    let bytewise = run(chunks: input.map { [$0] })
    XCTAssertEqual(whole.0, bytewise.0, "requests differ when fed byte by byte", file: file, line: line)
    XCTAssertEqual(whole.1, bytewise.1, "failure differs when fed byte by byte", file: file, line: line)
    return whole
}

private func parse(_ text: String, limits: HTTPLimits = HTTPLimits(),
                   file: StaticString = #filePath, line: UInt = #line) -> (requests: [HTTPRequest], failure: HTTPFailure?) {
    parse(Array(text.utf8), limits: limits, file: file, line: line)
}

/// The status a single request is refused with (nil when it is accepted).
private func status(_ text: String, limits: HTTPLimits = HTTPLimits(), file: StaticString = #filePath, line: UInt = #line) -> Int? {
    parse(text, limits: limits, file: file, line: line).failure?.status
}

private func status(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Int? {
    parse(bytes, file: file, line: line).failure?.status
}

final class RequestParserTests: XCTestCase {

    // MARK: Well-formed requests

    func testSimpleGetFields() {
        let (requests, failure) = parse("GET /a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Tag: a\r\nX-TAG:  b \t\r\n\r\n")
        XCTAssertNil(failure)
        XCTAssertEqual(requests.count, 1)
        let r = requests[0]
        XCTAssertEqual(r.method, "GET")
        XCTAssertEqual(r.path, "/a/b%20c")
        XCTAssertEqual(r.query, "x=1&y=2")
        XCTAssertEqual(r.version, "HTTP/1.1")
        XCTAssertEqual(r.headers, [Header("host", "example.com"), Header("x-tag", "a"), Header("x-tag", "b")])
        XCTAssertEqual(r.body, [])
        XCTAssertTrue(r.keepAlive)
    }

    func testEmptyQueryAndQuestionMarksInQuery() {
        XCTAssertEqual(parse("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n").requests.first?.query, "")
        let r = parse("GET /p?a?b=/c HTTP/1.1\r\nHost: h\r\n\r\n").requests.first
        XCTAssertEqual(r?.path, "/p")
        XCTAssertEqual(r?.query, "a?b=/c")
    }

    func testMethodIsCaseSensitiveAndExtensionMethodsPass() {
        XCTAssertEqual(parse("PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n").requests.first?.method, "PROPFIND")
        XCTAssertEqual(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n").requests.first?.method, "get")
    }

    func testAbsoluteFormGivesPathAndQuery() {
        let r = parse("GET http://example.com:8080/x/y?z=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n").requests.first
        XCTAssertEqual(r?.path, "/x/y")
        XCTAssertEqual(r?.query, "z=1")
        XCTAssertEqual(parse("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n").requests.first?.path, "/")
    }

    func testAsteriskFormOnlyForOptions() {
        XCTAssertEqual(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").requests.first?.path, "*")
        XCTAssertEqual(status("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400)
    }

    func testLeadingEmptyLinesAreSkipped() {
        XCTAssertEqual(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").requests.count, 1)
        XCTAssertEqual(status(String(repeating: "\r\n", count: 10) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400)
    }

    func testUTF8HeaderValueKept() {
        let r = parse("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\u{e9}\r\n\r\n").requests.first
        XCTAssertEqual(r?.headers.last, Header("x-name", "caf\u{e9}"))
    }

    func testEmptyHeaderValue() {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n").requests.first?.headers.last, Header("x-empty", ""))
    }

    // MARK: Keep-alive and versions

    func testHTTP11DefaultsToKeepAlive() {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").requests.first?.keepAlive, true)
    }

    func testConnectionCloseEndsKeepAlive() {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").requests.first?.keepAlive, false)
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n").requests.first?.keepAlive, false)
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: CLOSE\r\n\r\n").requests.first?.keepAlive, false)
    }

    func testHTTP10ClosesUnlessKeepAlive() {
        let plain = parse("GET / HTTP/1.0\r\n\r\n").requests.first
        XCTAssertEqual(plain?.version, "HTTP/1.0")
        XCTAssertEqual(plain?.keepAlive, false)
        XCTAssertEqual(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").requests.first?.keepAlive, true)
        XCTAssertEqual(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").requests.first?.keepAlive, false)
    }

    func testHTTP10NeedsNoHost() {
        XCTAssertNil(status("GET / HTTP/1.0\r\n\r\n"))
    }

    // MARK: Pipelining

    func testPipelinedRequestsComeOutInOrder() {
        let input = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            + "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
            + "GET /4 HTTP/1.1\r\nHost: h\r\n\r\n"
        let (requests, failure) = parse(input)
        XCTAssertNil(failure)
        XCTAssertEqual(requests.map(\.path), ["/1", "/2", "/3", "/4"])
        XCTAssertEqual(requests.map { String(decoding: $0.body, as: UTF8.self) }, ["", "abc", "de", ""])
    }

    func testRequestsAfterAFailureAreDropped() {
        let (requests, failure) = parse("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nBad Header: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(requests.map(\.path), ["/1"])
        XCTAssertEqual(failure?.status, 400)
    }

    func testFailureIsSticky() {
        var parser = RequestParser()
        parser.append(Array("BAD\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        guard case .failure(let f) = parser.next() else { return XCTFail("expected a failure") }
        XCTAssertEqual(parser.next(), .failure(f))
    }

    // MARK: Bodies

    func testContentLengthBodyExactBytes() {
        let body: [UInt8] = [0x00, 0xFF, 0x0D, 0x0A, 0x80, 0x41]
        let input = Array("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n".utf8) + body
        XCTAssertEqual(parse(input).requests.first?.body, body)
    }

    func testContentLengthWithLeadingZeros() {
        XCTAssertEqual(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n\r\nabc").requests.first?.body, Array("abc".utf8))
    }

    func testIdenticalContentLengthsAccepted() {
        XCTAssertEqual(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").requests.first?.body.count, 3)
        XCTAssertEqual(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 03\r\n\r\nabc").requests.first?.body.count, 3)
    }

    func testContentLengthZero() {
        let (requests, _) = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(requests.map(\.path), ["/", "/next"])
    }

    func testChunkedBodyDecoded() {
        let input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n"
        XCTAssertEqual(parse(input).requests.first?.body, Array("hello0123456789".utf8))
    }

    func testChunkedIsCaseInsensitiveAndTolerantOfOWS() {
        XCTAssertNil(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n"))
    }

    func testChunkExtensionsIgnored() {
        let input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;ilove=w3;somuchlove=\"are; \\\"these\\\" params\";another\r\nhello\r\n6 ; blah\r\n world\r\n000\r\n\r\n"
        XCTAssertEqual(parse(input).requests.first?.body, Array("hello world".utf8))
    }

    func testTrailersAreReadAndDropped() {
        let input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nVary: *\r\nContent-Length: 99\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"
        let (requests, failure) = parse(input)
        XCTAssertNil(failure)
        XCTAssertEqual(requests.first?.headers, [Header("host", "h"), Header("transfer-encoding", "chunked")])
        XCTAssertEqual(requests.map(\.path), ["/", "/next"])
    }

    func testBadTrailerRefused() {
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX :y\r\n\r\n"), 400)
        // HTTP Garden: a trailer section ended by "\r\nXX" instead of an empty line.
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX:POST / HTTP/1.1\r\n\r\n").requests.count, 1)
    }

    // MARK: Limits

    func testRequestLineTooLongIs414() {
        var limits = HTTPLimits()
        limits.maxRequestLine = 64
        let long = "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: h\r\n\r\n"
        XCTAssertEqual(status(long, limits: limits), 414)
        // Refused before the line ends, so a client cannot make us buffer without bound.
        var parser = RequestParser(limits: limits)
        parser.append(Array(("GET /" + String(repeating: "a", count: 100)).utf8))
        XCTAssertEqual(parser.next(), .failure(RequestParser.uriTooLong))
        XCTAssertNil(status("GET /" + String(repeating: "a", count: 40) + " HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits))
    }

    func testHeaderSectionTooLargeIs431() {
        var limits = HTTPLimits()
        limits.maxHeaderBytes = 100
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "v", count: 200) + "\r\n\r\n", limits: limits), 431)
        var parser = RequestParser(limits: limits)
        parser.append(Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 200)).utf8))
        XCTAssertEqual(parser.next(), .failure(RequestParser.headersTooLarge))
    }

    func testTooManyHeadersIs431() {
        var limits = HTTPLimits()
        limits.maxHeaderCount = 5
        let fields = (0..<6).map { "X-\($0): v\r\n" }.joined()
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n", limits: limits), 431)
        XCTAssertNil(status("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n", limits: limits))
    }

    func testContentLengthOverLimitIs413BeforeTheBody() {
        var limits = HTTPLimits()
        limits.maxBody = 10
        var parser = RequestParser(limits: limits)
        parser.append(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n".utf8))
        guard case .failure(let f) = parser.next() else { return XCTFail("expected 413") }
        XCTAssertEqual(f.status, 413)
        XCTAssertNil(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", limits: limits))
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 413)
    }

    func testChunkedBodyOverLimitIs413() {
        var limits = HTTPLimits()
        limits.maxBody = 10
        let input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n"
        XCTAssertEqual(status(input, limits: limits), 413)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n"), 413)
    }

    func testChunkLineTooLongIs400() {
        let ext = ";a=" + String(repeating: "b", count: 5000)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1" + ext + "\r\nx\r\n0\r\n\r\n"), 400)
    }

    func testTrailersTooLargeIs431() {
        var limits = HTTPLimits()
        limits.maxHeaderBytes = 64
        let input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "t", count: 100) + "\r\n\r\n"
        XCTAssertEqual(status(input, limits: limits), 431)
    }

    // MARK: Versions

    func testUnsupportedVersionsAre505() {
        XCTAssertEqual(status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505)
        XCTAssertEqual(status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505)
        XCTAssertEqual(status("GET / HTTP/0.9\r\n\r\n"), 505)
        XCTAssertEqual(status("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505)
        XCTAssertEqual(status("GET /\r\n"), 505)   // HTTP/0.9 style: no version at all
    }

    func testMalformedVersionsAre400() {
        for v in ["HTTP/1.32", "HTTP/1", "http/1.1", "HTTP/1.1 ", "HTTP/\r\r1.1", "ICE/1.0", "HTTP/4294967295.255"] {
            XCTAssertEqual(status("GET / \(v)\r\nHost: h\r\n\r\n"), 400, v)
        }
    }

    // MARK: Malformed requests (400)

    func testMalformedRequestLines() {
        for line in ["GET  / HTTP/1.1", "GET /  HTTP/1.1", " GET / HTTP/1.1", "GET\t/ HTTP/1.1", "GET", "G=\":<>(e),[T];?\" /get HTTP/1.1",
                     "GET ! HTTP/1.1", "GET /a#frag HTTP/1.1", "GET /%zz HTTP/1.1", "GET /%4 HTTP/1.1", "GET /\u{7f} HTTP/1.1",
                     "CONNECT example.com:443 HTTP/1.1", "GET http://user@evil/ HTTP/1.1", "GET http:///x HTTP/1.1"] {
            XCTAssertEqual(status(line + "\r\nHost: h\r\n\r\n"), 400, line)
        }
        XCTAssertEqual(status([0x00] + Array(" / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)), 400)
        XCTAssertEqual(status(Array("GET /\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".utf8)), 400)
    }

    func testHostRequiredOnHTTP11() {
        XCTAssertEqual(status("GET / HTTP/1.1\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400)
    }

    func testInvalidHeaderNames() {
        for name in ["Fo@", "Foo\u{01}test", "", "X Y", "\u{ef}oo", "Content-Length\u{85}", "(a)", "a/b"] {
            XCTAssertEqual(status(Array("GET / HTTP/1.1\r\nHost: h\r\n\(name): v\r\n\r\n".utf8)), 400, name)
        }
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length 10\r\n\r\n0123456789"), 400)
        // HTTP Garden: a header name continued on the next line.
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-\r\nEncoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), 400)
    }

    func testInvalidHeaderValues() {
        let bad: [[UInt8]] = [[0x00], [0x01], [0x7F], [0x0D], [0x1B], [0xFF, 0xFE]]
        for b in bad {
            let input = Array("GET / HTTP/1.1\r\nHost: h\r\nX: a".utf8) + b + Array("b\r\n\r\n".utf8)
            XCTAssertEqual(status(input), 400, "\(b)")
        }
    }

    /// Long values are checked eight bytes at a time: a bad byte at any offset of a word,
    /// and a tab or UTF-8 anywhere, must still be seen.
    func testLongHeaderValuesCheckedAtEveryOffset() {
        for offset in 0..<24 {
            let before = [UInt8](repeating: UInt8(ascii: "a"), count: offset)
            let after = [UInt8](repeating: UInt8(ascii: "b"), count: 17)
            for b: [UInt8] in [[0x01], [0x7F], [0x1F], [0x0D], [0xC3]] {
                let input = Array("GET / HTTP/1.1\r\nHost: h\r\nX: ".utf8) + before + b + after + Array("\r\n\r\n".utf8)
                XCTAssertEqual(status(input), 400, "\(b) at \(offset)")
            }
            for good in ["\t", "\u{e9}", "~ "] {
                // A leading "z": whitespace at the start of a value is not part of it.
                let value = "z" + String(decoding: before, as: UTF8.self) + good + String(decoding: after, as: UTF8.self)
                XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nX: \(value)\r\n\r\n").requests.first?.headers.last,
                               Header("x", value), "\(good) at \(offset)")
            }
        }
    }

    // MARK: Smuggling defences (400)

    func testContentLengthWithTransferEncoding() {
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), 400)
    }

    func testMalformedContentLength() {
        for v in ["+5", "-5", "5,6", "0x10", "", " ", "1 2", "5a", "1_0", "5;", "1Z", "١"] {
            XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(v)\r\n\r\nhello"), 400, v)
        }
    }

    func testConflictingContentLengths() {
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 0\r\n\r\nZ"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\nZ"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\nContent-Length: 43\r\n\r\n"), 400)
    }

    func testObsFoldRefused() {
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\n\tContent-Length: 1\r\nHost: h\r\n\r\nX"), 400)
    }

    func testWhitespaceBeforeColonRefused() {
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"), 400)
    }

    func testBareCRRefused() {
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nVisible: :/\rSmuggled: :)\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\rHost: h\r\n\r\n"), 400)
    }

    func testBareLFRefused() {
        XCTAssertEqual(status("GET / HTTP/1.1\nHost: h\n\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nx:x\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\nUseless:\n\nGET / HTTP/1.1\r\n\r\n"), 400)
        XCTAssertEqual(status("GET /\nHTTP/1.1\r\nHost: h\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: h\r\n\n"), 400)
    }

    func testTransferEncodingOnHTTP10Refused() {
        XCTAssertEqual(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400)
    }

    func testUnknownTransferCodingIs501() {
        XCTAssertEqual(status("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: pigeons\r\n\r\n"), 501)
        XCTAssertEqual(status("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501)
        XCTAssertEqual(status("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 501)
        XCTAssertEqual(status("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"), 501)
        XCTAssertEqual(status(Array("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \u{a0}chunked\u{a0}\r\n\r\n0\r\n\r\n".utf8)), 501)
    }

    func testMalformedTransferEncodingLists() {
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"), 400)
    }

    func testChunkSizeOnlyHexDigits() {
        for size in ["0x5", "+5", "-5", " 5", "5 x", "0_2e", "", "Z", "5\r", "1these-bytes-never-get-validated", "2;", "2; =x", "2;a=\"open"] {
            let input = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\nhello\r\n0\r\n\r\n"
            XCTAssertEqual(status(input), 400, size)
        }
    }

    func testChunkLineWithCRInExtensionRefused() {
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n41;a=b\r\rXXX\r\n0\r\n\r\n"), 400)
    }

    func testChunkDataMustEndWithCRLF() {
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZZ\r\n0\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\n"), 400)
    }

    func testInvalidChunkDoesNotResyncOnNextLine() {
        let (requests, failure) = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nINVALID!!!\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(requests.count, 0)
        XCTAssertEqual(failure?.status, 400)
    }

    // MARK: Expect: 100-continue

    func testContinueExpectedBeforeBody() {
        var parser = RequestParser()
        parser.append(Array("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".utf8))
        XCTAssertEqual(parser.next(), .continueExpected)
        XCTAssertEqual(parser.next(), .needMore)
        parser.append(Array("hello".utf8))
        guard case .request(let r) = parser.next() else { return XCTFail("expected the request") }
        XCTAssertEqual(r.body, Array("hello".utf8))
    }

    func testContinueExpectedForChunkedBody() {
        var parser = RequestParser()
        parser.append(Array("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
        XCTAssertEqual(parser.next(), .continueExpected)
    }

    func testNoContinueWhenBodyAlreadySent() {
        var parser = RequestParser()
        parser.append(Array("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello".utf8))
        guard case .request = parser.next() else { return XCTFail("expected the request, no 100") }
    }

    func testNoContinueForPipelinedRequest() {
        // The interim response could overtake the answer to the request before it.
        var parser = RequestParser()
        parser.append(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\nPUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".utf8))
        guard case .request = parser.next() else { return XCTFail("expected the first request") }
        XCTAssertEqual(parser.next(), .needMore)
    }

    func testNoContinueOnHTTP10() {
        var parser = RequestParser()
        parser.append(Array("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".utf8))
        XCTAssertEqual(parser.next(), .needMore)
    }

    func testTooLargeBodyAnsweredInsteadOfContinue() {
        var limits = HTTPLimits()
        limits.maxBody = 4
        var parser = RequestParser(limits: limits)
        parser.append(Array("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".utf8))
        guard case .failure(let f) = parser.next() else { return XCTFail("expected 413") }
        XCTAssertEqual(f.status, 413)
    }

    func testOtherExpectationIs417() {
        XCTAssertEqual(status("PUT / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx"), 417)
    }

    // MARK: Phases and end of input

    func testPhasesFollowTheRequest() {
        var parser = RequestParser()
        XCTAssertEqual(parser.phase, .idle)
        parser.append(Array("POST / HTTP/1.1\r\nHost:".utf8))
        _ = parser.next()
        XCTAssertEqual(parser.phase, .head)
        parser.append(Array(" h\r\nContent-Length: 2\r\n\r\na".utf8))
        _ = parser.next()
        XCTAssertEqual(parser.phase, .body)
        parser.append(Array("b".utf8))
        guard case .request = parser.next() else { return XCTFail("expected the request") }
        XCTAssertEqual(parser.phase, .idle)
    }

    func testFinishBetweenRequestsIsClean() {
        var parser = RequestParser()
        parser.append(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        _ = parser.next()
        XCTAssertNil(parser.finish())
    }

    func testFinishInsideARequestIs400() {
        var parser = RequestParser()
        parser.append(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc".utf8))
        _ = parser.next()
        XCTAssertEqual(parser.finish()?.status, 400)
    }

    func testPartialMethodKnownAfterRequestLine() {
        var parser = RequestParser()
        parser.append(Array("HEAD / HTTP/1.0\r\nBad Header: x\r\n\r\n".utf8))
        _ = parser.next()
        XCTAssertEqual(parser.partialMethod, "HEAD")
        XCTAssertEqual(parser.partialVersion, "HTTP/1.0")
    }

    func testLargeBodyAcrossManyAppends() {
        var parser = RequestParser()
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        parser.append(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(body.count)\r\n\r\n".utf8))
        var i = 0
        var got: HTTPRequest?
        while got == nil && i <= body.count {
            let end = min(i + 65_000, body.count)
            parser.append(Array(body[i..<end]))
            i = end == body.count ? body.count + 1 : end
            if case .request(let r) = parser.next() { got = r }
        }
        XCTAssertEqual(got?.body, body)
    }
    func testRandomMutationsNeverCrashAndDoNotDependOnReadSizes() {
        // A small deterministic fuzz: corrupt, insert and delete bytes of valid requests.
        let seeds = [
            "GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\"\r\nhello\r\n0\r\nT: x\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        ].map { Array($0.utf8) }
        let alphabet: [UInt8] = Array(" \t\r\n:;,\"=0aFz/?%#\u{7f}".utf8) + [0x00, 0x80, 0xFF]
        var state: UInt64 = 0x9E3779B97F4A7C15
        func random(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        for _ in 0..<1500 {
            var input = seeds[random(seeds.count)]
            for _ in 0...random(3) {
                let i = random(input.count)
                switch random(3) {
                case 0: input[i] = alphabet[random(alphabet.count)]
                case 1: input.insert(alphabet[random(alphabet.count)], at: i)
                default: input.remove(at: i)
                }
            }
            let result = parse(input)
            if let f = result.failure {
                XCTAssertTrue([400, 413, 414, 417, 431, 501, 505].contains(f.status), "\(f)")
            }
        }
    }
}
