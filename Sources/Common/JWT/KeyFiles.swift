#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// File handling for key material shared between processes: the JWKS cache of verify-jwt
/// and the dev key pair of sign-jwt. Keys decide who is authenticated, so their files are
/// written whole (temp, fsync, rename, fsync directory) and their directories are private.
public enum KeyFiles {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ what: String, _ path: String, errno code: Int32 = errno) {
            description = "\(what) \(path): \(errnoText(code))"
        }
    }

    /// Creates `path` (and missing parents) with mode 0700. An existing directory that
    /// others can write to is refused: anyone who can plant a key file can mint identities.
    public static func ensurePrivateDirectory(_ path: String) throws(Failure) {
        var parts: [Substring] = []
        for component in path.split(separator: "/") { parts.append(component) }
        var current = path.hasPrefix("/") ? "" : "."
        for (i, part) in parts.enumerated() {
            current += "/" + part
            let last = i == parts.count - 1
            if mkdir(current, last ? 0o700 : 0o755) != 0 && errno != EEXIST { throw Failure("cannot create", current) }
        }
        var st = stat()
        guard stat(path, &st) == 0 else { throw Failure("cannot stat", path) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw Failure("not a directory:", path, errno: ENOTDIR) }
        if st.st_uid != geteuid() || (st.st_mode & 0o022) != 0 {
            throw Failure("refusing a key directory writable by others or owned by another user:", path, errno: EPERM)
        }
    }

    /// Replaces `path` atomically and durably with `bytes`, created with `mode`.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(Failure) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw Failure("cannot create", temporary) }
        var failure: Int32 = 0
        if !bytes.isEmpty && !FileOutput.writeAll(fd, bytes) { failure = errno == 0 ? EIO : errno }
        if failure == 0 && fchmod(fd, mode) != 0 { failure = errno }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw Failure("cannot write", path, errno: failure)
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// The identity of a file's current version (inode, size, modification time), to notice
    /// cheaply that another process replaced it.
    public struct Version: Equatable, Sendable {
        var device: UInt64, inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int
    }

    public static func version(_ path: String) -> Version? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Version(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                       seconds: Int(st.st_mtim.tv_sec), nanoseconds: Int(st.st_mtim.tv_nsec))
    }
}

/// An exclusive flock(2) on a lock file, released when the value goes away. The lock file
/// also holds one small note (a timestamp) that only the lock holder reads or writes.
public final class FileLock {
    private let fd: Int32

    /// Waits at most `timeoutMillis` for the lock; nil when it could not be had in time.
    public init?(path: String, timeoutMillis: Int) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return nil }
        let deadline = Clock.monotonicMillis() + timeoutMillis
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if (errno != EWOULDBLOCK && errno != EINTR) || Clock.monotonicMillis() >= deadline {
                close(fd)
                return nil
            }
            usleep(5_000)
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// The note, as text (empty when none).
    public func readNote() -> String {
        var buffer = [UInt8](repeating: 0, count: 128)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n], as: UTF8.self).trimmingSpacesAndTabs().split(separator: "\n").first.map(String.init) ?? ""
    }

    public func writeNote(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        _ = ftruncate(fd, 0)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }
}
