// The route-table parser and the matcher behind it (Sources/Common/RouteTool/RouteTable.swift,
// PathCheck.swift, Router.swift, compiled into this harness's module).
//
// The input is a route table, optionally followed by a NUL byte and request lines
// ("METHOD PATH", one per line) to match against it; without them a fixed list of paths
// is matched. Properties, beyond "no crash":
//   - parsing is deterministic and a trailing newline changes nothing;
//   - every route's pattern re-parses from its own text to the same pattern;
//   - routes are ordered most specific first;
//   - the matcher's exact-path index agrees with a plain first-match scan of the sorted
//     routes;
//   - a match names a route that takes the method and whose pattern matches the path, with
//     exactly the pattern's parameters; a refused path is one PathCheck refuses.
import Records

private let defaultRequests: [(String, String)] = [
    ("GET", "/"), ("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/v1/subscription"), ("POST", "/v1/webhooks/stripe"),
    ("GET", "/v1/users/42"), ("DELETE", "/v1/users/a%20b"), ("GET", "/static/"), ("GET", "/static/img/a.png"),
    ("OPTIONS", "*"), ("OPTIONS", "/v1/users/1"), ("GET", "/v1/profile"), ("PUT", "/v1/profile"), ("GET", "/v1/%2e%2E/x"),
    ("GET", "/a//b"), ("GET", "/v1/users/%FF"), ("GET", "/v1/users/"), ("PATCH", "/static"),
]

private func requests(_ bytes: UnsafeBufferPointer<UInt8>) -> [(String, String)] {
    var out: [(String, String)] = []
    for line in pieces(bytes, separator: 0x0A) {
        let text = String(decoding: line, as: UTF8.self)
        guard let space = text.firstIndex(of: " ") else { continue }
        out.append((String(text[..<space]), String(text[text.index(after: space)...])))
    }
    return out
}

/// What the matcher should find, the slow way: the first route in table order that takes
/// the method and whose pattern matches.
private func reference(_ table: RouteTable, method: String, path: String) -> Route? {
    var bytes = Array(path.utf8)
    return bytes.withUnsafeMutableBufferPointer { p in
        let q = UnsafeBufferPointer(p)
        if PathCheck.problem(q) != nil { return nil }
        return table.routes.first { $0.allows(method) && $0.pattern.matches(q) }
    }
}

private func paramNames(_ pattern: PathPattern) -> [String] {
    var names: [String] = []
    for s in pattern.segments { if case .param(let n) = s { names.append(n) } }
    if pattern.isPrefix { names.append("*") }
    return names
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let nul = input.firstIndex(of: 0)
    let tableBytes = Array(input[0..<(nul ?? size)])
    let table: RouteTable
    do {
        table = try RouteTable.parse(tableBytes)
    } catch {
        require(!error.description.utf8.contains(0x0A), "multi-line table error")
        if case .success = Result(catching: { () throws(TableError) in try RouteTable.parse(tableBytes + [0x0A]) }) {
            require(false, "a trailing newline made a bad table good")
        }
        return 0
    }
    let again = try? RouteTable.parse(tableBytes + [0x0A])
    require(again?.routes == table.routes, "a trailing newline changed the table")

    require(!table.routes.isEmpty, "a table without routes")
    for (i, route) in table.routes.enumerated() {
        let reparsed = try? RouteTable.parsePattern(route.pattern.text)
        require(reparsed == route.pattern, "pattern \(route.pattern.text) does not re-parse to itself")
        if i > 0 { require(!route.pattern.moreSpecific(than: table.routes[i - 1].pattern), "routes out of order at \(i)") }
    }

    let list = nul.map { requests(UnsafeBufferPointer(rebasing: input[($0 + 1)...])) } ?? defaultRequests
    for (method, path) in list.prefix(64) {
        let result = table.match(method: method, path: path)
        require(result == table.match(method: method, path: path), "matching is not deterministic")
        let expected = path == "*" ? nil : reference(table, method: method, path: path)
        switch result {
        case .matched(let route, let params):
            require(route == expected, "\(method) \(path): matched line \(route.line), a scan finds line \(expected?.line ?? -1)")
            require(params.map(\.0) == paramNames(route.pattern), "\(method) \(path): parameters \(params.map(\.0))")
        case .badPath:
            var bytes = Array(path.utf8)
            let refused = bytes.withUnsafeMutableBufferPointer { PathCheck.problem(UnsafeBufferPointer($0)) != nil }
            // Also refused: a parameter that does not decode to UTF-8 (the scan cannot see that).
            require(refused || path == "*" || expected != nil, "\(method) \(path): refused a clean path")
        case .notFound, .methodNotAllowed, .options:
            require(expected == nil, "\(method) \(path): no match, a scan finds line \(expected!.line)")
        }
    }
    return 0
}
