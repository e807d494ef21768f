#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto

/// The embedded KV engine: one file per key under a directory (layout in KVFileName
/// and docs/kv.md). Each file is a whole JSON document
/// `{"key","version","expires_at","metadata","value"}` that was written to a temporary
/// file, fsynced and renamed into place, so a reader sees the old document or the new
/// one, never a part; a crash leaves one or the other. Writers of a key serialise on a
/// lock file with flock(2), which makes create-only and compare-and-swap safe across
/// processes. A read is one open and one read of one file.
public struct DirectoryStore: KVStore, Sendable {
    public var backendName: String { "directory" }

    public let root: String
    /// The clock expiry is compared with; tests move it.
    public let now: @Sendable () -> Int

    /// Opens (creating it when missing) the store at `root`. A store that exists but
    /// cannot be written opens fine: reads work and writes throw `.unavailable`.
    public init(path root: String, now: @escaping @Sendable () -> Int = { Clock.now() }) throws(KVError) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        guard !root.isEmpty else { throw KVError.unavailable("empty store path") }
        self.root = root
        self.now = now
        var st = stat()
        if stat(root, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw KVError.unavailable("\(root) is not a directory") }
        } else {
            try Self.makeDirectories(root, upTo: nil)
        }
    }

    // MARK: Reading

    public func get(_ key: String) throws(KVError) -> KVEntry? {
        try KVFileName.validate(key)
        guard let entry = try readEntry(key, at: KVFileName.location(of: key)) else { return nil }
        return isLive(entry) ? entry : nil
    }

    func isLive(_ entry: KVEntry) -> Bool { !entry.isExpired(at: now()) }

    /// The stored entry, expired or not; nil when absent.
    func readEntry(_ key: String, at location: KVFileName.Location) throws(KVError) -> KVEntry? {
        guard let bytes = try Self.readWhole(path: path(of: location)) else { return nil }
        let entry: KVEntry
        do {
            entry = try Self.decode(bytes)
        } catch {
            throw KVError.unavailable("corrupt entry \(location.relativePath): \(error)")
        }
        // A hashed name could in theory be another key's: the file says whose it is.
        guard entry.key.utf8.elementsEqual(key.utf8) else {
            if location.hashed { return nil }
            throw KVError.unavailable("entry \(location.relativePath) holds another key")
        }
        return entry
    }

    /// The file's path as a NUL-terminated C string, built in one allocation: this is on
    /// every read, and String concatenation cost more than the open(2) it feeds.
    func path(of location: KVFileName.Location) -> [UInt8] {
        var path: [UInt8] = []
        path.reserveCapacity(root.utf8.count + location.directory.utf8.count + location.name.utf8.count + 3)
        path.append(contentsOf: root.utf8)
        path.append(UInt8(ascii: "/"))
        path.append(contentsOf: location.directory.utf8)
        path.append(UInt8(ascii: "/"))
        path.append(contentsOf: location.name.utf8)
        path.append(0)
        return path
    }

    /// nil when the file (or its directory) does not exist.
    static func readWhole(_ path: String) throws(KVError) -> [UInt8]? {
        try readWhole(path: Array(path.utf8) + [0])
    }

    /// `path` is NUL-terminated.
    static func readWhole(path: [UInt8]) throws(KVError) -> [UInt8]? {
        let fd = path.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC) }
        }
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return nil }
            throw KVError.unavailable("cannot read \(text(path)): \(errnoText(e))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw KVError.unavailable("cannot stat \(text(path)): \(errnoText(errno))") }
        // The size is exact: entry files are renamed into place whole and never written
        // again, so the open descriptor's file cannot grow or shrink. One read suffices.
        let size = Int(st.st_size)
        var failure: Int32 = 0
        // Uninitialised: the bytes are read straight into the array, never zeroed first.
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var filled = 0
            while filled < size {
                let n = read(fd, buffer.baseAddress! + filled, size - filled)
                if n > 0 { filled += n; continue }
                if n == 0 { break }
                if errno == EINTR { continue }
                failure = errno
                break
            }
            count = filled
        }
        if failure != 0 { throw KVError.unavailable("cannot read \(text(path)): \(errnoText(failure))") }
        return out
    }

    /// A NUL-terminated path for a message.
    private static func text(_ path: [UInt8]) -> String { String(decoding: path.dropLast(), as: UTF8.self) }

    struct DecodeError: Error, CustomStringConvertible {
        let description: String
    }

    static func decode(_ bytes: [UInt8]) throws -> KVEntry {
        guard case .object(let o) = try JSONReader.parse(bytes) else { throw DecodeError(description: "not an object") }
        guard let key = o["key"]?.string else { throw DecodeError(description: "no key") }
        guard let version = o["version"]?.int, version >= 1 else { throw DecodeError(description: "no version") }
        guard let value = o["value"] else { throw DecodeError(description: "no value") }
        var expires: Int?
        if let e = o["expires_at"], !e.isNull {
            guard let t = e.int else { throw DecodeError(description: "expires_at is not an integer") }
            expires = t
        }
        var metadata: JSON?
        if let m = o["metadata"], !m.isNull { metadata = m }
        return KVEntry(key: key, value: value, version: version, metadata: metadata, expiresAt: expires)
    }

    static func encode(_ entry: KVEntry) -> [UInt8] {
        var out = entry.json.serialized()
        out.append(0x0A)
        return out
    }

    // MARK: Writing

    @discardableResult
    public func put(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try modify(key) { (stored: KVEntry?) throws(KVError) -> Change in
            .write(value, metadata, expiresAt)
        }!
    }

    @discardableResult
    public func create(_ key: String, _ value: JSON, metadata: JSON?, expiresAt: Int?) throws(KVError) -> KVEntry {
        try modify(key) { (stored: KVEntry?) throws(KVError) -> Change in
            if let stored, isLive(stored) { throw KVError.exists }
            return .write(value, metadata, expiresAt)
        }!
    }

    @discardableResult
    public func compareAndSwap(_ key: String, expected: Int?, _ value: JSON, metadata: JSON?,
                               expiresAt: Int?) throws(KVError) -> KVEntry {
        try modify(key) { (stored: KVEntry?) throws(KVError) -> Change in
            let current = stored.flatMap { isLive($0) ? $0.version : nil }
            guard current == expected else { throw KVError.versionMismatch(current: current) }
            return .write(value, metadata, expiresAt)
        }!
    }

    @discardableResult
    public func delete(_ key: String) throws(KVError) -> Bool {
        var present = false
        try modify(key) { (stored: KVEntry?) throws(KVError) -> Change in
            guard let stored else { return .none }
            present = isLive(stored)
            return .remove
        }
        return present
    }

    enum Change {
        case none
        case write(JSON, JSON?, Int?)
        case remove
    }

    /// Under the key's lock: reads the stored entry (expired ones included, so versions
    /// keep increasing across expiry), lets `decide` choose, and makes the change durable.
    @discardableResult
    private func modify(_ key: String, _ decide: (KVEntry?) throws(KVError) -> Change) throws(KVError) -> KVEntry? {
        try KVFileName.validate(key)
        let location = KVFileName.location(of: key)
        let stripe = KVFileName.lockName(of: key)
        let lock = try Lock(root + "/locks/" + stripe, root: root)
        defer { lock.release() }
        let stored = try readEntry(key, at: location)
        switch try decide(stored) {
        case .none:
            return stored
        case .remove:
            let path = root + "/" + location.relativePath
            if unlink(path) != 0 && errno != ENOENT {
                throw KVError.unavailable("cannot delete \(location.relativePath): \(errnoText(errno))")
            }
            try Self.syncDirectory(root + "/" + location.directory)
            return nil
        case .write(let value, let metadata, let expiresAt):
            let version = (stored?.version ?? 0) + 1
            let entry = KVEntry(key: key, value: value, version: version,
                                metadata: metadata.flatMap { $0.isNull ? nil : $0 }, expiresAt: expiresAt)
            try replace(location, with: Self.encode(entry), lock: stripe)
            return entry
        }
    }

    /// Temporary file in the target's directory, fsync, rename over the target, fsync the
    /// directory: after a crash the target holds the old bytes or the new ones.
    private func replace(_ location: KVFileName.Location, with bytes: [UInt8], lock: String) throws(KVError) {
        let temporary = try writeTemporary(location, bytes, lock: lock, sync: true)
        try publish(temporary, at: location)
        try Self.syncDirectory(root + "/" + location.directory)
    }

    /// Writes `bytes` to a new temporary file beside the target and returns its path;
    /// fsyncs it when `sync` (a write group fsyncs its temporaries together later).
    func writeTemporary(_ location: KVFileName.Location, _ bytes: [UInt8], lock: String,
                        sync: Bool) throws(KVError) -> String {
        let directory = root + "/" + location.directory
        // Unique without a random source: no other writer of this process holds this lock
        // stripe at this nanosecond. O_EXCL catches the impossible case anyway.
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let temporary = directory + "/.tmp." + String(getpid()) + "." + lock + "." + String(ts.tv_sec * 1_000_000_000 + ts.tv_nsec)
        var fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 && errno == ENOENT {
            try Self.makeDirectories(directory, upTo: root)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        guard fd >= 0 else { throw KVError.unavailable("cannot write in \(location.directory): \(errnoText(errno))") }
        var failure: Int32 = 0
        if Self.crashPoint == "temp-written" {
            // Half the bytes, then die: what a crash in the middle of write(2) leaves.
            _ = bytes.withUnsafeBytes { FileOutput.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<$0.count / 2])) }
            Self.crash()
        }
        let wrote = bytes.withUnsafeBytes { FileOutput.writeAll(fd, $0) }
        if !wrote { failure = errno }
        else if sync && fsync(fd) != 0 { failure = errno }
        if close(fd) != 0 && failure == 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw KVError.unavailable("cannot write \(location.relativePath): \(errnoText(failure))")
        }
        return temporary
    }

    /// Renames a temporary file over the target (the directory still needs its fsync).
    func publish(_ temporary: String, at location: KVFileName.Location) throws(KVError) {
        if Self.crashPoint == "before-rename" { Self.crash() }
        if rename(temporary, root + "/" + location.relativePath) != 0 {
            let failure = errno
            unlink(temporary)
            throw KVError.unavailable("cannot write \(location.relativePath): \(errnoText(failure))")
        }
        if Self.crashPoint == "after-rename" { Self.crash() }
    }

    /// Crash points for the durability tests (Tests/system/test_kv.py): with
    /// EDGEPIPE_KV_CRASH_AT set to temp-written, before-rename or after-rename, a writer
    /// kills itself with SIGKILL at that step, so a crash lands exactly where it matters
    /// instead of wherever a timer happens to hit.
    static let crashPoint: String? = environment("EDGEPIPE_KV_CRASH_AT")

    static func crash() -> Never {
        kill(getpid(), SIGKILL)
        abort()
    }

    static func syncDirectory(_ path: String) throws(KVError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return }
            throw KVError.unavailable("cannot open directory \(path): \(errnoText(errno))")
        }
        defer { close(fd) }
        // Some filesystems refuse fsync on directories (EINVAL); there is nothing more to do.
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw KVError.unavailable("cannot sync directory \(path): \(errnoText(errno))")
        }
    }

    /// mkdir -p, syncing each parent so a new directory survives a crash. Stops at `top`
    /// (which must exist) when given.
    static func makeDirectories(_ path: String, upTo top: String?) throws(KVError) {
        var missing: [String] = []
        var p = path
        while true {
            if let top, p == top { break }
            var st = stat()
            if stat(p, &st) == 0 { break }
            missing.append(p)
            guard let slash = p.utf8.lastIndex(of: UInt8(ascii: "/")), slash != p.utf8.startIndex else { break }
            p = String(p[..<slash])
        }
        for dir in missing.reversed() {
            if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                throw KVError.unavailable("cannot create \(dir): \(errnoText(errno))")
            }
            if let slash = dir.utf8.lastIndex(of: UInt8(ascii: "/")), slash != dir.utf8.startIndex {
                try syncDirectory(String(dir[..<slash]))
            }
        }
    }

    /// An exclusive flock(2) held until `release` (or the process's death: the kernel drops
    /// it, so a killed writer never leaves a key locked).
    struct Lock {
        let fd: Int32

        init(_ path: String, root: String) throws(KVError) {
            var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if fd < 0 && errno == ENOENT {
                try DirectoryStore.makeDirectories(root + "/locks", upTo: root)
                fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            }
            guard fd >= 0 else { throw KVError.unavailable("cannot open lock \(path): \(errnoText(errno))") }
            while flock(fd, LOCK_EX) != 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw KVError.unavailable("cannot lock \(path): \(errnoText(e))")
            }
            self.fd = fd
        }

        func release() { close(fd) }
    }

    // MARK: Listing

    public func list(prefix: String, limit: Int, cursor: String?) throws(KVError) -> KVPage {
        let limit = max(1, min(limit, 10_000))
        var after: [UInt8]?
        if let cursor {
            guard let bytes = Hex.decode(cursor), !bytes.isEmpty, Array(Hex.encode(bytes).utf8) == Array(cursor.utf8),
                  String(validating: bytes, as: UTF8.self) != nil else { throw KVError.invalidCursor }
            after = bytes
        }
        let prefixBytes = Array(prefix.utf8)
        var candidates: [[UInt8]] = []
        func consider(_ key: [UInt8]) {
            guard key.starts(with: prefixBytes) else { return }
            if let after, !key.lexicographicallyPrecedes(after) && key != after {
                candidates.append(key)
            } else if after == nil {
                candidates.append(key)
            }
        }
        try scan(KVFileName.flatDirectory, namespace: nil, consider)
        for segmentName in try Self.names(in: root + "/" + KVFileName.namespaceDirectory) {
            guard let segment = KVFileName.unescape(segmentName), KVFileName.escape(segment[...]) == segmentName else { continue }
            // The directory holds keys "segment/...": skip it unless it can hold a match.
            let ns = segment + [UInt8(ascii: "/")]
            guard ns.starts(with: prefixBytes) || prefixBytes.starts(with: ns) else { continue }
            try scan(KVFileName.namespaceDirectory + "/" + segmentName, namespace: ns, consider)
        }
        candidates.sort { $0.lexicographicallyPrecedes($1) }
        var keys: [String] = []
        var index = 0
        while index < candidates.count && keys.count < limit {
            let key = String(decoding: candidates[index], as: UTF8.self)
            index += 1
            // Expired (or just deleted) keys are not listed.
            if let entry = try readEntry(key, at: KVFileName.location(of: key)), isLive(entry) { keys.append(key) }
        }
        let more = index < candidates.count
        return KVPage(keys: keys, cursor: more && !keys.isEmpty ? Hex.encode(Array(keys.last!.utf8)) : nil)
    }

    /// Calls `found` with the key of every entry file in `directory`.
    private func scan(_ directory: String, namespace: [UInt8]?, _ found: ([UInt8]) -> Void) throws(KVError) {
        for name in try Self.names(in: root + "/" + directory) {
            if name.utf8.contains(UInt8(ascii: "#")) {
                // Hashed: the key is inside the file.
                guard let bytes = try Self.readWhole(root + "/" + directory + "/" + name),
                      let entry = try? Self.decode(bytes) else { continue }
                let location = KVFileName.location(of: entry.key)
                if location.directory == directory && location.name == name { found(Array(entry.key.utf8)) }
                continue
            }
            guard let rest = KVFileName.unescape(name) else { continue }   // temporary or stray file
            let key = (namespace ?? []) + rest
            guard String(validating: key, as: UTF8.self) != nil else { continue }
            // Only names this key would be stored under count (guards against stray files).
            let location = KVFileName.location(of: String(decoding: key, as: UTF8.self))
            if location.directory == directory && location.name == name { found(key) }
        }
    }

    /// Entry names in a directory, without `.` and `..`; empty when it does not exist.
    static func names(in path: String) throws(KVError) -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return [] }
            throw KVError.unavailable("cannot list \(path): \(errnoText(errno))")
        }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            out.append(name)
        }
        return out
    }
}

