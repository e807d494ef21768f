// RESP, the Redis serialization protocol: version 2 (every Redis) and the types version 3
// adds (HELLO 3). Pure functions over bytes, so framing is unit-tested without a server.

/// One reply from Redis.
enum RESPValue: Equatable, Sendable {
    case simple(String)
    /// `-ERR ...` or a RESP3 blob error: the server refused the command, the connection is fine.
    case error(String)
    case integer(Int)
    case bulk([UInt8])
    /// RESP2's null bulk string and null array, RESP3's `_`.
    case null
    case array([RESPValue])
    /// RESP3 map, as alternating keys and values.
    case map([RESPValue])
    case set([RESPValue])
    /// RESP3 double, as its text (`inf`, `-inf`, `nan` included).
    case double(String)
    case boolean(Bool)
    case bigNumber(String)
    /// RESP3 verbatim string without its three-letter format.
    case verbatim([UInt8])
    /// RESP3 out-of-band data (never a reply to a command).
    case push([RESPValue])

    var bytes: [UInt8]? {
        switch self {
        case .bulk(let b), .verbatim(let b): return b
        case .simple(let s): return Array(s.utf8)
        default: return nil
        }
    }

    var int: Int? {
        switch self {
        case .integer(let n): return n
        case .bulk(let b): return Int(String(decoding: b, as: UTF8.self))
        case .simple(let s): return Int(s)
        default: return nil
        }
    }

    var elements: [RESPValue]? {
        switch self {
        case .array(let a), .set(let a), .map(let a), .push(let a): return a
        default: return nil
        }
    }
}

struct RESPError: Error, Equatable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum RESP {
    /// Bulk strings and aggregates above these are refused rather than allocated: a
    /// corrupt length must not make the process reserve gigabytes.
    static let maxBulkBytes = 512 << 20
    static let maxElements = 16 << 20
    static let maxDepth = 32

    /// A command as a RESP array of bulk strings (what every Redis accepts).
    static func encode(_ arguments: [[UInt8]], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "*"))
        out.append(contentsOf: String(arguments.count).utf8)
        out.append(13); out.append(10)
        for a in arguments {
            out.append(UInt8(ascii: "$"))
            out.append(contentsOf: String(a.count).utf8)
            out.append(13); out.append(10)
            out.append(contentsOf: a)
            out.append(13); out.append(10)
        }
    }

    static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        encode(arguments, into: &out)
        return out
    }

    /// Parses one reply starting at `index`. Returns nil, leaving `index` alone, while the
    /// bytes hold only part of it; on success `index` is just after it.
    static func parse(_ bytes: [UInt8], at index: inout Int) throws(RESPError) -> RESPValue? {
        var i = index
        guard let value = try parseValue(bytes, &i, depth: 0) else { return nil }
        index = i
        return value
    }

    private static func parseValue(_ b: [UInt8], _ i: inout Int, depth: Int) throws(RESPError) -> RESPValue? {
        guard depth <= maxDepth else { throw RESPError("reply nested deeper than \(maxDepth)") }
        guard i < b.count else { return nil }
        let type = b[i]
        guard let line = try readLine(b, i + 1) else { return nil }
        let text = String(decoding: b[(i + 1)..<line.end], as: UTF8.self)
        var next = line.next
        switch type {
        case UInt8(ascii: "+"):
            i = next; return .simple(text)
        case UInt8(ascii: "-"):
            i = next; return .error(text)
        case UInt8(ascii: ":"):
            guard let n = Int(text) else { throw RESPError("bad integer reply") }
            i = next; return .integer(n)
        case UInt8(ascii: "_"):
            guard text.isEmpty else { throw RESPError("bad null reply") }
            i = next; return .null
        case UInt8(ascii: "#"):
            guard text == "t" || text == "f" else { throw RESPError("bad boolean reply") }
            i = next; return .boolean(text == "t")
        case UInt8(ascii: ","):
            i = next; return .double(text)
        case UInt8(ascii: "("):
            i = next; return .bigNumber(text)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let n = try length(text)
            if n < 0 {
                guard type == UInt8(ascii: "$") else { throw RESPError("bad blob length") }
                i = next; return .null
            }
            guard b.count >= next + n + 2 else { return nil }
            guard b[next + n] == 13, b[next + n + 1] == 10 else { throw RESPError("blob not followed by CRLF") }
            let blob = Array(b[next..<(next + n)])
            i = next + n + 2
            switch type {
            case UInt8(ascii: "!"): return .error(String(decoding: blob, as: UTF8.self))
            case UInt8(ascii: "="):
                guard blob.count >= 4, blob[3] == UInt8(ascii: ":") else { throw RESPError("bad verbatim string") }
                return .verbatim(Array(blob[4...]))
            default: return .bulk(blob)
            }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let n = try length(text)
            if n < 0 {
                guard type == UInt8(ascii: "*") else { throw RESPError("bad aggregate length") }
                i = next; return .null
            }
            let count = (type == UInt8(ascii: "%") || type == UInt8(ascii: "|")) ? n * 2 : n
            guard count <= maxElements else { throw RESPError("aggregate of \(n) elements") }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let e = try parseValue(b, &next, depth: depth + 1) else { return nil }
                elements.append(e)
            }
            if type == UInt8(ascii: "|") {
                // An attribute describes the reply that follows it; nothing here uses one.
                guard let reply = try parseValue(b, &next, depth: depth + 1) else { return nil }
                i = next
                return reply
            }
            i = next
            switch type {
            case UInt8(ascii: "~"): return .set(elements)
            case UInt8(ascii: ">"): return .push(elements)
            case UInt8(ascii: "%"): return .map(elements)
            default: return .array(elements)
            }
        default:
            throw RESPError("unknown reply type byte \(type)")
        }
    }

    private static func length(_ text: String) throws(RESPError) -> Int {
        guard let n = Int(text), n >= -1 else { throw RESPError("bad length") }
        guard n <= maxBulkBytes else { throw RESPError("length \(n) too large") }
        return n
    }

    /// The end of the line starting at `from` (index of its CR) and the index after its LF.
    private static func readLine(_ b: [UInt8], _ from: Int) throws(RESPError) -> (end: Int, next: Int)? {
        var j = from
        while j < b.count {
            if b[j] == 13 {
                guard j + 1 < b.count else { return nil }
                guard b[j + 1] == 10 else { throw RESPError("CR without LF") }
                return (j, j + 2)
            }
            if b[j] == 10 { throw RESPError("LF without CR") }
            j += 1
            if j - from > 64 << 10 { throw RESPError("header line too long") }
        }
        return nil
    }
}
