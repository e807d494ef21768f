// The plans file: which tier name a Stripe price stands for. Stripe knows prices
// (price_1Nx..., or a lookup key chosen in the dashboard such as "pro_monthly"); the
// app knows tiers ("basic", "pro"). Several prices map to one tier (monthly, yearly,
// old prices kept for existing customers).

struct Plans: Equatable {
    /// Price id or lookup key → tier: `keys[i]` stands for `tierNames[i]`, in file order.
    /// Two arrays searched linearly, not a [String: String]: a plans file is a few lines,
    /// and a Dictionary's generic metadata and conformance look-ups cost more at every
    /// start than parsing the whole file.
    private(set) var keys: [String] = []
    private(set) var tierNames: [String] = []

    init() {}

    init(_ tiers: [String: String]) {
        for key in tiers.keys.sorted() { set(key, tiers[key]!) }
    }

    /// The same mappings, whatever their order.
    static func == (a: Plans, b: Plans) -> Bool {
        a.keys.count == b.keys.count && a.keys.indices.allSatisfy { b.tier(of: a.keys[$0]) == a.tierNames[$0] }
    }

    private func tier(of key: String) -> String? {
        keys.firstIndex(of: key).map { tierNames[$0] }
    }

    private mutating func set(_ key: String, _ tier: String) {
        if let i = keys.firstIndex(of: key) { tierNames[i] = tier } else { keys.append(key); tierNames.append(tier) }
    }

    struct Invalid: Error, Equatable, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// One mapping per line, `<price id or lookup key> <tier>`, separated by whitespace;
    /// '#' starts a comment; blank lines are skipped. A key listed twice is refused: a
    /// price that means two tiers is a mistake to fix, not to resolve silently.
    static func parse(_ text: String) throws(Invalid) -> Plans {
        // apply-webhook reads this file at the start of every connection: an ASCII file
        // (every real one) is split as bytes, which gives the same fields and line numbers
        // as splitting Characters at a fraction of the cost.
        var text = text
        if text.withUTF8({ $0.allSatisfy { $0 < 0x80 } }) { return try parseASCII(Array(text.utf8)) }
        var plans = Plans()
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        for (n, raw) in lines.enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = content.split(whereSeparator: { $0.isWhitespace })
            if words.isEmpty { continue }
            guard words.count == 2 else {
                throw Invalid(message: "plans file line \(n + 1): expected '<price id or lookup key> <tier>'")
            }
            let key = String(words[0]), tier = String(words[1])
            if let old = plans.tier(of: key), old != tier {
                throw Invalid(message: "plans file line \(n + 1): \(key) is already mapped to \(old)")
            }
            plans.set(key, tier)
        }
        return plans
    }

    private static func parseASCII(_ bytes: [UInt8]) throws(Invalid) -> Plans {
        var plans = Plans()
        var n = 0
        var i = 0
        while i <= bytes.count {
            // One line: up to \n, \r\n or \r (as Character splitting has it).
            var end = i
            while end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D { end += 1 }
            var words: [String] = []
            var k = i
            while k < end, bytes[k] != UInt8(ascii: "#") {
                // ASCII whitespace as Character.isWhitespace sees it: \t \n \v \f \r, space, and 0x85 is not ASCII.
                if (0x09...0x0D).contains(bytes[k]) || bytes[k] == 0x20 { k += 1; continue }
                let start = k
                while k < end, bytes[k] != UInt8(ascii: "#"), !((0x09...0x0D).contains(bytes[k]) || bytes[k] == 0x20) { k += 1 }
                words.append(String(decoding: bytes[start..<k], as: UTF8.self))
            }
            if !words.isEmpty {
                guard words.count == 2 else {
                    throw Invalid(message: "plans file line \(n + 1): expected '<price id or lookup key> <tier>'")
                }
                let key = words[0], tier = words[1]
                if let old = plans.tier(of: key), old != tier {
                    throw Invalid(message: "plans file line \(n + 1): \(key) is already mapped to \(old)")
                }
                plans.set(key, tier)
            }
            n += 1
            if end == bytes.count { break }
            i = end + (bytes[end] == 0x0D && end + 1 < bytes.count && bytes[end + 1] == 0x0A ? 2 : 1)
        }
        return plans
    }

    var knownTiers: [String] { tierNames }

    /// The tier of a price: by id first (exact), then by lookup key.
    func tier(priceID: String?, lookupKey: String?) -> String? {
        if let priceID, let t = tier(of: priceID) { return t }
        if let lookupKey, let t = tier(of: lookupKey) { return t }
        return nil
    }
}
