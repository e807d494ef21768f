import XCTest
import Foundation
import Records
@testable import HTTPDecodeTool

private func proxies(_ specs: String...) -> TrustedProxies { try! TrustedProxies(parsing: specs) }

private func headers(_ pairs: (String, String)...) -> [Header] { pairs.map { Header($0.0, $0.1) } }

/// Runs the decoder over a socketpair with `remote` as the launcher's peer address.
private func decodedRemotes(_ input: String, peer: String?, trusted: TrustedProxies) -> [String?] {
    var pair: [Int32] = [0, 0]
    XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
    var outPipe: [Int32] = [0, 0]
    XCTAssertEqual(pipe(&outPipe), 0)
    _ = FileOutput.writeAll(pair[0], Array(input.utf8))
    shutdown(pair[0], Int32(SHUT_WR))
    var settings = DecoderSettings()
    settings.input = pair[1]
    settings.output = outPipe[1]
    settings.lingerMs = 0
    settings.trustedProxies = trusted
    XCTAssertEqual(HTTPDecodeFilter(settings: settings, remote: peer).run(), 0)
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress!, $0.count) }
        if n <= 0 { break }
        out += chunk[0..<n]
    }
    for fd in [pair[0], pair[1], outPipe[0]] { close(fd) }
    return out.split(separator: 0x0A).map { try! Record.parse(String(decoding: $0, as: UTF8.self))["remote"]?.string }
}

final class TrustedProxyTests: XCTestCase {

    // MARK: rules

    func testIPv4RulesMatchTheirNetworkOnly() {
        let p = proxies("10.0.0.0/8", "192.0.2.7")
        XCTAssertTrue(p.trusts(peer: "10.200.3.4"))
        XCTAssertTrue(p.trusts(peer: "192.0.2.7"))
        XCTAssertFalse(p.trusts(peer: "192.0.2.8"))
        XCTAssertFalse(p.trusts(peer: "11.0.0.1"))
    }

    func testIPv6RulesMatchTheirNetworkOnly() {
        let p = proxies("2001:db8:1::/48", "::1")
        XCTAssertTrue(p.trusts(peer: "2001:db8:1:ffff::5"))
        XCTAssertTrue(p.trusts(peer: "::1"))
        XCTAssertFalse(p.trusts(peer: "2001:db8:2::5"))
        XCTAssertFalse(p.trusts(peer: "::2"))
    }

    func testIPv4RuleMatchesAMappedIPv6Peer() {
        XCTAssertTrue(proxies("127.0.0.0/8").trusts(peer: "::ffff:127.0.0.2"))
        XCTAssertFalse(proxies("127.0.0.0/8").trusts(peer: "::ffff:128.0.0.2"))
    }

    func testIPv4RuleDoesNotMatchIPv6Peers() {
        XCTAssertFalse(proxies("0.0.0.0/0").trusts(peer: "2001:db8::1"))
        XCTAssertTrue(proxies("0.0.0.0/0").trusts(peer: "203.0.113.9"))
    }

    func testCommaSeparatedListAsTheEnvironmentGivesIt() {
        let p = proxies(" 127.0.0.2/32 , 2001:db8::/32,")
        XCTAssertEqual(p.networks.count, 2)
        XCTAssertTrue(p.trusts(peer: "2001:db8::9"))
    }

    func testBadRulesAreRefusedWithAReason() {
        for spec in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/+8", "localhost", "10.0.0", "10.1.2.3/8",
                     "2001:db8::1/32", "fe80::1%eth0", "1.2.3.4/8/8", "10.0.0.0/08x"] {
            XCTAssertThrowsError(try TrustedProxies(parsing: [spec]), spec)
        }
        XCTAssertThrowsError(try TrustedProxies(parsing: ["10.1.2.3/8"])) { error in
            XCTAssertTrue((error as! CIDRError).message.contains("10.0.0.0/8"))
        }
    }

    func testNoRulesTrustNobody() {
        XCTAssertFalse(TrustedProxies.none.trusts(peer: "127.0.0.1"))
        XCTAssertFalse(proxies("127.0.0.1").trusts(peer: nil))
        XCTAssertFalse(proxies("127.0.0.1").trusts(peer: "not-an-address"))
    }

    // MARK: who the client is, behind a trusted proxy

    func testForwardedForNamesTheClient() {
        XCTAssertEqual(proxies("127.0.0.2").client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "203.0.113.5"))),
                       "203.0.113.5")
    }

    func testSpoofedForwardedForPrefixIsNotBelieved() {
        // The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the address it saw.
        XCTAssertEqual(proxies("127.0.0.2").client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "6.6.6.6, 127.0.0.1"))),
                       "127.0.0.1")
    }

    func testChainOfTrustedProxiesIsSkippedFromTheRight() {
        let p = proxies("127.0.0.2", "10.0.0.0/8")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.0.0.3, 10.9.9.9"))),
                       "198.51.100.4")
    }

    func testEveryEntryTrustedGivesTheLeftMost() {
        let p = proxies("10.0.0.0/8", "127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "10.0.0.1, 10.0.0.2"))), "10.0.0.1")
    }

    func testRepeatedForwardedForFieldsReadAsOneList() {
        // HAProxy's `option forwardfor` adds a new field rather than extending the client's.
        let h = headers(("x-forwarded-for", "6.6.6.6"), ("host", "h"), ("x-forwarded-for", "192.0.2.44"))
        XCTAssertEqual(proxies("127.0.0.2").client(peer: "127.0.0.2", headers: h), "192.0.2.44")
    }

    func testGarbageEntryEndsTheWalkAtTheLastTrustedHop() {
        let p = proxies("127.0.0.2", "10.0.0.0/8")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "6.6.6.6, evil\u{7f}, 10.0.0.4"))), "10.0.0.4")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "unknown"))), "127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "192.0.2.1,,"))), "127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "1.2.3.4\r\nx: y"))), "127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "1.2.3.4\u{0}5"))), "127.0.0.2")
    }

    func testForwardedAddressesWithPortsAndBrackets() {
        let p = proxies("127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "192.0.2.1:51234"))), "192.0.2.1")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "[2001:db8::7]:443"))), "2001:db8::7")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "[2001:db8::7]"))), "2001:db8::7")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-forwarded-for", "192.0.2.1:99999x"))), "127.0.0.2")
    }

    func testClientAddressIsCanonical() {
        let p = proxies("::1")
        XCTAssertEqual(p.client(peer: "::1", headers: headers(("x-forwarded-for", "2001:DB8:0:0:0:0:0:1"))), "2001:db8::1")
        XCTAssertEqual(p.client(peer: "::1", headers: headers(("x-forwarded-for", "::ffff:192.0.2.9"))), "192.0.2.9")
    }

    func testRealIPUsedWithoutForwardedFor() {
        XCTAssertEqual(proxies("127.0.0.2").client(peer: "127.0.0.2", headers: headers(("x-real-ip", "198.51.100.23"))),
                       "198.51.100.23")
    }

    func testForwardedForWinsOverRealIP() {
        let h = headers(("x-real-ip", "6.6.6.6"), ("x-forwarded-for", "198.51.100.23"))
        XCTAssertEqual(proxies("127.0.0.2").client(peer: "127.0.0.2", headers: h), "198.51.100.23")
    }

    func testAmbiguousOrInvalidRealIPIsIgnored() {
        let p = proxies("127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-real-ip", "6.6.6.6"), ("x-real-ip", "1.1.1.1"))), "127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-real-ip", "6.6.6.6, 1.1.1.1"))), "127.0.0.2")
        XCTAssertEqual(p.client(peer: "127.0.0.2", headers: headers(("x-real-ip", "example.com"))), "127.0.0.2")
    }

    func testNoHeadersGivesThePeer() {
        XCTAssertEqual(proxies("127.0.0.2").client(peer: "127.0.0.2", headers: headers(("host", "h"))), "127.0.0.2")
    }

    // MARK: in the decoder

    func testDecoderBelievesATrustedPeer() {
        let remotes = decodedRemotes("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.10\r\n\r\n"
                                     + "GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 192.0.2.11\r\n\r\n"
                                     + "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                                     peer: "127.0.0.2", trusted: proxies("127.0.0.2/32"))
        XCTAssertEqual(remotes, ["192.0.2.10", "192.0.2.11", "127.0.0.2"])
    }

    func testDecoderIgnoresTheHeadersFromAnUntrustedPeer() {
        let remotes = decodedRemotes("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
                                     + "GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 6.6.6.6\r\n\r\n",
                                     peer: "127.0.0.1", trusted: proxies("127.0.0.2/32"))
        XCTAssertEqual(remotes, ["127.0.0.1", "127.0.0.1"])
    }

    func testDecoderWithoutRulesIgnoresTheHeaders() {
        let remotes = decodedRemotes("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
                                     peer: "127.0.0.2", trusted: .none)
        XCTAssertEqual(remotes, ["127.0.0.2"])
    }

    func testDecoderKeepsTheHeadersAsHeaders() {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        var outPipe: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&outPipe), 0)
        _ = FileOutput.writeAll(pair[0], Array("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.10\r\nX-Real-IP: 192.0.2.10\r\n\r\n".utf8))
        shutdown(pair[0], Int32(SHUT_WR))
        var settings = DecoderSettings()
        settings.input = pair[1]
        settings.output = outPipe[1]
        settings.lingerMs = 0
        settings.trustedProxies = proxies("127.0.0.2")
        XCTAssertEqual(HTTPDecodeFilter(settings: settings, remote: "127.0.0.2").run(), 0)
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress!, $0.count) }
        let record = try! Record.parse(String(decoding: chunk[0..<n].dropLast(), as: UTF8.self))
        XCTAssertEqual(record.header("x-forwarded-for"), "6.6.6.6, 192.0.2.10")
        XCTAssertEqual(record.header("x-real-ip"), "192.0.2.10")
        XCTAssertEqual(record["remote"]?.string, "192.0.2.10")
        for fd in [pair[0], pair[1], outPipe[0]] { close(fd) }
    }

    func testRefusedRequestReportsThePeer() {
        // A request that could not be read has no headers anyone checked.
        let remotes = decodedRemotes("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.10\r\nContent-Length: x\r\n\r\n",
                                     peer: "127.0.0.2", trusted: proxies("127.0.0.2"))
        XCTAssertEqual(remotes, ["127.0.0.2"])
    }
}
