import XCTest
@testable import Records
@testable import Crypto
@testable import Net
@testable import JWT
@testable import VerifyJWTTool

/// The verified-token cache of verify-jwt: a repeated token skips verification, but never
/// past its exp, never after its key left the key set, never for a token that differs.
final class TokenCacheTests: XCTestCase {
    var directory = ""
    var clock = Mint.now
    let url = FetchURL.parse("https://keys.example/jwks")!

    override func setUp() {
        directory = temporaryDirectory(removedAfter: self)
        clock = Mint.now
    }

    /// A gate whose keys come from `endpoint` (fetched, so they can change) and whose clock is `clock`.
    func gate(_ endpoint: FakeEndpoint) -> VerifyJWTFilter {
        var settings = KeyStoreSettings()
        settings.cacheDirectory = directory + "/cache"
        settings.cooldown = 0
        let store = KeyStore(source: .url(url), settings: settings, fetcher: endpoint.fetcher(), clock: { self.clock })
        let verifier = JWTVerifier(policy: ClaimsPolicy(issuers: ["https://issuer.example"], audiences: ["project-1"], leeway: 60))
        return VerifyJWTFilter(settings: GateSettings(), verifier: verifier, keys: store, now: { self.clock })
    }

    func endpoint(_ keys: [(String, PrivateKey)] = [("rsa-1", TestKeys.rsa)]) -> FakeEndpoint {
        let e = FakeEndpoint()
        e.keys = keys.map { (kid: $0.0, key: $0.1) }
        e.cacheControl = "max-age=600"
        return e
    }

    func token(sub: String = "user-1", exp: Int = Mint.now + 3600, key: PrivateKey = TestKeys.rsa) -> String {
        Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["sub": "\"\(sub)\"", "exp": "\(exp)"]), key: key)
    }

    func handle(_ gate: VerifyJWTFilter, _ token: String) -> Record {
        var r = Record(JSONObject([("id", "7"), ("method", "GET"), ("path", "/v1/x"), ("version", "HTTP/1.1"), ("body", "")]))
        r.headers = [Header("host", "h"), Header("authorization", "Bearer " + token)]
        gate.handle(&r)
        return r
    }

    func testHitReturnsTheSameAnnotationAndHeaders() {
        let g = gate(endpoint())
        let t = token()
        let first = handle(g, t)
        XCTAssertEqual(first.annotation("auth"), .object(JSONObject([("uid", "user-1")])))
        XCTAssertEqual(g.cache.hits, 0)
        let second = handle(g, t)
        XCTAssertEqual(g.cache.hits, 1)
        XCTAssertEqual(second.object, first.object)
    }

    func testExpiryIsHonouredEvenForACachedToken() {
        let g = gate(endpoint())
        let t = token(exp: Mint.now + 100)
        XCTAssertFalse(handle(g, t).isResponse)
        clock = Mint.now + 99
        XCTAssertFalse(handle(g, t).isResponse)
        XCTAssertEqual(g.cache.hits, 1)
        // From exp on the cache no longer answers; the full check applies its leeway (60 s).
        clock = Mint.now + 100
        XCTAssertFalse(handle(g, t).isResponse)
        XCTAssertEqual(g.cache.hits, 1)
        clock = Mint.now + 160
        let late = handle(g, t)
        XCTAssertEqual(late.status, 401)
        XCTAssertEqual(late.header("www-authenticate"), #"Bearer error="invalid_token", error_description="token expired""#)
    }

    func testAClockThatWentBackVerifiesAgain() {
        let g = gate(endpoint())
        let t = token()
        clock = Mint.now + 50
        _ = handle(g, t)
        clock = Mint.now
        XCTAssertFalse(handle(g, t).isResponse)
        XCTAssertEqual(g.cache.hits, 0)
    }

    func testRemovingTheKeyInvalidatesCachedTokens() {
        let e = endpoint()
        let g = gate(e)
        let t = token()
        XCTAssertFalse(handle(g, t).isResponse)
        XCTAssertFalse(handle(g, t).isResponse)
        XCTAssertEqual(g.cache.hits, 1)
        // The provider drops the key; once the set's max-age has passed, it is refetched.
        e.keys = [(kid: "rsa-2", key: TestKeys.rsaOther)]
        clock += 601
        let out = handle(g, t)
        XCTAssertEqual(out.status, 401)
        XCTAssertEqual(g.cache.hits, 1)
    }

    func testRotatingTheKeyUnderTheSameKidInvalidatesCachedTokens() {
        let e = endpoint()
        let g = gate(e)
        let t = token()
        _ = handle(g, t)
        e.keys = [(kid: "rsa-1", key: TestKeys.rsaOther)]
        clock += 601
        let out = handle(g, t)
        XCTAssertEqual(out.status, 401)
        XCTAssertEqual(out.header("www-authenticate"), #"Bearer error="invalid_token", error_description="bad signature""#)
    }

    func testATokenDifferingByOneByteIsNotAHit() {
        let g = gate(endpoint())
        let t = token()
        _ = handle(g, t)
        var bytes = Array(t.utf8)
        // One byte in the middle of the signature, where the tail used to find entries still matches.
        let i = bytes.count - 20
        bytes[i] = bytes[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let forged = String(decoding: bytes, as: UTF8.self)
        let out = handle(g, forged)
        XCTAssertEqual(out.status, 401)
        XCTAssertEqual(g.cache.hits, 0)
        XCTAssertFalse(handle(g, t).isResponse)
        XCTAssertEqual(g.cache.hits, 1)
    }

    func testFailedVerificationsAreNotCached() {
        let g = gate(endpoint())
        let bad = token(key: TestKeys.rsaOther)
        XCTAssertEqual(handle(g, bad).status, 401)
        XCTAssertEqual(handle(g, bad).status, 401)
        XCTAssertEqual(g.cache.count, 0)
    }

    func testTheCacheIsBounded() {
        let g = gate(endpoint())
        let capacity = VerifiedTokenCache.defaultCapacity
        let tokens = (0..<(capacity + 8)).map { token(sub: "user-\($0)") }
        for t in tokens { XCTAssertFalse(handle(g, t).isResponse) }
        XCTAssertEqual(g.cache.count, capacity)
        // The oldest made room; the newest are still there.
        _ = handle(g, tokens[0])
        XCTAssertEqual(g.cache.hits, 0)
        _ = handle(g, tokens[tokens.count - 1])
        XCTAssertEqual(g.cache.hits, 1)
        XCTAssertEqual(g.cache.count, capacity)
    }
}
