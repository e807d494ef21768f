#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto

/// Appends entries to a hash-chained audit log shared by many processes.
///
/// Each append takes an exclusive flock on the head file (never rotated, so every writer
/// locks the same inode), reads the log's last line from the end, appends whole lines
/// with O_APPEND, fsyncs, updates the head, and unlocks: the chain stays linear and lines
/// never interleave. The log is re-found by path on every append, so a file renamed by
/// logrotate is left alone and the next line goes to a new file linked through the head.
///
/// A failed append never throws at the caller: the entry goes to the spill file (and
/// stderr), and the next successful append records the gap in the chain.
public final class AuditLog {
    public enum Outcome: Equatable, Sendable {
        /// In the log at this seq (durable unless fsyncs are grouped).
        case written(seq: Int)
        /// Not in the log: in the spill file and on stderr.
        case spilled(reason: String)
        /// Only on stderr: the spill file could not be written either.
        case stderrOnly(reason: String)
    }

    public let logPath: String
    public let headPath: String
    public let spillPath: String
    /// 1: fsync every entry before `append` returns. N > 1: fsync once per N entries
    /// (and on `sync()`), so entries are passed on before they are durable.
    public let groupFsync: Int
    /// How long an append waits for another writer's lock before spilling instead
    /// (0: forever). A writer stopped while holding the lock must not stall every
    /// connection.
    public let lockTimeoutMillis: Int
    /// Milliseconds since the epoch; replaceable for tests.
    public var now: () -> Int = { Clock.nowMillis() }

    private var logFD: Int32 = -1
    private var logDev: UInt = 0
    private var logIno: UInt = 0
    public private(set) var unsynced = 0
    /// Entries of this process that reached only stderr, not yet accounted for in a gap line.
    public private(set) var stderrOnly = 0
    private var stderrOnlySince: Int?

    public init(logPath: String, headPath: String? = nil, spillPath: String? = nil, groupFsync: Int = 1,
                lockTimeoutMillis: Int = 2000) {
        self.logPath = logPath
        self.headPath = headPath ?? logPath + ".head"
        self.spillPath = spillPath ?? logPath + ".spill"
        self.groupFsync = max(1, groupFsync)
        self.lockTimeoutMillis = max(0, lockTimeoutMillis)
    }

    deinit {
        sync()
        if logFD >= 0 { close(logFD) }
    }

    /// The open log's descriptor (-1 when none), for a timer that fsyncs grouped entries.
    public var fileDescriptor: Int32 { logFD }

    // MARK: Appending

    struct Failure: Error { let reason: String }

    @discardableResult
    public func append(_ entry: AuditEntry) -> Outcome {
        do throws(Failure) {
            let seq = try withLock { headFD throws(Failure) in try appendLocked(entry, headFD: headFD) }
            if groupFsync > 1 && unsynced >= groupFsync { sync() }
            return .written(seq: seq)
        } catch {
            return spill(entry, millis: now(), reason: error.reason)
        }
    }

    /// fsyncs entries written but not yet synced (grouped mode).
    public func sync() {
        guard unsynced > 0, logFD >= 0 else { return }
        if retryEINTR({ fdatasync(logFD) }) != 0 {
            Log.error("fsync of \(unsynced) audit entries in \(logPath) failed (\(errnoText())): they may be lost on a crash")
        }
        unsynced = 0
    }

    private func appendLocked(_ entry: AuditEntry, headFD: Int32) throws(Failure) -> Int {
        // Under the lock, so times follow the file's order (unless the clock steps back).
        let millis = now()
        var (head, headSize) = Self.readHead(headFD)
        try openLog()
        var size = try logSize()
        var (seq, prev) = try lastLine(size: &size, head: head, millis: millis)

        var out: [UInt8] = []
        var reported = head?.spillReported ?? 0
        if let gap = gapFields(reported: &reported) {
            let line = AuditEntry(fields: gap).line(seq: seq + 1, prev: prev, millis: millis)
            seq += 1; prev = AuditChain.hash(line)
            out.append(contentsOf: line); out.append(0x0A)
        }
        let line = entry.line(seq: seq + 1, prev: prev, millis: millis)
        seq += 1; prev = AuditChain.hash(line)
        out.append(contentsOf: line); out.append(0x0A)

        if !FileOutput.writeAll(logFD, out) {
            let reason = "cannot append to \(logPath) (\(errnoText()))"
            // A partial line would break the chain for every later writer: take it back.
            _ = ftruncate(logFD, off_t(size))
            throw Failure(reason: reason)
        }
        if groupFsync <= 1 {
            if retryEINTR({ fdatasync(logFD) }) != 0 {
                let reason = "cannot fsync \(logPath) (\(errnoText()))"
                _ = ftruncate(logFD, off_t(size))
                throw Failure(reason: reason)
            }
        } else {
            unsynced += 1
        }
        stderrOnly = 0
        stderrOnlySince = nil
        head = AuditHead(seq: seq, hash: prev, spillReported: reported)
        Self.writeHead(headFD, head!, size: headSize, path: headPath)
        return seq
    }

    // MARK: The lock (and head) file

    private func withLock<T>(_ body: (Int32) throws(Failure) -> T) throws(Failure) -> T {
        for _ in 0..<8 {
            let fd = open(headPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw Failure(reason: "cannot open \(headPath) (\(errnoText()))") }
            defer { close(fd) }   // closing releases the lock
            switch LockWait.exclusive(fd, timeoutMillis: lockTimeoutMillis) {
            case .locked: break
            case .timedOut:
                throw Failure(reason: "\(headPath) stayed locked by another writer for \(lockTimeoutMillis) ms")
            case .failed(let why):
                throw Failure(reason: "cannot lock \(headPath) (\(why))")
            }
            // The lock is only shared if the path still names the inode locked (the head
            // file was not replaced meanwhile).
            var locked = stat(), named = stat()
            if fstat(fd, &locked) == 0 && stat(headPath, &named) == 0
                && locked.st_dev == named.st_dev && locked.st_ino == named.st_ino {
                return try body(fd)
            }
        }
        throw Failure(reason: "\(headPath) keeps being replaced; cannot lock it")
    }

    /// The head and how many bytes the file holds (up to 512: more is foreign anyway).
    static func readHead(_ fd: Int32) -> (AuditHead?, Int) {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return (nil, 0) }
        return (AuditHead.parse(Array(buffer[0..<n])), n)
    }

    /// Best effort: a stale head only matters if the log is rotated before the next
    /// append (which reads the log itself and rewrites the head).
    static func writeHead(_ fd: Int32, _ head: AuditHead, size: Int, path: String) {
        let bytes = head.serialized()
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
        if n != bytes.count || (size > bytes.count && ftruncate(fd, off_t(bytes.count)) != 0) {
            Log.error("cannot update \(path) (\(errnoText())); the chain continues from the log itself")
        }
    }

    // MARK: The log file

    /// Re-finds the log by path: after a rename (logrotate) the next line starts a new file.
    private func openLog() throws(Failure) {
        var named = stat()
        if logFD >= 0 && stat(logPath, &named) == 0
            && UInt(named.st_dev) == logDev && UInt(named.st_ino) == logIno { return }
        if logFD >= 0 {
            sync()
            close(logFD)
            logFD = -1
        }
        var created = false
        var fd = open(logPath, O_RDWR | O_APPEND | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            fd = open(logPath, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
            if fd >= 0 { created = true }
            else if errno == EEXIST { fd = open(logPath, O_RDWR | O_APPEND | O_CLOEXEC) }
        }
        guard fd >= 0 else { throw Failure(reason: "cannot open \(logPath) (\(errnoText()))") }
        var st = stat()
        fstat(fd, &st)
        logFD = fd
        logDev = UInt(st.st_dev)
        logIno = UInt(st.st_ino)
        if created { Self.syncDirectory(of: logPath) }
    }

    private var logIsRegular = true

    private func logSize() throws(Failure) -> Int {
        var st = stat()
        guard fstat(logFD, &st) == 0 else { throw Failure(reason: "cannot stat \(logPath) (\(errnoText()))") }
        logIsRegular = (st.st_mode & S_IFMT) == S_IFREG
        return logIsRegular ? Int(st.st_size) : 0
    }

    /// The last line's seq and hash. An empty file links to the head (the last line of
    /// the file before rotation), a brand new log to the zero hash. An incomplete last
    /// line (a writer died mid-write) is moved to the spill file first.
    private func lastLine(size: inout Int, head: AuditHead?, millis: Int) throws(Failure) -> (Int, String) {
        let empty = (head?.seq ?? 0, head?.hash ?? AuditChain.zeroHash)
        guard size > 0 else { return empty }
        guard let lastByte = Self.readAt(logFD, at: size - 1, count: 1), lastByte.count == 1 else {
            throw Failure(reason: "cannot read \(logPath) (\(errnoText()))")
        }
        if lastByte[0] != 0x0A {
            let start = Self.lastNewline(logFD, before: size).map { $0 + 1 } ?? 0
            let torn = Self.readAt(logFD, at: start, count: size - start) ?? []
            saveTorn(torn, offset: start, millis: millis)
            guard ftruncate(logFD, off_t(start)) == 0 else {
                throw Failure(reason: "cannot cut the incomplete last line of \(logPath) (\(errnoText()))")
            }
            size = start
            if size == 0 { return empty }
        }
        let start = Self.lastNewline(logFD, before: size - 1).map { $0 + 1 } ?? 0
        guard let line = Self.readAt(logFD, at: start, count: size - 1 - start) else {
            throw Failure(reason: "cannot read \(logPath) (\(errnoText()))")
        }
        let hash = AuditChain.hash(line)
        if let seq = (try? JSONReader.parse(line))?["seq"]?.int { return (seq, hash) }
        // An edited last line: keep chaining to its bytes; verify will name it.
        Log.error("the last line of \(logPath) has no seq (edited?); continuing the chain after it")
        return (head?.hash == hash ? head!.seq : (head?.seq ?? 0), hash)
    }

    private func saveTorn(_ bytes: [UInt8], offset: Int, millis: Int) {
        let fields = JSONObject([("kind", "torn"), ("offset", JSON(offset)),
                                 ("bytes_base64", .string(Base64.encode(bytes)))])
        let reason = "incomplete last line of \(logPath) (a writer died mid-write), cut from the log"
        let line = AuditEntry(fields: fields).spillLine(millis: millis, log: logPath, reason: reason)
        if let failure = appendSpill(line) {
            Log.error("\(reason); cannot spill it (\(failure)): \(String(decoding: line, as: UTF8.self))")
        } else {
            Log.error("\(reason); moved to \(spillPath)")
        }
    }

    /// The offset of the last newline strictly before `end`, reading backwards.
    static func lastNewline(_ fd: Int32, before end: Int) -> Int? {
        var hi = end
        let chunk = 4096
        while hi > 0 {
            let lo = max(0, hi - chunk)
            guard let bytes = readAt(fd, at: lo, count: hi - lo) else { return nil }
            if let i = bytes.lastIndex(of: 0x0A) { return lo + i }
            hi = lo
        }
        return nil
    }

    static func readAt(_ fd: Int32, at offset: Int, count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n > 0 { done += n }
            else if n == 0 { break }
            else if errno != EINTR { return nil }
        }
        return done == count ? out : Array(out[0..<done])
    }

    static func syncDirectory(of path: String) {
        let dir: String
        if let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
            dir = slash == path.utf8.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    // MARK: Spilling and gaps

    private func spill(_ entry: AuditEntry, millis: Int, reason: String) -> Outcome {
        let line = entry.spillLine(millis: millis, log: logPath, reason: reason)
        let text = String(decoding: line, as: UTF8.self)
        if let failure = appendSpill(line) {
            if stderrOnly == 0 { stderrOnlySince = millis }
            stderrOnly += 1
            Log.error("\(reason); cannot spill to \(spillPath) either (\(failure)); entry: \(text)")
            return .stderrOnly(reason: reason)
        }
        Log.error("\(reason); entry spilled to \(spillPath): \(text)")
        return .spilled(reason: reason)
    }

    /// Appends one whole line to the spill file under its own lock (writers that cannot
    /// take the head lock still must not interleave). Returns why it failed, or nil.
    private func appendSpill(_ line: [UInt8]) -> String? {
        let fd = open(spillPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return errnoText() }
        defer { close(fd) }
        guard retryEINTR({ flock(fd, LOCK_EX) }) == 0 else { return errnoText() }
        var st = stat()
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        let isRegular = (st.st_mode & S_IFMT) == S_IFREG
        var bytes = line
        bytes.append(0x0A)
        if !FileOutput.writeAll(fd, bytes) {
            let why = errnoText()
            if isRegular { _ = ftruncate(fd, off_t(size)) }
            return why
        }
        if retryEINTR({ fdatasync(fd) }) != 0 && isRegular {
            let why = errnoText()
            _ = ftruncate(fd, off_t(size))
            return why
        }
        return nil
    }

    /// The gap line owed, if entries went elsewhere since the last one: the spill file's
    /// bytes not yet accounted for (with their count and hash, so they are tamper-evident
    /// too) and this process's entries that only reached stderr.
    private func gapFields(reported: inout Int) -> JSONObject? {
        var fields = JSONObject([("kind", "gap")])
        var any = false
        let fd = open(spillPath, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            _ = retryEINTR { flock(fd, LOCK_SH) }
            var st = stat()
            let size = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? Int(st.st_size) : 0
            // A shorter spill file was rotated or emptied by hand: start over.
            if size < reported { reported = 0 }
            // Very large ranges are accounted for in pieces, one per append.
            if size > reported, let bytes = Self.readAt(fd, at: reported, count: min(size - reported, 64 << 20)),
               let lastNL = bytes.lastIndex(of: 0x0A) {
                let range = Array(bytes[0...lastNL])
                fields["spill"] = .string(spillPath)
                fields["spill_from"] = JSON(reported)
                fields["spill_to"] = JSON(reported + range.count)
                fields["spilled"] = JSON(range.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
                fields["spill_sha256"] = .string(AuditChain.hash(range))
                reported += range.count
                any = true
            }
        }
        if stderrOnly > 0 {
            fields["stderr_only"] = JSON(stderrOnly)
            fields["pid"] = JSON(Int(getpid()))
            if let since = stderrOnlySince { fields["stderr_since"] = .string(AuditChain.timestamp(millis: since)) }
            any = true
        }
        return any ? fields : nil
    }
}

@inline(__always)
private func retryEINTR(_ call: () -> Int32) -> Int32 {
    while true {
        let r = call()
        if r == -1 && errno == EINTR { continue }
        return r
    }
}


/// A blocking flock with a deadline. flock has no timeout, so a POSIX timer sends SIGUSR2
/// (handled without SA_RESTART) every 20 ms while waiting: flock returns EINTR and the
/// deadline is checked. Repeating, not one-shot, so a signal that lands just before the
/// flock call cannot leave it blocked forever.
enum LockWait {
    enum Result { case locked, timedOut, failed(String) }

    // timer_t is a pointer type whose first value is 0 (nil): `ready` says whether it exists.
    nonisolated(unsafe) private static var timer: timer_t?
    nonisolated(unsafe) private static var installed = false
    nonisolated(unsafe) private static var ready = false

    static func exclusive(_ fd: Int32, timeoutMillis: Int) -> Result {
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return .locked }
        if errno != EWOULDBLOCK && errno != EINTR { return .failed(errnoText()) }
        if timeoutMillis == 0 || !install() {
            return retryEINTR({ flock(fd, LOCK_EX) }) == 0 ? .locked : .failed(errnoText())
        }
        let deadline = Clock.monotonicMillis() + timeoutMillis
        arm(true)
        defer { arm(false) }
        while true {
            if flock(fd, LOCK_EX) == 0 { return .locked }
            if errno != EINTR { return .failed(errnoText()) }
            if Clock.monotonicMillis() >= deadline {
                // One last try: the holder may have just let go.
                return flock(fd, LOCK_EX | LOCK_NB) == 0 ? .locked : .timedOut
            }
        }
    }

    private static func install() -> Bool {
        if installed { return ready }
        installed = true
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        action.sa_flags = 0   // no SA_RESTART: the point is to interrupt flock
        sigemptyset(&action.sa_mask)
        guard sigaction(SIGUSR2, &action, nil) == 0 else { return false }
        var event = sigevent()
        event.sigev_notify = Int32(SIGEV_SIGNAL)
        event.sigev_signo = SIGUSR2
        var t: timer_t? = nil
        guard timer_create(CLOCK_MONOTONIC, &event, &t) == 0 else { return false }
        timer = t
        ready = true
        return true
    }

    private static func arm(_ on: Bool) {
        guard ready else { return }
        var spec = itimerspec()
        if on {
            spec.it_value.tv_nsec = 20_000_000
            spec.it_interval.tv_nsec = 20_000_000
        }
        timer_settime(timer, 0, &spec, nil)
    }
}
