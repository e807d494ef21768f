// The HTTP/1.1 request parser (Sources/Common/HTTPDecodeTool/RequestParser.swift) and the request
// records http-decode makes from it (Sources/Common/HTTPDecodeTool/Decoder.swift, compiled in).
//
// The input is a byte stream from a client. Properties, beyond "no crash":
//   - the same stream read whole and cut into random reads (down to one byte) gives the
//     same requests and fails or not alike: TCP may cut anywhere;
//   - every request is one that no downstream reader could read differently: a token method,
//     a clean target, lower-case token header names, values without CR/LF/NUL or
//     surrounding whitespace, one Host, never Content-Length next to Transfer-Encoding, and a
//     body exactly as long as Content-Length says;
//   - behind a trusted proxy, the client address taken from X-Forwarded-For / X-Real-IP
//     is always one canonical IP address, whatever those headers hold;
//   - its record is one line of JSON that reads back to the same method, path, headers,
//     body bytes and keep-alive;
//   - a stream that ends cleanly, repeated past the parser's compaction threshold, gives
//     its requests again, in order;
//   - tiny limits fail with the limit statuses, never crash.
@testable import Records

private let smallLimits: HTTPLimits = {
    var l = HTTPLimits()
    l.maxRequestLine = 48
    l.maxHeaderBytes = 96
    l.maxHeaderCount = 4
    l.maxBody = 24
    l.maxChunkLine = 16
    l.maxLeadingEmptyLines = 1
    return l
}()

private let proxies = try! TrustedProxies(parsing: ["127.0.0.0/8, 10.0.0.0/8", "::1/128"])

private let failureStatuses: Set<Int> = [400, 413, 414, 417, 431, 501, 505]

private struct Outcome {
    var requests: [HTTPRequest] = []
    var failure: HTTPFailure?
    /// What `finish()` says at the end of the stream (when it did not fail before).
    var atEnd: HTTPFailure?
}

/// Feeds `input` to one parser in reads of the sizes `cut` picks.
private func parse(_ input: UnsafeBufferPointer<UInt8>, limits: HTTPLimits, checked: Bool = true,
                   cut: (Int) -> Int) -> Outcome {
    var parser = RequestParser(limits: limits)
    var outcome = Outcome()
    var offset = 0
    while offset < input.count {
        let n = min(max(1, cut(input.count - offset)), input.count - offset)
        parser.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[offset..<(offset + n)]))
        offset += n
        reading: while true {
            switch parser.next() {
            case .needMore: break reading
            case .continueExpected: continue
            case .request(let r):
                if checked { check(r, limits: limits) }
                outcome.requests.append(r)
            case .failure(let f):
                require(failureStatuses.contains(f.status), "unexpected failure status \(f.status)")
                require(!f.message.utf8.contains(0x0A), "newline in a failure message")
                // A failed parser stays failed.
                if case .failure(let again) = parser.next() { require(again == f, "failure changed") }
                else { require(false, "parser recovered after a failure") }
                outcome.failure = f
                return outcome
            }
        }
    }
    outcome.atEnd = parser.finish()
    return outcome
}

private func isVisible(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F }

private func check(_ r: HTTPRequest, limits: HTTPLimits) {
    require(!r.method.isEmpty && r.method.utf8.allSatisfy(HTTPByteClass.isToken), "method \(r.method.debugDescription)")
    require(r.version == "HTTP/1.1" || r.version == "HTTP/1.0", "version \(r.version.debugDescription)")
    require(r.path == "*" || r.path.hasPrefix("/"), "path \(r.path.debugDescription)")
    require(r.path.utf8.allSatisfy { isVisible($0) && $0 != UInt8(ascii: "#") && $0 != UInt8(ascii: "?") },
            "path bytes \(r.path.debugDescription)")
    require(r.query.utf8.allSatisfy { isVisible($0) && $0 != UInt8(ascii: "#") }, "query bytes \(r.query.debugDescription)")
    var hosts = 0, lengths: [String] = [], codings = 0
    for h in r.headers {
        require(!h.name.isEmpty && h.name.utf8.allSatisfy { HTTPByteClass.isToken($0) && !(0x41...0x5A).contains($0) },
                "header name \(h.name.debugDescription)")
        require(h.value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }, "header value \(h.value.debugDescription)")
        if let f = h.value.utf8.first { require(f != 0x20 && f != 0x09, "leading whitespace in a value") }
        if let l = h.value.utf8.last { require(l != 0x20 && l != 0x09, "trailing whitespace in a value") }
        switch h.name {
        case "host": hosts += 1
        case "content-length": lengths.append(h.value)
        case "transfer-encoding": codings += 1
        default: break
        }
    }
    require(hosts <= 1, "\(hosts) Host headers")
    if r.version == "HTTP/1.1" { require(hosts == 1, "HTTP/1.1 without Host") }
    require(lengths.isEmpty || codings == 0, "Content-Length next to Transfer-Encoding")
    if codings > 0 { require(r.version == "HTTP/1.1", "Transfer-Encoding in HTTP/1.0") }
    if let first = lengths.first {
        let digits = first.split(separator: ",").first.map { RequestParser.trimOWS($0) } ?? ""
        let n = Int(digits.drop(while: { $0 == "0" })) ?? 0
        require(r.body.count == n, "body of \(r.body.count) bytes for Content-Length \(first)")
    }
    require(r.body.count <= limits.maxBody, "body over the limit")
    if lengths.isEmpty && codings == 0 { require(r.body.isEmpty, "a body without framing") }

    let client = proxies.client(peer: "127.0.0.1", headers: r.headers)
    require(IPAddress(client)?.text == client, "client address \(client.debugDescription) from forwarding headers")

    // The record http-decode writes, as the next filter reads it.
    let record = RequestRecord.make(r, id: "1", remote: client)
    let line = record.serialized()
    require(!line.contains(0x0A), "a request record spans lines")
    let back: Record
    do { back = try line.withUnsafeBufferPointer { p throws(JSONError) in try Record.parse(p) } }
    catch { require(false, "request record does not read back: \(error)"); return }
    require(back == record, "request record changed on the way through JSON")
    require(back.method == r.method && back.path == r.path && back.query == r.query && back.version == r.version,
            "request line fields changed")
    require(back.headers == r.headers, "headers changed")
    require(back.body == r.body, "body bytes changed")
    require(!back.hasCorruptBody, "corrupt body_base64")
    require(back.keepAlive == r.keepAlive, "keep_alive changed")
    require((back["body"] == nil) != (back["body_base64"] == nil), "not exactly one of body/body_base64")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let limits = HTTPLimits()

    let whole = parse(input, limits: limits) { $0 }
    var random = SplitMix64(input)
    let cut = parse(input, limits: limits) { remaining in
        switch random.below(8) {
        case 0: return 1
        case 1: return remaining
        default: return 1 + random.below(24)
        }
    }
    require(whole.requests == cut.requests,
            "requests differ when the stream is cut: \(whole.requests.count) whole, \(cut.requests.count) cut")
    require((whole.failure == nil) == (cut.failure == nil),
            "fails only when \(whole.failure == nil ? "cut" : "whole"): \(String(describing: whole.failure ?? cut.failure))")
    if whole.failure == nil && cut.failure == nil {
        require((whole.atEnd == nil) == (cut.atEnd == nil), "end of stream judged differently when cut")
    }

    // Past the compaction threshold (64 KiB consumed): the same requests, again and again.
    if whole.failure == nil, whole.atEnd == nil, !whole.requests.isEmpty, random.below(32) == 0 {
        let copies = (1 << 16) / size + 2
        var stream: [UInt8] = []
        stream.reserveCapacity(copies * size)
        for _ in 0..<copies { stream.append(contentsOf: input) }
        let repeated = stream.withUnsafeBufferPointer { p in parse(p, limits: limits, checked: false) { _ in 4096 } }
        require(repeated.failure == nil && repeated.atEnd == nil, "a clean stream fails when repeated")
        require(repeated.requests.count == copies * whole.requests.count, "repeated stream lost or gained requests")
        for (i, r) in repeated.requests.enumerated() where r != whole.requests[i % whole.requests.count] {
            require(false, "request \(i) of the repeated stream differs")
        }
    }

    _ = parse(input, limits: smallLimits) { remaining in 1 + remaining / 3 }
    return 0
}
