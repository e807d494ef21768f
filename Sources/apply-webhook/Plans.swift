// The plans file: which tier name a Stripe price stands for. Stripe knows prices
// (price_1Nx..., or a lookup key chosen in the dashboard such as "pro_monthly"); the
// app knows tiers ("basic", "pro"). Several prices map to one tier (monthly, yearly,
// old prices kept for existing customers).

struct Plans: Equatable {
    /// Price id or lookup key → tier.
    private(set) var tiers: [String: String] = [:]

    init(_ tiers: [String: String] = [:]) { self.tiers = tiers }

    struct Invalid: Error, Equatable, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// One mapping per line, `<price id or lookup key> <tier>`, separated by whitespace;
    /// '#' starts a comment; blank lines are skipped. A key listed twice is refused: a
    /// price that means two tiers is a mistake to fix, not to resolve silently.
    static func parse(_ text: String) throws(Invalid) -> Plans {
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
            if let old = plans.tiers[key], old != tier {
                throw Invalid(message: "plans file line \(n + 1): \(key) is already mapped to \(old)")
            }
            plans.tiers[key] = tier
        }
        return plans
    }

    var knownTiers: Set<String> { Set(tiers.values) }

    /// The tier of a price: by id first (exact), then by lookup key.
    func tier(priceID: String?, lookupKey: String?) -> String? {
        if let priceID, let t = tiers[priceID] { return t }
        if let lookupKey, let t = tiers[lookupKey] { return t }
        return nil
    }
}
