// The JSON reader and writer (Sources/Common/Records/JSON.swift), records (Record.swift) and the
// per-line step of the filter loop (FilterLoop.process), which every filter runs on
// every line it reads.
//
// The input is what a filter reads on stdin. Properties, beyond "no crash":
//   - a value that reads serialises to one compact line (no byte below 0x20) that reads
//     back to the same value and serialises to the same bytes (a fixed point);
//   - every number's Int/Double views and every record accessor are total;
//   - each line becomes exactly one output line that is a JSON object: the line itself
//     (untouched or a response), the filter's change, or a 400 bad_record with keep_alive
//     false when the line was not a record;
//   - a body set from bytes reads back as the same bytes (body or canonical body_base64);
//   - the lazy record reader (Record.parse: members kept as raw bytes until read) agrees
//     with the full reader: same acceptance, same members and values, equal objects, the
//     same serialised bytes, and the raw-bytes header scan (header, headerValues) finds
//     what a walk of the parsed list finds.
@testable import Records

private func roundTrip(_ value: JSON) {
    let text = value.serialized()
    require(!text.contains(where: { $0 < 0x20 }), "serialised JSON contains a control byte")
    let again: JSON
    do { again = try JSONReader.parse(text) } catch { require(false, "serialised JSON does not read: \(error)"); return }
    require(again == value, "value changed through serialisation")
    require(again.serialized() == text, "serialisation is not a fixed point")
}

/// Reads every number the way filters do (ids, statuses, claims).
private func touchNumbers(_ value: JSON, depth: Int = 0) {
    switch value {
    case .number:
        _ = value.int
        if let d = value.double { require(!d.isNaN, "NaN from a JSON number") }
    case .array(let a): for v in a { touchNumbers(v, depth: depth + 1) }
    case .object(let o): for m in o.members { touchNumbers(m.value, depth: depth + 1) }
    default: break
    }
}

/// Record.header and headerValues as a walk of the fully parsed list.
private func treeHeader(_ o: JSONObject, _ name: String) -> String? {
    guard let list = o["headers"]?.array else { return nil }
    for pair in list {
        if let p = pair.array, p.count == 2, p[0].string == name { return p[1].string }
    }
    return nil
}

private func treeHeaderValues(_ o: JSONObject, _ name: String) -> [String] {
    guard let list = o["headers"]?.array else { return [] }
    var out: [String] = []
    for pair in list {
        if let p = pair.array, p.count == 2, let n = p[0].string, let v = p[1].string, n == name { out.append(v) }
    }
    return out
}

private func compareLazy(_ line: UnsafeBufferPointer<UInt8>) {
    let full = try? JSONReader.parse(line)
    let lazy = try? Record.parse(line)
    require((lazy != nil) == (full?.object != nil), "Record.parse \(lazy != nil ? "accepts" : "refuses") what JSONReader \(full?.object != nil ? "accepts" : "refuses")")
    guard let lazy, let tree = full?.object else { return }
    require(lazy.object.keys == tree.keys, "keys differ")
    for m in lazy.object.members { require(m.value == tree[m.key], "member \(m.key) reads differently") }
    require(lazy.object == tree && tree == lazy.object, "lazy object != parsed object")
    require(lazy.serialized() == tree.serialized(), "lazy record serialises differently")
    if let again = try? Record.parse(line) { require(again == lazy, "two lazy reads differ") }
    var names = ["host", "authorization", "", "x"]
    for pair in tree["headers"]?.array ?? [] { if let n = pair.array?.first?.string { names.append(n) } }
    for name in names.prefix(12) {
        require(lazy.header(name) == treeHeader(tree, name), "header(\(name.debugDescription)) differs from the parsed list")
        require(lazy.headerValues(name) == treeHeaderValues(tree, name), "headerValues(\(name.debugDescription)) differs")
    }
}

/// A filter that uses the record API the way the tools do.
private func filter(_ record: inout Record) throws {
    _ = record.id; _ = record.method; _ = record.query; _ = record.version; _ = record.remote; _ = record.status
    let headers = record.headers
    for h in headers { _ = record.header(h.name); _ = record.headerValues(h.name) }
    let body = record.body
    var copy = record
    copy.body = body
    require(copy.body == body, "body bytes change when set")
    require((copy["body"] == nil) != (copy["body_base64"] == nil), "not exactly one of body/body_base64")
    if let encoded = record["body_base64"]?.string, let decoded = Base64.decode(encoded) {
        require(Base64.encode(decoded) == encoded, "two base64 spellings decode alike")
    }
    _ = record.annotation(AnnotationKey.route)
    switch record.path {
    case "/throw": throw FilterError(status: 403, code: "forbidden", message: "thrown", headers: [Header("x-why", record.method)])
    case "/fail": struct Other: Error {}; throw Other()
    case "/answer": record = record.jsonResponse(.object(JSONObject([("headers", .number(String(headers.count)))])))
    case "/same": break
    default:
        record.setAnnotation("fuzz", .bool(true))
        record.setHeader("x-fuzz", record.method)
        record.keepAlive = !record.keepAlive
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)

    if let value = try? JSONReader.parse(input) {
        roundTrip(value)
        touchNumbers(value)
    }
    // A shallower limit must refuse, never crash, on what the default accepts.
    _ = try? JSONReader.parse(input, maxDepth: 2)

    // LineReader hands the loop lines without their newline.
    let loop = FilterLoop()
    for line in pieces(input, separator: 0x0A) {
        compareLazy(line)
        var out: [UInt8] = []
        loop.process(line, filter, into: &out)
        require(!out.contains(0x0A), "one line in, more than one line out")
        let result: Record
        do { result = try out.withUnsafeBufferPointer { p throws(JSONError) in try Record.parse(p) } }
        catch { require(false, "output line is not a record: \(error)"); continue }
        let parsed = try? Record.parse(line)
        if parsed == nil {
            require(result.status == 400 && result["keep_alive"] == .bool(false), "a malformed line did not become a 400")
            if let id = result.id { require(FilterLoop.recoverID(line) == id, "recovered id differs") }
        } else if parsed!.isResponse {
            require(out.elementsEqual(line), "a response did not pass through byte for byte")
        }
    }
    return 0
}
