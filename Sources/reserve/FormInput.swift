import Records
import Crypto

// The fields of a POST body, sent by the page's script as JSON or by the plain HTML form
// (no script) as application/x-www-form-urlencoded; and the query of the admin listing.

/// A body or query that cannot be read at all: 400 (or 415 for a type we do not take).
struct InputError: Error, Equatable {
    let status: Int
    let code: String
    let message: String
    /// A field the body holds twice: answered as that field's 422, not as a 400.
    var field: String? = nil
}

enum FormInput {
    /// String fields of the body, by name. A field sent twice is kept as nil, so that a
    /// caller naming it gets the ambiguity as an error instead of one of the two values.
    static func fields(body: [UInt8], contentType: String?) throws(InputError) -> [String: String?] {
        let type = mediaType(contentType)
        switch type {
        case "application/json":
            return try jsonFields(body)
        case "application/x-www-form-urlencoded":
            return try formFields(body)
        case nil:
            // curl -d without -H sends a form type; a bare body is most likely JSON.
            return body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{")
                ? try jsonFields(body) : try formFields(body)
        default:
            throw InputError(status: 415, code: "unsupported_media_type",
                             message: "send application/json or application/x-www-form-urlencoded")
        }
    }

    /// "application/json; charset=utf-8" → "application/json"; nil when absent or empty.
    static func mediaType(_ header: String?) -> String? {
        guard let header else { return nil }
        let main = header.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let trimmed = lowercasedASCII(String(main.filter { $0 != " " && $0 != "\t" }))
        return trimmed.isEmpty ? nil : trimmed
    }

    static func jsonFields(_ body: [UInt8]) throws(InputError) -> [String: String?] {
        let value: JSON
        do { value = try JSONReader.parse(body) } catch {
            // A field sent twice is as ambiguous in JSON as in a form: the caller names it
            // in a 422. A key repeated deeper down is just a bad body.
            if let field = error.duplicateTopLevelKey {
                throw InputError(status: 422, code: "invalid_field", message: "the \(field) is given twice", field: field)
            }
            throw InputError(status: 400, code: "bad_request", message: "the body is not valid JSON: \(error.message)")
        }
        guard let object = value.object else {
            throw InputError(status: 400, code: "bad_request", message: "the body must be a JSON object")
        }
        var out: [String: String?] = [:]
        for m in object.members {
            // A non-string value (number, null, object) is kept as absent-but-named, so
            // that the field gets a 422 naming it.
            out[m.key] = .some(m.value.string)
        }
        return out
    }

    static func formFields(_ body: [UInt8]) throws(InputError) -> [String: String?] {
        try pairs(body, what: "form body")
    }

    static func query(_ query: String) throws(InputError) -> [String: String?] {
        try pairs(Array(query.utf8), what: "query")
    }

    private static func pairs(_ bytes: [UInt8], what: String) throws(InputError) -> [String: String?] {
        var out: [String: String?] = [:]
        for part in bytes.split(separator: UInt8(ascii: "&")) {
            let kv = part.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecode(kv[0]), let value = percentDecode(kv.count > 1 ? kv[1] : []) else {
                throw InputError(status: 400, code: "bad_request", message: "the \(what) holds a bad %-escape or invalid UTF-8")
            }
            if out[name] != nil { out[name] = .some(nil) } else { out[name] = .some(value) }
        }
        return out
    }

    /// application/x-www-form-urlencoded decoding: `+` is a space, `%XX` a byte; the
    /// result must be UTF-8. nil on a broken escape or invalid UTF-8.
    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20); i += 1
            } else if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex,
                      let hex = Hex.decode(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self)) else { return nil }
                out.append(hex[0]); i += 3
            } else {
                out.append(b); i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
