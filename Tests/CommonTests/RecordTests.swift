import XCTest
@testable import Records

final class RecordTests: XCTestCase {
    let requestLine = #"{"id":"7","method":"HEAD","path":"/a","query":"x=1","version":"HTTP/1.0","headers":[["host","h"],["x-tag","a"],["x-tag","b"]],"body":"","remote":"10.0.0.1","keep_alive":true,"extra":{"kept":true}}"#

    func testReadsRequestFields() throws {
        let r = try Record.parse(requestLine)
        XCTAssertEqual(r.id, "7")
        XCTAssertEqual(r.method, "HEAD")
        XCTAssertEqual(r.query, "x=1")
        XCTAssertEqual(r.remote, "10.0.0.1")
        XCTAssertTrue(r.keepAlive)
        XCTAssertFalse(r.isResponse)
    }

    func testKeepsRepeatedHeadersInOrder() throws {
        let r = try Record.parse(requestLine)
        XCTAssertEqual(r.headerValues("x-tag"), ["a", "b"])
        XCTAssertEqual(r.header("x-tag"), "a")
    }

    func testSetHeaderReplacesEveryValue() throws {
        var r = try Record.parse(requestLine)
        r.setHeader("x-tag", "c")
        XCTAssertEqual(r.headerValues("x-tag"), ["c"])
        r.removeHeader("x-tag")
        XCTAssertNil(r.header("x-tag"))
    }

    func testBodyKeepsExactBytesAsTextOrBase64() {
        var r = Record(JSONObject())
        r.body = Array("héllo".utf8)
        XCTAssertEqual(r["body"], .string("héllo"))
        XCTAssertNil(r["body_base64"])
        r.body = [0xFF, 0x00, 0xFE]
        XCTAssertNil(r["body"])
        XCTAssertEqual(r["body_base64"], .string("/wD+"))
        XCTAssertEqual(r.body, [0xFF, 0x00, 0xFE])
    }

    func testResponseKeepsConnectionFieldsAndAnnotations() throws {
        var request = try Record.parse(requestLine)
        request.setAnnotation(AnnotationKey.route, ["name": "x"])
        let response = request.errorResponse(status: 404, error: "not_found", message: "no route")
        XCTAssertTrue(response.isResponse)
        XCTAssertEqual(response.status, 404)
        for key in ["id", "method", "version", "keep_alive", "remote"] {
            XCTAssertEqual(response[key], request[key], key)
        }
        XCTAssertEqual(response.annotation(AnnotationKey.route)?["name"], "x")
        XCTAssertEqual(response.header("content-type"), "application/json")
        XCTAssertEqual(try JSONReader.parse(response.body)["error"], "not_found")
        XCTAssertNil(response["path"])
    }

    func testAnnotationsDisappearWhenEmptied() throws {
        var r = try Record.parse(requestLine)
        r.setAnnotation("audit", ["kind": "x"])
        XCTAssertNotNil(r["annotations"])
        r.setAnnotation("audit", nil)
        XCTAssertNil(r["annotations"])
    }

    func testRefusesANonObjectLine() {
        XCTAssertThrowsError(try Record.parse("[1]"))
    }
}

final class FilterLoopTests: XCTestCase {
    func run(_ line: String, seesResponses: Bool = false, _ handle: (inout Record) throws -> Void) -> String {
        var out: [UInt8] = []
        let loop = FilterLoop(seesResponses: seesResponses)
        Array(line.utf8).withUnsafeBufferPointer { loop.process($0, handle, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    func testUntouchedRecordsPassByteForByte() {
        let line = #"{ "id" : "1", "method":"GET", "unknown": [1.0, {"deep": null}] }"#
        XCTAssertEqual(run(line) { _ in }, line)
    }

    func testResponsesPassUntouchedWithoutCallingTheFilter() {
        let line = #"{"id":"1","status":200,"body":""}"#
        XCTAssertEqual(run(line) { _ in XCTFail("called on a response") }, line)
    }

    func testFiltersThatSeeResponsesAreCalled() {
        var called = false
        _ = run(#"{"id":"1","status":200}"#, seesResponses: true) { _ in called = true }
        XCTAssertTrue(called)
    }

    func testChangedRecordsKeepUnknownFields() throws {
        let out = run(#"{"id":"1","path":"/","mystery":{"a":[1,2]}}"#) { r in r.setHeader("x-a", "b") }
        let r = try Record.parse(out)
        XCTAssertEqual(r["mystery"], ["a": [1, 2]])
        XCTAssertEqual(r.header("x-a"), "b")
    }

    func testMalformedLineBecomesA400WithItsRecoveredID() throws {
        let out = run(#"{"id":"42","method":"GET",broken"#) { _ in XCTFail("called") }
        let r = try Record.parse(out)
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.id, "42")
        XCTAssertEqual(r.keepAlive, false)
        XCTAssertEqual(try JSONReader.parse(r.body)["error"], "bad_record")
    }

    func testThrownFilterErrorBecomesItsJSONResponse() throws {
        let out = run(#"{"id":"1","path":"/"}"#) { _ in
            throw FilterError(status: 503, code: "unavailable", message: "store down")
        }
        let r = try Record.parse(out)
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(try JSONReader.parse(r.body)["message"], "store down")
    }

    func testOtherErrorsBecome500() throws {
        struct Boom: Error {}
        let out = run(#"{"id":"1","path":"/"}"#) { _ in throw Boom() }
        XCTAssertEqual(try Record.parse(out).status, 500)
    }
}

/// Several filters in one process (`chain`): each record through the stages in order, as
/// through a pipeline of them.
final class StagesTests: XCTestCase {
    func run(_ line: String, _ stages: [Stage]) -> String {
        var out: [UInt8] = []
        let loop = FilterLoop(seesResponses: true)
        Array(line.utf8).withUnsafeBufferPointer { loop.process($0, FilterLoop.chained(stages), into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    func testEachStageGetsWhatTheOneBeforeItMade() throws {
        let out = run(#"{"id":"1","path":"/"}"#, [
            Stage(program: "a") { $0.setHeader("x-a", "1") },
            Stage(program: "b") { r in r.setHeader("x-b", r.header("x-a") == "1" ? "saw a" : "missed a") },
        ])
        XCTAssertEqual(try Record.parse(out).header("x-b"), "saw a")
    }

    func testAnAnswerPassesTheStagesThatDoNotSeeResponses() throws {
        var seen: [String] = []
        let out = run(#"{"id":"1","path":"/"}"#, [
            Stage(program: "answers") { r in r = r.errorResponse(status: 404, error: "not_found", message: "no route") },
            Stage(program: "skipped") { _ in seen.append("skipped") },
            Stage(program: "audits", seesResponses: true) { _ in seen.append("audits") },
        ])
        XCTAssertEqual(try Record.parse(out).status, 404)
        XCTAssertEqual(seen, ["audits"])
    }

    func testAThrownErrorAnswersTheRecordAsItReachedThatStage() throws {
        let out = run(#"{"id":"7","path":"/"}"#, [
            Stage(program: "a") { r in r.keepAlive = false },
            Stage(program: "b") { r in
                r.setHeader("x-half-done", "1")
                throw FilterError(status: 503, code: "unavailable", message: "store down")
            },
            Stage(program: "c") { _ in XCTFail("a later stage got the answer") },
        ])
        let r = try Record.parse(out)
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.id, "7")
        XCTAssertEqual(r.keepAlive, false, "what stage a did stays")
        XCTAssertEqual(try JSONReader.parse(r.body)["error"], "unavailable")
    }

    func testLogLinesAreNamedByTheStageThatWroteThem() {
        Log.program = "chain"
        var during = ""
        _ = run(#"{"id":"1","path":"/"}"#, [Stage(program: "verify-jwt") { _ in during = Log.program }])
        XCTAssertEqual(during, "verify-jwt")
        XCTAssertEqual(Log.program, "chain", "restored for what no stage wrote")
    }

    func testAnUntouchedRecordPassesByteForByte() {
        let line = #"{ "id" : "1", "method":"GET" }"#
        XCTAssertEqual(run(line, [Stage(program: "a") { _ in }, Stage(program: "b") { _ in }]), line)
    }
}

final class HeaderConsistencyTests: XCTestCase {
    // Found by fuzz/json_record.swift: a malformed pair must be skipped alike by every accessor.
    func testHeaderSkipsANonStringPairLikeHeadersDoes() throws {
        let r = try Record.parse(#"{"id":"1","headers":[["a",1],["a","b"]]}"#)
        XCTAssertEqual(r.header("a"), "b")
        XCTAssertEqual(r.headerValues("a"), ["b"])
    }

    func testListElementsAreTrimmedAndLowerCasedInASCII() {
        XCTAssertEqual(HTTPSyntax.listElements(["Keep-Alive", " close ,\tUpgrade"]), ["keep-alive", "close", "upgrade"])
        XCTAssertEqual(HTTPSyntax.listElements(["a,,b", ""]), ["a", "b"])
        XCTAssertEqual(HTTPSyntax.listElements(["a,,b", "", "c,"], keepEmpty: true), ["a", "", "b", "", "c", ""])
        // Tokens are ASCII: a Kelvin sign is not a K.
        XCTAssertEqual(HTTPSyntax.listElements(["\u{212A}eep-alive", "CHUNKED\u{e9}"]), ["\u{212A}eep-alive", "chunked\u{e9}"])
    }

    func testContentLengthIsOneDecimalValueHoweverOftenRepeated() {
        XCTAssertEqual(HTTPSyntax.contentLength(["5"]), .success(5))
        XCTAssertEqual(HTTPSyntax.contentLength(["005", " 5 ,5", "5"]), .success(5))
        XCTAssertEqual(HTTPSyntax.contentLength(["000"]), .success(0))
        XCTAssertEqual(HTTPSyntax.contentLength([]), .success(0))
        XCTAssertEqual(HTTPSyntax.contentLength(["999999999999999"]), .success(999_999_999_999_999))
        XCTAssertEqual(HTTPSyntax.contentLength(["0001000000000000000"]), .failure(.tooLong))
        XCTAssertEqual(HTTPSyntax.contentLength(["5", "6"]), .failure(HTTPSyntax.Problem("conflicting Content-Length values")))
        for bad in ["", "-5", "+5", "5,", ",5", "5 5", "0x10", "\u{0665}"] {
            XCTAssertEqual(HTTPSyntax.contentLength([bad]), .failure(HTTPSyntax.Problem("malformed Content-Length")), bad)
        }
        XCTAssertEqual(HTTPSyntax.contentLength(["5\t,\t5"]), .success(5))
    }
}
