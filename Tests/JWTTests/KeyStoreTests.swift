import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Records
@testable import Crypto
@testable import Net
@testable import JWT
@testable import VerifyJWTTool

/// A key endpoint in memory: what it serves, whether it is up, and how often it was asked.
final class FakeEndpoint {
    var keys: [(kid: String, key: PrivateKey)] = []
    var cacheControl: String? = "public, max-age=600"
    var up = true
    var hits = 0
    var documents: [String: String] = [:]   // other URLs (discovery)

    func fetcher() -> KeyStore.Fetcher {
        { url, _ throws(NetError) in
            self.hits += 1
            guard self.up else { throw NetError("connection refused") }
            if let doc = self.documents[url.description] {
                return HTTPResponse(status: 200, headers: [], body: Array(doc.utf8))
            }
            let jwks = self.keys.map { entry -> JSON in
                var jwk = try! entry.key.publicJWK(); jwk["kid"] = .string(entry.kid); return .object(jwk)
            }
            var headers = [Header("content-type", "application/json")]
            if let cc = self.cacheControl { headers.append(Header("cache-control", cc)) }
            return HTTPResponse(status: 200, headers: headers, body: JSONObject([("keys", .array(jwks))]).serialized())
        }
    }
}

final class KeyStoreTests: XCTestCase {
    var directory = ""
    var clock = 1_000_000
    let url = FetchURL.parse("https://keys.example/jwks")!

    override func setUp() {
        directory = temporaryDirectory(removedAfter: self) + "/cache"
        clock = 1_000_000
    }

    func store(_ endpoint: FakeEndpoint, cooldown: Int = 30, grace: Int = 3600, source: KeySource? = nil) -> KeyStore {
        var settings = KeyStoreSettings()
        settings.cacheDirectory = directory
        settings.cooldown = cooldown
        settings.staleGrace = grace
        settings.issuers = ["https://issuer.example"]
        return KeyStore(source: source ?? .url(url), settings: settings, fetcher: endpoint.fetcher(), clock: { self.clock })
    }

    func lookup(_ s: KeyStore, _ kid: String) -> Result<Bool, JWTError> {
        Result { () throws(JWTError) in try s.verifier(kid: kid, algorithm: .rs256) != nil }
    }

    func testFirstLookupFetchesAndLaterProcessesReadTheCacheFile() throws {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        XCTAssertEqual(lookup(store(endpoint), "k1"), .success(true))
        XCTAssertEqual(endpoint.hits, 1)
        var st = stat()
        XCTAssertEqual(stat(store(endpoint).cachePath, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o644)
        for _ in 0..<5 { XCTAssertEqual(lookup(store(endpoint), "k1"), .success(true)) }
        XCTAssertEqual(endpoint.hits, 1, "fresh cache: no process fetches again")
    }

    func testMaxAgeFromCacheControlDecidesWhenToRefetch() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        endpoint.cacheControl = "public, max-age=100, must-revalidate"
        _ = lookup(store(endpoint), "k1")
        clock += 99
        _ = lookup(store(endpoint), "k1")
        XCTAssertEqual(endpoint.hits, 1)
        clock += 2
        _ = lookup(store(endpoint), "k1")
        XCTAssertEqual(endpoint.hits, 2)
    }

    func testUnknownKidRefetchesOnceAndFindsARotatedKey() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("old", TestKeys.rsa)]
        _ = lookup(store(endpoint), "old")
        endpoint.keys = [("old", TestKeys.rsa), ("new", TestKeys.rsaOther)]
        clock += 31
        XCTAssertEqual(lookup(store(endpoint), "new"), .success(true))
        XCTAssertEqual(endpoint.hits, 2)
        XCTAssertEqual(lookup(store(endpoint), "new"), .success(true))
        XCTAssertEqual(endpoint.hits, 2)
    }

    func testCooldownHoldsAcrossProcessesUnderAFloodOfMadeUpKids() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        _ = lookup(store(endpoint), "k1")
        clock += 60
        for i in 0..<50 {
            let s = store(endpoint)
            XCTAssertEqual(lookup(s, "made-up-\(i)"), .success(false))
            XCTAssertEqual(lookup(s, "made-up-\(i)-again"), .success(false))
        }
        XCTAssertEqual(endpoint.hits, 2, "one refetch for the whole flood")
        clock += 31
        _ = lookup(store(endpoint), "another")
        XCTAssertEqual(endpoint.hits, 3, "and one more after the cooldown")
    }

    func testEndpointDownWithAWarmCacheKeepsServingThroughTheGracePeriod() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        endpoint.cacheControl = "max-age=100"
        _ = lookup(store(endpoint), "k1")
        endpoint.up = false
        clock += 500
        XCTAssertEqual(lookup(store(endpoint), "k1"), .success(true))
        clock += 3000
        XCTAssertEqual(lookup(store(endpoint), "k1"), .success(true))
        clock += 700   // 100 + 3600 past the fetch
        XCTAssertEqual(lookup(store(endpoint), "k1"), .failure(.keysUnavailable))
    }

    func testEndpointDownWithNoCacheIsUnavailable() {
        let endpoint = FakeEndpoint()
        endpoint.up = false
        XCTAssertEqual(lookup(store(endpoint), "k1"), .failure(.keysUnavailable))
        XCTAssertEqual(lookup(store(endpoint), "k1"), .failure(.keysUnavailable))
        XCTAssertEqual(endpoint.hits, 1, "a dead endpoint is retried only after the cooldown")
    }

    func testEndpointRecoveryIsPickedUpAfterTheCooldown() {
        let endpoint = FakeEndpoint()
        endpoint.up = false
        _ = lookup(store(endpoint), "k1")
        endpoint.up = true
        endpoint.keys = [("k1", TestKeys.rsa)]
        clock += 31
        XCTAssertEqual(lookup(store(endpoint), "k1"), .success(true))
    }

    func testAnInvalidResponseDoesNotReplaceGoodKeys() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        endpoint.cacheControl = "max-age=10"
        _ = lookup(store(endpoint), "k1")
        endpoint.keys = []   // {"keys":[]}: not a usable set
        clock += 60
        XCTAssertEqual(lookup(store(endpoint), "k1"), .success(true))
        XCTAssertEqual(endpoint.hits, 2)
    }

    func testACorruptCacheFileIsIgnored() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        let s = store(endpoint)
        try! KeyFiles.ensurePrivateDirectory(directory)
        writeText(s.cachePath, "{\"keys\": garbage")
        XCTAssertEqual(lookup(s, "k1"), .success(true))
        XCTAssertEqual(endpoint.hits, 1)
    }

    func testDiscoveryFollowsJwksUriAndChecksTheIssuer() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        let discovery = FetchURL.parse("https://issuer.example/.well-known/openid-configuration")!
        endpoint.documents[discovery.description] = #"{"issuer":"https://issuer.example","jwks_uri":"https://keys.example/jwks"}"#
        XCTAssertEqual(lookup(store(endpoint, source: .discovery(discovery)), "k1"), .success(true))
        XCTAssertEqual(endpoint.hits, 2)

        directory += "-2"
        endpoint.documents[discovery.description] = #"{"issuer":"https://evil.example","jwks_uri":"https://keys.example/jwks"}"#
        XCTAssertEqual(lookup(store(endpoint, source: .discovery(discovery)), "k1"), .failure(.keysUnavailable))
    }

    func testMaxAgeParsing() {
        XCTAssertEqual(KeyStore.maxAge(cacheControl: "public, max-age=19732, must-revalidate, no-transform", age: nil), 19732)
        XCTAssertEqual(KeyStore.maxAge(cacheControl: "max-age=600", age: "100"), 500)
        XCTAssertEqual(KeyStore.maxAge(cacheControl: "max-age=\"60\"", age: nil), 60)
        XCTAssertEqual(KeyStore.maxAge(cacheControl: "no-cache", age: nil), 0)
        XCTAssertNil(KeyStore.maxAge(cacheControl: "public", age: nil))
        XCTAssertNil(KeyStore.maxAge(cacheControl: nil, age: nil))
    }

    func testCacheDirectoryWritableByOthersIsRefused() {
        let endpoint = FakeEndpoint()
        endpoint.keys = [("k1", TestKeys.rsa)]
        mkdir(directory, 0o777)
        chmod(directory, 0o777)
        XCTAssertEqual(lookup(store(endpoint), "k1"), .failure(.keysUnavailable))
        XCTAssertEqual(endpoint.hits, 0)
    }
}

final class HTTPClientTests: XCTestCase {
    func testURLsParseIntoHostPortAndTarget() {
        let u = FetchURL.parse("https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com")!
        XCTAssertEqual(u.host, "www.googleapis.com")
        XCTAssertEqual(u.port, 443)
        XCTAssertEqual(u.target, "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com")
        XCTAssertFalse(u.isLoopback)
        let l = FetchURL.parse("http://127.0.0.1:8081/keys?x=1#frag")!
        XCTAssertEqual(l.port, 8081)
        XCTAssertEqual(l.target, "/keys?x=1")
        XCTAssertTrue(l.isLoopback)
        XCTAssertTrue(FetchURL.parse("http://[::1]:80/")!.isLoopback)
        XCTAssertTrue(FetchURL.parse("http://localhost/")!.isLoopback)
        XCTAssertFalse(FetchURL.parse("http://127.example.com/")!.isLoopback)
    }

    func testURLsThatCouldSmuggleOrMisleadAreRefused() {
        for bad in ["ftp://x/", "https://", "https://user@host/", "https://host:99999/", "https://host:x/",
                    "https://host/a b", "https://host/\r\nX: y", "https://ho st/", "https://[zz]/"] {
            XCTAssertNil(FetchURL.parse(bad), bad)
        }
    }

    func testResponsesWithContentLengthChunkedOrCloseFraming() throws {
        let cl = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nhello".utf8)
        XCTAssertNil(try HTTPResponseParser.parse(Array(cl.dropLast()), atEOF: false))
        let r = try XCTUnwrap(try HTTPResponseParser.parse(cl, atEOF: false))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("cache-control"), "max-age=60")
        XCTAssertEqual(r.body, Array("hello".utf8))

        let chunked = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".utf8)
        XCTAssertEqual(try HTTPResponseParser.parse(chunked, atEOF: false)?.body, Array("hello world".utf8))
        XCTAssertNil(try HTTPResponseParser.parse(Array(chunked.prefix(40)), atEOF: false))

        let close = Array("HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope".utf8)
        XCTAssertNil(try HTTPResponseParser.parse(close, atEOF: false))
        XCTAssertEqual(try HTTPResponseParser.parse(close, atEOF: true)?.status, 404)

        XCTAssertThrowsError(try HTTPResponseParser.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort".utf8), atEOF: true))
        // An unclean TLS close can be a truncation: only a framed body is accepted then.
        XCTAssertThrowsError(try HTTPResponseParser.parse(close, atEOF: true, closeDelimitedAllowed: false))
        XCTAssertNotNil(try HTTPResponseParser.parse(cl, atEOF: true, closeDelimitedAllowed: false))
        XCTAssertThrowsError(try HTTPResponseParser.parse(Array("SSH-2.0\r\n\r\n".utf8), atEOF: true))
    }

    func testConnectingToAClosedPortFailsQuickly() {
        let start = Clock.monotonicMillis()
        XCTAssertThrowsError(try HTTPClient.get(FetchURL.parse("http://127.0.0.1:1/")!, timeoutMillis: 500))
        XCTAssertLessThan(Clock.monotonicMillis() - start, 1000)
    }
}
