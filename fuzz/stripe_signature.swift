// The Stripe-Signature header parser and verifier (Sources/apply-webhook/StripeSignature.swift)
// and the webhook-secret list parsers next to it.
//
// The input is a header value (and, read as a file, a secrets file). Properties, beyond
// "no crash":
//   - a header that parses has a timestamp of at most 18 digits and at least one v1 value,
//     each value being the text between "v1=" and the next "," or "=";
//   - nothing verifies that was not signed with the secret;
//   - putting a valid v1 signature for the parsed timestamp in front of any header that
//     parses makes it verify at that time: the parser never loses a candidate;
//   - secrets read from a file or a list are non-empty, unique and without whitespace.
@testable import Records
@testable import Crypto

private let secret = "whsec_fuzz_0123456789abcdef"
private let payload = Array(#"{"id":"evt_1","type":"customer.subscription.updated"}"#.utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    // Header values reach the parser as valid UTF-8 (RequestParser refuses the rest);
    // the lossy reading still tries the byte-level splitting on anything.
    let header = String(validating: input, as: UTF8.self) ?? String(decoding: input, as: UTF8.self)

    if let parsed = try? StripeSignature.parse(header) {
        require(abs(parsed.timestamp) < 1_000_000_000_000_000_000, "timestamp \(parsed.timestamp)")
        require(!parsed.signatures.isEmpty, "parsed with no signatures")
        for s in parsed.signatures {
            require(!s.utf8.contains(UInt8(ascii: ",")) && !s.utf8.contains(UInt8(ascii: "=")), "signature \(s.debugDescription)")
        }
        if parsed.signatures.contains(StripeSignature.signature(payload: payload, secret: secret, timestamp: parsed.timestamp)) {
            return 0   // the fuzzer found the real signature: nothing to refute
        }
        let t = parsed.timestamp
        do {
            try StripeSignature.verify(payload: payload, header: header, secrets: [secret], tolerance: 300, now: t)
            require(false, "verified a header without the signature")
        } catch {
            require(error.check == .noMatchingSignature, "unexpected refusal \(error.check)")
        }
        let valid = StripeSignature.signature(payload: payload, secret: secret, timestamp: t)
        let signed = "v1=\(valid)," + header
        do {
            let again = try StripeSignature.verify(payload: payload, header: signed, secrets: ["whsec_other", secret],
                                                   tolerance: 300, now: t)
            require(again.timestamp == t, "timestamp changed when a v1 item was added")
        } catch {
            require(false, "a header with a valid v1 in front was refused: \(error.check)")
        }
        // Replays: the same signed header is refused once the tolerance has passed.
        if t < Int.max - 1000 {
            do {
                try StripeSignature.verify(payload: payload, header: signed, secrets: [secret], tolerance: 300, now: t + 301)
                require(false, "accepted a signature older than the tolerance")
            } catch {
                require(error.check == .outsideTolerance, "stale signature refused as \(error.check)")
            }
        }
    } else {
        do {
            try StripeSignature.verify(payload: payload, header: header, secrets: [secret], tolerance: 300, now: 1_700_000_000)
            require(false, "verified a header that does not parse")
        } catch {
            require(error.check != .outsideTolerance && error.check != .noMatchingSignature, "checked a header that does not parse")
        }
    }

    if let secrets = try? StripeSecrets.parseFile(header) {
        require(Set(secrets).count == secrets.count, "duplicate secrets from a file")
        for s in secrets {
            require(!s.isEmpty && !s.hasPrefix("#"), "secret \(s.debugDescription)")
            require(!s.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }),
                    "whitespace in secret \(s.debugDescription)")
        }
    }
    let listed = StripeSecrets.parseList(header)
    require(Set(listed).count == listed.count, "duplicate secrets from a list")
    for s in listed { require(!s.isEmpty && !s.contains(where: { $0 == "," || $0.isWhitespace }), "secret \(s.debugDescription)") }
    return 0
}
