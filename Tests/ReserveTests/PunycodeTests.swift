import XCTest
@testable import reserve

/// RFC 3492 §7.1 sample strings and the ways a hostile "xn--" label can be broken.
final class PunycodeTests: XCTestCase {
    private func scalars(_ values: [UInt32]) -> [Unicode.Scalar] { values.map { Unicode.Scalar($0)! } }

    private let samples: [(String, [UInt32])] = [
        // (A) Arabic (Egyptian)
        ("egbpdaj6bu4bxfgehfvwxn", [0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A, 0x0643, 0x0644,
                                    0x0645, 0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A, 0x061F]),
        // (B) Chinese (simplified)
        ("ihqwcrb4cv8a8dqg056pqjye", [0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4, 0x4E2D, 0x6587]),
        // (L) 3<nen>B<gumi><kinpachi><sensei>, lower-cased
        ("3b-ww4c5e180e575a65lsy2b", [0x0033, 0x5E74, 0x0062, 0x7D44, 0x91D1, 0x516B, 0x5148, 0x751F]),
        // (S) all basic code points
        ("-> $1.00 <--", Array("-> $1.00 <-".unicodeScalars.map(\.value))),
        ("bcher-kva", Array("bücher".unicodeScalars.map(\.value))),
        ("mnchen-3ya", Array("münchen".unicodeScalars.map(\.value))),
    ]

    func testRFC3492SamplesDecode() {
        for (encoded, decoded) in samples {
            XCTAssertEqual(Punycode.decode(encoded), scalars(decoded), encoded)
        }
    }

    func testRFC3492SamplesEncode() {
        for (encoded, decoded) in samples {
            XCTAssertEqual(Punycode.encode(scalars(decoded)), encoded, encoded)
        }
    }

    func testDecodingIgnoresDigitCaseAsTheRFCAllows() {
        XCTAssertEqual(Punycode.decode("bcher-KVA"), Punycode.decode("bcher-kva"))
        XCTAssertEqual(Punycode.decode("ihqwcrb4cv8a8dqg056pqjye"), Punycode.decode("IHQWCRB4CV8A8DQG056PQJYE"))
    }

    func testOverflowingDeltasAreRefused() {
        XCTAssertNil(Punycode.decode("99999999999999999999"))
        XCTAssertNil(Punycode.decode("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz9"))
    }

    func testTruncatedDeltaIsRefused() {
        // "kva" completes the delta for ü; "kv" stops mid-number.
        XCTAssertNil(Punycode.decode("bcher-kv9"))
        XCTAssertNotNil(Punycode.decode("bcher-kva"))
    }

    func testNonBasicInputIsRefused() {
        XCTAssertNil(Punycode.decode("bücher-kva"))
        XCTAssertNil(Punycode.decode("bcher-k_a"))
    }

    func testDeltasDecodingToBasicOrControlCodePointsAreRefused() {
        // "a" alone is the delta 0: code point U+0080, a C1 control, and never encoded.
        XCTAssertFalse(Punycode.isValidACELabel("xn--a"))
    }

    func testValidACELabels() {
        for label in ["xn--bcher-kva", "xn--mnchen-3ya", "xn--ihqwcrb4cv8a8dqg056pqjye", "xn--3b-ww4c5e180e575a65lsy2b"] {
            XCTAssertTrue(Punycode.isValidACELabel(label), label)
        }
    }

    func testACELabelsThatAreNotCanonicalOrAreAllASCIIAreRefused() {
        // Decodes to plain "abc": an all-ASCII name never needs the prefix.
        XCTAssertFalse(Punycode.isValidACELabel("xn--abc-"))
        XCTAssertFalse(Punycode.isValidACELabel("xn--"))
        // Decodes, but to an upper-case letter (Ü), which IDNA never encodes.
        let upper = "xn--" + Punycode.encode(Array("bÜcher".unicodeScalars))!
        XCTAssertFalse(Punycode.isValidACELabel(upper), upper)
        XCTAssertFalse(Punycode.isValidACELabel("bcher-kva"))
    }
}
