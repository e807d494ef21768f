#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Wall-clock time. `EDGEPIPE_CLOCK_OFFSET` (seconds, may be negative) shifts it, so
/// clock skew between this machine and a token issuer or Stripe can be reproduced
/// without faketime (which cannot hook a static binary).
public enum Clock {
    private static let offset: Int = environment("EDGEPIPE_CLOCK_OFFSET").flatMap { Int($0) } ?? 0

    /// Seconds since the Unix epoch.
    public static func now() -> Int { time(nil) + offset }

    /// Milliseconds since the Unix epoch.
    public static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (ts.tv_sec + offset) * 1000 + ts.tv_nsec / 1_000_000
    }

    /// Microseconds since the Unix epoch (rate limits count in them).
    public static func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int64(ts.tv_sec) + Int64(offset)) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// A monotonic clock in milliseconds, for timeouts.
    public static func monotonicMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    public static func httpDate(_ seconds: Int = now()) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        return "\(days[Int(tm.tm_wday)]), \(pad2(Int(tm.tm_mday))) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(pad2(Int(tm.tm_hour))):\(pad2(Int(tm.tm_min))):\(pad2(Int(tm.tm_sec))) GMT"
    }

    /// RFC 3339 in UTC, e.g. `2026-11-23T18:02:28Z`.
    public static func iso8601(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        return "\(tm.tm_year + 1900)-\(pad2(Int(tm.tm_mon) + 1))-\(pad2(Int(tm.tm_mday)))T"
            + "\(pad2(Int(tm.tm_hour))):\(pad2(Int(tm.tm_min))):\(pad2(Int(tm.tm_sec)))Z"
    }

    private static func pad2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
