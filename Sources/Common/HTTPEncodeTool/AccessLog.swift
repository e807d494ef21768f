#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import SharedMemory

/// Where access-log lines go: EDGEPIPE_ACCESS_LOG (or --access-log) is a file, "-" for
/// stderr or "off"; the default is $EDGEPIPE_DATA/log/access.log, off without EDGEPIPE_DATA.
public enum AccessLogDestination: Equatable, Sendable {
    case off, stderr, file(String)

    /// `defaultFile`: where the log goes when nothing is said ($EDGEPIPE_DATA/log/access.log).
    /// `defaultFile` is asked only when no destination is given: with the log off, a start
    /// builds no path (the first long String freed in a process costs ~30 k instructions of
    /// runtime metadata work).
    public static func parse(_ value: String?, defaultFile: @autoclosure () -> String?) -> AccessLogDestination {
        switch value {
        case "off"?: return .off
        case "-"?: return .stderr
        case let path? where !path.isEmpty: return .file(path)
        default: return defaultFile().map { .file($0) } ?? .off
        }
    }
}

/// Appends one line per response with a single O_APPEND write(2), so lines from every
/// pipeline of the machine land whole and never interleave. The file is reopened when it
/// has been renamed or removed (logrotate without copytruncate); that is checked at most
/// once a second, so a rotation loses nothing (lines written meanwhile go to the rotated
/// file). A failed write is counted (edgepipe_access_log_write_errors_total) and reported
/// once, never retried: the response has been sent already and must not wait on the log.
public final class AccessLog {
    public let destination: AccessLogDestination
    private var fd: Int32 = -1
    private var device: UInt64 = 0
    private var inode: UInt64 = 0
    private var checkedSecond = -1
    private var reported = false
    private let metrics: Metrics?
    private let clock: () -> Int

    public init(_ destination: AccessLogDestination, metrics: Metrics? = Metrics.shared, clock: @escaping () -> Int = { time(nil) }) {
        self.destination = destination
        self.metrics = metrics
        self.clock = clock
        switch destination {
        case .off: break
        case .stderr: fd = 2
        case .file: reopen()
        }
    }

    deinit { if case .file = destination, fd >= 0 { close(fd) } }

    /// Writes `line` (which ends in a newline) in one write(2).
    public func write(_ line: [UInt8]) {
        if case .off = destination { return }
        if case .file = destination { reopenIfMoved() }
        guard fd >= 0 else { return failed("the access log is not open") }
        let n = line.withUnsafeBytes { systemWrite(fd, $0.baseAddress!, $0.count) }
        if n != line.count { failed(n < 0 ? String(cString: strerror(errno)) : "short write (\(n) of \(line.count) bytes)") }
    }

    private func failed(_ why: String) {
        metrics?.add(metrics!.layout.accessLogFailures)
        if reported { return }
        reported = true
        if case .file(let path) = destination {
            Log.error("access log \(path): \(why) (counted in edgepipe_access_log_write_errors_total; reported once per process)")
        } else {
            Log.error("access log: \(why)")
        }
    }

    private func reopenIfMoved() {
        let second = clock()
        if second == checkedSecond && fd >= 0 { return }
        checkedSecond = second
        guard case .file(let path) = destination else { return }
        var st = stat()
        if fd >= 0, stat(path, &st) == 0, UInt64(st.st_dev) == device, UInt64(st.st_ino) == inode { return }
        reopen()
    }

    private func reopen() {
        guard case .file(let path) = destination else { return }
        if fd >= 0 { close(fd) }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        var st = stat()
        if fd >= 0, fstat(fd, &st) == 0 {
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        } else if fd < 0 {
            failed("cannot open: \(String(cString: strerror(errno)))")
        }
    }
}

/// write(2), named apart from AccessLog.write.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
