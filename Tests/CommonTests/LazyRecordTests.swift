import XCTest
@testable import Records

/// Record.parse keeps each field as the line's bytes until it is read; these tests pin
/// down that this is invisible: same values, same output, same refusals as a full parse.
final class LazyRecordTests: XCTestCase {
    let line = #"{"id":"7","method":"GET","path":"/v1/subscription","headers":[["host","h"],["authorization","Bearer a.b.c"],["x-tag","a\"b"]],"body":"{\"k\":\"v\\n\"}","keep_alive":true,"extra":{"n":[1,-2.5e3,null,false],"s":"é\u0001"}}"#

    func eager(_ text: String) throws -> JSONObject {
        guard case .object(let o) = try JSONReader.parse(text) else { throw JSONError("not an object", at: 0) }
        return o
    }

    func testFieldsReadTheSameAsAFullParse() throws {
        let lazy = try Record.parse(line)
        let full = try eager(line)
        XCTAssertEqual(lazy.object.keys, full.keys)
        for key in full.keys {
            XCTAssertEqual(lazy[key], full[key], key)
        }
        XCTAssertEqual(lazy.object, full)
    }

    func testAChangedRecordWritesItsUntouchedFieldsAsTheyWere() throws {
        var r = try Record.parse(line)
        r.setAnnotation("route", ["name": "x"])
        XCTAssertEqual(r.text, String(line.dropLast()) + #","annotations":{"route":{"name":"x"}}}"#)
    }

    func testSerialisesLikeTheWriterWhateverTheInputSpacingAndEscapes() throws {
        let inputs = [
            #"{ "a" : [ 1 , 2 ] , "b" : { "c" : "d" } }"#,
            #"{"s":"\/\b\f\u0041\u00e9\ud83d\ude00","t":"\u001F\u001f\u0009"}"#,
            #"{"n":1.50,"m":-0,"e":1E+2,"x":[],"y":{},"z":[[]]}"#,
            line,
        ]
        for input in inputs {
            var r = try Record.parse(input)
            r["added"] = 1   // forces a re-serialisation
            var o = try eager(input)
            o["added"] = 1
            XCTAssertEqual(r.text, JSON.object(o).text, input)
        }
    }

    func testFieldsWithDifferentSpellingsOfTheSameValueAreEqual() throws {
        let a = try Record.parse(#"{"h":[["a","b"]],"s":"A"}"#)
        let b = try Record.parse(#"{"h":[ ["a","b"] ],"s":"\u0041"}"#)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, try Record.parse(#"{"h":[["a","c"]],"s":"A"}"#))
    }

    func testRefusesInsideFieldsWhatTheReaderRefuses() {
        let bad = [
            #"{"h":[["a","b"],]}"#, #"{"b":"\x"}"#, #"{"b":"a\u12"}"#, #"{"b":"\ud83d"}"#,
            #"{"o":{"k":1,"k":2}}"#, #"{"o":{"k":1,"\u006b":2}}"#, #"{"id":"1","\u0069d":"2"}"#,
            #"{"n":01}"#, #"{"n":1.}"#, #"{"t":tru}"#, "{\"s\":\"a\tb\"}", #"{"a":1"#, #"{"a":1} x"#,
            "{\"d\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}",
        ]
        for text in bad {
            XCTAssertThrowsError(try Record.parse(text), text)
            XCTAssertThrowsError(try JSONReader.parse(text), text)
        }
        var invalid = Array(#"{"s":"é"}"#.utf8)
        invalid[invalid.count - 3] = 0x28   // é's continuation byte replaced
        XCTAssertThrowsError(try invalid.withUnsafeBufferPointer { try Record.parse($0) })
        let deepest = "{\"d\":" + String(repeating: "[", count: 63) + String(repeating: "]", count: 63) + "}"
        XCTAssertNoThrow(try Record.parse(deepest))
    }

    func testReportsErrorsAtTheSameOffsetsAsTheReader() {
        func offset(_ parse: () throws(JSONError) -> Void) -> Int {
            do { try parse(); return -1 } catch { return error.offset }
        }
        for text in [#"{"a":x}"#, #"{"a":[1,x]}"#, #"{"a":"\q"}"#, #"{"a":1,"a":2}"#, #"{"a":{"b":1,"b":2}}"#] {
            let viaRecord = offset { () throws(JSONError) in _ = try Record.parse(text) }
            XCTAssertEqual(viaRecord, offset { () throws(JSONError) in _ = try JSONReader.parse(text) }, text)
            XCTAssertNotEqual(viaRecord, -1, text)
        }
    }

    func testStringScanFindsEachSpecialByteAtEveryOffset() throws {
        // The scan looks at 8 bytes at a time: put each kind of byte at every position
        // around those boundaries.
        for offset in 0..<20 {
            let pad = String(repeating: "x", count: offset)
            for (escaped, decoded) in [(#"\""#, "\""), (#"\\"#, "\\"), (#"\n"#, "\n"), (#"\u0001"#, "\u{1}"),
                                       ("é", "é"), ("😀", "😀"), (#"\ud83d\ude00"#, "😀")] {
                let text = "{\"s\":\"\(pad)\(escaped)\(pad)\"}"
                XCTAssertEqual(try Record.parse(text)["s"], .string(pad + decoded + pad), text)
                XCTAssertEqual(try JSONReader.parse(text)["s"], .string(pad + decoded + pad), text)
            }
            XCTAssertThrowsError(try Record.parse("{\"s\":\"\(pad)\u{1}\(pad)\"}"))
            XCTAssertThrowsError(try Record.parse("{\"s\":\"\(pad)"))
            var bytes = Array("{\"s\":\"\(pad)é\(pad)\"}".utf8)
            bytes[6 + offset + 1] = 0x41   // a lead byte without its continuation
            XCTAssertThrowsError(try bytes.withUnsafeBufferPointer { try Record.parse($0) })
        }
    }

    func testDecodesStringsThatAreMostlyOrOnlyEscapes() throws {
        let cases: [(String, String)] = [
            (#"\n"#, "\n"), (#"\\\\"#, "\\\\"), (#"\"\"\""#, "\"\"\""), (#"\u0000"#, "\u{0}"),
            (#"\ud83d\ude00\ud83d\ude00"#, "😀😀"), (#"a\/b\bc\fd"#, "a/b\u{8}c\u{c}d"),
            (#"\u00e9\u20ac\uFFFD"#, "é€\u{FFFD}"), (#"x\\"#, "x\\"), (#"\\x"#, "\\x"),
        ]
        for (escaped, decoded) in cases {
            XCTAssertEqual(try JSONReader.parse("\"\(escaped)\""), .string(decoded), escaped)
            XCTAssertEqual(try Record.parse("{\"s\":\"\(escaped)\"}")["s"], .string(decoded), escaped)
        }
    }

    func testWriterEscapesEachSpecialByteAtEveryOffset() throws {
        for offset in 0..<20 {
            let pad = String(repeating: "y", count: offset)
            for special in ["\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "é"] {
                let s = pad + special + pad + special
                let text = JSON.string(s).text
                XCTAssertFalse(text.utf8.contains { $0 < 0x20 }, text)
                XCTAssertEqual(try JSONReader.parse(text), .string(s))
            }
        }
    }

    func testHeadersSetFromAListAreWrittenAsTheWriterWouldWriteThem() throws {
        let headers = [Header("a", "1"), Header("b", "x\"y\u{1}"), Header("a", "é")]
        var set = try Record.parse(#"{"id":"1","headers":[["old","x"]]}"#)
        set.headers = headers
        var built = try Record.parse(#"{"id":"1"}"#)
        built.object["headers"] = .array(headers.map { .array([.string($0.name), .string($0.value)]) })
        XCTAssertEqual(set.serialized(), built.serialized())
        XCTAssertEqual(set, built)
        XCTAssertEqual(set.headers, headers)
        XCTAssertEqual(set.headerValues("a"), ["1", "é"])
        set.headers = []
        XCTAssertEqual(set.text, #"{"id":"1","headers":[]}"#)
    }

    func testHeaderLookupsWithoutParsingMatchParsedHeaders() throws {
        let text = #"{"headers":[["a","1"],["b","x\"y"],["a","2"],["c","é"]]}"#
        let raw = try Record.parse(text)
        var parsed = raw
        parsed.object["headers"] = raw.object["headers"]   // now held parsed
        XCTAssertEqual(raw.headers, parsed.headers)
        for name in ["a", "b", "c", "missing"] {
            XCTAssertEqual(raw.header(name), parsed.header(name), name)
            XCTAssertEqual(raw.headerValues(name), parsed.headerValues(name), name)
        }
        XCTAssertEqual(raw.headerValues("a"), ["1", "2"])
        XCTAssertEqual(raw.header("b"), "x\"y")
        // Lists that are not plain pairs are read the slow way, with the same answers.
        let odd = try Record.parse(#"{"headers":[["a"],["a","1","x"],[1,2],["a","3"]]}"#)
        XCTAssertEqual(odd.headerValues("a"), ["3"])
        XCTAssertNil(try Record.parse(#"{"id":"1"}"#).header("a"))
    }

    func testAnnotationLookupsWithoutParsingMatchParsedAnnotations() throws {
        let r = try Record.parse(#"{"annotations":{"route":{"name":"s","params":{}},"x\"y":{"uid":"u"},"n":null}}"#)
        var parsed = r
        parsed["annotations"] = r["annotations"]   // now held parsed
        for key in ["route", "x\"y", "n", "missing", ""] {
            XCTAssertEqual(r.annotation(key), parsed.annotation(key), key)
        }
        XCTAssertEqual(r.annotation("x\"y")?["uid"], "u")
        XCTAssertEqual(r.annotation("n"), .null)
        XCTAssertEqual(r.annotation("route")?["name"], "s")
        XCTAssertNil(try Record.parse(#"{"annotations":"x"}"#).annotation("route"))
        XCTAssertNil(try Record.parse(#"{"annotations":{}}"#).annotation("route"))
    }

    func testResponsesKeepTheRequestsFieldsAsTheyWere() throws {
        let request = try Record.parse(#"{"id":"9","method":"GET","version":"HTTP/1.1","keep_alive":true,"remote":"::1","annotations":{"auth":{"uid":"u"}}}"#)
        let response = request.response(status: 204)
        XCTAssertEqual(response.text,
                       #"{"id":"9","method":"GET","version":"HTTP/1.1","keep_alive":true,"remote":"::1","status":204,"headers":[],"body":"","annotations":{"auth":{"uid":"u"}}}"#)
    }
}
