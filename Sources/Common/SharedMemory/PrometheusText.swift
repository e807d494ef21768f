/// The Prometheus text exposition format (version 0.0.4) of a metrics file.
///
/// Labelled series appear once they are non-zero (a family with nothing counted yet shows
/// only its HELP and TYPE); families without labels always appear. Histogram buckets are
/// stored per bucket and summed here into Prometheus's cumulative `le` buckets, and the
/// count is the +Inf bucket, so a scrape is consistent even while processes add to it.
/// Every value is the sum of the CPUs' shards (Metrics.value).
public enum PrometheusText {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ metrics: Metrics, now: Int64) -> String {
        var out = ""
        out.reserveCapacity(16 << 10)
        let tables: [(Int, [String?])] = [metrics.layout.routes, metrics.layout.upstreams, metrics.layout.eventTypes]
            .map { ($0.base, metrics.names($0)) }
        for family in metrics.layout.allFamilies {
            out += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) \(family.type.rawValue)\n"
            let values = family.labels.map { label -> [String?] in
                switch label {
                case .fixed(_, let v): return v
                case .names(_, let t): return (tables.first { $0.0 == t.base }?.1 ?? []) + ["other"]
                }
            }
            for series in 0..<family.seriesCount {
                // Decode the series number into one value per label (row-major, as Metrics.index).
                var rest = series
                var picked = [String](repeating: "", count: family.labels.count)
                var named = true
                for i in family.labels.indices.reversed() {
                    let n = family.labels[i].cardinality
                    guard let v = values[i][rest % n] else { named = false; break }
                    picked[i] = v
                    rest /= n
                }
                if !named { continue }
                let labels = zip(family.labels, picked).map { "\($0.name)=\"\(escape($1))\"" }
                let first = family.base + series * family.slotsPerSeries
                if family.type == .histogram {
                    renderHistogram(family.name, labels, metrics, first, labelled: !family.labels.isEmpty, into: &out)
                } else {
                    let value = metrics.value(first)
                    if value == 0 && !family.labels.isEmpty { continue }
                    out += family.name + braces(labels) + " \(value)\n"
                }
            }
        }
        let fetched = metrics.value(metrics.layout.keyFetchedAt.base)
        out += "# HELP edgepipe_jwks_age_seconds Seconds since the key set in use was fetched (absent: never fetched).\n"
        out += "# TYPE edgepipe_jwks_age_seconds gauge\n"
        if fetched > 0 { out += "edgepipe_jwks_age_seconds \(max(now - fetched, 0))\n" }
        return out
    }

    private static func renderHistogram(_ name: String, _ labels: [String], _ metrics: Metrics, _ first: Int,
                                        labelled: Bool, into out: inout String) {
        let buckets = (0...Histogram.boundsMicros.count).map { metrics.value(first + $0) }
        let count = buckets.reduce(0, +)
        if count == 0 && labelled { return }
        var cumulative: Int64 = 0
        for (i, bound) in Histogram.boundsMicros.enumerated() {
            cumulative += buckets[i]
            out += name + "_bucket" + braces(labels + ["le=\"\(seconds(bound))\""]) + " \(cumulative)\n"
        }
        out += name + "_bucket" + braces(labels + ["le=\"+Inf\""]) + " \(count)\n"
        out += name + "_sum" + braces(labels) + " \(seconds(metrics.value(first + Histogram.boundsMicros.count + 1)))\n"
        out += name + "_count" + braces(labels) + " \(count)\n"
    }

    private static func braces(_ labels: [String]) -> String {
        labels.isEmpty ? "" : "{" + labels.joined(separator: ",") + "}"
    }

    /// Microseconds as decimal seconds, exactly ("0.0025", "10").
    static func seconds(_ micros: Int64) -> String {
        let whole = micros / 1_000_000, fraction = micros % 1_000_000
        if fraction == 0 { return String(whole) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for c in value.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
