import XCTest
@testable import apply_webhook
import Foundation


/// The Stripe-Signature verifier against known answers produced by Stripe's official
/// Python library (stripe 16.1.0, WebhookSignature.generate_signature_header), and the
/// cases of the official libraries' webhook test suites. The system tests
/// (Tests/system/test_webhook_signature.py) run the same cases end to end with headers
/// generated live by the library.
final class SignatureTests: XCTestCase {
    let payload = Array("{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}".utf8)
    let secret = "whsec_test_secret"
    let t = 1_700_000_000
    /// stripe.WebhookSignature.generate_signature_header(payload, "whsec_test_secret", timestamp=1700000000)
    let stripeHeader = "t=1700000000,v1=4f1cd7feda9826e746b7d482c4badebb657398df1099e1046364f6196a230150"
    /// The same with the secret "test_secret" (its whsec_ prefix dropped).
    let unprefixedSignature = "81d2dbbf6b6f7a35b1aad135f5871c81c7ac8e13f5c55b0236c9dcb3dbeb94ea"

    func verify(_ header: String?, payload: [UInt8]? = nil, secrets: [String]? = nil, tolerance: Int = 300,
                now: Int? = nil) -> StripeSignature.Failure? {
        do {
            try StripeSignature.verify(payload: payload ?? self.payload, header: header, secrets: secrets ?? [secret],
                                       tolerance: tolerance, now: now ?? t)
            return nil
        } catch { return error }
    }

    func testSignsExactlyAsStripesPythonLibrary() {
        XCTAssertEqual(StripeSignature.header(payload: payload, secret: secret, timestamp: t), stripeHeader)
        // Non-ASCII body and secret: the HMAC is over their UTF-8 bytes.
        XCTAssertEqual(StripeSignature.signature(payload: Array("h\u{e9}llo \u{2603}".utf8), secret: "whsec_\u{e9}", timestamp: 12345),
                       "73fac1fc2ade6428811d9de3071582fed16f1c17176d97cfb8cc7948df9fefc6")
    }

    func testAcceptsAValidSignature() {
        XCTAssertNil(verify(stripeHeader))
    }

    func testRefusesTheWrongSecret() {
        XCTAssertEqual(verify(stripeHeader, secrets: ["whsec_other"])?.check, .noMatchingSignature)
        XCTAssertEqual(verify(stripeHeader, secrets: ["whsec_other"])?.message,
                       "No signatures found matching the expected signature for payload")
    }

    func testTheSecretsWhsecPrefixIsPartOfTheKey() {
        // Signed with "test_secret": our secret "whsec_test_secret" must not match it...
        XCTAssertEqual(verify("t=\(t),v1=\(unprefixedSignature)")?.check, .noMatchingSignature)
        // ...and the prefix-less secret does not match a real signature either.
        XCTAssertEqual(verify(stripeHeader, secrets: ["test_secret"])?.check, .noMatchingSignature)
    }

    func testRefusesATamperedBody() {
        var tampered = payload
        tampered[tampered.count - 3] = UInt8(ascii: "E")
        XCTAssertEqual(verify(stripeHeader, payload: tampered)?.check, .noMatchingSignature)
    }

    func testRefusesATrailingNewlineAddedToTheBody() {
        XCTAssertEqual(verify(stripeHeader, payload: payload + [0x0A])?.check, .noMatchingSignature)
    }

    func testToleranceBoundaryIsInclusive() {
        XCTAssertNil(verify(stripeHeader, now: t + 300))
        let failure = verify(stripeHeader, now: t + 301)
        XCTAssertEqual(failure?.check, .outsideTolerance)
        XCTAssertEqual(failure?.message, "Timestamp outside the tolerance zone (1700000000)")
        // Timestamps in the future are not refused (as in the libraries).
        XCTAssertNil(verify(stripeHeader, now: t - 10_000))
    }

    func testZeroToleranceDisablesTheAgeCheck() {
        XCTAssertNil(verify(stripeHeader, tolerance: 0, now: t + 10_000_000))
    }

    func testSignatureIsCheckedBeforeTheTimestamp() {
        // An old header with a bad signature reports the signature, as the libraries do.
        XCTAssertEqual(verify("t=\(t),v1=bad", now: t + 1000)?.check, .noMatchingSignature)
    }

    func testAcceptsOneGoodSignatureAmongSeveral() {
        let good = String(stripeHeader.split(separator: "=").last!)
        XCTAssertNil(verify("t=\(t),v1=\(String(repeating: "0", count: 64)),v1=\(good)"))
        XCTAssertNil(verify(stripeHeader + ",v1=bad_signature"))
        XCTAssertNil(verify(stripeHeader + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"))
    }

    func testOnlyV0IsNoSignatureWithTheExpectedScheme() {
        let v0 = stripeHeader.replacingOccurrences(of: "v1=", with: "v0=")
        XCTAssertEqual(verify(v0)?.check, .noExpectedScheme)
        XCTAssertEqual(verify(v0)?.message, "No signatures found with expected scheme v1")
    }

    func testAcceptsEitherSecretDuringRotation() {
        let newSecret = "whsec_rotated_new"
        let signedWithNew = StripeSignature.header(payload: payload, secret: newSecret, timestamp: t)
        XCTAssertNil(verify(stripeHeader, secrets: [newSecret, secret]))
        XCTAssertNil(verify(signedWithNew, secrets: [newSecret, secret]))
        XCTAssertEqual(verify(signedWithNew, secrets: [secret])?.check, .noMatchingSignature)
        // Stripe signs with both secrets during the overlap: one header, two v1.
        let both = stripeHeader + ",v1=" + StripeSignature.signature(payload: payload, secret: newSecret, timestamp: t)
        XCTAssertNil(verify(both, secrets: [newSecret]))
    }

    func testMissingOrEmptyHeader() {
        XCTAssertEqual(verify(nil)?.check, .missingHeader)
        XCTAssertEqual(verify("")?.check, .missingHeader)
        XCTAssertEqual(verify("")?.message, "No Stripe-Signature header value was provided.")
    }

    func testMalformedHeaders() {
        for header in ["bad_header", "t=", "v1,t=1", "t", "t=abc,v1=00", "i'm not even a real signature header",
                       "v1=\(unprefixedSignature)", "t=1700000000x,v1=00"] {
            let failure = verify(header)
            XCTAssertEqual(failure?.check, .malformedHeader, header)
            XCTAssertEqual(failure?.message, "Unable to extract timestamp and signatures from header", header)
        }
    }

    func testItemsAreNotTrimmed() {
        // " v1=..." is not a v1 item in Stripe's libraries either.
        XCTAssertEqual(verify(stripeHeader.replacingOccurrences(of: ",v1=", with: ", v1="))?.check, .noExpectedScheme)
    }

    func testHexIsComparedAsTextLikeTheLibraries() {
        XCTAssertEqual(verify(stripeHeader.uppercased().replacingOccurrences(of: "T=", with: "t=")
            .replacingOccurrences(of: "V1=", with: "v1="))?.check, .noMatchingSignature)
    }

    func testTimestampIsSignedInCanonicalForm() {
        // "%d" % int("01700000000") in stripe-python: the signed text is "1700000000.".
        let sig = String(stripeHeader.split(separator: "=").last!)
        XCTAssertNil(verify("t=01700000000,v1=\(sig)"))
        // The first t wins.
        XCTAssertNil(verify("t=\(t),t=5,v1=\(sig)"))
    }

    func testNoSecretConfigured() {
        XCTAssertEqual(verify(stripeHeader, secrets: [])?.check, .noSecret)
    }

    func testSecretsFileAndList() throws {
        XCTAssertEqual(try StripeSecrets.parseFile("# comment\nwhsec_a\r\n\n  whsec_b  \nwhsec_a\n"), ["whsec_a", "whsec_b"])
        XCTAssertThrowsError(try StripeSecrets.parseFile("whsec_a whsec_b\n"))
        XCTAssertEqual(StripeSecrets.parseList("whsec_a, whsec_b whsec_c,,"), ["whsec_a", "whsec_b", "whsec_c"])
    }

    /// ASCII files are split as bytes; a trailing non-ASCII comment sends the same text
    /// down the Character path, which must agree (secrets and error line numbers).
    func testSecretsFileBytesMatchCharacters() {
        for text in ["# c\nwhsec_a\r\n\n  whsec_b  \nwhsec_a\n", "a\rb\r\n\rc", " \t\n\u{0B}x\u{0C}\n",
                     "whsec_a whsec_b\n", "x\n\n y\tz \n", "", "\n\n#a b\n", "\r\r\nw\u{0B}v"] {
            var bytes: [String]?, characters: [String]?, e1: String?, e2: String?
            do { bytes = try StripeSecrets.parseFile(text) } catch { e1 = error.message }
            do { characters = try StripeSecrets.parseFile(text + "\n# \u{e9}") } catch { e2 = error.message }
            XCTAssertEqual(bytes, characters, text)
            XCTAssertEqual(e1, e2, text)
        }
    }
}
