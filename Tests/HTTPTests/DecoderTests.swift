import XCTest
import Foundation
import Records
@testable import HTTPDecodeTool

/// Runs the decoder over a socketpair (as under socat EXEC) or pipes, with `input` already
/// written; returns the records and what the decoder wrote back to its input socket.
private func decode(_ input: [UInt8], settings base: DecoderSettings = DecoderSettings(), remote: String? = nil,
                    closeInput: Bool = true) -> (records: [Record], backChannel: [UInt8]) {
    var pair: [Int32] = [0, 0]
    XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
    var outPipe: [Int32] = [0, 0]
    XCTAssertEqual(pipe(&outPipe), 0)
    input.withUnsafeBytes { _ = FileOutput.writeAll(pair[0], $0) }
    if closeInput { shutdown(pair[0], Int32(SHUT_WR)) }
    var settings = base
    settings.input = pair[1]
    settings.output = outPipe[1]
    settings.lingerMs = 0
    let decoder = HTTPDecodeFilter(settings: settings, remote: remote)
    let status = decoder.run()
    XCTAssertEqual(status, 0)
    close(pair[1])
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress!, $0.count) }
        if n <= 0 { break }
        out += chunk[0..<n]
    }
    close(outPipe[0])
    var back: [UInt8] = []
    var flags = fcntl(pair[0], F_GETFL)
    flags |= O_NONBLOCK
    _ = fcntl(pair[0], F_SETFL, flags)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(pair[0], $0.baseAddress!, $0.count) }
        if n <= 0 { break }
        back += chunk[0..<n]
    }
    close(pair[0])
    let lines = out.split(separator: 0x0A, omittingEmptySubsequences: false)
    XCTAssertEqual(lines.last, [], "output must end with a newline")
    let records = lines.dropLast().map { try! Record.parse(String(decoding: $0, as: UTF8.self)) }
    return (records, back)
}

final class DecoderTests: XCTestCase {

    func testRecordFieldsInProtocolOrder() {
        let (records, _) = decode(Array("POST /v1/x?a=1 HTTP/1.1\r\nHost: localhost:8080\r\nX-Tag: a\r\nX-Tag: b\r\nContent-Length: 2\r\n\r\n{}".utf8), remote: "127.0.0.1")
        XCTAssertEqual(records.count, 1)
        // request_id and access (random, and the arrival time) follow the fields every request has.
        var record = records[0]
        XCTAssertEqual(record.requestID?.count, 32)
        XCTAssertEqual(record["access"]?["bytes_in"]?.int, 90)
        record["request_id"] = nil
        record["access"] = nil
        XCTAssertEqual(record.text, #"{"id":"1","method":"POST","path":"/v1/x","query":"a=1","version":"HTTP/1.1","headers":[["host","localhost:8080"],["x-tag","a"],["x-tag","b"],["content-length","2"]],"body":"{}","remote":"127.0.0.1","keep_alive":true}"#)
    }

    func testNonUTF8BodyIsBase64() {
        let (records, _) = decode(Array("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n".utf8) + [0xFF, 0x00, 0x80])
        XCTAssertNil(records[0]["body"])
        XCTAssertEqual(records[0]["body_base64"]?.string, "/wCA")
        XCTAssertEqual(records[0].body, [0xFF, 0x00, 0x80])
    }

    func testRemoteAbsentWithoutLauncherAddress() {
        XCTAssertNil(decode(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)).records[0]["remote"])
    }

    func testIdsCountPerConnection() {
        let one = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        let (records, _) = decode(Array((one + one + one).utf8))
        XCTAssertEqual(records.map(\.id), ["1", "2", "3"])
    }

    func testStopsAfterConnectionClose() {
        let (records, _) = decode(Array("GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        XCTAssertEqual(records.map(\.path), ["/1"])
        XCTAssertEqual(records[0].keepAlive, false)
    }

    func testErrorBecomesTheLastRecord() {
        let (records, _) = decode(Array("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(records[1].id, "2")
        XCTAssertEqual(records[1].status, 400)
        XCTAssertEqual(records[1].keepAlive, false)
        XCTAssertEqual(records[1].method, "GET")
        let body = try? JSONReader.parse(records[1].body)
        XCTAssertEqual(body?["error"]?.string, "bad_request")
        XCTAssertNotNil(body?["message"]?.string)
        XCTAssertEqual(records[1].header("content-type"), "application/json")
    }

    func testTruncatedRequestAtEOFIs400() {
        let (records, _) = decode(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc".utf8))
        XCTAssertEqual(records.map(\.status), [400])
    }

    func testCleanEOFBetweenRequestsEmitsNothingMore() {
        XCTAssertEqual(decode(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)).records.count, 1)
        XCTAssertEqual(decode([]).records.count, 0)
    }

    func testContinueIsAnInterimRecordAndNothingIsWrittenToTheSocket() {
        var settings = DecoderSettings()
        settings.bodyTimeoutMs = 200
        let (records, back) = decode(Array("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".utf8),
                                     settings: settings, closeInput: false)
        XCTAssertEqual(back, [])
        XCTAssertEqual(records.map(\.status), [100, 408])
        XCTAssertEqual(records.map(\.id), ["1", "1"])
        XCTAssertEqual(records[0].object["interim"]?.bool, true)
    }

    func testHeaderTimeoutGives408() {
        var settings = DecoderSettings()
        settings.headerTimeoutMs = 100
        let start = Clock.monotonicMillis()
        let (records, _) = decode(Array("GET / HTTP/1.1\r\nHost:".utf8), settings: settings, closeInput: false)
        XCTAssertEqual(records.map(\.status), [408])
        XCTAssertEqual((try? JSONReader.parse(records[0].body))?["error"]?.string, "request_timeout")
        XCTAssertLessThan(Clock.monotonicMillis() - start, 2000)
    }

    func testSteadyPipeliningIsNotASlowHead() {
        // Every read ends inside the next request's head; each request still gets its own
        // header timer, so a client that keeps sending is never cut off.
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        var outPipe: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&outPipe), 0)
        let writer = pair[0]
        let thread = Thread {
            _ = FileOutput.writeAll(writer, Array("GET / HT".utf8))
            for _ in 0..<6 {
                usleep(60_000)
                _ = FileOutput.writeAll(writer, Array("TP/1.1\r\nHost: h\r\n\r\nGET / HT".utf8))
            }
            _ = FileOutput.writeAll(writer, Array("TP/1.1\r\nHost: h\r\n\r\n".utf8))
            shutdown(writer, Int32(SHUT_WR))
        }
        thread.start()
        var settings = DecoderSettings()
        settings.headerTimeoutMs = 150
        settings.input = pair[1]
        settings.output = outPipe[1]
        XCTAssertEqual(HTTPDecodeFilter(settings: settings, remote: nil).run(), 0)
        var out = [UInt8](repeating: 0, count: 65536)
        let n = out.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress!, $0.count) }
        let lines = out[0..<max(n, 0)].split(separator: 0x0A).map { try! Record.parse(String(decoding: $0, as: UTF8.self)) }
        XCTAssertEqual(lines.count, 7)
        XCTAssertTrue(lines.allSatisfy { $0.status == nil })
        for fd in [pair[0], pair[1], outPipe[0]] { close(fd) }
    }

    func testIdleTimeoutClosesSilently() {
        var settings = DecoderSettings()
        settings.idleTimeoutMs = 100
        let (records, _) = decode(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8), settings: settings, closeInput: false)
        XCTAssertEqual(records.count, 1)
        XCTAssertNil(records[0].status)
    }

    func testRemoteFromLauncherEnvironment() {
        let env: [String: String] = ["TCPREMOTEIP": "10.0.0.1", "REMOTE_ADDR": "10.0.0.2", "SOCAT_PEERADDR": "10.0.0.3"]
        XCTAssertEqual(RemoteAddress.detect(fd: -1, environment: { env[$0] }), "10.0.0.1")
        XCTAssertEqual(RemoteAddress.detect(fd: -1, environment: { $0 == "TCPREMOTEIP" ? nil : env[$0] }), "10.0.0.2")
        XCTAssertEqual(RemoteAddress.detect(fd: -1, environment: { $0 == "SOCAT_PEERADDR" ? env[$0] : nil }), "10.0.0.3")
        XCTAssertNil(RemoteAddress.detect(fd: -1, environment: { _ in nil }))
        XCTAssertEqual(RemoteAddress.normalize("::ffff:192.0.2.7"), "192.0.2.7")
        XCTAssertEqual(RemoteAddress.normalize("[2001:db8::1]"), "2001:db8::1")
    }

    func testRemoteFromPeerName() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) } }
        let server = accept(listener, nil, nil)
        defer { close(server) }
        XCTAssertEqual(RemoteAddress.detect(fd: server, environment: { _ in nil }), "127.0.0.1")
        var pair: [Int32] = [0, 0]
        socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair)
        XCTAssertNil(RemoteAddress.detect(fd: pair[0], environment: { _ in nil }))
        close(pair[0]); close(pair[1])
    }

    func testSettingsProblems() {
        XCTAssertNil(DecoderSettings().problem)
        var s = DecoderSettings()
        s.limits.maxBody = 0
        XCTAssertNotNil(s.problem)
        s = DecoderSettings()
        s.limits.maxBody = 15 << 20
        XCTAssertNotNil(s.problem)
    }
}
