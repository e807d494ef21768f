#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// Request ids: 128 random bits in hex, unique across the service without coordination.
/// The kernel's randomness (/dev/urandom) is read 4 KiB at a time, not once per request.
public struct RequestIDs {
    /// Empty until the first id: a connection that sends no request (and every start)
    /// does not pay for zeroing and filling it.
    private var pool: [UInt8] = []
    private var used = 0

    public init() {}

    private mutating func refill() {
        if pool.isEmpty { pool = [UInt8](repeating: 0, count: 4096) }
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        var filled = 0
        while fd >= 0 && filled < pool.count {
            let n = pool.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n > 0 { filled += n } else if n == 0 || errno != EINTR { break }
        }
        if fd >= 0 { close(fd) }
        // Without the kernel's randomness ids could repeat across the service: stop, loudly.
        if filled < pool.count { Log.fatal("cannot read /dev/urandom for request ids", status: 1) }
        used = 0
    }

    public mutating func next() -> String {
        if used + 16 > pool.count { refill() }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<16 {
            let b = pool[used + i]
            out[2 * i] = hex[Int(b >> 4)]
            out[2 * i + 1] = hex[Int(b & 0x0F)]
        }
        used += 16
        return String(decoding: out, as: UTF8.self)
    }

    /// An incoming X-Request-Id a trusted proxy may set: 1 to 128 characters from
    /// `A-Z a-z 0-9 - _ . : + / = @`, so it is safe in a header, a log line and a file name
    /// fragment. Anything else is replaced by a fresh id.
    public static func isWellFormed(_ value: String) -> Bool { Record.isWellFormedRequestID(value) }
}

/// When and how a request arrived, for the access log and the duration metric: stamped by
/// http-decode, kept on the response by `Record.response`, read by http-encode.
public struct Arrival: Equatable, Sendable {
    /// Unix milliseconds (wall clock) of the request's first byte.
    public var at: Int
    /// CLOCK_MONOTONIC microseconds of the same moment.
    public var monoMicros: Int
    /// The request's size on the wire: head and body as framed.
    public var bytes = 0

    public static func now() -> Arrival { Arrival(at: Clock.nowMillis(), monoMicros: Clock.monotonicMicros()) }
}
