import XCTest
@testable import Records
import Crypto

final class JSONReaderTests: XCTestCase {
    func parses(_ text: String) -> JSON? { try? JSONReader.parse(text) }

    func testRoundTripsCompactJSONByteForByte() throws {
        let text = #"{"a":[1,-2.5e3,true,false,null],"b":{"c":"d\"\\\n\u0001é"},"n":12345678901234567890123}"#
        XCTAssertEqual(try JSONReader.parse(text).text, text)
    }

    func testKeepsMemberOrderAndNumbersAsWritten() throws {
        let v = try JSONReader.parse(#"{"z":1.50,"a":-0,"m":1E+2}"#)
        XCTAssertEqual(v.object?.keys, ["z", "a", "m"])
        XCTAssertEqual(v["z"], .number("1.50"))
        XCTAssertEqual(v["m"]?.double, 100)
    }

    func testAcceptsWhitespaceAroundTokens() throws {
        XCTAssertEqual(try JSONReader.parse(" \t{ \"a\" : [ 1 , 2 ] }\r\n"), ["a": [1, 2]])
    }

    func testDecodesEscapesAndSurrogatePairs() throws {
        XCTAssertEqual(try JSONReader.parse(#""\u00e9\ud83d\ude00\/\b\f\t""#), .string("é😀/\u{8}\u{c}\t"))
    }

    func testRefusesLoneSurrogates() {
        XCTAssertNil(parses(#""\ud83d""#))
        XCTAssertNil(parses(#""\ude00""#))
        XCTAssertNil(parses(#""\ud83d\u0041""#))
    }

    func testRefusesInvalidUTF8() {
        XCTAssertThrowsError(try JSONReader.parse([0x22, 0xC3, 0x28, 0x22]))
        XCTAssertThrowsError(try JSONReader.parse([0x22, 0xED, 0xA0, 0x80, 0x22])) // encoded surrogate
    }

    func testRefusesWhatRFC8259Refuses() {
        for bad in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
                    "'a'", "{a:1}", "\"a\tb\"", "\"\\x\"", "[1 2]", "{\"a\" 1}", "1 2", "NaN", "\"\\u12\""] {
            XCTAssertNil(parses(bad), "accepted \(bad)")
        }
    }

    func testRefusesDuplicateKeys() {
        XCTAssertThrowsError(try JSONReader.parse(#"{"id":"1","id":"2"}"#)) { error in
            XCTAssertTrue("\(error)".contains("duplicate key"))
        }
    }

    func testLimitsNestingDepth() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        XCTAssertNil(parses(deep))
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNotNil(parses(ok))
    }

    func testReportsTheOffsetOfAnError() {
        XCTAssertThrowsError(try JSONReader.parse(#"{"a":x}"#)) { error in
            XCTAssertEqual((error as? JSONError)?.offset, 5)
        }
    }
}

final class JSONWriterTests: XCTestCase {
    func testEscapesControlCharactersSoALineStaysOneLine() {
        let s = JSON.string("a\nb\rc\u{0}\u{1f}\"\\").text
        XCTAssertEqual(s, #""a\nb\rc\u0000\u001f\"\\""#)
        XCTAssertFalse(s.contains("\n"))
    }

    func testWritesNonASCIIAsUTF8() {
        XCTAssertEqual(JSON.string("é😀").text, "\"é😀\"")
    }

    func testObjectSubscriptReplacesAppendsAndRemoves() {
        var o = JSONObject([("a", 1), ("b", 2)])
        o["a"] = 3
        o["c"] = 4
        o["b"] = nil
        XCTAssertEqual(JSON.object(o).text, #"{"a":3,"c":4}"#)
    }
}

final class Base64Tests: XCTestCase {
    func testRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8))
        }
    }

    func testURLFormIsUnpaddedWithURLAlphabet() {
        XCTAssertEqual(Base64.urlEncode([0xFB, 0xFF]), "-_8")
        XCTAssertEqual(Base64.urlDecode("-_8"), [0xFB, 0xFF])
    }

    func testURLDecodingRefusesPaddingAndForeignCharacters() {
        XCTAssertNil(Base64.urlDecode("Zg=="))
        XCTAssertNil(Base64.urlDecode("+/8"))
        XCTAssertNil(Base64.urlDecode("Zm9v YmFy"))
        XCTAssertNil(Base64.urlDecode("Z"))
    }

    func testURLDecodingRefusesNonCanonicalTrailingBits() {
        XCTAssertEqual(Base64.urlDecode("Zg"), [0x66])
        XCTAssertNil(Base64.urlDecode("Zh"))   // same byte, stray low bits
    }

    func testStandardDecodingRefusesMissingPadding() {
        XCTAssertNil(Base64.decode("Zg"))
        XCTAssertNil(Base64.decode("Zg=a"))
    }
}

final class DigestTests: XCTestCase {
    func testSHA256OfABC() {
        XCTAssertEqual(Hex.encode(Digest.sha256(Array("abc".utf8))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testHMACSHA256RFC4231Case2() {
        XCTAssertEqual(Hex.encode(Digest.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    func testHMACSHA256RFC4231KeysLongerThanABlockAreHashedFirst() {
        let key = [UInt8](repeating: 0xAA, count: 131)
        XCTAssertEqual(Hex.encode(Digest.hmacSHA256(key: key, Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))),
                       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        XCTAssertEqual(Hex.encode(Digest.hmacSHA256(key: [], [])),
                       "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    func testConstantTimeEqual() {
        XCTAssertTrue(Digest.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(Digest.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(Digest.constantTimeEqual([1, 2], [1, 2, 3]))
    }

    func testHexRoundTripsAndRefusesOddInput() {
        XCTAssertEqual(Hex.decode("00ffAB"), [0, 255, 171])
        XCTAssertNil(Hex.decode("abc"))
        XCTAssertNil(Hex.decode("zz"))
    }

    func testRandomBytesDiffer() {
        XCTAssertNotEqual(Digest.randomBytes(32), Digest.randomBytes(32))
    }
}

final class ClockTests: XCTestCase {
    func testHTTPDateIsIMFFixdate() {
        XCTAssertEqual(Clock.httpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT")
    }

    func testISO8601() {
        XCTAssertEqual(Clock.iso8601(0), "1970-01-01T00:00:00Z")
    }
}
