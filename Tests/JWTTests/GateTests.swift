import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import Records
@testable import Net
@testable import JWT
@testable import VerifyJWTTool

/// A fresh directory under the system temporary directory, removed when the test ends.
func temporaryDirectory(removedAfter test: XCTestCase) -> String {
    var template = Array((NSTemporaryDirectory() + "/jwt-test-XXXXXX").utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

func writeText(_ path: String, _ text: String) {
    precondition(FileOutput.writeAll(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644), Array(text.utf8)))
}

final class GateTests: XCTestCase {
    var directory = ""
    var jwksPath: String { directory + "/jwks.json" }

    override func setUp() {
        directory = temporaryDirectory(removedAfter: self)
        var jwk = try! TestKeys.rsa.publicJWK(); jwk["kid"] = "rsa-1"
        writeText(jwksPath, JSONObject([("keys", .array([.object(jwk)]))]).text)
    }

    func gate(_ settings: GateSettings = GateSettings(), keys: String? = nil) -> VerifyJWTFilter {
        let verifier = JWTVerifier(policy: ClaimsPolicy(issuers: ["https://issuer.example"], audiences: ["project-1"]))
        let store = KeyStore(source: .file(keys ?? jwksPath), settings: KeyStoreSettings())
        return VerifyJWTFilter(settings: settings, verifier: verifier, keys: store, now: { Mint.now })
    }

    func request(path: String = "/v1/subscription", route: String? = nil, headers: [(String, String)]) -> Record {
        var r = Record(JSONObject([("id", "7"), ("method", "GET"), ("path", .string(path)), ("version", "HTTP/1.1"),
                                   ("keep_alive", true), ("body", "")]))
        r.headers = headers.map { Header($0.0, $0.1) }
        if let route { r.setAnnotation(AnnotationKey.route, .object(JSONObject([("name", .string(route)), ("params", .object(JSONObject()))]))) }
        return r
    }

    var validToken: String { Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["email": "\"u@example.com\""])) }

    func run(_ gate: VerifyJWTFilter, _ record: Record) -> Record {
        var r = record
        gate.handle(&r)
        return r
    }

    func body(_ r: Record) -> JSONObject { (try! JSONReader.parse(r.body)).object! }

    func testValidTokenBecomesTheUidHeaderAndAnnotation() {
        let out = run(gate(), request(headers: [("host", "h"), ("authorization", "Bearer " + validToken)]))
        XCTAssertFalse(out.isResponse)
        XCTAssertEqual(out.headers, [Header("host", "h"), Header("x-authenticated-uid", "user-1")])
        XCTAssertEqual(out.annotation("auth"), .object(JSONObject([("uid", "user-1")])))
    }

    func testSpoofedIdentityHeadersAreRemovedOnPrivateRoutes() {
        let out = run(gate(), request(headers: [("x-authenticated-uid", "admin"), ("X-Authenticated-Email", "a@b"),
                                                ("authorization", "Bearer " + validToken), ("x-authenticated-uid", "root")]))
        XCTAssertEqual(out.headerValues("x-authenticated-uid"), ["user-1"])
        XCTAssertTrue(out.headers.allSatisfy { $0.name == "x-authenticated-uid" })
    }

    func testSpoofedIdentityHeadersAreRemovedOnPublicRoutes() {
        var settings = GateSettings()
        settings.publicRoutes = ["stripe-webhook"]
        settings.claimHeaders = [("email", "x-user-email")]
        let out = run(gate(settings), request(route: "stripe-webhook", headers: [("x-authenticated-uid", "admin"),
                                                                                  ("x-user-email", "a@b"), ("stripe-signature", "t=1")]))
        XCTAssertFalse(out.isResponse)
        XCTAssertEqual(out.headers, [Header("stripe-signature", "t=1")])
        XCTAssertNil(out.annotation("auth"))
    }

    func testPublicRoutesDropBearerTokensButKeepOtherSchemes() {
        var settings = GateSettings()
        settings.publicRoutes = ["healthz"]
        let bearer = run(gate(settings), request(route: "healthz", headers: [("authorization", "Bearer " + validToken)]))
        XCTAssertEqual(bearer.headers, [])
        let basic = run(gate(settings), request(route: "healthz", headers: [("authorization", "Basic dTpw"), ("host", "h")]))
        XCTAssertEqual(basic.headers, [Header("authorization", "Basic dTpw"), Header("host", "h")])
    }

    func testUntouchedPublicRecordIsNotRewritten() {
        var settings = GateSettings()
        settings.publicPrefixes = ["/healthz"]
        let record = request(path: "/healthz", headers: [("host", "h")])
        XCTAssertEqual(run(gate(settings), record), record)
    }

    func testPublicPrefixesMatchWholeSegmentsAndRefuseDotSegments() {
        let prefixes = ["/healthz", "/static/"]
        XCTAssertTrue(VerifyJWTFilter.matchesPrefix("/healthz", prefixes))
        XCTAssertTrue(VerifyJWTFilter.matchesPrefix("/healthz/deep", prefixes))
        XCTAssertTrue(VerifyJWTFilter.matchesPrefix("/static/app.js", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("/healthzz", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("/static", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("/healthz/../v1/subscription", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("/healthz/%2e%2e/v1/subscription", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("/healthz/..", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("/healthz%2F..%2Fv1", prefixes))
        XCTAssertFalse(VerifyJWTFilter.matchesPrefix("//healthz", prefixes))
    }

    func testMissingTokenIs401WithABareBearerChallenge() {
        let out = run(gate(), request(headers: [("host", "h")]))
        XCTAssertEqual(out.status, 401)
        XCTAssertEqual(out.header("www-authenticate"), "Bearer")
        XCTAssertEqual(body(out)["error"], "unauthorized")
        XCTAssertEqual(out.id, "7")
        XCTAssertEqual(out.keepAlive, true)
    }

    func testOtherSchemesAreTreatedAsNoToken() {
        for credentials in ["Basic dTpw", "Bearer", "Bearer ", "Token " + validToken, "Bearer" + validToken] {
            let out = run(gate(), request(headers: [("authorization", credentials)]))
            XCTAssertEqual(out.status, 401, credentials)
            XCTAssertEqual(out.header("www-authenticate"), "Bearer", credentials)
        }
    }

    func testBearerSchemeIsCaseInsensitive() {
        let out = run(gate(), request(headers: [("authorization", "bEaReR " + validToken)]))
        XCTAssertEqual(out.header("x-authenticated-uid"), "user-1")
    }

    func testInvalidTokenIs401WithInvalidTokenAndAShortReason() {
        let expired = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["exp": "\(Mint.now - 3600)"]))
        let out = run(gate(), request(headers: [("authorization", "Bearer " + expired)]))
        XCTAssertEqual(out.status, 401)
        XCTAssertEqual(out.header("www-authenticate"), "Bearer error=\"invalid_token\", error_description=\"token expired\"")
        XCTAssertEqual(body(out), JSONObject([("error", "invalid_token"), ("message", "token expired")]))
        XCTAssertFalse(out.text.contains(expired.prefix(30)), "the token must never be echoed")
    }

    func testTwoAuthorizationHeadersAreABadRequest() {
        let out = run(gate(), request(headers: [("authorization", "Bearer " + validToken), ("authorization", "Bearer " + validToken)]))
        XCTAssertEqual(out.status, 400)
        XCTAssertEqual(body(out)["error"], "invalid_request")
    }

    func testClaimsAreForwardedAsConfiguredHeaders() {
        var settings = GateSettings()
        settings.claimHeaders = [("email", "x-authenticated-email"), ("missing", "x-authenticated-missing"), ("iat", "x-issued-at")]
        let out = run(gate(settings), request(headers: [("authorization", "Bearer " + validToken)]))
        XCTAssertEqual(out.header("x-authenticated-email"), "u@example.com")
        XCTAssertEqual(out.header("x-issued-at"), String(Mint.now - 10))
        XCTAssertNil(out.header("x-authenticated-missing"))
    }

    func testClaimValuesWithControlCharactersAreNotForwarded() {
        var settings = GateSettings()
        settings.claimHeaders = [("email", "x-authenticated-email")]
        let token = Mint.token(header: #"{"alg":"RS256","kid":"rsa-1"}"#, payload: Mint.claims(["email": "\"a@b\\r\\nx-admin: 1\""]))
        let out = run(gate(settings), request(headers: [("authorization", "Bearer " + token)]))
        XCTAssertEqual(out.header("x-authenticated-uid"), "user-1")
        XCTAssertNil(out.header("x-authenticated-email"))
    }

    func testAuditFlagAnnotatesRejections() {
        var settings = GateSettings()
        settings.auditFailures = true
        let out = run(gate(settings), request(headers: []))
        XCTAssertEqual(out.status, 401)
        XCTAssertEqual(out.annotation("audit"), .object(JSONObject([("kind", "auth"), ("outcome", "rejected"),
                                                                    ("reason", "a Bearer token is required")])))
        XCTAssertNil(run(gate(), request(headers: [])).annotation("audit"))
    }

    func testNoUsableKeysIs503NotA401() {
        let out = run(gate(keys: directory + "/absent.json"), request(headers: [("authorization", "Bearer " + validToken)]))
        XCTAssertEqual(out.status, 503)
        XCTAssertEqual(body(out)["error"], "keys_unavailable")
        XCTAssertNotNil(out.header("retry-after"))
        XCTAssertNil(out.header("www-authenticate"))
    }

    func testInsecureModeTakesTheSubjectWithoutCheckingTheSignature() {
        var settings = GateSettings()
        settings.insecureNoVerify = true
        let forged = Mint.token(header: #"{"alg":"RS256","kid":"whatever"}"#, payload: Mint.claims(["sub": "\"dev-user\""]), key: TestKeys.rsaOther)
        let out = run(gate(settings), request(headers: [("authorization", "Bearer " + forged), ("x-authenticated-uid", "x")]))
        XCTAssertEqual(out.headerValues("x-authenticated-uid"), ["dev-user"])
        XCTAssertEqual(run(gate(settings), request(headers: [])).status, 401)
    }
}

final class ConfigurationTests: XCTestCase {
    func parse(_ arguments: [String], env: [String: String] = [:]) -> Result<Configuration, Configuration.Invalid> {
        Result { () throws(Configuration.Invalid) in
            let options: ParsedOptions
            do throws(OptionError) { options = try VerifyJWTOptions.table.read(arguments, env: { env[$0] }) } catch { throw Configuration.Invalid(error.description) }
            return try Configuration.parse(options, env: { env[$0] })
        }
    }

    func testFirebaseProjectSetsIssuerAudienceAndGoogleKeys() throws {
        let c = try parse(["--firebase-project", "my-app"], env: ["EDGEPIPE_DATA": "/d"]).get()
        XCTAssertEqual(c.verifier.policy.issuers, ["https://securetoken.google.com/my-app"])
        XCTAssertEqual(c.verifier.policy.audiences, ["my-app"])
        XCTAssertEqual(c.verifier.algorithms, .rs256Only)
        XCTAssertEqual(c.source, .url(FetchURL.parse(Configuration.firebaseKeysURL)!))
        XCTAssertEqual(c.store.cacheDirectory, "/d/jwks")
    }

    func testFirebaseKeysCanBeRelocatedForTests() throws {
        let c = try parse(["--firebase-project", "my-app", "--jwks-url", "http://127.0.0.1:9/keys", "--jwks-cache", "/c"]).get()
        XCTAssertEqual(c.source, .url(FetchURL.parse("http://127.0.0.1:9/keys")!))
        XCTAssertEqual(c.verifier.policy.audiences, ["my-app"])
    }

    func testEveryOptionAlsoComesFromTheEnvironment() throws {
        let c = try parse([], env: ["EDGEPIPE_JWKS_FILE": "/k.json", "EDGEPIPE_JWT_ISSUER": "a,b", "EDGEPIPE_JWT_AUDIENCE": "x",
                                    "EDGEPIPE_JWT_ALGORITHMS": "RS256,ES256", "EDGEPIPE_JWT_LEEWAY": "5",
                                    "EDGEPIPE_JWT_PUBLIC_ROUTES": "healthz, stripe-webhook", "EDGEPIPE_JWT_PUBLIC_PREFIXES": "/static/",
                                    "EDGEPIPE_JWT_CLAIM_HEADERS": "email=X-Authenticated-Email", "EDGEPIPE_JWT_AUDIT_FAILURES": "1",
                                    "EDGEPIPE_JWKS_COOLDOWN": "7", "EDGEPIPE_JWKS_TIMEOUT_MS": "300", "EDGEPIPE_JWT_MAX_BYTES": "4096"]).get()
        XCTAssertEqual(c.source, .file("/k.json"))
        XCTAssertEqual(c.verifier.policy.issuers, ["a", "b"])
        XCTAssertEqual(c.verifier.algorithms, AlgorithmSet([.rs256, .es256]))
        XCTAssertEqual(c.verifier.policy.leeway, 5)
        XCTAssertEqual(c.verifier.maxTokenBytes, 4096)
        XCTAssertEqual(c.gate.publicRoutes, ["healthz", "stripe-webhook"])
        XCTAssertEqual(c.gate.publicPrefixes, ["/static/"])
        XCTAssertEqual(c.gate.claimHeaders.map { $0.header }, ["x-authenticated-email"])
        XCTAssertTrue(c.gate.auditFailures)
        XCTAssertEqual(c.store.cooldown, 7)
        XCTAssertEqual(c.store.timeoutMillis, 300)
    }

    func testFlagsWinOverTheEnvironment() throws {
        let c = try parse(["--issuer", "flag"], env: ["EDGEPIPE_JWKS_FILE": "/k", "EDGEPIPE_JWT_ISSUER": "env", "EDGEPIPE_JWT_AUDIENCE": "a"]).get()
        XCTAssertEqual(c.verifier.policy.issuers, ["flag"])
    }

    func testDevKeysUseTheDevIssuerAndAudience() throws {
        let c = try parse(["--dev-keys", "/dev"]).get()
        XCTAssertEqual(c.source, .file("/dev/jwks.json"))
        XCTAssertEqual(c.verifier.policy.issuers, ["edgepipe-dev"])
        XCTAssertEqual(c.verifier.policy.audiences, ["edgepipe-dev"])
    }

    func testMisconfigurationsAreRefused() {
        let bad: [[String]] = [
            [],                                                                   // no keys
            ["--jwks-file", "/k", "--audience", "a"],                              // no issuer
            ["--jwks-file", "/k", "--issuer", "i"],                                // no audience
            ["--jwks-url", "http://keys.example/k", "--issuer", "i", "--audience", "a", "--jwks-cache", "/c"],  // plain http
            ["--jwks-url", "https://keys.example/k", "--issuer", "i", "--audience", "a"],  // no cache directory
            ["--jwks-file", "/k", "--jwks-url", "https://k/k", "--issuer", "i", "--audience", "a"],
            ["--firebase-project", "p", "--issuer", "other", "--jwks-cache", "/c"],
            ["--firebase-project", "Bad Project", "--jwks-cache", "/c"],
            ["--jwks-file", "/k", "--issuer", "i", "--audience", "a", "--algorithm", "HS256"],
            ["--jwks-file", "/k", "--issuer", "i", "--audience", "a", "--algorithm", "none"],
            ["--jwks-file", "/k", "--issuer", "i", "--audience", "a", "--claim-header", "sub=authorization"],
            ["--jwks-file", "/k", "--issuer", "i", "--audience", "a", "--claim-header", "email=bad header"],
            ["--jwks-file", "/k", "--issuer", "i", "--audience", "a", "--public-prefix", "healthz"],
            ["--jwks-file", "/k", "--issuer", "i", "--audience", "a", "--leeway", "-1"],
        ]
        for arguments in bad {
            if case .success = parse(arguments) { XCTFail("accepted \(arguments)") }
        }
    }

    func testInsecureModeNeedsALocalEnvironment() {
        guard case .failure(let e) = parse(["--insecure-no-verify"], env: ["EDGEPIPE_ENV": "production"]) else { return XCTFail() }
        XCTAssertTrue(e.description.contains("EDGEPIPE_ENV=local"))
        if case .success = parse(["--insecure-no-verify"]) { XCTFail("accepted without EDGEPIPE_ENV") }
        XCTAssertTrue((try? parse(["--insecure-no-verify"], env: ["EDGEPIPE_ENV": "local"]).get())?.gate.insecureNoVerify == true)
    }
}
