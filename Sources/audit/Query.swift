#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// Which entries `audit query` prints: every option given must match; a repeated
/// option matches any of its values.
struct EntryMatcher {
    /// Entry field name and the accepted values.
    var fields: [(String, [String])] = []
    /// Milliseconds since the epoch: since inclusive, until exclusive.
    var since: Int?
    var until: Int?

    func matches(_ entry: JSONObject) -> Bool {
        for (name, values) in fields {
            guard let v = entry[name], let text = Self.text(v), values.contains(text) else { return false }
        }
        if since != nil || until != nil {
            guard let t = Self.millis(of: entry) else { return false }
            if let since, t < since { return false }
            if let until, t >= until { return false }
        }
        return true
    }

    /// Strings as they are, numbers as their text (a uid may be either).
    static func text(_ v: JSON) -> String? {
        switch v {
        case .string(let s): return s
        case .number(let n): return n
        case .bool(let b): return b ? "true" : "false"
        default: return nil
        }
    }

    static func millis(of entry: JSONObject) -> Int? {
        if let t = entry["time"]?.string, let ms = TimeParser.millis(t) { return ms }
        return entry["unix"]?.int.map { $0 * 1000 }
    }
}

/// RFC 3339 timestamps, plain dates (UTC midnight) and Unix seconds, to epoch milliseconds.
enum TimeParser {
    static func millis(_ text: String) -> Int? {
        let b = Array(text.utf8)
        if !b.isEmpty, b.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) || (b[0] == 0x2D && b.count > 1 && b.dropFirst().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })) {
            return Int(text).map { $0 * 1000 }
        }
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= b.count else { return nil }
            var n = 0
            for k in i..<i + digits {
                guard b[k] >= 0x30 && b[k] <= 0x39 else { return nil }
                n = n * 10 + Int(b[k] - 0x30)
            }
            i += digits
            return n
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(0x2D), let month = number(2), expect(0x2D), let day = number(2),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        var hour = 0, minute = 0, second = 0, ms = 0, offset = 0
        if i < b.count {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == 0x20 else { return nil }
            i += 1
            guard let h = number(2), expect(0x3A), let m = number(2), h < 24, m < 60 else { return nil }
            hour = h; minute = m
            if expect(0x3A) {
                guard let s = number(2), s <= 60 else { return nil }
                second = s
                if expect(0x2E) {
                    var scale = 100, digits = 0
                    while i < b.count, b[i] >= 0x30 && b[i] <= 0x39 {
                        ms += Int(b[i] - 0x30) * scale
                        scale /= 10; digits += 1; i += 1
                    }
                    guard digits > 0 else { return nil }
                }
            }
            if expect(UInt8(ascii: "Z")) || expect(UInt8(ascii: "z")) {
            } else if i < b.count, b[i] == 0x2B || b[i] == 0x2D {
                let sign = b[i] == 0x2B ? 1 : -1
                i += 1
                guard let oh = number(2), expect(0x3A), let om = number(2), oh < 24, om < 60 else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            } else {
                return nil   // a time without a zone is ambiguous
            }
        }
        guard i == b.count else { return nil }
        var t = tm()
        t.tm_year = Int32(year - 1900); t.tm_mon = Int32(month - 1); t.tm_mday = Int32(day)
        t.tm_hour = Int32(hour); t.tm_min = Int32(minute); t.tm_sec = Int32(second)
        let seconds = Int(timegm(&t)) - offset
        return seconds * 1000 + ms
    }
}

/// `audit query`: matching lines, byte for byte.
enum QueryCommand {
    static let fieldOptions = [("--uid", "uid"), ("--type", "event_type"), ("--outcome", "outcome"),
                               ("--kind", "kind"), ("--event", "event_id"), ("--request-id", "request_id")]

    static func main(_ options: ParsedOptions) -> Never {
        var matcher = EntryMatcher()
        for (option, field) in fieldOptions {
            let values = options.values(option)
            if !values.isEmpty { matcher.fields.append((field, values)) }
        }
        for (option, keyPath) in [("--since", \EntryMatcher.since), ("--until", \EntryMatcher.until)] {
            if let text = options.value(option) {
                guard let ms = TimeParser.millis(text) else {
                    Log.fatal("\(option): '\(text)' is not RFC 3339 (2026-01-02T03:04:05Z), a date or Unix seconds")
                }
                matcher[keyPath: keyPath] = ms
            }
        }
        let files = options.positional.isEmpty ? [AuditFilter.logPath(options)] : options.positional
        var out: [UInt8] = []
        for file in files {
            let fd = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
            if fd < 0 { Log.err("cannot read \(file)", status: 2) }
            var reader = LineReader(fd: fd)
            var number = 0
            var closed = false
            reader.forEachLine { event in
                number += 1
                guard !closed, case .line(let line) = event else { return }
                guard let entry = try? JSONReader.parse(line).object else {
                    Log.error("\(file):\(number): not a JSON object, skipped")
                    return
                }
                guard matcher.matches(entry) else { return }
                out.append(contentsOf: line)
                out.append(0x0A)
                if out.count >= 1 << 16 {
                    if !FileOutput.writeAll(1, out) { closed = true }
                    out.removeAll(keepingCapacity: true)
                }
            }
            if fd != 0 { close(fd) }
            if closed { exit(0) }
        }
        FileOutput.writeAll(1, out)
        exit(0)
    }
}
