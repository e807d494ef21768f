#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A problem in a line-oriented configuration file, reported as `FILE:LINE: reason` (line
/// nil for whole-file problems), the shape every tool's `--check` prints before exit 2.
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public let line: Int?
    public let reason: String
    public init(line: Int?, _ reason: String) { self.line = line; self.reason = reason }
    public var description: String { line.map { "line \($0): \(reason)" } ?? reason }
    public func report(file: String) -> String { line.map { "\(file):\($0): \(reason)" } ?? "\(file): \(reason)" }
}

/// One meaningful line of a configuration file: its number and its whitespace-separated
/// fields, a `#` field and everything after it dropped.
public struct ConfigLine: Sendable {
    public let number: Int
    public let fields: [String]
    public init(number: Int, fields: [String]) { self.number = number; self.fields = fields }
}

public enum ConfigFile {
    /// The meaningful lines of `bytes`: blank and comment lines skipped, CRLF accepted,
    /// invalid UTF-8 refused with its line number.
    public static func lines(_ bytes: [UInt8]) throws(ConfigError) -> [ConfigLine] {
        // Split on bytes, not Characters: these files are read at every filter start, and a
        // Character-wise split of a comment-heavy file cost ~460 k instructions (callgrind).
        var out: [ConfigLine] = []
        try eachLineRange(bytes) { number, range throws(ConfigError) in
            var fields: [String] = []
            var i = range.lowerBound
            while i < range.upperBound {
                if bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1; continue }
                if bytes[i] == UInt8(ascii: "#") { break }
                var j = i
                while j < range.upperBound && bytes[j] != 0x20 && bytes[j] != 0x09 { j += 1 }
                fields.append(String(decoding: bytes[i..<j], as: UTF8.self))
                i = j
            }
            if !fields.isEmpty { out.append(ConfigLine(number: number, fields: fields)) }
        }
        return out
    }

    /// Each line of `bytes` with its number (from 1) that is not blank and not a comment
    /// (first non-blank byte `#`), CRLF accepted, invalid UTF-8 refused (in every line).
    /// Blank and comment lines are skipped as bytes: making Strings of a commented file's
    /// prose cost more at start than parsing its rules.
    public static func eachLine(_ bytes: [UInt8], _ body: (Int, String) throws(ConfigError) -> Void) throws(ConfigError) {
        try eachLineRange(bytes) { number, range throws(ConfigError) in
            var i = range.lowerBound
            while i < range.upperBound && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
            if i == range.upperBound || bytes[i] == UInt8(ascii: "#") { return }
            try body(number, String(decoding: bytes[range], as: UTF8.self))
        }
    }

    /// Each line's number and byte range (without its CR LF), checked to be UTF-8; an
    /// ASCII line (nearly all) is checked without building a String.
    private static func eachLineRange(_ bytes: [UInt8], _ body: (Int, Range<Int>) throws(ConfigError) -> Void) throws(ConfigError) {
        var number = 0
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            number += 1
            var stop = end
            if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
            var ascii = true
            for i in start..<stop where bytes[i] >= 0x80 { ascii = false; break }
            if !ascii && validUTF8String(bytes[start..<stop]) == nil { throw ConfigError(line: number, "not valid UTF-8") }
            try body(number, start..<stop)
            if end == bytes.count { break }
            start = end + 1
        }
    }

    public static func lines(_ text: String) throws(ConfigError) -> [ConfigLine] { try lines(Array(text.utf8)) }

    /// The meaningful lines of the file at `path`; `what` names it in the error.
    public static func load(path: String, what: String) throws(ConfigError) -> [ConfigLine] {
        guard let bytes = readFile(path, limit: 4 << 20) else {
            throw ConfigError(line: nil, "cannot read the \(what): \(errnoText())")
        }
        return try lines(bytes)
    }

    /// A rule's route: `*` or a route name as `route` accepts it.
    public static func isRouteName(_ s: String) -> Bool {
        s == "*" || (!s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
        })
    }
}
