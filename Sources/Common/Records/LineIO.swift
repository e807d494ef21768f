#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads newline-delimited lines from a file descriptor with one large buffer and
/// read(2); no per-byte syscalls, no copies for lines that fit in the buffer.
public struct LineReader {
    public enum Event {
        case line(UnsafeBufferPointer<UInt8>)
        /// A line longer than `maxLine`; its bytes were discarded up to the newline.
        case tooLong(prefix: UnsafeBufferPointer<UInt8>)
    }

    public let fd: Int32
    public let maxLine: Int
    private var buffer: UnsafeMutableBufferPointer<UInt8>
    private var start = 0
    private var end = 0
    private var eof = false

    /// A descriptor whose breakage ends the reading, as if at end of input: a filter's
    /// standard output. When the next stage has exited, waiting for more input only keeps
    /// this stage, the ones before it and the client's connection alive for nothing (an
    /// idle keep-alive client would wait for a timeout instead of seeing the close).
    public var watchedOutput: Int32? = nil
    /// Set when reading stopped because `watchedOutput` broke.
    public private(set) var outputGone = false

    /// 16 MiB: above the HTTP decoder's default body limit, base64 included.
    public static let defaultMaxLine = 16 << 20

    public init(fd: Int32 = 0, maxLine: Int = LineReader.defaultMaxLine) {
        self.fd = fd
        self.maxLine = maxLine
        buffer = .allocate(capacity: 1 << 16)
    }

    /// Calls `body` for each line (without its newline) until end of input. A final line
    /// without a newline counts as a line.
    public mutating func forEachLine(_ body: (Event) -> Void) {
        forEachLineWithLookahead { event, _ in body(event) }
    }

    /// The same, telling `body` whether another complete line is already buffered: when
    /// it is not, the next step may block in read(2), so a writer that batches its output
    /// must flush now.
    public mutating func forEachLineWithLookahead(_ body: (Event, _ more: Bool) -> Void) {
        var discarding = false
        var discardPrefix: [UInt8] = []
        var next: Int? = nil   // a newline already found after `start`
        while true {
            // Look for a newline in what is buffered.
            if let nl = next ?? findNewline(from: start) {
                let line = UnsafeBufferPointer(rebasing: buffer[start..<nl])
                start = nl + 1
                next = findNewline(from: start)
                if discarding {
                    discarding = false
                    discardPrefix.withUnsafeBufferPointer { body(.tooLong(prefix: $0), next != nil) }
                    discardPrefix = []
                } else {
                    body(.line(line), next != nil)
                }
                continue
            }
            if eof {
                if start < end {
                    let line = UnsafeBufferPointer(rebasing: buffer[start..<end])
                    start = end
                    if discarding { discardPrefix.withUnsafeBufferPointer { body(.tooLong(prefix: $0), false) } }
                    else { body(.line(line), false) }
                } else if discarding {
                    discardPrefix.withUnsafeBufferPointer { body(.tooLong(prefix: $0), false) }
                }
                return
            }
            // No complete line: make room, then read more.
            if end - start >= maxLine && !discarding {
                discarding = true
                discardPrefix = Array(UnsafeBufferPointer(rebasing: buffer[start..<min(end, start + 4096)]))
            }
            if discarding {
                start = 0; end = 0
            } else if start > 0 {
                let n = end - start
                if n > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, n) }
                start = 0; end = n
            }
            if end == buffer.count {
                let bigger = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: buffer.count * 2)
                memcpy(bigger.baseAddress!, buffer.baseAddress!, end)
                buffer.deallocate()
                buffer = bigger
            }
            if let watched = watchedOutput, Self.waitForInput(fd, watching: watched) == .outputGone {
                outputGone = true
                return
            }
            let n = read(fd, buffer.baseAddress! + end, buffer.count - end)
            if n > 0 { end += n }
            else if n == 0 { eof = true }
            else if errno == EINTR { continue }
            else { eof = true }
        }
    }

    private enum Wait { case readable, outputGone }

    /// Blocks until `input` is readable or `output` reports an error or hang-up (a pipe
    /// whose reader has exited reports POLLERR; a socket closed both ways, POLLHUP).
    private static func waitForInput(_ input: Int32, watching output: Int32) -> Wait {
        var fds = (pollfd(fd: input, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: output, events: 0, revents: 0))
        while true {
            let rc = withUnsafeMutableBytes(of: &fds) {
                poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, -1)
            }
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 { return .readable }   // let read() report the problem
            if fds.0.revents != 0 { return .readable }
            if fds.1.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { return .outputGone }
            return .readable
        }
    }

    private func findNewline(from: Int) -> Int? {
        guard from < end else { return nil }
        let p = memchr(buffer.baseAddress! + from, 0x0A, end - from)
        guard let p else { return nil }
        return buffer.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
    }
}

/// Writes whole buffers to a file descriptor, retrying short writes and EINTR.
public enum FileOutput {
    /// Returns false when the descriptor is closed or broken (EPIPE).
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 { offset += n }
            else if n < 0 && errno == EINTR { continue }
            else { return false }
        }
        return true
    }

    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }
}

/// Diagnostics go to stderr, one line each, prefixed with the program's name.
public enum Log {
    nonisolated(unsafe) public static var program = "edgepipe"
    /// The record being handled: a line logged meanwhile ends with its request id, which
    /// ties it to the access log and the audit trail. Read only when a line is written, so
    /// handling a record costs one assignment.
    nonisolated(unsafe) public static var about: Record?

    public static func error(_ message: String) {
        var line = Array("\(program): ".utf8)
        // A newline in a message must not forge a second log line.
        for b in message.utf8 { line.append(b == 0x0A || b == 0x0D ? UInt8(ascii: " ") : b) }
        if let id = about?.requestID, Record.isWellFormedRequestID(id) {
            line.append(contentsOf: " request_id=\(id)".utf8)
        }
        line.append(0x0A)
        FileOutput.writeAll(2, line)
    }

    /// One-line reason on stderr, exit status 2 (usage or configuration) by default.
    public static func fatal(_ message: String, status: Int32 = 2) -> Never {
        error(message)
        exit(status)
    }

    /// err(3): "program: message: <what errno says>" on stderr, then exit.
    public static func err(_ message: String, errno code: Int32 = errno, status: Int32 = 1) -> Never {
        fatal("\(message): \(errnoText(code))", status: status)
    }

    /// warn(3): the same line as `err`, and carry on.
    public static func warn(_ message: String, errno code: Int32 = errno) {
        error("\(message): \(errnoText(code))")
    }
}

/// strerror(3) of `code` (errno when not given), for messages and thrown errors that say
/// why a system call failed.
public func errnoText(_ code: Int32 = errno) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}

/// Reads a whole file; nil when it cannot be opened or read.
public func readFile(_ path: String, limit: Int = 64 << 20) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    // Sized from fstat (one read for a small file) and left uninitialised: configuration
    // files are read at every start, per connection.
    var size = 1 << 16
    var info = stat()
    if fstat(fd, &info) == 0, info.st_size > 0 { size = min(Int(info.st_size) + 1, limit + 1) }
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
    defer { chunk.deallocate() }
    var out: [UInt8] = []
    while true {
        let n = read(fd, chunk.baseAddress!, chunk.count)
        if n > 0 {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
            if out.count > limit { return nil }
        } else if n == 0 {
            return out
        } else if errno != EINTR {
            return nil
        }
    }
}

/// Reads all of standard input (for secrets and values that must not go on argv).
public func readStandardInput(limit: Int = 64 << 20) -> [UInt8] {
    var out: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
    defer { chunk.deallocate() }
    while true {
        let n = read(0, chunk.baseAddress!, chunk.count)
        if n > 0 { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n])); if out.count > limit { return out } }
        else if n == 0 { return out }
        else if errno != EINTR { return out }
    }
}

/// The value of an environment variable, nil when unset or empty.
public func environment(_ name: String) -> String? {
    // withCString, not getenv(name): the implicit conversion copies the name into a new
    // array at every call, and a start asks for a dozen variables.
    guard let p = name.withCString({ getenv($0) }), p.pointee != 0 else { return nil }
    return String(cString: p)
}
