#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// The route table: parsed once at start, then only read. Syntax in docs/route.md.

/// A table problem, reported as `FILE:LINE: reason` (line nil for whole-file problems),
/// as every configuration file's.
typealias TableError = ConfigError

enum PatternSegment: Equatable, Sendable {
    case literal([UInt8])
    case param(String)
}

/// `/v1/subscription` (exact), `/v1/users/:id` (named segments), `/static/*` (prefix).
struct PathPattern: Equatable, Sendable {
    var text: String
    var segments: [PatternSegment]
    /// Ends in `/*`: matches anything after that slash, including nothing.
    var isPrefix: Bool

    var isExact: Bool {
        !isPrefix && segments.allSatisfy { if case .literal = $0 { return true } else { return false } }
    }

    /// Same literals and parameters in the same places (names aside): two such patterns
    /// match exactly the same paths.
    func sameShape(as other: PathPattern) -> Bool {
        guard isPrefix == other.isPrefix, segments.count == other.segments.count else { return false }
        for (a, b) in zip(segments, other.segments) {
            switch (a, b) {
            case (.literal(let x), .literal(let y)) where x == y: continue
            case (.param, .param): continue
            default: return false
            }
        }
        return true
    }

    /// Orders patterns so that, of two patterns matching the same path, the more specific
    /// comes first: at the first segment where they differ a literal beats a parameter and
    /// a parameter beats the `*` of a prefix pattern.
    func moreSpecific(than other: PathPattern) -> Bool {
        // Compares the rank keys (one rank per segment, then the end's) without building
        // them: arrays of a new element type cost generic-metadata work at every start.
        let n = segments.count + 1, m = other.segments.count + 1
        var i = 0
        while i < n && i < m {
            let x = rank(at: i), y = other.rank(at: i)
            if x != y { return x > y }
            i += 1
        }
        return n > m
    }

    /// A literal segment 3, a parameter 2; after the last segment, 1 for a prefix pattern's `*`, else 0.
    private func rank(at i: Int) -> Int {
        guard i < segments.count else { return isPrefix ? 1 : 0 }
        if case .literal = segments[i] { return 3 } else { return 2 }
    }
}

enum RouteAction: Equatable, Sendable {
    /// Annotate and pass on to the filters downstream.
    case forward
    /// Answer here: status and JSON body (empty for none).
    case respond(status: Int, body: [UInt8])
    /// 410 Gone, for every method.
    case gone(removed: String, replacement: String?)
}

struct Route: Equatable, Sendable {
    /// nil for `*` (any method).
    var methods: [String]?
    var pattern: PathPattern
    /// nil only for GONE lines.
    var name: String?
    var action: RouteAction
    var line: Int
    /// GET also answers HEAD unless a route of the same pattern lists HEAD itself.
    var headFromGet = false

    func allows(_ method: String) -> Bool {
        guard let methods else { return true }
        for m in methods where m == method { return true }
        return headFromGet && method == "HEAD"
    }

    /// The methods for an `Allow` header, HEAD right after GET when GET implies it.
    var allowList: [String] {
        guard let methods else { return [] }
        var out: [String] = []
        for m in methods {
            out.append(m)
            if m == "GET" && headFromGet { out.append("HEAD") }
        }
        return out
    }
}

struct RouteTable: Sendable {
    /// Most specific first; file order among equals.
    private(set) var routes: [Route]
    /// Indices of the exact (all-literal) patterns, most specific first: an exact match
    /// beats every other match, so it decides without matching patterns. A plain list,
    /// not a dictionary by path: tables are a handful of lines, and a Dictionary's
    /// generic metadata and hashing cost more at start than the table's whole parse.
    private(set) var exact: [Int]
    /// Every method the table names, for `OPTIONS *`.
    private(set) var allMethods: [String]

    init(routes unsorted: [Route]) {
        // Insertion sort keeps file order among equals; tables are small and parsed once.
        var sorted: [Route] = []
        sorted.reserveCapacity(unsorted.count)
        for r in unsorted {
            sorted.append(r)
            var i = sorted.count - 1
            while i > 0 && r.pattern.moreSpecific(than: sorted[i - 1].pattern) {
                sorted.swapAt(i, i - 1)
                i -= 1
            }
        }
        routes = sorted
        exact = []
        for i in sorted.indices where sorted[i].pattern.isExact { exact.append(i) }
        var all: [String] = []
        for r in sorted { for m in r.allowList where !all.contains(m) { all.append(m) } }
        if !all.contains("OPTIONS") { all.append("OPTIONS") }
        allMethods = all
    }

    static func load(path: String) throws(TableError) -> RouteTable {
        guard let bytes = readFile(path) else {
            throw TableError(line: nil, "cannot read the route table: \(errnoText(errno))")
        }
        return try parse(bytes)
    }

    static func parse(_ text: String) throws(TableError) -> RouteTable { try parse(Array(text.utf8)) }

    static func parse(_ bytes: [UInt8]) throws(TableError) -> RouteTable {
        var routes: [Route] = []
        try ConfigFile.eachLine(bytes) { lineNumber, line throws(ConfigError) in
            do throws(LineProblem) {
                if let route = try parseLine(line, number: lineNumber) { routes.append(route) }
            } catch {
                throw TableError(line: lineNumber, error.reason)
            }
        }
        guard !routes.isEmpty else { throw TableError(line: nil, "the route table has no routes") }
        try checkConflicts(&routes)
        return RouteTable(routes: routes)
    }

    /// Two routes with the same pattern shape and a method in common would make the
    /// table's meaning depend on line order; that is refused. A same-shape route that
    /// lists HEAD itself takes HEAD over from a GET route.
    private static func checkConflicts(_ routes: inout [Route]) throws(TableError) {
        for i in routes.indices {
            for j in 0..<i where routes[j].pattern.sameShape(as: routes[i].pattern) {
                let a = routes[j].methods, b = routes[i].methods
                let common: String?
                switch (a, b) {
                case (nil, _), (_, nil): common = "*"
                case (let x?, let y?): common = x.first { y.contains($0) }
                }
                if let common {
                    let what = common == "*" ? "one of them takes every method" : "both route \(common)"
                    throw TableError(line: routes[i].line,
                                     "conflicts with line \(routes[j].line): \(routes[j].pattern.text) and \(routes[i].pattern.text) match the same paths and \(what)")
                }
            }
        }
        for i in routes.indices {
            guard let methods = routes[i].methods, methods.contains("GET"), !methods.contains("HEAD") else { continue }
            let explicitHead = routes.contains {
                $0.pattern.sameShape(as: routes[i].pattern) && ($0.methods?.contains("HEAD") ?? false)
            }
            routes[i].headFromGet = !explicitHead
        }
    }

    // MARK: One line

    struct LineProblem: Error { let reason: String; init(_ r: String) { reason = r } }

    /// nil for blank lines and comments.
    static func parseLine(_ line: String, number: Int) throws(LineProblem) -> Route? {
        var fields = Fields(line)
        guard let first = fields.next() else { return nil }
        if first.hasPrefix("#") { return nil }
        if first == "GONE" { return try parseGone(&fields, number: number) }

        let methods = try parseMethods(first)
        guard let patternText = fields.next() else { throw LineProblem("missing the path pattern after the methods") }
        let pattern = try parsePattern(patternText)
        guard let name = fields.next() else {
            throw LineProblem("missing the route name after \(patternText)")
        }
        if name == "respond" { throw LineProblem("missing the route name before 'respond'") }
        try checkName(name)
        guard let keyword = fields.next() else {
            return Route(methods: methods, pattern: pattern, name: name, action: .forward, line: number)
        }
        guard keyword == "respond" else {
            throw LineProblem("unexpected '\(clip(keyword))' after the route name (expected 'respond' or the end of the line)")
        }
        guard let statusText = fields.next() else { throw LineProblem("'respond' needs a status code") }
        guard statusText.utf8.count == 3, let status = Int(statusText), (200...599).contains(status) else {
            throw LineProblem("status '\(clip(statusText))' is not a code from 200 to 599")
        }
        let rest = fields.rest()
        var body: [UInt8] = []
        if !rest.isEmpty {
            if status == 204 || status == 304 { throw LineProblem("status \(status) cannot have a body") }
            do throws(JSONError) {
                body = try JSONReader.parse(String(rest)).serialized()
            } catch {
                throw LineProblem("the response body is not JSON: \(error.message)")
            }
        }
        return Route(methods: methods, pattern: pattern, name: name,
                     action: .respond(status: status, body: body), line: number)
    }

    private static func parseGone(_ fields: inout Fields, number: Int) throws(LineProblem) -> Route {
        guard let patternText = fields.next() else { throw LineProblem("missing the path pattern after GONE") }
        let pattern = try parsePattern(patternText)
        var removed: String?
        var replacement: String?
        while let field = fields.next() {
            // Split at the first '=' as bytes: Character indexing and Substrings cost more
            // at start than the rest of the line's parse.
            // (Outside ASCII a '=' byte may start a longer Character: then by Characters.)
            let u = Array(field.utf8)
            let eq = u.allSatisfy({ $0 < 0x80 }) ? u.firstIndex(of: UInt8(ascii: "="))
                : field.firstIndex(of: "=").map { field.utf8.distance(from: field.startIndex, to: $0) }
            guard let eq else {
                throw LineProblem("expected key=value after the GONE pattern, got '\(clip(field))'")
            }
            let key = String(decoding: u[..<eq], as: UTF8.self), value = String(decoding: u[(eq + 1)...], as: UTF8.self)
            switch key {
            case "removed":
                if removed != nil { throw LineProblem("removed= is given twice") }
                guard isDate(value) else { throw LineProblem("removed=\(clip(value)) is not a date YYYY-MM-DD") }
                removed = value
            case "replacement":
                if replacement != nil { throw LineProblem("replacement= is given twice") }
                guard isReplacement(value) else {
                    throw LineProblem("replacement=\(clip(value)) is not a path starting with '/' or an http(s):// URL")
                }
                replacement = value
            default:
                throw LineProblem("unknown key '\(clip(key))' on a GONE line (removed=, replacement=)")
            }
        }
        guard let removed else { throw LineProblem("a GONE line needs removed=YYYY-MM-DD") }
        return Route(methods: nil, pattern: pattern, name: nil,
                     action: .gone(removed: removed, replacement: replacement), line: number)
    }

    static func parseMethods(_ text: String) throws(LineProblem) -> [String]? {
        if text == "*" { return nil }
        var out: [String] = []
        // By bytes for ASCII (all real tables); outside ASCII a ',' byte may start a longer Character.
        let parts = text.utf8.allSatisfy({ $0 < 0x80 }) ? splitOnByte(text, UInt8(ascii: ","))
            : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for m in parts {
            if m.isEmpty { throw LineProblem("empty method in '\(clip(text))'") }
            if m == "*" { throw LineProblem("'*' (any method) cannot be combined with other methods") }
            if m == "GONE" { throw LineProblem("GONE starts a line of its own; it is not a method") }
            guard m.utf8.allSatisfy(isTokenChar) else {
                throw LineProblem("'\(clip(m))' is not a method (methods are HTTP tokens, e.g. GET,HEAD)")
            }
            guard !m.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }) else {
                throw LineProblem("method '\(clip(m))' must be upper-case (methods are case-sensitive)")
            }
            if out.contains(m) { throw LineProblem("method \(m) is listed twice") }
            out.append(m)
        }
        return out
    }

    static func parsePattern(_ text: String) throws(LineProblem) -> PathPattern {
        guard text.hasPrefix("/") else { throw LineProblem("path pattern '\(clip(text))' must start with '/'") }
        // Segments by byte positions: `split` would build an array of slices, whose generic
        // metadata costs more at start than the parse.
        let u = Array(text.utf8)
        var segments: [PatternSegment] = []
        var params: [String] = []
        var isPrefix = false
        var end = 0
        while end < u.count {
            let start = end + 1                       // after the '/'
            end = start
            while end < u.count && u[end] != UInt8(ascii: "/") { end += 1 }
            let last = end == u.count
            let bytes = Array(u[start..<end])
            if bytes == [UInt8(ascii: "*")] {
                guard last else { throw LineProblem("'*' is allowed only as the last segment (a prefix pattern like /static/*)") }
                isPrefix = true
                continue
            }
            if bytes.contains(UInt8(ascii: "*")) {
                throw LineProblem("'*' must be a whole segment, as in /static/*")
            }
            if bytes.first == UInt8(ascii: ":") {
                let name = String(decoding: bytes.dropFirst(), as: UTF8.self)
                guard isParamName(name) else {
                    throw LineProblem("parameter ':\(clip(name))' needs a name of letters, digits and '_' (not starting with a digit)")
                }
                if params.contains(name) { throw LineProblem("parameter ':\(name)' appears twice") }
                params.append(name)
                segments.append(.param(name))
                continue
            }
            if bytes.isEmpty && !last { throw LineProblem("empty segment ('//') in \(clip(text))") }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { throw LineProblem("dot segment in \(clip(text))") }
            if bytes.contains(UInt8(ascii: "%")) {
                throw LineProblem("percent-encoding in a pattern is not supported (paths are matched as sent)")
            }
            guard bytes.allSatisfy(PathCheck.isPathChar) else {
                throw LineProblem("invalid character in path pattern \(clip(text))")
            }
            segments.append(.literal(bytes))
        }
        return PathPattern(text: text, segments: segments, isPrefix: isPrefix)
    }

    static func checkName(_ name: String) throws(LineProblem) {
        let u = Array(name.utf8)
        guard u.count <= 64, let first = u.first, isAlnum(first),
              u.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }) else {
            throw LineProblem("route name '\(clip(name))' must be letters, digits, '-', '_' or '.' (at most 64, starting with a letter or digit)")
        }
    }

    // MARK: Character classes

    static func isTokenChar(_ b: UInt8) -> Bool { ASCII.isToken(b) }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A)
    }

    static func isParamName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard let f = u.first, !(f >= 0x30 && f <= 0x39) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") }
    }

    static func isDate(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 10, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-") else { return false }
        func num(_ r: Range<Int>) -> Int? {
            var n = 0
            for i in r { guard u[i] >= 0x30 && u[i] <= 0x39 else { return nil }; n = n * 10 + Int(u[i] - 0x30) }
            return n
        }
        guard let y = num(0..<4), let m = num(5..<7), let d = num(8..<10), (1...12).contains(m), d >= 1 else { return false }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return d <= days[m - 1]
    }

    /// A path or URL safe to quote in a JSON body and a `Link: <...>` header.
    static func isReplacement(_ s: String) -> Bool {
        guard s.hasPrefix("/") || s.hasPrefix("https://") || s.hasPrefix("http://") else { return false }
        return s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "<")
            && $0 != UInt8(ascii: ">") && $0 != UInt8(ascii: "\\") }
    }
}

/// Whitespace-separated fields of one line; `rest()` is the remainder (a JSON body may
/// contain spaces). Works on bytes: the table is read at the start of every connection,
/// and stepping through Characters cost more than the rest of route's start-up.
struct Fields {
    private let bytes: [UInt8]
    private var position = 0

    init(_ line: String) { bytes = Array(line.utf8) }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    private mutating func skipSpace() {
        while position < bytes.count, Self.isSpace(bytes[position]) { position += 1 }
    }

    mutating func next() -> String? {
        skipSpace()
        guard position < bytes.count else { return nil }
        let start = position
        while position < bytes.count, !Self.isSpace(bytes[position]) { position += 1 }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    mutating func rest() -> Substring {
        skipSpace()
        var end = bytes.count
        while end > position, Self.isSpace(bytes[end - 1]) { end -= 1 }
        let r = Substring(String(decoding: bytes[position..<end], as: UTF8.self))
        position = bytes.count
        return r
    }
}

/// The parts of `text` between `separator`s, empty parts kept, like `split(separator:
/// omittingEmptySubsequences: false)`, whose array of Substrings costs generic-metadata
/// work at every start.
func splitOnByte(_ text: String, _ separator: UInt8) -> [String] {
    let u = Array(text.utf8)
    var out: [String] = []
    var start = 0
    for i in u.indices where u[i] == separator {
        out.append(String(decoding: u[start..<i], as: UTF8.self))
        start = i + 1
    }
    out.append(String(decoding: u[start...], as: UTF8.self))
    return out
}

/// Keeps messages one short line whatever the input.
func clip(_ s: String, _ limit: Int = 80) -> String {
    guard s.utf8.count > limit else { return s }
    return String(decoding: s.utf8.prefix(limit), as: UTF8.self) + "..."
}
