import Records

// Names nobody may reserve. The file is read when the filter starts, i.e. once per
// connection, so an edit applies to the next connection without a restart.

struct Blocklist: Equatable {
    /// One line of the file: an exact name, or a glob with `*` (any run, empty included)
    /// and `?` (one character).
    struct Rule: Equatable {
        let text: String
        let line: Int
        var isPattern: Bool { text.utf8.contains(UInt8(ascii: "*")) || text.utf8.contains(UInt8(ascii: "?")) }
    }

    var rules: [Rule]

    init(rules: [Rule] = []) { self.rules = rules }

    /// One rule per line; `#` starts a comment; blank lines are skipped; rules are
    /// lower-cased, as names are before they are checked.
    init(text: String) {
        var rules: [Rule] = []
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let rule = lowercasedASCII(String(line.filter { !$0.isWhitespace }))
            if !rule.isEmpty { rules.append(Rule(text: rule, line: index + 1)) }
        }
        self.rules = rules
    }

    /// nil when the file cannot be read.
    static func load(path: String) -> Blocklist? {
        guard let bytes = readFile(path, limit: 4 << 20) else { return nil }
        return Blocklist(text: String(decoding: bytes, as: UTF8.self))
    }

    /// The first rule that blocks `name` (already lower-cased), if any.
    func match(_ name: String) -> Rule? {
        let n = Array(name.utf8)
        return rules.first { Self.glob(Array($0.text.utf8), n) }
    }

    /// `*` and `?` matching with one backtracking point (the last `*`): linear enough for
    /// 63-byte names, and no pattern can make it blow up.
    static func glob(_ p: [UInt8], _ s: [UInt8]) -> Bool {
        var pi = 0, si = 0
        var star = -1, resume = 0
        while si < s.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == s[si]) {
                pi += 1; si += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                star = pi; resume = si; pi += 1
            } else if star >= 0 {
                pi = star + 1; resume += 1; si = resume
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
