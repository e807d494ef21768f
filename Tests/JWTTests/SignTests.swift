import XCTest
@testable import VerifyJWTTool
#if canImport(Glibc)
import Glibc
#endif
@testable import Records
@testable import Crypto
@testable import JWT
@testable import sign_jwt

final class DevKeysTests: XCTestCase {
    func testFirstUseCreatesAPrivateKeyAndJWKSAndLaterUsesReuseThem() throws {
        let directory = temporaryDirectory(removedAfter: self) + "/dev-keys"
        let keys = DevKeys(directory: directory)
        let first = try keys.loadOrCreate()
        var st = stat()
        XCTAssertEqual(stat(directory, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(stat(keys.privateKeyPath, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let second = try keys.loadOrCreate()
        XCTAssertEqual(first.kid, second.kid)
        let set = try KeySet(document: readFile(keys.jwksPath)!)
        XCTAssertEqual(set.keyIDs, [first.kid])
    }

    func testDevTokensVerifyThroughTheNormalVerifier() throws {
        let keys = DevKeys(directory: temporaryDirectory(removedAfter: self) + "/dev")
        let (key, kid) = try keys.loadOrCreate()
        let token = try DevKeys.mint(uid: "alice", ttl: 600, extra: [("email", "a@example.com"), ("admin", true)],
                                     key: key, kid: kid, now: Mint.now)
        let set = try KeySet(document: readFile(keys.jwksPath)!)
        let verifier = JWTVerifier(policy: ClaimsPolicy(issuers: [DevKeys.issuer], audiences: [DevKeys.audience]))
        let verified = try verifier.verify(token, now: Mint.now + 1) { k, a throws(JWTError) in try set.verifier(kid: k, algorithm: a) }
        XCTAssertEqual(verified.subject, "alice")
        XCTAssertEqual(verified.algorithm, .rs256)
        XCTAssertEqual(verified.claims["email"], "a@example.com")
        XCTAssertEqual(verified.claims["admin"], true)
        XCTAssertEqual(verified.claims["exp"], JSON(Mint.now + 600))
        XCTAssertThrowsError(try verifier.verify(token, now: Mint.now + 601 + 60) { k, a throws(JWTError) in try set.verifier(kid: k, algorithm: a) })
    }

    func testAPrivateKeyWithoutItsJWKSGetsTheJWKSBack() throws {
        let keys = DevKeys(directory: temporaryDirectory(removedAfter: self) + "/dev")
        let (_, kid) = try keys.loadOrCreate()
        unlink(keys.jwksPath)
        XCTAssertEqual(try keys.loadOrCreate().kid, kid)
        XCTAssertEqual(try KeySet(document: readFile(keys.jwksPath)!).keyIDs, [kid])
    }
}

final class ServiceAccountTests: XCTestCase {
    func keyFile(_ key: PrivateKey, email: String = "sa@proj.iam.gserviceaccount.com") throws -> [UInt8] {
        JSONObject([("type", "service_account"), ("project_id", "proj"), ("private_key_id", "abc123"),
                    ("private_key", .string(String(decoding: try key.pemPKCS8(), as: UTF8.self))),
                    ("client_email", .string(email))]).serialized()
    }

    func testTokenCarriesGoogleSelfSignedJWTClaims() throws {
        let account = try ServiceAccount.parse(try keyFile(TestKeys.rsa))
        let token = try account.token(audience: "https://firestore.googleapis.com/", scopes: [], now: Mint.now)
        let jws = try CompactJWS.parse(token)
        XCTAssertEqual(jws.header, JSONObject([("alg", "RS256"), ("kid", "abc123"), ("typ", "JWT")]))
        XCTAssertEqual(jws.payload, JSONObject([("iss", "sa@proj.iam.gserviceaccount.com"), ("sub", "sa@proj.iam.gserviceaccount.com"),
                                                ("aud", "https://firestore.googleapis.com/"), ("iat", JSON(Mint.now)),
                                                ("exp", JSON(Mint.now + 3600))]))
        XCTAssertTrue(try SignatureVerifier(key: try TestKeys.rsa.publicKey(), algorithm: .rs256).verify(jws.signingInput, signature: jws.signature))
    }

    func testScopesBecomeOneSpaceSeparatedClaim() throws {
        let account = try ServiceAccount.parse(try keyFile(TestKeys.rsa))
        let jws = try CompactJWS.parse(try account.token(audience: nil, scopes: ["a", "b"], now: Mint.now))
        XCTAssertEqual(jws.payload["scope"], "a b")
        XCTAssertNil(jws.payload["aud"])
    }

    func testKeyFilesThatAreNotRSAServiceAccountsAreRefused() throws {
        XCTAssertThrowsError(try ServiceAccount.parse(try keyFile(TestKeys.p256)))
        XCTAssertThrowsError(try ServiceAccount.parse(Array(#"{"type":"authorized_user"}"#.utf8)))
        XCTAssertThrowsError(try ServiceAccount.parse(Array(#"{"client_email":"a","private_key_id":"b","private_key":"nope"}"#.utf8)))
        XCTAssertThrowsError(try ServiceAccount.parse(Array("not json".utf8)))
    }
}
