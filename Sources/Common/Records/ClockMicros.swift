#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Clock {
    /// CLOCK_MONOTONIC in microseconds. One clock for the whole machine, so a time taken by
    /// http-decode and one taken by http-encode (two processes) give the request's duration.
    public static func monotonicMicros() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000 + ts.tv_nsec / 1_000
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T18:02:28.042Z`.
    public static func iso8601Millis(_ millis: Int) -> String {
        let seconds = iso8601(millis / 1000)
        let ms = millis % 1000
        return String(seconds.dropLast()) + (ms < 10 ? ".00" : ms < 100 ? ".0" : ".") + String(ms) + "Z"
    }
}
