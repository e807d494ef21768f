// The strict HTTP/1.1 response parser (Sources/Common/Net/ResponseParser.swift), which
// `forward` reads every upstream answer with.
//
// The input's first byte picks the case (bit 0: the request was HEAD; bit 1: the stream
// ended without TLS close_notify); the rest is the byte stream from an upstream.
// Properties, beyond "no crash":
//   - the same stream read whole and cut into random reads (down to one byte) gives the
//     same response, or fails alike: TCP may cut anywhere;
//   - a response never has Content-Length together with Transfer-Encoding, nor a status
//     outside 200-599 (interim responses are skipped), nor a header name that is not a
//     lower-case token or a value with CR, LF or NUL;
//   - the body is exact: with Content-Length, it is that many bytes, found in the stream
//     right after the end of a head; HEAD, 204 and 304 have none;
//   - a connection is reusable only when the body was framed by length or chunks (whether
//     bytes came after the response depends on the cut, so it is not compared);
//   - tiny limits fail as too large or malformed, never crash.
import Records
import Net

private enum Outcome: Equatable {
    case response(ParsedResponse)
    case failure(ResponseFailure.Kind)
    case incomplete
}

private func parse(_ input: UnsafeBufferPointer<UInt8>, head: Bool, clean: Bool, limits: ResponseLimits,
                   cut: (Int) -> Int) -> Outcome {
    var parser = ResponseParser(limits: limits, headRequest: head)
    var offset = 0
    while offset < input.count {
        let n = min(max(1, cut(input.count - offset)), input.count - offset)
        parser.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[offset..<(offset + n)]))
        offset += n
        switch parser.next() {
        case .needMore: continue
        case .response(let r): return .response(r)
        case .failure(let f): return .failure(f.kind)
        }
    }
    switch parser.finish(cleanClose: clean) {
    case .needMore: return .incomplete
    case .response(let r): return .response(r)
    case .failure(let f): return .failure(f.kind)
    }
}

private func contains(_ input: UnsafeBufferPointer<UInt8>, bodyAfterAHead body: [UInt8]) -> Bool {
    guard input.count >= 4 + body.count else { return false }
    var k = 4
    while k + body.count <= input.count {
        if input[k - 4] == 13 && input[k - 3] == 10 && input[k - 2] == 13 && input[k - 1] == 10
            && body.indices.allSatisfy({ input[k + $0] == body[$0] }) { return true }
        k += 1
    }
    return false
}

private func check(_ r: ParsedResponse, _ input: UnsafeBufferPointer<UInt8>, head: Bool) {
    require((200...599).contains(r.status), "status \(r.status)")
    let names = r.headers.map(\.name)
    require(!(names.contains("content-length") && names.contains("transfer-encoding")), "Content-Length with Transfer-Encoding")
    for h in r.headers {
        require(!h.name.isEmpty && h.name.utf8.allSatisfy { ASCII.isToken($0) && !($0 >= 0x41 && $0 <= 0x5A) }, "header name \(h.name)")
        require(!h.value.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }, "CR, LF or NUL in a value")
    }
    let bodiless = head || r.status == 204 || r.status == 304
    if bodiless { require(r.body.isEmpty, "a body for HEAD, 204 or 304") }
    if let cl = r.headers.first(where: { $0.name == "content-length" }), !bodiless {
        let n = Int(cl.value.split(separator: ",").first.map { String($0.trimmingSpacesAndTabs()) } ?? "") ?? -1
        require(r.body.count == n, "body of \(r.body.count) bytes, Content-Length \(cl.value)")
        require(contains(input, bodyAfterAHead: r.body), "body not found after a head")
    }
    if r.reusable { require(bodiless || names.contains("content-length") || names.contains("transfer-encoding"), "a close-delimited body reused") }
}

private let tiny: ResponseLimits = {
    var l = ResponseLimits()
    l.maxHeadBytes = 64
    l.maxHeaderCount = 3
    l.maxBody = 16
    l.maxChunkLine = 8
    return l
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let head = data[0] & 1 != 0, clean = data[0] & 2 == 0
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let whole = parse(input, head: head, clean: clean, limits: ResponseLimits()) { $0 }
    if case .response(let r) = whole { check(r, input, head: head) }
    var rng = SplitMix64(input)
    let cut = parse(input, head: head, clean: clean, limits: ResponseLimits()) { rng.below(min($0, 64)) + 1 }
    require(cut == whole, "a cut stream parsed differently: \(cut) vs \(whole)")
    let bytewise = parse(input, head: head, clean: clean, limits: ResponseLimits()) { _ in 1 }
    require(bytewise == whole, "a byte-by-byte stream parsed differently")
    if case .response(let r) = parse(input, head: head, clean: clean, limits: tiny, cut: { $0 }) {
        check(r, input, head: head)
        require(r.body.count <= tiny.maxBody, "tiny limit exceeded")
    }
    return 0
}
