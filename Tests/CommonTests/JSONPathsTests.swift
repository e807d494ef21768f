import XCTest
@testable import Records

/// Record.forEachValue(at:) finds nested values in one pass, over a member's bytes or its
/// parsed tree; whatever the record's shape, it must find what looking up each path finds.
final class JSONPathsTests: XCTestCase {
    let paths = JSONPaths([["access", "received_us"], ["annotations", "route", "name"], ["annotations", "auth", "uid"],
                           ["annotations", "auth", "refused"], ["annotations", "upstream", "name"],
                           ["annotations", "upstream", "status"], ["annotations", "upstream", "ms"], ["status"],
                           ["annotations", "route"], ["missing", "x"]])

    /// What the paths lead to in the fully parsed record.
    func walked(_ text: String) throws -> [JSON?] {
        let tree = try JSONReader.parse(text)
        return paths.names.map { keys in keys.reduce(tree as JSON?) { $0?.object?[$1] } }
    }

    func check(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try walked(text)
        XCTAssertEqual(try Record.parse(text).values(at: paths), expected, "raw", file: file, line: line)
        var parsed = try Record.parse(text)
        for key in parsed.object.keys { parsed[key] = parsed[key] }   // every member a tree
        XCTAssertEqual(parsed.values(at: paths), expected, "parsed", file: file, line: line)
    }

    func testFindsNestedValuesLikeAWalkOfTheTree() throws {
        let r = try Record.parse(#"{"id":"1","status":200,"access":{"received_at":1,"received_us":11868655140,"path":"/v1/x"},"#
            + #""annotations":{"route":{"name":"subscription","params":{"a":[1,{"b":"}"}]}},"auth":{"uid":"u-1"},"#
            + #""upstream":{"name":"billing","status":503,"ms":12.5}}}"#)
        let v = r.values(at: paths)
        XCTAssertEqual(v[0], .number("11868655140"))
        XCTAssertEqual(v[1], .string("subscription"))
        XCTAssertEqual(v[2], .string("u-1"))
        XCTAssertNil(v[3])
        XCTAssertEqual(v[4], .string("billing"))
        XCTAssertEqual(v[5]?.int, 503)
        XCTAssertEqual(v[6], .number("12.5"))
        XCTAssertEqual(v[7]?.int, 200)
        XCTAssertEqual(v[8], ["name": "subscription", "params": ["a": [1, ["b": "}"]]]])
        XCTAssertNil(v[9])
    }

    func testAgreesWithTheTreeOnAwkwardRecords() throws {
        for text in [
            #"{"id":"1"}"#,
            #"{"annotations":{}}"#,
            #"{"annotations":{"route":"not an object","auth":null,"upstream":[{"name":"x"}]}}"#,
            #"{"annotations":{"route":{"name":{"nested":true}},"auth":{"uid":"a\"b\\c\u0001é","refused":"expired"}}}"#,
            #"{"annotations":{"ro\u0075te":{"name":"escaped key"},"auth":{"uid":"\"quoted\""}}}"#,
            #"{"annotations":{"x":"{[\"","route":{"params":{"name":"inner"},"name":"outer"}}}"#,
            #"{"annotations":{"upstream":{"name":"u","status":-1.5e3,"ms":false}},"status":true}"#,
            #"{ "status" : 404 , "annotations" : { "route" : { "name" : "spaced" } } }"#,
            #"{"access":[],"annotations":{"route":{"name":""}},"missing":{"x":null}}"#,
        ] {
            try check(text)
        }
    }

    func testAPathIsFoundOnceAndOnlyWhenPresent() throws {
        let r = try Record.parse(#"{"annotations":{"auth":{"uid":"u"}},"status":201}"#)
        var seen: [Int] = []
        r.forEachValue(at: paths) { i, _ in seen.append(i) }
        XCTAssertEqual(seen.sorted(), [2, 7])
    }
}

extension JSONPathsTests {
    func testKeysWithTheWritersEscapesMatchTheirDecodedText() throws {
        let r = try Record.parse(#"{"annotations":{"a\"b":{"tab\tkey":1},"a":{"tab\tkey":2}}}"#)
        XCTAssertEqual(r.values(at: JSONPaths([["annotations", "a\"b", "tab\tkey"], ["annotations", "a", "tab\tkey"]])),
                       [.number("1"), .number("2")])
    }
}

extension JSONPathsTests {
    /// Random records (seeded: the same every run) of nested objects, arrays and scalars,
    /// keys from a small set so that paths often match: the scan finds what the tree walk finds.
    func testAgreesWithTheTreeOnRandomRecords() throws {
        var state: UInt64 = 17
        func next() -> UInt64 {   // Knuth's MMIX LCG, high bits: seeded, the same every run
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let keys = ["a", "b", "route", "name", "a\"b", "é", ""]
        func value(_ depth: Int) -> JSON {
            switch next() % (depth > 3 ? 4 : 7) {
            case 0: return .number(String(Int(next() % 2000) - 1000))
            case 1: return .string(keys[Int(next() % UInt64(keys.count))] + "\\}\n")
            case 2: return [.null, .bool(true), .bool(false)][Int(next() % 3)]
            case 3: return .number("-1.5e3")
            case 4, 5: return .object(object(depth + 1))
            default: return .array((0..<Int(next() % 3)).map { _ in value(depth + 1) })
            }
        }
        func object(_ depth: Int) -> JSONObject {
            var o = JSONObject()
            for key in keys where next() % 3 == 0 { o[key] = value(depth) }
            return o
        }
        var paths: [[String]] = []
        for _ in 0..<20 {
            paths.append((0...Int(next() % 3)).map { _ in keys[Int(next() % UInt64(keys.count))] })
        }
        let set = JSONPaths(paths)
        for _ in 0..<300 {
            let text = JSON.object(object(0)).text
            let tree = try JSONReader.parse(text)
            let expected = set.names.map { $0.reduce(tree as JSON?) { $0?.object?[$1] } }
            XCTAssertEqual(try Record.parse(text).values(at: set), expected, text)
            var parsed = try Record.parse(text)
            for (n, key) in parsed.object.keys.enumerated() where n % 2 == 0 { parsed[key] = parsed[key] }   // half the members trees
            XCTAssertEqual(parsed.values(at: set), expected, "half parsed: " + text)
        }
    }
}

extension JSONPathsTests {
    /// leadingInt answers only for plain digits in the object's first member, and nil
    /// otherwise, for the caller to look the path up the general way.
    func testALeadingIntIsReadOnlyWhereAndAsWritten() throws {
        func leading(_ access: String) throws -> Int? {
            let raw = try Record.parse(#"{"id":"1","access":"# + access + "}")
            var tree = raw
            tree["access"] = tree["access"]
            XCTAssertEqual(raw.leadingInt(of: "access", key: "received_us"), tree.leadingInt(of: "access", key: "received_us"), access)
            return raw.leadingInt(of: "access", key: "received_us")
        }
        XCTAssertEqual(try leading(#"{"received_us":11868655140,"received_at":1}"#), 11_868_655_140)
        XCTAssertEqual(try leading(#"{"received_us":0}"#), 0)
        XCTAssertNil(try leading(#"{"received_at":1,"received_us":5}"#), "not first")
        XCTAssertNil(try leading(#"{"received_usx":5}"#), "another key with the same start")
        XCTAssertNil(try leading(#"{"received_u":5}"#))
        XCTAssertNil(try leading(#"{"received_us":-5}"#), "signed: the general way")
        XCTAssertNil(try leading(#"{"received_us":1.5}"#))
        XCTAssertNil(try leading(#"{"received_us":"5"}"#))
        XCTAssertNil(try leading(#"{"received_us":1234567890123456789}"#), "longer than 18 digits: the general way")
        XCTAssertNil(try leading(#"{}"#))
        XCTAssertNil(try leading(#"[1]"#))
        XCTAssertNil(try Record.parse(#"{"id":"1"}"#).leadingInt(of: "access", key: "received_us"))
    }
}
