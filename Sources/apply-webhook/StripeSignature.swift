import Records
import Crypto

// Stripe's webhook signature scheme, checked the way Stripe's own libraries check it
// (stripe-python's WebhookSignature.verify_header, stripe-node's verifyHeader), so that
// a delivery our service refuses is one those libraries refuse too, with the same reason.
//
//   Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex>,v0=<hex>
//
// v1 is HMAC-SHA256 keyed with the endpoint secret's bytes (the whole string, `whsec_`
// prefix included) over "<t>.<raw body bytes>". Several v1 values appear while Stripe
// rolls a secret; any other scheme (v0 is a test-mode relic) is ignored.

public enum StripeSignature {
    public static let expectedScheme = "v1"
    /// Seconds a signature stays valid after its timestamp; the libraries' default.
    public static let defaultTolerance = 300

    /// Why a header was refused. `message` is the libraries' wording, so an operator can
    /// search Stripe's documentation for it.
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public enum Check: String, Sendable {
            case missingHeader = "missing_header"
            case malformedHeader = "malformed_header"
            case noExpectedScheme = "no_expected_scheme"
            case noMatchingSignature = "no_matching_signature"
            case outsideTolerance = "timestamp_outside_tolerance"
            case noSecret = "no_secret"
        }
        public let check: Check
        public let message: String
        public init(_ check: Check, _ message: String) { self.check = check; self.message = message }
        public var description: String { message }
    }

    public struct Header: Equatable, Sendable {
        public var timestamp: Int
        public var signatures: [String]
        public init(timestamp: Int, signatures: [String]) { self.timestamp = timestamp; self.signatures = signatures }
    }

    /// Splits a header as the libraries do: items separated by ",", each "key=value"
    /// (the value ends at the next "="). The first `t` is the timestamp; every item of
    /// `scheme` is a candidate signature. No trimming: " v1=..." is not a v1 item.
    public static func parse(_ header: String?, scheme: String = expectedScheme) throws(Failure) -> Header {
        guard let header, !header.isEmpty else {
            throw Failure(.missingHeader, "No Stripe-Signature header value was provided.")
        }
        let malformed = Failure(.malformedHeader, "Unable to extract timestamp and signatures from header")
        // Bytes, not Characters: a combining mark after "," must not glue two items
        // together, and keys compare exactly, not by Unicode equivalence.
        let schemeBytes = Array(scheme.utf8)
        let tKey: [UInt8] = [UInt8(ascii: "t")]
        var timestamp: Int?
        var sawTimestamp = false
        var signatures: [String] = []
        for item in Array(header.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let parts = item.split(separator: UInt8(ascii: "="), maxSplits: 2, omittingEmptySubsequences: false)
            let key = Array(parts[0])
            let value: ArraySlice<UInt8>? = parts.count > 1 ? parts[1] : nil
            if key == tKey {
                // An item named t without "=" breaks the parse in stripe-python; only the
                // first t's value is read as the timestamp.
                guard let value else { throw malformed }
                if !sawTimestamp {
                    sawTimestamp = true
                    guard let t = parseInteger(value) else { throw malformed }
                    timestamp = t
                }
            }
            if key == schemeBytes {
                guard let value else { throw malformed }
                signatures.append(String(decoding: value, as: UTF8.self))
            }
        }
        guard let timestamp else { throw malformed }
        guard !signatures.isEmpty else {
            throw Failure(.noExpectedScheme, "No signatures found with expected scheme \(scheme)")
        }
        return Header(timestamp: timestamp, signatures: signatures)
    }

    /// A decimal integer as Python's int() reads a plain one: surrounding spaces and one
    /// sign allowed. Values beyond 18 digits are refused rather than overflowing.
    static func parseInteger(_ text: ArraySlice<UInt8>) -> Int? {
        var bytes = text
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
        while let f = bytes.first, isSpace(f) { bytes = bytes.dropFirst() }
        while let l = bytes.last, isSpace(l) { bytes = bytes.dropLast() }
        var negative = false
        if let f = bytes.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") {
            negative = f == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var n = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + Int(b - UInt8(ascii: "0"))
        }
        return negative ? -n : n
    }

    /// The v1 signature (lower-case hex) of `payload` at `timestamp`. The signed text
    /// uses the timestamp as a canonical integer, as the libraries do ("%d").
    public static func signature(payload: [UInt8], secret: String, timestamp: Int) -> String {
        var signed = Array("\(timestamp).".utf8)
        signed.append(contentsOf: payload)
        return Hex.encode(Digest.hmacSHA256(key: Array(secret.utf8), signed))
    }

    /// A complete header, for tests and for re-signing replays.
    public static func header(payload: [UInt8], secret: String, timestamp: Int) -> String {
        "t=\(timestamp),\(expectedScheme)=\(signature(payload: payload, secret: secret, timestamp: timestamp))"
    }

    /// Checks `header` against `payload`: accepted when some v1 value matches the
    /// signature under some secret (rotation), then the timestamp is no older than
    /// `tolerance` seconds at `now` (0 disables the age check, as in the libraries).
    /// Checks run in the libraries' order, so the reason names the same failure.
    @discardableResult
    public static func verify(payload: [UInt8], header: String?, secrets: [String], tolerance: Int,
                              now: Int) throws(Failure) -> Header {
        let parsed = try parse(header)
        guard !secrets.isEmpty else {
            throw Failure(.noSecret, "No webhook secret value was provided. It should start with `whsec_`")
        }
        var matched = false
        for secret in secrets {
            let expected = Array(signature(payload: payload, secret: secret, timestamp: parsed.timestamp).utf8)
            // Compared as text, like the libraries: an upper-case hex value does not match.
            // No early exit, so timing does not say which candidate matched.
            for candidate in parsed.signatures where Digest.constantTimeEqual(expected, Array(candidate.utf8)) {
                matched = true
            }
        }
        guard matched else {
            throw Failure(.noMatchingSignature, "No signatures found matching the expected signature for payload")
        }
        if tolerance > 0 && now - parsed.timestamp > tolerance {
            throw Failure(.outsideTolerance, "Timestamp outside the tolerance zone (\(parsed.timestamp))")
        }
        return parsed
    }
}

/// Webhook endpoint secrets, from a file (one per line) or an environment variable
/// (separated by commas or spaces). Several are accepted at once while Stripe rolls a
/// secret. Never from argv: a command line is visible to every user of the machine.
public enum StripeSecrets {
    public struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// File syntax: one secret per line; blank lines and lines starting with '#' are
    /// skipped; surrounding whitespace is trimmed. A line with inner whitespace is
    /// refused (stripe-node refuses such secrets: they are always a copy-paste accident).
    public static func parseFile(_ text: String) throws(Invalid) -> [String] {
        // apply-webhook reads this file at the start of every connection: an ASCII file
        // (every real one) is split as bytes, which gives the same lines and fields as
        // splitting Characters for a fraction of the start-up cost.
        var text = text
        if text.withUTF8({ $0.allSatisfy { $0 < 0x80 } }) { return try parseASCII(Array(text.utf8)) }
        var out: [String] = []
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        for (n, raw) in lines.enumerated() {
            let line = trim(raw)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.contains(where: \.isWhitespace) {
                throw Invalid(message: "line \(n + 1) of the secrets file contains whitespace inside the secret")
            }
            if !out.contains(line) { out.append(line) }
        }
        return out
    }

    private static func parseASCII(_ bytes: [UInt8]) throws(Invalid) -> [String] {
        // ASCII whitespace as Character.isWhitespace sees it: \t \n \v \f \r and space.
        func isSpace(_ b: UInt8) -> Bool { (0x09...0x0D).contains(b) || b == 0x20 }
        var out: [String] = []
        var n = 0
        var i = 0
        while i <= bytes.count {
            // One line: up to \n, \r\n or \r (as Character splitting has it).
            var end = i
            while end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D { end += 1 }
            var start = i, stop = end
            while start < stop, isSpace(bytes[start]) { start += 1 }
            while stop > start, isSpace(bytes[stop - 1]) { stop -= 1 }
            if start < stop && bytes[start] != UInt8(ascii: "#") {
                if bytes[start..<stop].contains(where: isSpace) {
                    throw Invalid(message: "line \(n + 1) of the secrets file contains whitespace inside the secret")
                }
                let line = String(decoding: bytes[start..<stop], as: UTF8.self)
                if !out.contains(line) { out.append(line) }
            }
            n += 1
            if end == bytes.count { break }
            i = end + (bytes[end] == 0x0D && end + 1 < bytes.count && bytes[end + 1] == 0x0A ? 2 : 1)
        }
        return out
    }

    /// Environment syntax: secrets separated by commas and/or whitespace.
    public static func parseList(_ text: String) -> [String] {
        var out: [String] = []
        for piece in text.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            let s = String(piece)
            if !s.isEmpty && !out.contains(s) { out.append(s) }
        }
        return out
    }

    private static func trim(_ s: Substring) -> String {
        var t = s[...]
        while let f = t.first, f.isWhitespace { t = t.dropFirst() }
        while let l = t.last, l.isWhitespace { t = t.dropLast() }
        return String(t)
    }
}
